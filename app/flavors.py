"""Runtime flavors: which onnxruntime-genai distribution is installed, and which would serve this PC best, and why.

directml is today's pair (onnxruntime-genai-directml 0.14.1, in maintenance); winml is onnxruntime-genai-winml 0.18
(its wheel carries onnxruntime, DirectML and Windows ML, whose provider catalog installs and registers NVIDIA's
TensorRT-RTX on RTX GPUs, from Windows 11 24H2); cuda is onnxruntime-genai-cuda 0.18 on onnxruntime-gpu, with NVIDIA's
TensorRT-RTX plugin beside it; cpu is plain onnxruntime-genai. The advice reads only the hardware report.
"""

from __future__ import annotations

from dataclasses import dataclass

from .hardware import (
    NVIDIA_VENDOR_ID,
    TRT_RTX_PLUGIN_MIN_CC,
    TRT_RTX_UNSUPPORTED_MAJORS,
    Gpu,
    HardwareReport,
    _cc_tuple,
)

WINDOWS_ML_MIN_BUILD = 26100  # Windows 11 24H2: the first build with Windows ML's execution-provider catalog


@dataclass(frozen=True)
class Flavor:
    key: str
    label: str
    package: str  # the onnxruntime-genai distribution that marks it
    version: str
    install: str  # what to pip install, in an environment with no other onnxruntime package


FLAVORS = {
    "directml": Flavor(
        "directml",
        "DirectML",
        "onnxruntime-genai-directml",
        "0.14.1",
        "onnxruntime-genai-directml==0.14.1 onnxruntime-directml==1.24.4",
    ),
    "winml": Flavor("winml", "Windows ML", "onnxruntime-genai-winml", "0.18.0", "onnxruntime-genai-winml==0.18.0"),
    "cuda": Flavor(
        "cuda",
        "CUDA",
        "onnxruntime-genai-cuda",
        "0.18.0",
        "onnxruntime-genai-cuda==0.18.0 onnxruntime-gpu onnxruntime-ep-nv-tensorrt-rtx-cu12",
    ),
    "cpu": Flavor("cpu", "CPU", "onnxruntime-genai", "0.18.0", "onnxruntime-genai==0.18.0"),
}


@dataclass(frozen=True)
class Advice:
    installed: list[str]  # flavor keys whose package is installed (more than one is a clash)
    best: str
    why: str
    how: str


def installed_flavors(report: HardwareReport) -> list[str]:
    return [key for key, flavor in FLAVORS.items() if flavor.package in report.packages]


def _windows_build(report: HardwareReport) -> int | None:
    parts = report.system.os_version.split(".")
    return int(parts[2]) if report.system.os.startswith("Windows") and len(parts) >= 3 and parts[2].isdigit() else None


def _best_nvidia(report: HardwareReport) -> Gpu | None:
    nvidia = [gpu for gpu in report.gpus if gpu.vendor_id == NVIDIA_VENDOR_ID]
    return max(nvidia, key=lambda gpu: _cc_tuple(gpu.compute_capability) or (0, 0), default=None)


def _is_rtx(gpu: Gpu) -> bool:
    capability = _cc_tuple(gpu.compute_capability)
    return (
        capability is not None
        and capability >= TRT_RTX_PLUGIN_MIN_CC
        and capability[0] not in TRT_RTX_UNSUPPORTED_MAJORS
    )


def _best(report: HardwareReport) -> tuple[str, str]:
    build = _windows_build(report)
    nvidia = _best_nvidia(report)
    catalog = build is not None and build >= WINDOWS_ML_MIN_BUILD
    if nvidia is not None and _is_rtx(nvidia) and catalog:
        return "winml", (
            f"the {nvidia.name} is an RTX GPU on Windows 11 24H2 or newer: Windows ML's catalog installs NVIDIA's "
            "TensorRT-RTX provider for it, the fastest runtime for RTX cards"
        )
    if nvidia is not None:
        lacks = (
            "Windows ML's provider catalog needs Windows 11 24H2 (build 26100)"
            if build is not None and not catalog
            else "TensorRT-RTX needs an RTX GPU of compute capability 8.0 or newer"
        )
        capability = _cc_tuple(nvidia.compute_capability)
        if capability is not None and capability[0] in TRT_RTX_UNSUPPORTED_MAJORS:
            lacks = "TensorRT-RTX is for RTX GPUs, not this data-center GPU"
        if build is None and _is_rtx(nvidia):
            lacks = "Windows ML is Windows only; the TensorRT-RTX plugin installs beside CUDA"
        return "cuda", f"CUDA runs on the {nvidia.name} (compute capability {nvidia.compute_capability}); {lacks}"
    if build is not None and report.gpus:
        if catalog:
            return "winml", "DirectML through Windows ML, Microsoft's path now that DirectML is in maintenance"
        return (
            "directml",
            "DirectML runs on any DirectX 12 GPU; Windows ML's catalog needs Windows 11 24H2 (build 26100)",
        )
    return "cpu", "no GPU a flavor could use was found, so the CPU build is the one that runs here"


def advise(report: HardwareReport) -> Advice:
    installed = installed_flavors(report)
    best, why = _best(report)
    flavor = FLAVORS[best]
    if installed == [best]:
        how = f"{flavor.label} is installed: nothing to do"
    else:
        others = sorted({name for name in report.packages if name.startswith("onnxruntime")})
        remove = f"pip uninstall {' '.join(others)}, then " if others else ""
        how = f"{remove}pip install {flavor.install} (one onnxruntime package per environment)"
    return Advice(installed, best, why, how)
