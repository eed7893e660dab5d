"""The six hardware probes: `LiveProbes` asks this machine's real APIs, `RecordedProbes` replays a recording.

Each answers in a plain JSON-able dict and degrades to {"available": False, "reason": ...}; app.hardware folds the
answers into the report.

What ran for real while this was written: on Linux x86-64 without a GPU (onnxruntime 1.32.0, onnxruntime-genai
0.14.1) the provider list, get_ep_devices() (a CPU device only), onnxruntime-genai's is_*_available flags, the package
listing, system info and NVML failing softly with no driver; on a Linux server with an NVIDIA H200, the NVML probe
(driver, CUDA version, name, memory, compute capability, PCI ids). Both are kept in tests/data/hardware/linux_*.json.
`record_probes` exists so a Windows user can send us a real recording. The ep_devices probe registers the TensorRT-RTX
plugin first (app.ep_plugins) and records how that went under "plugins".
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

PROBE_NAMES = ("system", "packages", "providers", "ep_devices", "dxgi_adapters", "nvml")
RECORD_FORMAT = "onnx-forge-hardware-probes/1"

# --------------------------------------------------------------------------------------------------------------------
# Probes


class Probes(Protocol):
    """Each method returns a JSON-able dict: {"available": True, ...} or {"available": False, "reason": "..."}."""

    def system(self) -> dict[str, Any]: ...

    def packages(self) -> dict[str, Any]: ...

    def providers(self) -> dict[str, Any]: ...

    def ep_devices(self) -> dict[str, Any]: ...

    def dxgi_adapters(self) -> dict[str, Any]: ...

    def nvml(self) -> dict[str, Any]: ...


def _unavailable(reason: str) -> dict[str, Any]:
    return {"available": False, "reason": reason}


def _or_none(function: Callable[..., Any], *args: Any) -> Any:
    try:
        return function(*args)
    except Exception:
        return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).strip()


class LiveProbes:
    """Asks this machine. Heavy modules are imported here, never when app.hardware or this module is imported."""

    def system(self) -> dict[str, Any]:
        import platform

        answer: dict[str, Any] = {
            "available": True,
            "os": platform.system(),
            "os_release": platform.release(),
            "os_version": platform.version(),
            "machine": platform.machine(),
            "cpu_name": _or_none(_cpu_name),
            "cpu_cores": None,
            "cpu_threads": None,
            "ram_bytes": None,
        }
        try:
            import psutil
        except ImportError:
            return answer
        answer["cpu_cores"] = _or_none(psutil.cpu_count, False)
        answer["cpu_threads"] = _or_none(psutil.cpu_count, True)
        answer["ram_bytes"] = _or_none(lambda: int(psutil.virtual_memory().total))
        return answer

    def packages(self) -> dict[str, Any]:
        from importlib import metadata

        found: dict[str, str] = {}
        for dist in metadata.distributions():
            name = _normalize_package(dist.metadata["Name"] or "")
            if name.startswith("onnxruntime"):
                found[name] = dist.version
        return {"available": True, "distributions": dict(sorted(found.items()))}

    def providers(self) -> dict[str, Any]:
        try:
            import onnxruntime
        except Exception as error:
            return _unavailable(f"onnxruntime could not be imported: {error}")
        answer: dict[str, Any] = {
            "available": True,
            "onnxruntime_version": onnxruntime.__version__,
            "onnxruntime": list(onnxruntime.get_available_providers()),
        }
        answer.update(_genai_flags())
        return answer

    def ep_devices(self) -> dict[str, Any]:
        try:
            import onnxruntime
        except Exception as error:
            return _unavailable(f"onnxruntime could not be imported: {error}")
        get_ep_devices = getattr(onnxruntime, "get_ep_devices", None)
        if get_ep_devices is None:
            return _unavailable(f"onnxruntime {onnxruntime.__version__} has no get_ep_devices (it needs 1.22 or newer)")
        from .ep_plugins import register_trt_rtx

        # A plugin provider lists its devices only once its library is registered, so register first.
        plugins = [register_trt_rtx(onnxruntime).to_dict()]
        return {
            "available": True,
            "devices": [_ep_device_answer(device) for device in get_ep_devices()],
            "plugins": plugins,
        }

    def dxgi_adapters(self) -> dict[str, Any]:
        if sys.platform != "win32":
            return _unavailable("DXGI exists only on Windows")
        from .dxgi import _dxgi_adapters_windows

        return _dxgi_adapters_windows()

    def nvml(self) -> dict[str, Any]:
        try:
            import pynvml
        except ImportError:
            return _unavailable("the nvidia-ml-py package is not installed, so NVIDIA GPUs cannot be queried")
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as error:
            return _unavailable(_nvml_failure(pynvml, error))
        try:
            return _nvml_answer(pynvml)
        finally:
            with contextlib.suppress(Exception):
                pynvml.nvmlShutdown()


class RecordedProbes:
    """Replays answers recorded by `record_probes` (or written by hand in the same shape)."""

    def __init__(self, source: str | Path | dict[str, Any]) -> None:
        if not isinstance(source, dict):
            source = json.loads(Path(source).read_text(encoding="utf-8"))
        self.note: str = source.get("note", "")
        self._answers: dict[str, Any] = source.get("probes", source)

    def _answer(self, name: str) -> dict[str, Any]:
        if name not in self._answers:
            return _unavailable(f"the recording has no {name} answer")
        return copy.deepcopy(self._answers[name])

    def system(self) -> dict[str, Any]:
        return self._answer("system")

    def packages(self) -> dict[str, Any]:
        return self._answer("packages")

    def providers(self) -> dict[str, Any]:
        return self._answer("providers")

    def ep_devices(self) -> dict[str, Any]:
        return self._answer("ep_devices")

    def dxgi_adapters(self) -> dict[str, Any]:
        return self._answer("dxgi_adapters")

    def nvml(self) -> dict[str, Any]:
        return self._answer("nvml")


def ask_probes(probes: Probes) -> dict[str, dict[str, Any]]:
    """Every probe's answer by name; a probe that raises or answers nonsense becomes unavailable with the reason."""
    return {name: _ask(probes, name) for name in PROBE_NAMES}


