# Load the bundled onnxruntime library by its full path before anything imports onnxruntime or onnxruntime-genai.
# Windows ships an older onnxruntime.dll in System32 that the loader can otherwise pick first; once ours is loaded,
# onnxruntime-genai finds it already in the process (it checks GetModuleHandle("onnxruntime.dll")). Only the
# programs started with arguments (commands and job workers) do this: the window never runs a model.


def _forge_preload() -> None:
    import ctypes
    import glob
    import os
    import sys

    if len(sys.argv) < 2:
        return
    capi = os.path.join(sys._MEIPASS, "onnxruntime", "capi")
    if sys.platform.startswith("win"):
        os.add_dll_directory(capi)
        for name in ("DirectML.dll", "onnxruntime.dll"):  # DirectML first: onnxruntime.dll links against it
            path = os.path.join(capi, name)
            if os.path.exists(path):
                ctypes.WinDLL(path)
        return
    for path in sorted(glob.glob(os.path.join(capi, "libonnxruntime.so.*"))):
        ctypes.CDLL(path)


_forge_preload()
del _forge_preload
