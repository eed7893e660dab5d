"""The GPU a model runs on, said the way each runtime reads it: one answer for chat, bench, measure and calibration.

The contract, read in onnxruntime-genai's source (branch rel-0.14.1, and main at 0.16.0-dev; the installed 0.14.1 and
0.18.0 wheels' Python API is called by the tests), the NVIDIA TensorRT-RTX plugin's source and ModelOpt's:

- DirectML (genai "dml"): src/dml/session_options.cpp reads only `luid` ("<HighPart>:<LowPart>", each through
  std::stol, a 32-bit long on Windows) or `device_index` (the n-th hardware DXGI adapter); a `device_id` is ignored.
  The first model of a process fixes the adapter for the whole process (one DirectML device per process).
- CUDA (genai "cuda"): the options go to OrtCUDAProviderOptionsV2, whose `device_id` is the CUDA ordinal; genai makes
  its own CUDA stream on the current device, so the ordinal is also made current (set_current_gpu_device_id).
  CUDA numbers GPUs fastest first unless CUDA_DEVICE_ORDER=PCI_BUS_ID; with it, the ordinal is NVML's index.
- TensorRT-RTX (genai "NvTensorRtRtx"): genai looks the provider up in get_ep_devices() by the name
  NvTensorRTRTXExecutionProvider (a registered plugin, session options V2) and picks devices with its
  device_filtering_options (PCI vendor and device id, device type). The plugin's CreateEp accepts exactly one device,
  so the filter is always set. Without the plugin (the onnxruntime-trt-rtx layout, V1) `device_id` is the ordinal.
- onnxruntime sessions (calibration through ModelOpt): "cuda:<ordinal>" and "dml:<DXGI adapter number>", which
  ModelOpt turns into each provider's `device_id`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import InputError
from .hardware import NVIDIA_VENDOR_ID, Gpu, HardwareReport, _cc_tuple

GENAI_PROVIDERS = {"cpu": None, "dml": "dml", "cuda": "cuda", "trt-rtx": "NvTensorRtRtx"}
# What a GPU choice number means for each provider (the Hardware and Chat pickers hand these out).
CHOICE_MEANING = {"dml": "DXGI adapter", "cuda": "NVML GPU", "trt-rtx": "NVML GPU"}
_LUID = re.compile(r"0x[0-9a-fA-F]{1,16}")


@dataclass(frozen=True)
class RuntimeDevice:
    """Everything that reaches the runtime for one (provider, GPU)."""

    provider: str  # cpu, dml, cuda, trt-rtx
    genai_provider: str | None  # the Config's provider name; None: the CPU, no provider at all
    options: dict[str, str] = field(default_factory=dict)  # Config.set_provider_option(genai_provider, key, value)
    vendor_id: int | None = None  # device filter of plugin providers (PCI ids)
    pci_device_id: int | None = None
    cuda_ordinal: int | None = None  # made current before the model loads
    environment: dict[str, str] = field(default_factory=dict)  # set before CUDA starts in this process
    gpu_name: str = ""
    # onnxruntime's own provider options (its DmlExecutionProvider counts raw DXGI adapters, EnumAdapters1)
    ort_options: dict[str, str] = field(default_factory=dict)

    def calibration_ep(self) -> str:
        """ModelOpt's calibration_eps spelling of this device."""
        plain = {"cpu": "cpu", "cuda": "cuda", "dml": "dml", "trt-rtx": "NvTensorRtRtx"}[self.provider]
        if self.provider in ("cuda", "dml") and "device_id" in self.ort_options:
            return f"{plain}:{self.ort_options['device_id']}"
        return plain


def luid_option(luid: str) -> str:
    """DirectML's `luid` option from the report's "0x" + 16 hex digits: HighPart and LowPart in decimal.

    genai parses each half with std::stol, which is 32 bits on Windows: a LowPart of 2**31 or more is written as
    the signed number with the same bits, which the assignment to the DWORD turns back into the real value.
    """
    if not isinstance(luid, str) or not _LUID.fullmatch(luid):
        raise InputError(
            f"the adapter LUID {luid!r} is not 0x followed by up to 16 hex digits; probe the hardware again."
        )
    number = int(luid, 16)
    high, low = number >> 32, number & 0xFFFFFFFF
    high = high - 2**32 if high >= 2**31 else high
    low = low - 2**32 if low >= 2**31 else low
    return f"{high}:{low}"


def runtime_device(provider: str, gpu: Gpu | None, *, plugin: bool = False) -> RuntimeDevice:
    """What to hand the runtime so that `provider` runs on `gpu` (None: the runtime's own default device).

    `plugin` says TensorRT-RTX comes as a registered plugin (device filter) rather than built in (device_id).
    """
    if provider not in GENAI_PROVIDERS:
        raise InputError(f"'{provider}' is not an execution provider the studio knows; use cpu, dml, cuda or trt-rtx.")
    name = GENAI_PROVIDERS[provider]
    if provider == "cpu" or gpu is None:
        return RuntimeDevice(provider, name)
    if provider == "dml":
        return _dml_device(gpu)
    ordinal = gpu.nvml_index
    pci_order = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    if provider == "cuda":
        if ordinal is None:
            return RuntimeDevice(provider, name, gpu_name=gpu.name)
        ordinal_text = str(ordinal)
        return RuntimeDevice(
            provider,
            name,
            {"device_id": ordinal_text},
            cuda_ordinal=ordinal,
            environment=pci_order,
            gpu_name=gpu.name,
            ort_options={"device_id": ordinal_text},
        )
    if plugin:
        return RuntimeDevice(
            provider,
            name,
            vendor_id=gpu.vendor_id or NVIDIA_VENDOR_ID,
            pci_device_id=gpu.device_id,
            gpu_name=gpu.name,
        )
    options = {"device_id": str(ordinal)} if ordinal is not None else {}
    environment = pci_order if ordinal is not None else {}
    return RuntimeDevice(provider, name, options, environment=environment, gpu_name=gpu.name, ort_options=options)


