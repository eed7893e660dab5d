"""The engine records the versions of the packages it ran with (app/manifest.py, app/quantize/quark.py) through
importlib.metadata, which needs their dist-info in the bundle."""

from __future__ import annotations

from PyInstaller.utils.hooks import copy_metadata

datas = []
for distribution in ("torch", "transformers", "nvidia-modelopt", "amd-quark", "onnx", "huggingface_hub", "tokenizers"):
    try:
        datas += copy_metadata(distribution)
    except Exception:  # noqa: BLE001 - optional extras may be absent from this flavor's environment
        continue
