; ONNX Forge installer (NSIS 3). Compile with installer/build_installer.py, which fills the defines:
;   makensis /DVERSION=0.1.0 /DDIST_DIR=build\dist\onnx-forge /DOUTFILE=ONNXForge-0.1.0-directml-setup.exe
;            [/DFLAVOR=directml] [/DVC_REDIST=path\to\vc_redist.x64.exe] installer\onnx-forge.nsi
; Installs per user without administrator rights by default (MultiUser: %LOCALAPPDATA%\Programs\ONNX Forge);
; an administrator may choose all users. The uninstaller removes the program only: models, the library, job
; history and settings live in %LOCALAPPDATA%\ONNX Forge and the user's INI file, and stay.

Unicode true
SetCompressor /SOLID lzma

!ifndef VERSION
  !error "VERSION is not defined: build with installer/build_installer.py"
!endif
!ifndef DIST_DIR
  !error "DIST_DIR (the PyInstaller one-folder bundle) is not defined"
!endif
!ifndef OUTFILE
  !define OUTFILE "ONNXForge-${VERSION}-setup.exe"
!endif
!ifndef FLAVOR
  !define FLAVOR "directml"
!endif

!define APP_NAME "ONNX Forge"
!define APP_EXE "OnnxForge.exe"
!define CLI_EXE "onnx-forge.exe"
!define APP_KEY "Software\ONNX Forge"
!define UNINSTALL_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\ONNX Forge"
; onnxruntime needs a recent Visual C++ 2015-2022 runtime; this is the oldest minor version accepted.
!define VCRT_MIN_MINOR 40
!define VCRT_DOWNLOAD "https://aka.ms/vs/17/release/vc_redist.x64.exe"

Name "${APP_NAME}"
OutFile "${OUTFILE}"
BrandingText "${APP_NAME} ${VERSION} (${FLAVOR})"
VIProductVersion "${VERSION}.0"
VIAddVersionKey "ProductName" "${APP_NAME}"
VIAddVersionKey "ProductVersion" "${VERSION}"
VIAddVersionKey "FileVersion" "${VERSION}"
VIAddVersionKey "FileDescription" "${APP_NAME} installer (${FLAVOR})"
VIAddVersionKey "LegalCopyright" "ONNX Forge contributors"

!define MULTIUSER_EXECUTIONLEVEL Highest
!define MULTIUSER_MUI
!define MULTIUSER_INSTALLMODE_COMMANDLINE
!define MULTIUSER_INSTALLMODE_DEFAULT_CURRENTUSER
!define MULTIUSER_USE_PROGRAMFILES64
!define MULTIUSER_INSTALLMODE_INSTDIR "${APP_NAME}"
!define MULTIUSER_INSTALLMODE_DEFAULT_REGISTRY_KEY "${APP_KEY}"
!define MULTIUSER_INSTALLMODE_DEFAULT_REGISTRY_VALUENAME "InstallMode"
!define MULTIUSER_INSTALLMODE_INSTDIR_REGISTRY_KEY "${APP_KEY}"
!define MULTIUSER_INSTALLMODE_INSTDIR_REGISTRY_VALUENAME "InstallDir"
!include MultiUser.nsh
!include MUI2.nsh
!include LogicLib.nsh
!include x64.nsh

!define MUI_ABORTWARNING
!define MUI_ICON "forge.ico"
!define MUI_UNICON "forge.ico"
!define MUI_FINISHPAGE_RUN "$INSTDIR\${APP_EXE}"
!define MUI_FINISHPAGE_RUN_TEXT "Start ${APP_NAME}"

!insertmacro MULTIUSER_PAGE_INSTALLMODE
!insertmacro MUI_PAGE_COMPONENTS
!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_INSTFILES
!insertmacro MUI_LANGUAGE "English"

Var VcrtMajor
Var VcrtMinor

Function .onInit
  ${IfNot} ${RunningX64}
    MessageBox MB_OK|MB_ICONSTOP "${APP_NAME} needs 64-bit Windows."
    Abort
  ${EndIf}
  !insertmacro MULTIUSER_INIT
FunctionEnd

Function un.onInit
  !insertmacro MULTIUSER_UNINIT
FunctionEnd

; Reads the installed x64 Visual C++ runtime's version into $VcrtMajor/$VcrtMinor (0 when none is installed).
Function ReadVcRuntime
  StrCpy $VcrtMajor 0
  StrCpy $VcrtMinor 0
  SetRegView 64
  ReadRegDWORD $0 HKLM "SOFTWARE\Microsoft\VisualStudio\14.0\VC\Runtimes\x64" "Installed"
  ${If} $0 != 1
    SetRegView 32
    ReadRegDWORD $0 HKLM "SOFTWARE\Microsoft\VisualStudio\14.0\VC\Runtimes\x64" "Installed"
  ${EndIf}
  ${If} $0 == 1
    ReadRegDWORD $VcrtMajor HKLM "SOFTWARE\Microsoft\VisualStudio\14.0\VC\Runtimes\x64" "Major"
    ReadRegDWORD $VcrtMinor HKLM "SOFTWARE\Microsoft\VisualStudio\14.0\VC\Runtimes\x64" "Minor"
  ${EndIf}
  SetRegView lastused
