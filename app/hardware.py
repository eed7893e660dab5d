"""Hardware report: which GPUs this PC has and which ONNX Runtime execution providers can use them.

Six probes (app.hardware_probes) answer in plain JSON-able dicts, and `fold` turns their answers into a
`HardwareReport`. Every probe degrades to {"available": False, "reason": ...}.

Verified only against hand-written recordings shaped like the real APIs: the Windows ep-device metadata (LUID,
Discrete, DxgiAdapterNumber, DxgiVideoMemory, the keys onnxruntime's Windows device discovery writes) and every
DirectML, CUDA and TensorRT-RTX decision.
"Usable" means the pieces are present (package, provider, GPU, driver); no session is created to prove it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from .hardware_probes import LiveProbes, Probes, ask_probes

NVIDIA_VENDOR_ID = 0x10DE
_VENDOR_NAMES = {
    0x10DE: "NVIDIA",
    0x8086: "Intel",
    0x1002: "AMD",
    0x1022: "AMD",
    0x1414: "Microsoft",
    0x5143: "Qualcomm",
}

TRT_RTX_MIN_CC = (7, 5)  # Turing; TensorRT-RTX support matrix
TRT_RTX_PLUGIN_MIN_CC = (8, 0)  # the plugin's GetSupportedDevices keeps compute capability 8.0 and newer only
TRT_RTX_WOQ_MIN_CC = (8, 6)  # INT4/INT8 weight-only GEMM: Ampere RTX and newer
# Hopper (9.x) and data-center/embedded Blackwell (10.x, 11.x) are in no TensorRT-RTX support matrix.
TRT_RTX_UNSUPPORTED_MAJORS = {9, 10, 11}
# Minimum NVIDIA driver branch for each CUDA major version (CUDA minor-version compatibility table).
CUDA_MIN_DRIVER = {12: 525, 13: 580}

# The execution providers the studio knows, in the order every pane lists them: the Hardware tab reports each,
# Convert offers those the installed builder can build for, Chat those usable here.
PROVIDERS: tuple[str, ...] = ("cpu", "dml", "cuda", "trt-rtx", "webgpu")

EP_NAMES = {
    "cpu": "CPUExecutionProvider",
    "dml": "DmlExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "trt-rtx": "NvTensorRTRTXExecutionProvider",
    "webgpu": "WebGpuExecutionProvider",
}
# onnxruntime calls the TensorRT-RTX provider one name, onnxruntime-genai's config another.
_TRT_RTX_ALIASES = {"nvtensorrtrtxexecutionprovider", "nvtensorrtrtx"}

_DXGI_FLAG_REMOTE = 1
_DXGI_FLAG_SOFTWARE = 2


# --------------------------------------------------------------------------------------------------------------------
# The report


@dataclass
class Gpu:
    index: int | None  # DXGI adapter number: the device_id DirectML takes; None where DXGI did not see the GPU
    name: str
    vendor: str
    vendor_id: int | None = None  # PCI ids
    device_id: int | None = None
    luid: str | None = None  # "0x" + 16 hex digits
    dedicated_memory_bytes: int | None = None
    shared_memory_bytes: int | None = None  # system memory the GPU may borrow
    discrete: bool | None = None
    driver_version: str | None = None
    compute_capability: str | None = None  # "8.6"; NVIDIA only
    nvml_index: int | None = None
    sources: list[str] = field(default_factory=list)  # which probes saw it: dxgi, onnxruntime, nvml


@dataclass
class ProviderStatus:
    name: str  # cpu, dml, cuda, trt-rtx
    ep_name: str
    usable: bool
    reason: str
    int4: bool | None = None  # can INT4 (and INT8) weight-only models run on it here
    int4_reason: str = ""
    plugin_library: str | None = None  # a plugin provider's library, registered in every process that loads a model


@dataclass
class SystemInfo:
    os: str
    os_version: str = ""
    machine: str = ""
    cpu_name: str | None = None
    cpu_cores: int | None = None
    cpu_threads: int | None = None
    ram_bytes: int | None = None


@dataclass
class HardwareReport:
    gpus: list[Gpu]
    providers: list[ProviderStatus]
    system: SystemInfo
    default_dml_device: int | None
    packages: dict[str, str] = field(default_factory=dict)
    onnxruntime_providers: list[str] = field(default_factory=list)
    probe_notes: dict[str, str] = field(default_factory=dict)  # probe name -> why it had nothing to say

    def provider(self, name: str) -> ProviderStatus:
        for status in self.providers:
            if status.name == name:
                return status
        raise KeyError(name)

    def usable_providers(self) -> set[str]:
        return {status.name for status in self.providers if status.usable}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HardwareReport:
        return cls(
            gpus=[Gpu(**gpu) for gpu in data["gpus"]],
            providers=[ProviderStatus(**status) for status in data["providers"]],
            system=SystemInfo(**data["system"]),
            default_dml_device=data["default_dml_device"],
            packages=dict(data.get("packages", {})),
            onnxruntime_providers=list(data.get("onnxruntime_providers", [])),
            probe_notes=dict(data.get("probe_notes", {})),
        )


def probe_hardware(probes: Probes | None = None) -> HardwareReport:
    return fold(ask_probes(probes or LiveProbes()))


# --------------------------------------------------------------------------------------------------------------------
# Folding answers into a report


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _list(answer: dict[str, Any], key: str) -> list[Any]:
    value = answer.get(key) if answer.get("available") else None
    return value if isinstance(value, list) else []


def _cc_tuple(capability: str | None) -> tuple[int, int] | None:
    match = re.fullmatch(r"(\d+)\.(\d+)", capability or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def _clean_name(name: str) -> str:
    return " ".join(re.sub(r"\((r|tm)\)", "", name.lower()).split())


def _same_name(left: str | None, right: str | None) -> bool:
    return bool(left) and bool(right) and _clean_name(str(left)) == _clean_name(str(right))


def _match(
    gpus: list[Gpu],
    claimed: list[Gpu],
    *,
    luid: str | None = None,
    index: int | None = None,
    ids: tuple[int | None, int | None] | None = None,
    name: str | None = None,
) -> Gpu | None:
    """The first unclaimed GPU that is the same adapter, trying the strongest identity first."""
    tests: list[Callable[[Gpu], bool]] = []
    if luid:
        tests.append(lambda gpu: gpu.luid == luid)
    if index is not None:
        tests.append(lambda gpu: gpu.index == index)
    if ids and None not in ids:
        tests.append(lambda gpu: (gpu.vendor_id, gpu.device_id) == ids)
    if name:
        tests.append(lambda gpu: _same_name(gpu.name, name))
    for test in tests:
        for gpu in gpus:
            different_luid = bool(luid and gpu.luid and gpu.luid != luid)
            if not different_luid and all(gpu is not other for other in claimed) and test(gpu):
                return gpu
    return None


def _gpus_from_dxgi(answer: dict[str, Any]) -> list[Gpu]:
    gpus = []
    for adapter in _list(answer, "adapters"):
        if (_int(adapter.get("flags")) or 0) & (_DXGI_FLAG_SOFTWARE | _DXGI_FLAG_REMOTE):
            continue  # Microsoft Basic Render Driver and remote-desktop adapters
        vendor_id = _int(adapter.get("vendor_id"))
        gpus.append(
            Gpu(
                index=_int(adapter.get("index")),
                name=adapter.get("description") or "unknown GPU",
                vendor=_VENDOR_NAMES.get(vendor_id or 0, "unknown"),
                vendor_id=vendor_id,
                device_id=_int(adapter.get("device_id")),
                luid=adapter.get("luid"),
                dedicated_memory_bytes=_int(adapter.get("dedicated_video_memory")),
                shared_memory_bytes=_int(adapter.get("shared_system_memory")),
                sources=["dxgi"],
            )
        )
    return gpus


def _hardware_gpus(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """The distinct GPU hardware devices behind the ep devices (each EP lists the same GPU once more)."""
    seen: dict[Any, dict[str, Any]] = {}
    for ep_device in _list(answer, "devices"):
        device = ep_device.get("device") or {}
        if device.get("type") != "GPU":
            continue
        metadata = device.get("metadata") or {}
        key = metadata.get("LUID") or (device.get("vendor_id"), device.get("device_id"), metadata.get("Description"))
        seen.setdefault(key, device)
    return list(seen.values())


def _merge_ep_devices(gpus: list[Gpu], answer: dict[str, Any]) -> None:
    claimed: list[Gpu] = []
    for device in _hardware_gpus(answer):
        metadata = device.get("metadata") or {}
        luid_number = _int(metadata.get("LUID"))
        luid = f"0x{luid_number:016x}" if luid_number is not None else None
        index = _int(metadata.get("DxgiAdapterNumber"))
        vendor_id, device_id = _int(device.get("vendor_id")), _int(device.get("device_id"))
        name = metadata.get("Description") or device.get("vendor") or "unknown GPU"
        gpu = _match(gpus, claimed, luid=luid, index=index, ids=(vendor_id, device_id), name=name)
        if gpu is None:
            gpu = Gpu(
                index=index,
                name=name,
                vendor=_VENDOR_NAMES.get(vendor_id or 0) or device.get("vendor") or "unknown",
                vendor_id=vendor_id,
                device_id=device_id,
            )
            gpus.append(gpu)
        claimed.append(gpu)
        gpu.luid = gpu.luid or luid
        gpu.index = gpu.index if gpu.index is not None else index
        if metadata.get("Discrete") in ("0", "1"):
            gpu.discrete = metadata["Discrete"] == "1"
        megabytes = re.match(r"\s*(\d+)\s*MB", metadata.get("DxgiVideoMemory") or "")
        if gpu.dedicated_memory_bytes is None and megabytes:
            gpu.dedicated_memory_bytes = int(megabytes.group(1)) * 1024 * 1024
        gpu.sources.append("onnxruntime")


def _merge_nvml(gpus: list[Gpu], answer: dict[str, Any]) -> None:
    claimed: list[Gpu] = []
    for device in _list(answer, "devices"):
        ids = (_int(device.get("pci_vendor_id")), _int(device.get("pci_device_id")))
        gpu = _match(gpus, claimed, ids=ids, name=device.get("name"))
        if gpu is None:
            gpu = Gpu(
                index=None,
                name=device.get("name") or "NVIDIA GPU",
                vendor="NVIDIA",
                vendor_id=ids[0] or NVIDIA_VENDOR_ID,
                device_id=ids[1],
            )
            gpus.append(gpu)
        claimed.append(gpu)
        gpu.nvml_index = _int(device.get("index"))
        gpu.compute_capability = device.get("compute_capability")
        gpu.driver_version = answer.get("driver_version")
        if gpu.dedicated_memory_bytes is None:
            gpu.dedicated_memory_bytes = _int(device.get("memory_total_bytes"))
        gpu.sources.append("nvml")


def _settle_discrete(gpus: list[Gpu]) -> None:
    for gpu in gpus:
        # NVIDIA builds no integrated GPUs for x86 PCs, so an NVIDIA adapter with no other word is discrete.
        if gpu.discrete is None and gpu.vendor_id == NVIDIA_VENDOR_ID:
            gpu.discrete = True


def fold_gpus(answers: dict[str, dict[str, Any]]) -> list[Gpu]:
    gpus = _gpus_from_dxgi(answers.get("dxgi_adapters", {}))
    _merge_ep_devices(gpus, answers.get("ep_devices", {}))
    _merge_nvml(gpus, answers.get("nvml", {}))
    _settle_discrete(gpus)
    return sorted(gpus, key=lambda gpu: (gpu.index is None, gpu.index or 0, gpu.nvml_index or 0))


def default_dml_device(gpus: list[Gpu]) -> int | None:
    """The DXGI adapter DirectML should get: discrete first, then the most dedicated memory.

    DirectML's device_id 0 is DXGI's first adapter, which on hybrid laptops is the integrated GPU.
    """
    candidates = [gpu for gpu in gpus if gpu.index is not None]
    if not candidates:
        return None
    best = max(candidates, key=lambda gpu: (gpu.discrete is True, gpu.dedicated_memory_bytes or 0, -(gpu.index or 0)))
    return best.index


def _system_info(answer: dict[str, Any]) -> SystemInfo:
    if not answer.get("available"):
        return SystemInfo(os="unknown")
    os_name = answer.get("os") or "unknown"
    # platform.version() names the Windows build; elsewhere the release (the kernel's version) says more.
    version = (answer.get("os_version") if os_name == "Windows" else answer.get("os_release")) or ""
    build = _int(version.split(".")[2]) if version.count(".") >= 2 else None
    if os_name == "Windows" and build is not None:
        # Windows 11 still reports itself as version 10.0; build 22000 was the first Windows 11 build.
        os_name = "Windows 11" if build >= 22000 else "Windows 10"
    return SystemInfo(
        os=os_name,
        os_version=version,
        machine=answer.get("machine") or "",
        cpu_name=answer.get("cpu_name"),
        cpu_cores=_int(answer.get("cpu_cores")),
        cpu_threads=_int(answer.get("cpu_threads")),
        ram_bytes=_int(answer.get("ram_bytes")),
    )


@dataclass
class _Facts:
    """What the provider rules look at."""

    windows: bool
    os_name: str
    gpus: list[Gpu]
    providers: set[str]
    providers_reason: str | None
    packages: dict[str, str]
    genai: dict[str, bool]
    nvml: dict[str, Any]
    built_in: set[str] = field(default_factory=set)  # get_available_providers(): no plugin is ever in it
    ep_devices: list[dict[str, Any]] = field(default_factory=list)
    plugins: list[dict[str, Any]] = field(default_factory=list)  # registrations the ep_devices probe made

    def has_provider(self, ep_name: str) -> bool:
        return ep_name in self.providers

    def has_trt_rtx(self) -> bool:
        return any(name.lower() in _TRT_RTX_ALIASES for name in self.providers)

    def trt_rtx_plugin(self) -> dict[str, Any] | None:
        return next(
            (plugin for plugin in self.plugins if str(plugin.get("ep_name", "")).lower() in _TRT_RTX_ALIASES), None
        )

    def trt_rtx_devices(self) -> list[dict[str, Any]]:
        return [
            device
            for device in self.ep_devices
            if str(device.get("ep_name", "")).lower() in _TRT_RTX_ALIASES
            and (device.get("device") or {}).get("type") == "GPU"
        ]

    def best_nvidia(self) -> Gpu | None:
        nvidia = [gpu for gpu in self.gpus if gpu.vendor_id == NVIDIA_VENDOR_ID or "nvml" in gpu.sources]
        if not nvidia:
            return None
        return max(
            nvidia,
            key=lambda gpu: (
                _cc_tuple(gpu.compute_capability) or (0, 0),
                gpu.dedicated_memory_bytes or 0,
            ),
        )


def _facts(answers: dict[str, dict[str, Any]], system: SystemInfo, gpus: list[Gpu]) -> _Facts:
    providers_answer = answers.get("providers", {})
    names = set(_list(providers_answer, "onnxruntime"))
    # A plugin EP shows up in get_ep_devices() without being in get_available_providers().
    names.update(device.get("ep_name") for device in _list(answers.get("ep_devices", {}), "devices"))
    packages_answer = answers.get("packages", {})
    packages = packages_answer.get("distributions") if packages_answer.get("available") else None
    genai = providers_answer.get("genai") if providers_answer.get("available") else None
    return _Facts(
        windows=system.os.startswith("Windows"),
        os_name=system.os,
        gpus=gpus,
        providers={name for name in names if isinstance(name, str)},
        providers_reason=None if providers_answer.get("available") else providers_answer.get("reason", "no answer"),
        packages=packages if isinstance(packages, dict) else {},
        genai=genai if isinstance(genai, dict) else {},
        nvml=answers.get("nvml", {}),
        built_in={name for name in _list(providers_answer, "onnxruntime") if isinstance(name, str)},
        ep_devices=[device for device in _list(answers.get("ep_devices", {}), "devices") if isinstance(device, dict)],
        plugins=[plugin for plugin in _list(answers.get("ep_devices", {}), "plugins") if isinstance(plugin, dict)],
    )


def _missing_provider(facts: _Facts, ep_name: str, package: str) -> str:
    if facts.providers_reason is not None:
        return f"onnxruntime could not be asked for its providers ({facts.providers_reason})"
    if package not in facts.packages:
        return f"the {package} package is not installed"
    return (
        f"{package} {facts.packages[package]} is installed but onnxruntime does not offer {ep_name}; "
        "another onnxruntime package installed beside it may be overriding it"
    )


def _cuda_major_needed(facts: _Facts) -> int:
    # The plain onnxruntime-gpu and onnxruntime-genai-cuda wheels are CUDA 12 builds; -cu13 packages say so.
    return 13 if any(name.endswith("-cu13") for name in facts.packages) else 12


def _driver_problem(facts: _Facts, gpu: Gpu, needed: int) -> str | None:
    if not facts.nvml.get("available"):
        return f"the {gpu.name} was found but the NVIDIA driver could not be queried: {facts.nvml.get('reason')}"
    driver = facts.nvml.get("driver_version") or "unknown"
    minimum = CUDA_MIN_DRIVER[needed]
    cuda = _cc_tuple(facts.nvml.get("cuda_driver_version"))
    if cuda is not None and cuda[0] < needed:
        return (
            f"NVIDIA driver {driver} supports CUDA up to {cuda[0]}.{cuda[1]}, older than the CUDA {needed} "
            f"this needs; install driver {minimum} or newer"
        )
    branch = _int(driver.split(".")[0])
    if cuda is None and branch is not None and branch < minimum:
        return f"NVIDIA driver {driver} is older than the {minimum} that CUDA {needed}.x needs"
    return None


def _cpu_status(facts: _Facts) -> ProviderStatus:
    return ProviderStatus(
        "cpu",
        EP_NAMES["cpu"],
        True,
        "every onnxruntime package includes the CPU provider",
        True,
        "INT4 weight-only models (MatMulNBits) run on the CPU",
    )


def _dml_status(facts: _Facts, dml_index: int | None) -> ProviderStatus:
    reason = None
    if not facts.windows:
        reason = f"DirectML runs only on Windows, and this is {facts.os_name}"
    elif dml_index is None:
        reason = "no hardware GPU adapter was found, and DirectML needs a DirectX 12 GPU"
    elif not facts.has_provider(EP_NAMES["dml"]):
        reason = _missing_provider(facts, EP_NAMES["dml"], "onnxruntime-directml")
    elif facts.genai.get("dml") is False:
        reason = "onnxruntime-genai here was built without DirectML; install onnxruntime-genai-directml"
    if reason:
        return ProviderStatus("dml", EP_NAMES["dml"], False, reason, None, "unknown while DirectML is not usable")
    gpu = next(gpu for gpu in facts.gpus if gpu.index == dml_index)
    return ProviderStatus(
        "dml",
        EP_NAMES["dml"],
        True,
        f"DirectML can use adapter {dml_index} ({gpu.name})",
        True,
        "INT4 weight-only models (MatMulNBits) run on DirectML",
    )


def _cuda_status(facts: _Facts) -> ProviderStatus:
    gpu = facts.best_nvidia()
    needed = _cuda_major_needed(facts)
    reason = None
    if gpu is None:
        reason = "no NVIDIA GPU found"
    else:
        reason = _driver_problem(facts, gpu, needed)
    if reason is None and not facts.has_provider(EP_NAMES["cuda"]):
        reason = _missing_provider(facts, EP_NAMES["cuda"], "onnxruntime-gpu")
    if reason is None and facts.genai.get("cuda") is False:
        reason = "onnxruntime-genai here was built without CUDA; install onnxruntime-genai-cuda"
    if reason or gpu is None:
        return ProviderStatus("cuda", EP_NAMES["cuda"], False, reason or "", None, "unknown while CUDA is not usable")
    detail = f"compute capability {gpu.compute_capability}, driver {gpu.driver_version}"
    return ProviderStatus(
        "cuda",
        EP_NAMES["cuda"],
        True,
        f"CUDA can use the {gpu.name} ({detail})",
        True,
        "INT4 weight-only models (MatMulNBits) run on CUDA",
    )


def _trt_rtx_hardware_problem(gpu: Gpu) -> str | None:
    capability = _cc_tuple(gpu.compute_capability)
    described = f"the {gpu.name} (compute capability {gpu.compute_capability})"
    if capability is None:
        return None
    if capability < TRT_RTX_MIN_CC:
        return f"{described} is too old for TensorRT-RTX: it needs Turing (compute capability 7.5) or newer"
    if capability[0] in TRT_RTX_UNSUPPORTED_MAJORS:
        return f"{described} is not an RTX GPU; TensorRT-RTX supports compute capability 7.5, 8.6, 8.9 and 12.x"
    return None


def _trt_rtx_int4(gpu: Gpu | None) -> tuple[bool | None, str]:
    capability = _cc_tuple(gpu.compute_capability) if gpu else None
    if gpu is None or capability is None:
        return None, "unknown without an NVIDIA GPU's compute capability"
    if capability[0] in TRT_RTX_UNSUPPORTED_MAJORS:
        return False, _trt_rtx_hardware_problem(gpu) or ""
    if capability >= TRT_RTX_WOQ_MIN_CC:
        return True, f"the {gpu.name} (compute capability {gpu.compute_capability}) runs INT4/INT8 weight-only models"
    return False, (
        f"INT4/INT8 weight-only models on TensorRT-RTX need Ampere (compute capability 8.6) or newer; "
        f"the {gpu.name} is {gpu.compute_capability}"
    )


def _trt_rtx_status(facts: _Facts) -> ProviderStatus:
    gpu = facts.best_nvidia()
    int4, int4_reason = _trt_rtx_int4(gpu)
    reason = None
    if gpu is None:
        reason = "no NVIDIA GPU found"
    else:
        reason = _trt_rtx_hardware_problem(gpu) or _driver_problem(facts, gpu, _cuda_major_needed(facts))
    plugin = facts.trt_rtx_plugin()
    built_in = any(name.lower() in _TRT_RTX_ALIASES for name in facts.built_in)
    via_plugin = plugin is not None and not built_in
    if reason is None and via_plugin and gpu is not None:
        reason = _trt_rtx_plugin_problem(facts, plugin, gpu)
    elif reason is None and not facts.has_trt_rtx():
        reason = _missing_trt_rtx(facts)
    if reason or gpu is None:
        return ProviderStatus("trt-rtx", EP_NAMES["trt-rtx"], False, reason or "", int4, int4_reason)
    how = f" through the {_plugin_package(facts)} plugin" if via_plugin else ""
    return ProviderStatus(
        "trt-rtx",
        EP_NAMES["trt-rtx"],
        True,
        f"TensorRT-RTX can use the {gpu.name} (compute capability {gpu.compute_capability}){how}",
        int4,
        int4_reason,
        plugin_library=str(plugin.get("library")) if via_plugin and plugin is not None else None,
    )


def _plugin_package(facts: _Facts) -> str:
    names = sorted(name for name in facts.packages if name.startswith("onnxruntime-ep-nv-tensorrt-rtx"))
    return f"{names[-1]} {facts.packages[names[-1]]}" if names else "TensorRT-RTX"


def _trt_rtx_plugin_problem(facts: _Facts, plugin: dict[str, Any], gpu: Gpu) -> str | None:
    """Registered, and offering a device for this GPU: the plugin is usable; otherwise why not."""
    if not plugin.get("registered"):
        return str(plugin.get("reason") or "the TensorRT-RTX plugin could not be registered")
    ids = (gpu.vendor_id, gpu.device_id)
    for device in facts.trt_rtx_devices():
        hardware = device.get("device") or {}
        if None in ids or (_int(hardware.get("vendor_id")), _int(hardware.get("device_id"))) == ids:
            return None
    capability = _cc_tuple(gpu.compute_capability)
    if capability is not None and capability < TRT_RTX_PLUGIN_MIN_CC:
        need = f"it needs Ampere (compute capability 8.0) or newer, and the {gpu.name} is {gpu.compute_capability}"
    else:
        need = "it needs NVIDIA driver 555.85 or newer (570 for compute capability 12.x) and a working CUDA driver"
    return f"the {_plugin_package(facts)} plugin is registered but offers no device for the {gpu.name}: {need}"


def _missing_trt_rtx(facts: _Facts) -> str:
    if facts.providers_reason is not None:
        return f"onnxruntime could not be asked for its providers ({facts.providers_reason})"
    plugins = sorted(name for name in facts.packages if name.startswith("onnxruntime-ep-nv-tensorrt-rtx"))
    if plugins:
        return f"{plugins[0]} is installed but its provider is not registered with onnxruntime in this process"
    if "onnxruntime-trt-rtx" in facts.packages:
        return (
            f"onnxruntime-trt-rtx {facts.packages['onnxruntime-trt-rtx']} is installed but onnxruntime does not "
            f"offer {EP_NAMES['trt-rtx']}; another onnxruntime package installed beside it may be overriding it"
        )
    return "no onnxruntime package with the TensorRT-RTX provider is installed (onnxruntime-trt-rtx)"


def _webgpu_status(facts: _Facts) -> ProviderStatus:
    gpu = next((gpu for gpu in facts.gpus if gpu.discrete), facts.gpus[0] if facts.gpus else None)
    reason = None
    if facts.genai.get("webgpu") is False:
        reason = "onnxruntime-genai here was built without WebGPU"
    elif gpu is None:
        reason = "no GPU adapter was found, and WebGPU needs one"
    elif not facts.has_provider(EP_NAMES["webgpu"]):
        reason = _missing_provider(facts, EP_NAMES["webgpu"], "onnxruntime-webgpu")
    if reason or gpu is None:
        return ProviderStatus(
            "webgpu", EP_NAMES["webgpu"], False, reason or "", None, "unknown while WebGPU is not usable"
        )
    return ProviderStatus(
        "webgpu",
        EP_NAMES["webgpu"],
        True,
        f"WebGPU can use the {gpu.name}",
        True,
        "INT4 weight-only models (MatMulNBits) run on WebGPU",
    )


def fold(answers: dict[str, dict[str, Any]]) -> HardwareReport:
    """Turn the probes' raw answers into the report."""
    system = _system_info(answers.get("system", {}))
    gpus = fold_gpus(answers)
    dml_index = default_dml_device(gpus)
    facts = _facts(answers, system, gpus)
    providers_answer = answers.get("providers", {})
    packages = facts.packages
    return HardwareReport(
        gpus=gpus,
        providers=[
            _cpu_status(facts),
            _dml_status(facts, dml_index),
            _cuda_status(facts),
            _trt_rtx_status(facts),
            _webgpu_status(facts),
        ],
        system=system,
        default_dml_device=dml_index,
        packages={str(name): str(version) for name, version in packages.items()},
        onnxruntime_providers=[str(name) for name in _list(providers_answer, "onnxruntime")],
        probe_notes={
            name: str(answer.get("reason", "no answer"))
            for name, answer in answers.items()
            if not answer.get("available")
        },
    )