def _ask(probes: Probes, name: str) -> dict[str, Any]:
    try:
        answer = getattr(probes, name)()
    except Exception as error:
        return _unavailable(f"the {name} probe failed: {type(error).__name__}: {error}")
    if not isinstance(answer, dict):
        return _unavailable(f"the {name} probe answered {type(answer).__name__}, not a dict")
    return answer


def record_probes(path: str | Path, probes: Probes | None = None) -> dict[str, Any]:
    """Write the probes' raw answers (LiveProbes by default) to `path` as JSON, for `RecordedProbes` to replay."""
    payload = {
        "format": RECORD_FORMAT,
        "note": "Captured by LiveProbes on a real machine with onnx-forge's record_probes.",
        "probes": ask_probes(probes or LiveProbes()),
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return payload


# --------------------------------------------------------------------------------------------------------------------
# Live probe helpers


def _normalize_package(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _cpu_name() -> str | None:
    if sys.platform == "win32":
        import winreg

        key_path = r"HARDWARE\DESCRIPTION\System\CentralProcessor\0"
        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, key_path) as key:
            return _text(winreg.QueryValueEx(key, "ProcessorNameString")[0])
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    import platform

    return platform.processor() or None


def _genai_flags() -> dict[str, Any]:
    try:
        import onnxruntime  # noqa: F401  # onnxruntime_genai must find onnxruntime already loaded
        import onnxruntime_genai
    except Exception as error:
        return {"genai_version": None, "genai": {}, "genai_reason": f"onnxruntime-genai could not be imported: {error}"}
    flags: dict[str, bool] = {}
    for backend in ("cuda", "dml", "webgpu", "rocm", "qnn", "openvino"):
        check = getattr(onnxruntime_genai, f"is_{backend}_available", None)
        value = _or_none(check) if check else None
        if value is not None:
            flags[backend] = bool(value)
    return {"genai_version": getattr(onnxruntime_genai, "__version__", None), "genai": flags}


def _ep_device_answer(ep_device: Any) -> dict[str, Any]:
    hardware = ep_device.device
    kind = hardware.type
    return {
        "ep_name": ep_device.ep_name,
        "ep_vendor": ep_device.ep_vendor,
        "ep_metadata": dict(ep_device.ep_metadata),
        "ep_options": dict(ep_device.ep_options),
        "device": {
            "type": getattr(kind, "name", None) or str(kind).rsplit(".", 1)[-1],
            "vendor": hardware.vendor,
            "vendor_id": int(hardware.vendor_id),
            "device_id": int(hardware.device_id),
            "metadata": dict(hardware.metadata),
        },
    }


def _nvml_failure(pynvml: Any, error: Exception) -> str:
    code = getattr(error, "value", None)
    if code == pynvml.NVML_ERROR_LIBRARY_NOT_FOUND:
        return "no NVIDIA driver found (the NVML library is missing)"
    if code == pynvml.NVML_ERROR_DRIVER_NOT_LOADED:
        return "the NVIDIA driver is not loaded"
    if code == pynvml.NVML_ERROR_NO_PERMISSION:
        return "no permission to query the NVIDIA driver"
    return f"the NVIDIA driver could not be queried: {error}"


def _nvml_answer(pynvml: Any) -> dict[str, Any]:
    cuda = _or_none(pynvml.nvmlSystemGetCudaDriverVersion)
    count = _or_none(pynvml.nvmlDeviceGetCount) or 0
    return {
        "available": True,
        "driver_version": _text(_or_none(pynvml.nvmlSystemGetDriverVersion)),
        # NVML encodes CUDA 12.4 as 12040
        "cuda_driver_version": f"{cuda // 1000}.{cuda % 1000 // 10}" if cuda else None,
        "devices": [_nvml_device(pynvml, index) for index in range(count)],
    }


def _nvml_device(pynvml: Any, index: int) -> dict[str, Any]:
    handle = _or_none(pynvml.nvmlDeviceGetHandleByIndex, index)
    if handle is None:
        return {"index": index, "name": None}
    capability = _or_none(pynvml.nvmlDeviceGetCudaComputeCapability, handle)
    pci = _or_none(pynvml.nvmlDeviceGetPciInfo, handle)
    # pciDeviceId packs the PCI device id in the high 16 bits and the vendor id in the low 16
    pci_id = int(pci.pciDeviceId) if pci is not None else None
    return {
        "index": index,
        "name": _text(_or_none(pynvml.nvmlDeviceGetName, handle)),
        "memory_total_bytes": _or_none(lambda: int(pynvml.nvmlDeviceGetMemoryInfo(handle).total)),
        "compute_capability": f"{capability[0]}.{capability[1]}" if capability else None,
        "pci_vendor_id": pci_id & 0xFFFF if pci_id is not None else None,
        "pci_device_id": pci_id >> 16 if pci_id is not None else None,
        "pci_bus_id": _text(pci.busId) if pci is not None else None,
        "uuid": _text(_or_none(pynvml.nvmlDeviceGetUUID, handle)),
    }
