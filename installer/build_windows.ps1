# Build the Windows installer of one flavor: a fresh venv from the flavor's locked requirements, the one-folder
# bundle, its checks and smoke test, then the NSIS installer. Needs Python 3.11 x64 and NSIS (makensis) on PATH.
#   powershell -ExecutionPolicy Bypass -File installer\build_windows.ps1 [-Flavor directml] [-Python python]
# Output: build\installer\ONNXForge-<version>-<flavor>-setup.exe. Put a vc_redist.x64.exe in installer\ first to
# have the installer run it when a PC's Visual C++ runtime is missing or old.
param(
    [string]$Flavor = "directml",
    [string]$Python = "python",
    [string]$BuildDir = "build"
)
$ErrorActionPreference = "Stop"
Set-Location (Split-Path $PSScriptRoot -Parent)

function Invoke-Step([string]$Program, [string[]]$Arguments) {
    Write-Host ">> $Program $($Arguments -join ' ')"
    & $Program @Arguments
    if ($LASTEXITCODE -ne 0) { throw "$Program $($Arguments -join ' ') failed with exit code $LASTEXITCODE" }
}

$venv = Join-Path $BuildDir "venv-$Flavor"
if (-not (Test-Path "$venv\Scripts\python.exe")) { Invoke-Step $Python @("-m", "venv", $venv) }
$py = Join-Path $venv "Scripts\python.exe"
# --no-deps: the lock is complete, and onnxruntime-genai-directml declares an onnxruntime-directml PyPI lacks.
Invoke-Step $py @("-m", "pip", "install", "-q", "--no-deps", "--require-hashes",
    "-r", "installer\requirements-$Flavor.txt")
Invoke-Step $py @("installer\check_env.py", "--flavor", $Flavor)

$env:FORGE_FLAVOR = $Flavor
Invoke-Step $py @("-m", "PyInstaller", "installer\onnx-forge.spec", "--noconfirm", "--log-level", "WARN",
    "--distpath", "$BuildDir\dist", "--workpath", "$BuildDir\work")
Invoke-Step $py @("installer\check_bundle.py", "$BuildDir\dist\onnx-forge")
Invoke-Step $py @("installer\smoke_test.py", "$BuildDir\dist\onnx-forge")
Invoke-Step $py @("installer\build_installer.py", "$BuildDir\dist\onnx-forge", "--flavor", $Flavor,
    "--out", "$BuildDir\installer")
