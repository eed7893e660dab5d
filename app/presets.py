"""The conversion presets (seed 000's nine), their recommendation tables, and how a preset resolves
into the exact builder call: precision, execution provider and extra options.

This is the one preset table: the CLI and the window both read it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from .builder_defects import combination_defect
from .builder_info import BuilderInfo, builder_info
from .errors import PresetError

EP_NAMES = {
    "cpu": "CPU",
    "cuda": "CUDA",
    "dml": "DirectML",
    "webgpu": "WebGPU",
    "trt-rtx": "TensorRT-RTX",
}


@dataclass(frozen=True)
class Preset:
    id: str
    title: str
    purpose: str
    precision: str
    options: dict[str, Any]
    size_percent_of_fp32: tuple[int, int]
    quality: str
    best_for: tuple[str, ...]
    ep_preference: tuple[str, ...]
    """Execution providers in the order the preset prefers them; the first usable one is the default."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_INT4_EPS = ("dml", "cuda", "cpu", "webgpu", "trt-rtx")


def _int4(**options: Any) -> dict[str, Any]:
    # Generic names (builder 0.16+); resolve() writes them the way the installed builder spells them.
    return {"block_size": 32, "is_symmetric": True, **options}


# Weight-only quantization options: `int4_<name>` up to builder 0.15, `<name>` (for int4 and int8) from 0.16 on.
QUANTIZATION_KEYS = (
    "block_size",
    "is_symmetric",
    "accuracy_level",
    "algo_config",
    "op_types_to_quantize",
    "nodes_to_exclude",
)
_LEGACY_PREFIX = "int4_"


PRESETS: dict[str, Preset] = {
    preset.id: preset
    for preset in (
        Preset(
            "fp16",
            "FP16 - Half Precision (GPU)",
            "Half precision: the default for most models on NVIDIA GPUs, a good balance of size and quality.",
            "fp16",
            {},
            (50, 50),
            "Excellent for most tasks.",
            ("Most models on NVIDIA GPUs", "General-purpose inference"),
            ("dml", "cuda", "trt-rtx"),
        ),
        Preset(
            "fp32",
            "FP32 - Full Precision (CPU)",
            "Full precision: the highest quality and the largest files; for CPU inference.",
            "fp32",
            {},
            (100, 100),
            "Best possible.",
            ("CPU-only inference", "Maximum accuracy", "Older hardware without FP16"),
            ("cpu", "cuda"),
        ),
        Preset(
            "bf16",
            "BF16 - Brain Float (Gemma/Phi)",
            "Brain float 16: the format Gemma and Phi were trained in; needs a modern GPU (RTX 30xx+).",
            "bf16",
            {},
            (50, 50),
            "Better than FP16 for Gemma and Phi models.",
            ("Gemma models", "Phi models", "Modern GPUs (A100, H100, RTX 30xx+)"),
            ("cuda", "trt-rtx"),
        ),
        Preset(
            "int4",
            "INT4 - 4-bit Quantized",
            "4-bit weights, block size 32, symmetric; activations at the builder's own default accuracy "
            "level for the target (level 4, INT8, on CPU and WebGPU; level 0, unconstrained, on GPUs).",
            "int4",
            _int4(),
            (25, 25),
            "Good (slight degradation).",
            ("Smallest size", "Low-memory machines", "Edge deployment"),
            _INT4_EPS,
        ),
        Preset(
            "int4-int8",
            "INT4 + INT8 Activations",
            "4-bit weights, block size 32, symmetric, with INT8 activations forced (accuracy level 4) on "
            "every target, where plain INT4 leaves the level to the builder.",
            "int4",
            _int4(accuracy_level=4),
            (25, 30),
            "Better than pure INT4 where the target's default level is lower.",
            ("Balanced size and quality", "When INT4 alone loses too much quality"),
            _INT4_EPS,
        ),
        Preset(
            "int4-bf16",
            "INT4 + BF16 Activations",
            "4-bit weights, block size 32, symmetric, BF16 activations (accuracy level 3).",
            "int4",
            _int4(accuracy_level=3),
            (25, 30),
            "Excellent for Gemma and Phi.",
            ("Quantized Gemma models", "Quantized Phi models", "Modern GPUs with limited memory"),
            _INT4_EPS,
        ),
        Preset(
            "int4-fp16",
            "INT4 + FP16 Activations",
            "4-bit weights, block size 32, symmetric, FP16 activations (accuracy level 2).",
            "int4",
            _int4(accuracy_level=2),
            (25, 30),
            "Very good.",
            ("Standard GPU inference", "Most quantized models"),
            _INT4_EPS,
        ),
        Preset(
            "uint4",
            "UINT4 - Asymmetric Quantization",
            "Unsigned 4-bit weights with a zero point (asymmetric), block size 32, INT8 activations (level 4).",
            "int4",
            _int4(is_symmetric=False, accuracy_level=4),
            (25, 25),
            "Similar to INT4; some models do better.",
            ("When symmetric INT4 does not work well for a model",),
            _INT4_EPS,
        ),
        Preset(
            "custom",
            "Custom - Manual Configuration",
            "Every builder option by hand: precision, execution provider, block size, symmetry, accuracy "
            "level, algorithm, excluded layers, CUDA graph, shared embeddings and more (--set KEY=VALUE).",
            "fp16",
            {},
            (25, 100),
            "Depends on the settings.",
            ("Advanced users", "Experimentation"),
            ("dml", "cuda", "cpu", "webgpu", "trt-rtx"),
        ),
    )
}