def _dml_device(gpu: Gpu) -> RuntimeDevice:
    ort = {"device_id": str(gpu.index)} if gpu.index is not None else {}
    if gpu.luid:
        return RuntimeDevice("dml", "dml", {"luid": luid_option(gpu.luid)}, gpu_name=gpu.name, ort_options=ort)
    if gpu.index is not None:
        # genai counts hardware adapters only; DXGI lists the software adapter last, so the numbers agree
        return RuntimeDevice("dml", "dml", {"device_index": str(gpu.index)}, gpu_name=gpu.name, ort_options=ort)
    return RuntimeDevice("dml", "dml", gpu_name=gpu.name)


def pick_gpu(report: HardwareReport, provider: str, choice: int | None) -> Gpu | None:
    """The report's GPU behind a picker's number (a DXGI adapter for DirectML, an NVML index for CUDA and
    TensorRT-RTX); with no choice, the one the studio would pick: DirectML's default adapter, the best NVIDIA GPU."""
    if provider == "cpu":
        return None
    if provider == "dml":
        wanted = choice if choice is not None else report.default_dml_device
        gpus = [gpu for gpu in report.gpus if gpu.index is not None]
        found = next((gpu for gpu in gpus if gpu.index == wanted), None)
        numbers = [gpu.index for gpu in gpus]
    else:
        gpus = [gpu for gpu in report.gpus if gpu.vendor_id == NVIDIA_VENDOR_ID or gpu.nvml_index is not None]
        if choice is None:
            return max(
                gpus,
                key=lambda gpu: (_cc_tuple(gpu.compute_capability) or (0, 0), gpu.dedicated_memory_bytes or 0),
                default=None,
            )
        found = next((gpu for gpu in gpus if gpu.nvml_index == choice), None)
        numbers = [gpu.nvml_index for gpu in gpus if gpu.nvml_index is not None]
    if found is None and choice is not None:
        listed = ", ".join(str(number) for number in numbers) or "none"
        raise InputError(
            f"GPU {choice} is not a {CHOICE_MEANING.get(provider, 'GPU')} this PC has (it lists: {listed}); "
            "pick one the Hardware tab or `main.py hardware` shows."
        )
    return found


def configure_genai(config: Any, device: RuntimeDevice) -> None:
    """Put the device on an onnxruntime_genai.Config; provider options from genai_config.json stay as they are."""
    config.clear_providers()
    name = device.genai_provider
    if name is None:
        return
    config.append_provider(name)
    for key, value in device.options.items():
        config.set_provider_option(name, key, value)
    if device.vendor_id is not None:
        config.set_decoder_provider_options_hardware_device_type(name, "gpu")
        config.set_decoder_provider_options_hardware_vendor_id(name, device.vendor_id)
    if device.pci_device_id is not None:
        config.set_decoder_provider_options_hardware_device_id(name, device.pci_device_id)


def set_environment(device: RuntimeDevice) -> None:
    """CUDA's numbering, before CUDA starts in this process."""
    for key, value in device.environment.items():
        # forced: the ordinal was computed in PCI order, whatever order this shell asked for
        os.environ[key] = value


def prepare_process(device: RuntimeDevice, og: Any) -> None:
    """What must happen in the process before the model loads: CUDA's numbering, and the current CUDA device."""
    set_environment(device)
    # A build without CUDA crashes the process (SIGSEGV) in set_current_gpu_device_id, so ask first.
    if device.cuda_ordinal is not None and og.is_cuda_available():
        og.set_current_gpu_device_id(device.cuda_ordinal)


def device_for(provider: str, choice: int | None, report: HardwareReport | None = None) -> RuntimeDevice:
    """The device of a provider and a picker's number, read off this machine's hardware report (probed when not
    given; the CPU needs none)."""
    if provider == "cpu":
        return runtime_device("cpu", None)
    if report is None:
        from .hardware import probe_hardware

        report = probe_hardware()
    try:
        plugin = report.provider(provider).plugin_library is not None
    except KeyError:
        plugin = False
    return runtime_device(provider, pick_gpu(report, provider, choice), plugin=plugin)


def use_device(og: Any, config: Any, device: RuntimeDevice) -> None:
    """Everything before og.Model(config): the process, the TensorRT-RTX plugin in genai's own environment, the
    Config. Raises ModelLoadError with the plugin's reason when it cannot be registered."""
    prepare_process(device, og)
    if device.provider == "trt-rtx" and device.vendor_id is not None:
        from .ep_plugins import register_trt_rtx
        from .errors import ModelLoadError

        registration = register_trt_rtx(og)
        if not registration.registered:
            raise ModelLoadError(f"TensorRT-RTX cannot be used: {registration.reason}.")
    configure_genai(config, device)
