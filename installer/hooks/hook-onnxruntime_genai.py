"""onnxruntime-genai has no contributed hook. Its native library, every module of the model builder, and the
builder's .py files on disk: builder.py imports its neighbours (`builders`, and `quantized_model` up to 0.14 or
`builder_config` from 0.18) by bare name after appending its folder to sys.path, and app/builder_info.py reads
builder.py's source to learn what it can build. The distribution's metadata is how the studio finds which flavor is
installed and its version.
"""

from __future__ import annotations

from PyInstaller.utils.hooks import collect_data_files, collect_dynamic_libs, collect_submodules, copy_metadata

binaries = collect_dynamic_libs("onnxruntime_genai")
hiddenimports = collect_submodules("onnxruntime_genai", filter=lambda name: not name.endswith("__main__"))
datas = collect_data_files("onnxruntime_genai.models", include_py_files=True)
for distribution in ("onnxruntime-genai", "onnxruntime-genai-directml", "onnxruntime-genai-cuda"):
    try:
        datas += copy_metadata(distribution)
    except Exception:  # noqa: BLE001 - only the installed flavor has metadata
        continue