# Seed 000's "Quick Selection Guide", as data: key -> (recommended, alternative).
BY_FAMILY: dict[str, tuple[str, str]] = {
    "qwen3": ("fp16", "int4-fp16"),
    "qwen2": ("fp16", "int4-fp16"),
    "gemma": ("bf16", "int4-bf16"),
    "gemma2": ("bf16", "int4-bf16"),
    "gemma3": ("bf16", "int4-bf16"),
    "phi": ("bf16", "int4-bf16"),
    "phi3": ("bf16", "int4-bf16"),
    "smollm3": ("fp16", "int4"),
    "llama": ("fp16", "int4-fp16"),
    "mistral": ("fp16", "int4-fp16"),
}
BY_HARDWARE: dict[str, tuple[str, str]] = {
    "NVIDIA GPU (RTX 30xx+)": ("fp16", "bf16"),
    "NVIDIA GPU (older)": ("fp16", "int4-fp16"),
    "CPU": ("int4", "fp32"),
    "Mobile/Edge": ("int4", "int4-int8"),
    "A100/H100": ("bf16", "fp16"),
}
BY_USE_CASE: dict[str, str] = {
    "Production inference (GPU)": "fp16",
    "Production inference (CPU)": "fp32",
    "Mobile app": "int4",
    "Research/development": "fp16",
    "Minimal storage": "int4",
    "Maximum accuracy": "fp32",
}


@dataclass(frozen=True)
class BuildOptions:
    """A preset resolved into exactly what the builder is called with."""

    preset: str
    precision: str
    execution_provider: str
    extra_options: dict[str, Any] = field(default_factory=dict)

    def builder_flags(self, info: BuilderInfo | None = None) -> list[str]:
        """The same build as the builder's own command-line flags (for 'copy command line')."""
        info = info or builder_info()
        flags = ["-p", self.precision, "-e", info.cli_execution_providers[self.execution_provider]]
        if self.extra_options:
            flags.append("--extra_options")
            flags += [f"{key}={_flag_value(value)}" for key, value in self.extra_options.items()]
        return flags

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _flag_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):  # op types, which the builder splits on '/'
        return "/".join(str(item) for item in value)
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return str(value)


def get_preset(preset_id: str) -> Preset:
    try:
        return PRESETS[preset_id]
    except KeyError:
        raise PresetError(f"unknown preset '{preset_id}'; choose one of: {', '.join(PRESETS)}.") from None


