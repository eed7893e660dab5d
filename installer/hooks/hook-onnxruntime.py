"""onnxruntime, overriding the contributed hook (which collects `*.so`/`*.dll` by pattern and so misses Linux's
versioned libonnxruntime.so.1.x that onnxruntime-genai loads by path from onnxruntime/capi).

Every shared library in capi/ stays in capi/: on Windows onnxruntime.dll, DirectML.dll and the provider
libraries must sit together there. onnxruntime.transformers and the builder import sibling modules by bare
name after appending their folder to sys.path (fusion_utils, onnx_model, float16), so their .py files must be
on disk in the bundle, not only in the archive.
"""

from __future__ import annotations

from pathlib import Path

from PyInstaller.utils.hooks import collect_data_files, copy_metadata, get_package_paths

_, package_dir = get_package_paths("onnxruntime")
capi = Path(package_dir) / "capi"
_LIBRARY_SUFFIXES = (".dll", ".so", ".dylib")

binaries = [
    (str(path), "onnxruntime/capi")
    for path in sorted(capi.iterdir())
    if path.suffix in _LIBRARY_SUFFIXES or ".so." in path.name
]

datas = collect_data_files("onnxruntime.transformers", include_py_files=True)
for distribution in ("onnxruntime", "onnxruntime-directml", "onnxruntime-gpu"):
    try:
        datas += copy_metadata(distribution)
    except Exception:  # noqa: BLE001 - only the installed flavor has metadata
        continue
