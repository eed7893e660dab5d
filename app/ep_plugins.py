"""Plugin execution providers: NVIDIA's TensorRT-RTX comes as the package onnxruntime-ep-nv-tensorrt-rtx (-cu12,
-cu13), a library that must be registered before onnxruntime's get_ep_devices() lists it.

The package's module offers get_library_path() and get_ep_name(). Its EP factory takes the registration name as its
EP name, and onnxruntime-genai's TensorRT-RTX path looks for the EP called NvTensorRTRTXExecutionProvider, so the
library is registered under that name whatever get_ep_name() says (0.5.0 says that name; the project's main branch
says "nv_tensorrt_rtx"). onnxruntime and onnxruntime-genai each keep their own environment (two copies of the
library on Linux), so a process that loads GenAI models registers it with both; "already registered" counts as done.

Seen here for real (Linux, no NVIDIA driver, the cu12 0.5.0 wheel): the plugin library needs libcudart.so.12 but the
wheel ships only libcudart.so.12.9.79, so the bundled file is loaded first; then it needs the driver's libcuda.so.1.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

TRT_RTX_MODULE = "onnxruntime_ep_nv_tensorrt_rtx"
TRT_RTX_EP_NAME = "NvTensorRTRTXExecutionProvider"
TRT_RTX_PACKAGE = "onnxruntime-ep-nv-tensorrt-rtx"
_MISSING_LIBRARY = re.compile(r"(lib[\w.+-]+\.so[\w.]*): cannot open shared object file")


@dataclass
class PluginRegistration:
    """The answer of one registration, JSON-able (the hardware probe records it)."""

    ep_name: str
    module: str
    version: str | None
    library: str | None
    registered: bool
    reason: str  # why not, in words; empty when registered

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def register_trt_rtx(runtime: Any) -> PluginRegistration:
    """Register the TensorRT-RTX plugin with `runtime`: the onnxruntime or the onnxruntime_genai module."""
    try:
        plugin = importlib.import_module(TRT_RTX_MODULE)
    except ImportError:
        return _answer(None, None, False, f"the {TRT_RTX_PACKAGE} package is not installed")
    except Exception as error:  # noqa: BLE001 - a broken package is reported, not raised
        return _answer(None, None, False, f"the {TRT_RTX_PACKAGE} package could not be imported: {_first_line(error)}")
    version = str(getattr(plugin, "__version__", "") or "") or None
    try:
        library = str(plugin.get_library_path())
    except Exception as error:  # noqa: BLE001
        return _answer(version, None, False, f"the {TRT_RTX_PACKAGE} package is incomplete: {_first_line(error)}")
    register = getattr(runtime, "register_execution_provider_library", None)
    if register is None:
        owner = getattr(runtime, "__name__", "this runtime")
        return _answer(
            version,
            library,
            False,
            f"{owner} {getattr(runtime, '__version__', '')} cannot register plugin providers "
            "(onnxruntime 1.23 and onnxruntime-genai 0.10 or newer can)",
        )
    failure = _try_register(register, library)
    if failure and _needs_bundled_cudart(failure, library):
        failure = _try_register(register, library)
    return _answer(version, library, failure is None, _explain(failure) if failure else "")


def _answer(version: str | None, library: str | None, registered: bool, reason: str) -> PluginRegistration:
    return PluginRegistration(TRT_RTX_EP_NAME, TRT_RTX_MODULE, version, library, registered, reason)


def _try_register(register: Any, library: str) -> str | None:
    try:
        register(TRT_RTX_EP_NAME, library)
    except Exception as error:  # noqa: BLE001 - onnxruntime raises its own Fail type
        text = _first_line(error)
        return None if "already registered" in text.lower() else text
    return None


def _needs_bundled_cudart(failure: str, library: str) -> bool:
    """Load the wheel's own libcudart.so.12.x.y when the plugin asks for libcudart.so.12 and nothing provides it."""
    missing = _MISSING_LIBRARY.search(failure)
    if sys.platform != "linux" or not missing or not missing.group(1).startswith("libcudart.so"):
        return False
    for candidate in sorted(Path(library).parent.glob(f"{missing.group(1)}.*"), reverse=True):
        with contextlib.suppress(OSError):
            ctypes.CDLL(str(candidate), mode=ctypes.RTLD_GLOBAL)
            return True
    return False


def _explain(failure: str) -> str:
    missing = _MISSING_LIBRARY.search(failure)
    if missing and missing.group(1).startswith("libcuda.so"):
        return f"the plugin could not be registered: no NVIDIA driver is installed ({missing.group(1)} is missing)"
    if missing:
        return f"the plugin could not be registered: {missing.group(1)} is missing; reinstall {TRT_RTX_PACKAGE}"
    return f"the plugin could not be registered: {failure[:300]}"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