def check_combination(precision: str, ep: str, info: BuilderInfo | None = None) -> None:
    """Refuse a precision x execution provider pair the builder does not declare valid, naming alternatives."""
    info = info or builder_info()
    if ep not in info.execution_providers:
        raise PresetError(
            f"execution provider '{ep}' is not one the installed builder knows; "
            f"choose one of: {', '.join(info.execution_providers)}."
        )
    if precision not in info.precisions:
        raise PresetError(
            f"precision '{precision}' is not one the installed builder {info.version} can build; "
            f"choose one of: {', '.join(info.precisions)}."
        )
    if (precision, ep) in info.valid_combinations:
        defect = combination_defect(precision, ep, info.version)
        if defect:
            raise PresetError(defect)
        return
    other_eps = sorted(e for p, e in info.valid_combinations if p == precision)
    other_precisions = sorted(p for p, e in info.valid_combinations if e == ep)
    hint = f"for {precision.upper()} pick --ep {' or '.join(other_eps)}"
    if other_precisions:
        hint += f", or on {EP_NAMES[ep]} pick precision {' or '.join(other_precisions)}"
    raise PresetError(f"the builder cannot make {precision.upper()} models for {EP_NAMES[ep]}: {hint}.")


def valid_eps(preset: Preset, info: BuilderInfo | None = None) -> list[str]:
    """Providers the preset can be built for: declared valid by the builder and free of known defects."""
    info = info or builder_info()
    if preset.id == "custom":
        return [ep for ep in preset.ep_preference if ep in info.execution_providers]
    return [
        ep
        for ep in preset.ep_preference
        if (preset.precision, ep) in info.valid_combinations
        and not combination_defect(preset.precision, ep, info.version)
    ]


def default_ep(preset: Preset, usable: set[str], info: BuilderInfo | None = None) -> str:
    """The first provider the preset prefers that this machine can run, else the preset's first choice."""
    candidates = valid_eps(preset, info)
    for ep in candidates:
        if ep in usable:
            return ep
    return candidates[0]


def resolve(
    preset_id: str,
    ep: str,
    overrides: dict[str, str] | None = None,
    info: BuilderInfo | None = None,
) -> BuildOptions:
    """Preset + execution provider + user overrides -> validated builder options."""
    info = info or builder_info()
    preset = get_preset(preset_id)
    overrides = dict(overrides or {})
    precision = overrides.pop("precision", preset.precision)
    options = {builder_key(key, info): value for key, value in preset.options.items()}
    for key, raw in overrides.items():
        options[builder_key(key, info)] = parse_option(key, raw, info)
    check_combination(precision, ep, info)
    quantized = [p for p in ("int4", "int8") if p in info.precisions]
    if precision not in quantized:
        weight_only = sorted(key for key in options if generic_key(key) in QUANTIZATION_KEYS)
        if weight_only:
            raise PresetError(
                f"{', '.join(weight_only)} only apply to {' or '.join(quantized)} precision; "
                f"remove them or set precision={quantized[0]}."
            )
    _check_conflicts(options)
    excluded = options.get(builder_key("nodes_to_exclude", info), [])
    if "/lm_head/MatMul" in excluded and "shared_embeddings" not in overrides:
        # Builder 0.14.1 shares tied embeddings with an lm_head it never quantized and fails to load.
        options["shared_embeddings"] = False
    return BuildOptions(preset.id, precision, ep, options)


def generic_key(key: str) -> str:
    """A weight-only quantization option's generic name (`int4_block_size` -> `block_size`); others unchanged."""
    bare = key.removeprefix(_LEGACY_PREFIX)
    return bare if bare in QUANTIZATION_KEYS else key


def builder_key(key: str, info: BuilderInfo | None = None) -> str:
    """The spelling of an option the installed builder documents: the deprecated `int4_*` names and the generic
    ones are translated either way (0.18 documents the old names as aliases but no longer reads them)."""
    info = info or builder_info()
    names = set(info.option_names())
    generic = generic_key(key)
    if generic not in QUANTIZATION_KEYS or key in names and key == generic:
        return key
    for spelling in (generic, _LEGACY_PREFIX + generic):
        if spelling in names:
            return spelling
    return key


def _check_conflicts(options: dict[str, Any]) -> None:
    pairs = (("exclude_lm_head", "include_hidden_states"), ("exclude_lm_head", "prune_lm_head"))
    for first, second in pairs:
        if options.get(first) and options.get(second):
            raise PresetError(f"{first} and {second} cannot be used together; keep one of them.")


