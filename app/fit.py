"""Will a converted model fit this PC? Its expected size, a fits / tight / won't fit verdict, and the
preset recommended for a checkpoint on this hardware.

The verdict compares what running the model takes against the memory it runs in: the chosen GPU's
dedicated memory for GPU providers, system RAM for the CPU. Running takes the weights, a KV cache for a
working conversation of WORKING_CONTEXT_TOKENS tokens, and RUNTIME_OVERHEAD_BYTES for the provider's
context, workspace and activations. It fits when all of that stays under FIT_SHARE of the memory (the
rest is left to the desktop and other programs), is tight when the weights and runtime load but the KV
cache eats into that share, and won't fit when the weights and runtime alone do not load.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from .checkpoints import CheckpointInfo
from .convert import GIB, disk_needed, estimate_needs, human_size, io_bytes
from .errors import PresetError
from .hardware import NVIDIA_VENDOR_ID, Gpu, HardwareReport
from .presets import EP_NAMES, PRESETS, BuildOptions, default_ep, get_preset, recommend, resolve, valid_eps

Level = Literal["fits", "tight", "won't fit"]
LEVELS: tuple[Level, ...] = ("fits", "tight", "won't fit")

WORKING_CONTEXT_TOKENS = 4096
RUNTIME_OVERHEAD_BYTES = GIB // 2
FIT_SHARE = 0.9
# Less free disk than this after the build leaves the drive too full for a comfortable next build.
DISK_RESERVE_BYTES = 2 * GIB
MODERN_COMPUTE_CAPABILITY = (8, 0)
GPU_EPS = ("dml", "cuda", "webgpu", "trt-rtx")


@dataclass(frozen=True)
class Fit:
    level: Level
    reason: str


def _worst(fits: list[Fit]) -> Fit:
    worst = max(fits, key=lambda fit: LEVELS.index(fit.level))
    if worst.level == "fits":
        return worst
    return Fit(worst.level, " ".join(fit.reason for fit in fits if fit.level != "fits"))


# --------------------------------------------------------------------------------------------------------------------
# Size


def build_options(preset: str, ep: str, overrides: dict[str, str] | None = None) -> BuildOptions:
    """The preset resolved for the provider; for a pair the builder refuses, the unvalidated options (a size
    can still be told for a card that cannot be picked)."""
    try:
        return resolve(preset, ep, overrides)
    except PresetError:
        chosen = get_preset(preset)
        precision = (overrides or {}).get("precision", chosen.precision)
        return BuildOptions(chosen.id, precision, ep, dict(chosen.options))


def expected_size(
    info: CheckpointInfo | None, preset: str, ep: str, overrides: dict[str, str] | None = None
) -> tuple[int, float]:
    """(bytes of the converted model, its share of an FP32 build in percent); (0, the preset table's
    figure) while the checkpoint is unknown."""
    if info is None or info.parameters <= 0:
        low, high = get_preset(preset).size_percent_of_fp32
        return 0, (low + high) / 2
    size, _ = estimate_needs(info, build_options(preset, ep, overrides))
    return size, 100 * size / (info.parameters * 4)


def kv_cache_bytes(info: CheckpointInfo, options: BuildOptions, tokens: int = WORKING_CONTEXT_TOKENS) -> int:
    """K and V for every layer over `tokens` tokens; without grouped-query attention where the width is unknown."""
    width = info.kv_hidden_size or info.hidden_size
    tokens = min(tokens, info.context_length) if info.context_length else tokens
    return 2 * info.num_layers * width * tokens * io_bytes(options)


# --------------------------------------------------------------------------------------------------------------------
# GPUs


def short_gpu_name(gpu: Gpu) -> str:
    """'NVIDIA GeForce RTX 3060 Laptop GPU' -> 'RTX 3060 Laptop GPU'."""
    return re.sub(r"^(NVIDIA\s+)?(GeForce\s+)?", "", gpu.name).strip() or gpu.name


def is_nvidia(gpu: Gpu) -> bool:
    return gpu.vendor_id == NVIDIA_VENDOR_ID or gpu.vendor == "NVIDIA"


def is_modern_nvidia(gpu: Gpu) -> bool:
    """Ampere or newer: compute capability 8.0+, or an RTX 30xx+ by name where the capability is unknown."""
    if not is_nvidia(gpu):
        return False
    if gpu.compute_capability:
        major, _, minor = gpu.compute_capability.partition(".")
        if major.isdigit():
            return (int(major), int(minor or 0)) >= MODERN_COMPUTE_CAPABILITY
    series = re.search(r"RTX\s*(\d{2})\d{2}", gpu.name)
    return bool(series) and int(series.group(1)) >= 30


def gpu_for(report: HardwareReport, ep: str, gpu_index: int | None = None) -> Gpu | None:
    """The GPU a provider would run on: the picked adapter where the provider can use it, else DirectML's
    default adapter (DirectML, WebGPU) or the NVIDIA GPU with the most memory (CUDA, TensorRT-RTX)."""
    candidates = list(report.gpus)
    if ep in ("cuda", "trt-rtx"):
        candidates = [gpu for gpu in candidates if is_nvidia(gpu)]
    elif ep == "dml":
        candidates = [gpu for gpu in candidates if gpu.index is not None]  # DirectML sees only DXGI adapters
    picked = next((gpu for gpu in candidates if gpu.index is not None and gpu.index == gpu_index), None)
    if picked:
        return picked
    if ep in ("dml", "webgpu"):
        default = next((gpu for gpu in candidates if gpu.index == report.default_dml_device), None)
        if default:
            return default
    return max(candidates, key=lambda gpu: gpu.dedicated_memory_bytes or 0, default=None)


@dataclass(frozen=True)
class _Place:
    """The memory a model runs in."""

    memory: int | None
    name: str
    kind: Literal["ram", "gpu", "shared"]

    def describe(self) -> str:
        size = human_size(self.memory or 0)
        if self.kind == "ram":
            return f"in {size} of RAM"
        if self.kind == "shared":
            return f"in {size} of memory shared with the {self.name}"
        return f"on {_article(size)} {size} {self.name}"


def _place(report: HardwareReport, ep: str, gpu_index: int | None) -> _Place | None:
    if ep == "cpu":
        return _Place(report.system.ram_bytes, "this PC", "ram")
    gpu = gpu_for(report, ep, gpu_index)
    if gpu is None:
        return None
    if gpu.discrete is not True and gpu.shared_memory_bytes:
        # An integrated GPU works in the system memory it shares; its dedicated slice is tiny.
        return _Place((gpu.dedicated_memory_bytes or 0) + gpu.shared_memory_bytes, short_gpu_name(gpu), "shared")
    return _Place(gpu.dedicated_memory_bytes, short_gpu_name(gpu), "gpu")


def _article(spoken: str) -> str:
    return "an" if re.match(r"(8|1[18]\b|1[18]\.)", spoken) else "a"


# --------------------------------------------------------------------------------------------------------------------
# Verdict


def fit_verdict(
    info: CheckpointInfo | None,
    preset: str,
    ep: str,
    report: HardwareReport,
    free_disk_bytes: int | None,
    *,
    gpu_index: int | None = None,
    overrides: dict[str, str] | None = None,
) -> Fit:
    """Whether the converted model fits where it will run (GPU memory or RAM) and on the output drive."""
    if info is None or info.parameters <= 0:
        return Fit("tight", "The model's size is not known yet, so whether it fits cannot be told.")
    options = build_options(preset, ep, overrides)
    size, _ = estimate_needs(info, options)
    fits = [_memory_fit(info, options, size, report, gpu_index)]
    if free_disk_bytes is not None:
        fits.append(_disk_fit(size, free_disk_bytes))
    return _worst(fits)


def _memory_fit(
    info: CheckpointInfo, options: BuildOptions, size: int, report: HardwareReport, gpu_index: int | None
) -> Fit:
    place = _place(report, options.execution_provider, gpu_index)
    if place is None:
        return _no_gpu(size, options.execution_provider)
    if not place.memory:
        return Fit(
            "tight",
            f"The hardware report does not say how much memory {place.name} has, so whether the "
            f"{human_size(size)} model fits cannot be told.",
        )
    subject = f"{human_size(size)} model {place.describe()}"
    return _compare(size, kv_cache_bytes(info, options), place.memory, subject, options, report)


def _compare(size: int, kv: int, memory: int, subject: str, options: BuildOptions, report: HardwareReport) -> Fit:
    loads = size + RUNTIME_OVERHEAD_BYTES
    spare = memory - size
    if loads > memory:
        return Fit(
            "won't fit",
            f"{subject}: won't fit, it needs about {human_size(loads)} with the runtime; "
            f"{_smaller_advice(options, loads, report)}.",
        )
    if loads + kv > memory * FIT_SHARE:
        return Fit(
            "tight",
            f"{subject}: tight, {human_size(spare)} to spare where a {WORKING_CONTEXT_TOKENS:,}-token conversation "
            f"needs about {human_size(kv + RUNTIME_OVERHEAD_BYTES)} for its KV cache and the runtime; keep "
            "conversations short or pick a smaller preset.",
        )
    return Fit("fits", f"{subject}: fits with {human_size(spare)} to spare.")


def _smaller_advice(options: BuildOptions, needed: int, report: HardwareReport) -> str:
    if options.precision != "int4":
        return "pick an INT4 preset or a smaller model"
    ram = report.system.ram_bytes or 0
    if options.execution_provider != "cpu" and needed < ram * FIT_SHARE:
        return "pick a smaller model or build it for the CPU"
    return "pick a smaller model"


def _no_gpu(size: int, ep: str) -> Fit:
    return Fit(
        "won't fit",
        f"This PC has no GPU {EP_NAMES[ep]} can use: the {human_size(size)} model can be built here but runs "
        f"only on a PC with a GPU of more than {human_size(size + RUNTIME_OVERHEAD_BYTES)}.",
    )


def _disk_fit(size: int, free: int) -> Fit:
    needed = disk_needed(size)
    if needed > free:
        return Fit(
            "won't fit",
            f"The output drive has {human_size(free)} free and the model needs about {human_size(needed)}; "
            "free some space or choose a folder on another drive.",
        )
    if free - needed < DISK_RESERVE_BYTES:
        return Fit(
            "tight",
            f"The model needs about {human_size(needed)} of the {human_size(free)} free on the output drive, "
            f"leaving {human_size(free - needed)}.",
        )
    return Fit("fits", f"The output drive has {human_size(free)} free for the {human_size(needed)} it needs.")


# --------------------------------------------------------------------------------------------------------------------
# Recommendation


def recommended(info: CheckpointInfo | None, report: HardwareReport) -> tuple[str, str]:
    """(preset id, reason in words): the preset guide's tables for the family and the GPU, then moved to the
    family's alternative where this PC cannot run the choice or the model would not fit."""
    usable = report.usable_providers()
    # A GPU this PC cannot run a model on (no usable GPU provider) is the CPU case, as a machine without one is.
    nvidia = [gpu for gpu in report.gpus if is_nvidia(gpu)] if usable - {"cpu"} else []
    family = info.family if info else None
    preset_id, alternative, reason = recommend(family, bool(nvidia), any(is_modern_nvidia(gpu) for gpu in nvidia))
    if preset_id != alternative and not set(valid_eps(PRESETS[preset_id])) & usable:
        return alternative, _unrunnable_reason(preset_id, alternative, reason)
    ep = default_ep(PRESETS[preset_id], usable)
    if preset_id != alternative and fit_verdict(info, preset_id, ep, report, None).level == "won't fit":
        if fit_verdict(info, alternative, default_ep(PRESETS[alternative], usable), report, None).level != "won't fit":
            return alternative, (
                f"{reason[:-1]}, but it would not fit in this PC's memory; the smaller "
                f"{PRESETS[alternative].title} will."
            )
    return preset_id, reason


def _unrunnable_reason(preset_id: str, alternative: str, reason: str) -> str:
    preset = PRESETS[preset_id]
    providers = _spoken_list([EP_NAMES[ep] for ep in valid_eps(preset)])
    return (
        f"{reason[:-1]}, but {preset.precision.upper()} models run only on {providers}, which this PC cannot use; "
        f"{PRESETS[alternative].title} instead."
    )


def _spoken_list(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"