FunctionEnd

; The bundle ships no msvcp140.dll (an old copy loaded first breaks onnxruntime), so a current runtime must be
; installed system-wide: run the redistributable when the build put one in, else offer its download page.
Function EnsureVcRuntime
  Call ReadVcRuntime
  ${If} $VcrtMajor == 14
  ${AndIf} $VcrtMinor >= ${VCRT_MIN_MINOR}
    DetailPrint "Visual C++ runtime 14.$VcrtMinor found"
    Return
  ${EndIf}
!ifdef VC_REDIST
  DetailPrint "Installing the Visual C++ runtime (it asks for administrator rights)"
  SetOutPath "$PLUGINSDIR"
  File "/oname=vc_redist.x64.exe" "${VC_REDIST}"
  ExecWait '"$PLUGINSDIR\vc_redist.x64.exe" /install /passive /norestart' $0
  ${If} $0 == 0
  ${OrIf} $0 == 3010
    Return
  ${EndIf}
  DetailPrint "The Visual C++ runtime installer ended with code $0"
!endif
  MessageBox MB_YESNO|MB_ICONEXCLAMATION "${APP_NAME} needs the Microsoft Visual C++ 2015-2022 runtime (x64), \
      version 14.${VCRT_MIN_MINOR} or newer; this PC has $VcrtMajor.$VcrtMinor.$\r$\n$\r$\nOpen its download page \
      now? Install it, then start ${APP_NAME}." /SD IDNO IDNO done
  ExecShell "open" "${VCRT_DOWNLOAD}"
  done:
FunctionEnd

Section "${APP_NAME}" SecApp
  SectionIn RO
  ; A previous version's program files go first; the user's data is elsewhere and is not touched.
  RMDir /r "$INSTDIR\_internal"
  SetOutPath "$INSTDIR"
  File /r "${DIST_DIR}\*"
  WriteUninstaller "$INSTDIR\Uninstall.exe"
  CreateShortcut "$SMPROGRAMS\${APP_NAME}.lnk" "$INSTDIR\${APP_EXE}"
  WriteRegStr SHCTX "${APP_KEY}" "InstallMode" $MultiUser.InstallMode
  WriteRegStr SHCTX "${APP_KEY}" "InstallDir" "$INSTDIR"
  WriteRegStr SHCTX "${APP_KEY}" "Flavor" "${FLAVOR}"
  WriteRegStr SHCTX "${UNINSTALL_KEY}" "DisplayName" "${APP_NAME}"
  WriteRegStr SHCTX "${UNINSTALL_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr SHCTX "${UNINSTALL_KEY}" "Publisher" "ONNX Forge contributors"
  WriteRegStr SHCTX "${UNINSTALL_KEY}" "DisplayIcon" "$INSTDIR\${APP_EXE}"
  WriteRegStr SHCTX "${UNINSTALL_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr SHCTX "${UNINSTALL_KEY}" "UninstallString" '"$INSTDIR\Uninstall.exe" /$MultiUser.InstallMode'
  WriteRegStr SHCTX "${UNINSTALL_KEY}" "QuietUninstallString" '"$INSTDIR\Uninstall.exe" /$MultiUser.InstallMode /S'
  WriteRegDWORD SHCTX "${UNINSTALL_KEY}" "NoModify" 1
  WriteRegDWORD SHCTX "${UNINSTALL_KEY}" "NoRepair" 1
  Call EnsureVcRuntime
SectionEnd

Section /o "Desktop shortcut" SecDesktop
  CreateShortcut "$DESKTOP\${APP_NAME}.lnk" "$INSTDIR\${APP_EXE}"
SectionEnd

!insertmacro MUI_FUNCTION_DESCRIPTION_BEGIN
  !insertmacro MUI_DESCRIPTION_TEXT ${SecApp} "The studio and its command line (${CLI_EXE})."
  !insertmacro MUI_DESCRIPTION_TEXT ${SecDesktop} "A shortcut to ${APP_NAME} on the desktop."
!insertmacro MUI_FUNCTION_DESCRIPTION_END

; Removes exactly what the installer put in $INSTDIR, never the folder's other contents: models, library,
; job history and settings are kept.
Section "Uninstall"
  Delete "$DESKTOP\${APP_NAME}.lnk"
  Delete "$SMPROGRAMS\${APP_NAME}.lnk"
  RMDir /r "$INSTDIR\_internal"
  Delete "$INSTDIR\${APP_EXE}"
  Delete "$INSTDIR\${CLI_EXE}"
  Delete "$INSTDIR\Uninstall.exe"
  RMDir "$INSTDIR"
  DeleteRegKey SHCTX "${UNINSTALL_KEY}"
  DeleteRegKey SHCTX "${APP_KEY}"
SectionEnd