# Options the studio sets itself or that would make it run code or reach the network behind the user's back.
_RESERVED = {"hf_remote", "hf_token", "config_only", "filename", "num_hidden_layers", "adapter_path"}


def settable_options(info: BuilderInfo | None = None) -> list[str]:
    info = info or builder_info()
    return ["precision", *(name for name in info.option_names() if name not in _RESERVED)]


def parse_option(key: str, raw: str, info: BuilderInfo | None = None) -> Any:
    """Check one --set KEY=VALUE against the installed builder's documented options and type it."""
    info = info or builder_info()
    allowed = settable_options(info)
    key = builder_key(key, info)
    if key not in allowed:
        raise PresetError(
            f"'{key}' is not an option of the installed builder {info.version}; known: {', '.join(allowed)}."
        )
    option = next(option for option in info.options if option.name == key)
    choices = option_choices(option.help)
    if key in info.boolean_options:
        lowered = raw.strip().lower()
        if lowered not in {"true", "false", "1", "0"}:
            raise PresetError(f"{key} takes true or false, not '{raw}'.")
        return lowered in {"true", "1"}
    if choices and raw not in choices:
        raise PresetError(f"{key} takes one of {', '.join(choices)}, not '{raw}'.")
    if generic_key(key) == "nodes_to_exclude":
        return [item for item in raw.split(",") if item]
    if generic_key(key) == "op_types_to_quantize":
        return tuple(item for item in raw.split("/") if item)
    if raw.isdigit():
        return int(raw)
    return raw


def option_choices(help_text: str) -> list[str]:
    """Enumerated values a builder option's help lists ('16/32/64' or "'rtn', 'k_quant'")."""
    slashed = re.match(r"^([0-9]+(?:/[0-9]+)+):", help_text)
    if slashed:
        return slashed.group(1).split("/")
    quoted = re.search(r"supported (?:options|base methods) are: ((?:'[a-z0-9_]+'(?:, )?)+)", help_text)
    if quoted:
        # Builder 0.18 lists its older compound values after the base methods as "- rtn_last = ...".
        _, _, aliases = help_text.partition("accepted as aliases")
        return re.findall(r"'([a-z0-9_]+)'", quoted.group(1)) + re.findall(r"- ([a-z0-9_]+) = ", aliases)
    listed = re.search(r"Supported values: ([a-z0-9_]+(?:, [a-z0-9_]+)+)\.", help_text)
    if listed:
        return listed.group(1).split(", ")
    return []


def option_default(help_text: str) -> str | None:
    """The default a builder option's help states ("Default is true.", "Default value is 32."), if any."""
    stated = re.search(r"Default (?:value )?is '?([A-Za-z0-9_]+)'?\.", help_text)
    return stated.group(1) if stated else None


def recommend(family: str | None, has_nvidia_gpu: bool, modern_gpu: bool) -> tuple[str, str, str]:
    """(preset id, alternative, reason in words) from the guide's hardware and family tables."""
    if not has_nvidia_gpu:
        preset_id, alternative = BY_HARDWARE["CPU"]
        return (
            preset_id,
            alternative,
            f"no GPU this PC can run models on: {PRESETS[preset_id].title} is the choice for the CPU, about a "
            "third of FP32's size and faster, its quality close to FP32's (measure both on the Report tab).",
        )
    if family in BY_FAMILY:
        preset_id, alternative = BY_FAMILY[family]
        if preset_id == "bf16" and not modern_gpu:
            instead = PRESETS[alternative].title
            return (
                alternative,
                alternative,
                (f"{family} models do best in BF16, which needs an RTX 30xx or newer; {instead} instead."),
            )
        return preset_id, alternative, f"{PRESETS[preset_id].title} is the recommended preset for {family} models."
    hardware = "NVIDIA GPU (RTX 30xx+)" if modern_gpu else "NVIDIA GPU (older)"
    preset_id, alternative = BY_HARDWARE[hardware]
    return preset_id, alternative, f"{PRESETS[preset_id].title} is the recommended preset for {hardware}."