# --------------------------------------------------------------------------------------------------------------------
# Human-readable report


def _size(size: int | None) -> str:
    if not size:
        return "? GB"
    return f"{size / 1024**3:.1f} GB" if size >= 1024**3 else f"{size // 1024**2} MB"


def _gpu_line(gpu: Gpu) -> str:
    parts = [{True: "discrete", False: "integrated", None: ""}[gpu.discrete], f"{_size(gpu.dedicated_memory_bytes)}"]
    if gpu.compute_capability:
        parts.append(f"compute capability {gpu.compute_capability}")
    if gpu.driver_version:
        parts.append(f"driver {gpu.driver_version}")
    slot = f"[{gpu.index}]" if gpu.index is not None else "[-]"
    return f"  {slot} {gpu.name} ({', '.join(part for part in parts if part)})"


def _provider_line(status: ProviderStatus) -> str:
    line = f"  {status.name:<8} {'usable' if status.usable else 'not usable':<11} {status.reason}"
    if status.usable:
        line += f"; INT4 weight-only: {'yes' if status.int4 else 'no'}"
    return line


def format_report(report: HardwareReport) -> str:
    system = report.system
    cpu = system.cpu_name or "unknown CPU"
    if system.cpu_cores:
        cpu += f" ({system.cpu_cores} cores, {system.cpu_threads or '?'} threads)"
    lines = [
        f"System: {system.os} {system.os_version} {system.machine}".rstrip(),
        f"CPU: {cpu}; RAM {_size(system.ram_bytes)}",
        "GPUs:",
    ]
    lines += [_gpu_line(gpu) for gpu in report.gpus] or ["  none found"]
    lines.append("Execution providers:")
    lines += [_provider_line(status) for status in report.providers]
    if report.default_dml_device is not None:
        lines.append(f"DirectML adapter to use: {report.default_dml_device}")
    if report.probe_notes:
        lines.append("Probes with nothing to say:")
        lines += [f"  {name}: {reason}" for name, reason in report.probe_notes.items()]
    return "\n".join(lines)
