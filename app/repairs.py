"""Calling the installed model builder, and repairing what it gets wrong, one builder version at a time.

The builder's Python API changed between generations: up to 0.15 `create_model(**typed_options)` reads
the checkpoint itself; from 0.16 on `parse_extra_options(...)` must run first (it loads the config and
tokenizer) and its result is what `create_model` takes. `call_builder` is the bare call on either.

A repair is keyed on the builder versions it was proven on (tests/test_architecture_matrix.py: FP32
top-1 agreement with PyTorch of at least 99 %) and has a test showing the bare builder still fails
(tests/test_repairs.py), so a builder that fixes the defect retires the repair. A repair never edits
the builder's files: it corrects the transformers config the builder loaded (0.16+, between its two
calls), replaces one builder method for the length of the call, sets a builder option, or fixes a file
in the staged output.
"""

from __future__ import annotations

import contextlib
import inspect
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checkpoint_config import text_config
from .presets import BuildOptions, _flag_value

Config = dict[str, Any]


@dataclass(frozen=True)
class Repair:
    id: str
    defect: str
    """The builder's defect, in words: what goes wrong without the repair."""
    builder_versions: tuple[str, ...]
    applies: Callable[[Config], bool]
    """config.json -> whether this checkpoint needs it."""
    options: dict[str, Any] = field(default_factory=dict)
    """Builder options set unless the user set them."""
    fix_config: Callable[[Any], None] | None = None
    """Corrects the transformers config parse_extra_options loaded (builder 0.16+ only)."""
    patch: Callable[[], contextlib.AbstractContextManager[None]] | None = None
    """Replaces a builder method while the builder runs."""
    fix_output: Callable[[Path], None] | None = None
    """Fixes the built folder in place."""


def _model_type(config: Config) -> str:
    return str(config.get("model_type", ""))


# --- SmolLM3: layers without RoPE ------------------------------------------------------------------------------------


def _has_nope_layers(config: Config) -> bool:
    layers = text_config(config).get("no_rope_layers")
    return _model_type(config) == "smollm3" and isinstance(layers, list) and 0 in layers


@contextlib.contextmanager
def _smollm3_rope_off_where_asked() -> Iterator[None]:
    """The builder's SmolLM3 turns a no-RoPE layer's *fused* rotary off, which makes the base builder add separate
    rotary nodes fed by a position_ids input the graph does not have. Turning RoPE off for that layer is what
    transformers does."""
    # The class the builder dispatches on: it imports its builders by bare name (after editing sys.path), so
    # onnxruntime_genai.models.builders.smollm may be another copy of the module.
    from onnxruntime_genai.models.builder import SmolLM3Model

    original = SmolLM3Model.make_attention

    def make_attention(self: Any, layer_id: int, attention: Any, root_input: str, **kwargs: Any) -> Any:
        if self.no_rope_layers[layer_id]:
            return original(self, layer_id, attention, root_input, **kwargs)
        rope = self.attention_attrs["rope"]
        self.attention_attrs["rope"] = False
        try:
            return original(self, layer_id, attention, root_input, **kwargs)
        finally:
            self.attention_attrs["rope"] = rope

    SmolLM3Model.make_attention = make_attention
    try:
        yield
    finally:
        SmolLM3Model.make_attention = original


# --- Gemma 4: per-layer head_dim -------------------------------------------------------------------------------------


def _is_gemma4(config: Config) -> bool:
    return _model_type(config).startswith("gemma4")


def _gemma4_layer_geometry(config: Any) -> None:
    """transformers 5.24 keeps Gemma 4's full-attention head size in per-layer overrides (per_layer_config, no
    global_head_dim) and refuses to read head_dim from the global config. The builder reads the global (sliding)
    head_dim and swaps in global_head_dim / num_global_key_value_heads per layer itself, so both are given back."""
    text = getattr(config, "text_config", None) or config
    for part in {id(config): config, id(text): text}.values():
        part.allow_global_per_layer_attribute_access = True
    layer_types = list(getattr(text, "layer_types", None) or [])
    if "full_attention" not in layer_types:
        return
    full = text.per_layer_config[layer_types.index("full_attention")]
    for part in {id(config): config, id(text): text}.values():
        if getattr(part, "global_head_dim", None) is None:
            part.global_head_dim = full.head_dim
        if getattr(part, "num_global_key_value_heads", None) is None:
            part.num_global_key_value_heads = full.num_key_value_heads


# --- Gemma 3: the local RoPE base ------------------------------------------------------------------------------------


def _is_gemma3(config: Config) -> bool:
    return _model_type(config) in ("gemma3", "gemma3_text")


def _restore_rope_local_base_freq(config: Any) -> None:
    """transformers 5 keeps Gemma 3's two RoPE bases in rope_parameters, one per layer type; the builder still reads
    the attributes they replaced: rope_local_base_freq (sliding layers) and rope_theta (global layers)."""
    for part in (config, getattr(config, "text_config", None)):
        rope = getattr(part, "rope_parameters", None) if part is not None else None
        if not isinstance(rope, dict) or not isinstance(rope.get("sliding_attention"), dict):
            continue
        part.rope_local_base_freq = rope["sliding_attention"]["rope_theta"]
        if isinstance(rope.get("full_attention"), dict):
            part.rope_theta = rope["full_attention"]["rope_theta"]


# --- sliding windows: the reduced KV cache ---------------------------------------------------------------------------


def _has_sliding_window(config: Config) -> bool:
    text = text_config(config)
    types = text.get("layer_types") or []
    return bool(text.get("sliding_window")) and (
        _model_type(config) == "gemma2" or (isinstance(types, list) and "sliding_attention" in types)
    )


# --- OLMo: LayerNorm, not RMSNorm ------------------------------------------------------------------------------------


def _is_olmo(config: Config) -> bool:
    return _model_type(config) == "olmo"


@contextlib.contextmanager
def _olmo_mean_subtracting_norm() -> Iterator[None]:
    """OLMo normalises with a weightless LayerNorm (mean and variance); the builder gives it unit weights and zero
    biases but then emits the RMS form (SimplifiedLayerNormalization), which drops the mean."""
    from onnxruntime_genai.models.builder import OLMoModel

    original = OLMoModel.make_layernorm

    def make_layernorm(self: Any, layer_id: int, layernorm: Any, skip: bool, simple: bool, location: str) -> Any:
        return original(self, layer_id, layernorm, skip, False, location)

    OLMoModel.make_layernorm = make_layernorm
    try:
        yield
    finally:
        OLMoModel.make_layernorm = original


# --- Qwen3.5: the tokenizer class ------------------------------------------------------------------------------------


def _is_qwen3_5(config: Config) -> bool:
    return _model_type(config).startswith("qwen3_5")


# The runtime reads `tokenizer_class` from tokenizer_config.json and knows Qwen2's, the class transformers used for
# Qwen3.5 before the family got its own name (the same byte-level BPE).
_RUNTIME_TOKENIZER_CLASS = {"Qwen3_5Tokenizer": "Qwen2Tokenizer", "Qwen3_5TokenizerFast": "Qwen2TokenizerFast"}


def _rename_tokenizer_class(folder: Path) -> None:
    path = folder / "tokenizer_config.json"
    if not path.is_file():
        return
    data = json.loads(path.read_text(encoding="utf-8"))
    name = data.get("tokenizer_class") if isinstance(data, dict) else None
    if name in _RUNTIME_TOKENIZER_CLASS:
        data["tokenizer_class"] = _RUNTIME_TOKENIZER_CLASS[name]
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")


REPAIRS: tuple[Repair, ...] = (
    Repair(
        "smollm3-nope-layers",
        "the builder gives SmolLM3's layers without RoPE separate rotary nodes fed by a position_ids input the graph "
        "lacks (KeyError: 'position_ids')",
        ("0.14.1", "0.18.0"),
        _has_nope_layers,
        patch=_smollm3_rope_off_where_asked,
    ),
    Repair(
        "gemma4-per-layer-head-dim",
        "the builder reads Gemma 4's head_dim from the global config, which transformers 5.24 refuses for a per-layer "
        "attribute (AmbiguousGlobalPerLayerAttributeError)",
        ("0.18.0",),
        _is_gemma4,
        fix_config=_gemma4_layer_geometry,
    ),
    Repair(
        "gemma3-rope-local-base-freq",
        "the builder reads Gemma 3's RoPE bases from rope_local_base_freq and rope_theta, which transformers 5 moved "
        "into rope_parameters per layer type (AttributeError, or the global layers rotated with the local base)",
        ("0.18.0",),
        _is_gemma3,
        fix_config=_restore_rope_local_base_freq,
    ),
    Repair(
        "sliding-window-full-kv-cache",
        "the builder's reduced KV cache for sliding-window layers makes the runtime refuse any generation shorter "
        "than the window ('KV cache capacity must be at least local_window_size')",
        ("0.18.0",),
        _has_sliding_window,
        options={"windowed_kv_cache": False},
    ),
    Repair(
        "olmo-layer-norm",
        "the builder writes OLMo's mean-subtracting LayerNorm as RMSNorm (SimplifiedLayerNormalization), so its "
        "outputs drift from PyTorch's (top-1 agreement 86 % on a tiny OLMo)",
        ("0.14.1", "0.18.0"),
        _is_olmo,
        patch=_olmo_mean_subtracting_norm,
    ),
    Repair(
        "qwen3_5-tokenizer-class",
        "the runtime rejects the tokenizer class transformers 5.24 writes for Qwen3.5 ('Unsupported tokenizer class: "
        "Qwen3_5Tokenizer')",
        ("0.18.0",),
        _is_qwen3_5,
        fix_output=_rename_tokenizer_class,
    ),
)


def repairs_for(config: Config, builder_version: str) -> list[Repair]:
    return [r for r in REPAIRS if builder_version in r.builder_versions and r.applies(config)]


def _takes_model_name(function: Callable[..., Any]) -> bool:
    return "model_name" in inspect.signature(function).parameters


def call_builder(
    source: Path,
    output: Path,
    cache: Path,
    options: BuildOptions,
    trust_remote_code: bool,
    fix_config: Callable[[Any], None] | None = None,
) -> None:
    """The installed builder, called as its own command line would.

    hf_remote is the builder's trust_remote_code: off here unless asked for by name. fix_config, where given, sees
    the transformers config a 0.16+ builder loaded before it builds from it.
    """
    import onnxruntime  # noqa: F401  (onnxruntime-genai finds its runtime through it)
    from onnxruntime_genai.models import builder

    from .builder_info import builder_info

    ep = builder_info().cli_execution_providers[options.execution_provider]
    extra: dict[str, Any] = {**options.extra_options, "hf_remote": trust_remote_code, "hf_token": "false"}
    if _takes_model_name(builder.parse_extra_options):
        pairs = [f"{key}={_flag_value(value)}" for key, value in extra.items()]
        extra = builder.parse_extra_options(None, str(source), str(output), options.precision, ep, str(cache), pairs)
        if fix_config is not None:
            fix_config(extra["hf_details"]["hf_config"])
    elif fix_config is not None:
        raise RuntimeError(f"builder {builder_info().version} loads the config itself; this repair cannot reach it")
    builder.create_model(None, str(source), str(output), options.precision, ep, str(cache), **extra)


def with_repair_options(options: BuildOptions, repairs: list[Repair]) -> BuildOptions:
    """The options with every repair's builder options the user did not set."""
    extra = dict(options.extra_options)
    for repair in repairs:
        extra = {**repair.options, **extra}
    return BuildOptions(options.preset, options.precision, options.execution_provider, extra)


def build_with_repairs(
    source: Path, output: Path, cache: Path, options: BuildOptions, trust_remote_code: bool
) -> list[str]:
    """Build with the installed builder and the repairs its version needs; returns the repairs' ids."""
    from .builder_info import builder_info
    from .checkpoints import read_config

    repairs = repairs_for(read_config(source), builder_info().version)
    fixes = [r.fix_config for r in repairs if r.fix_config]

    def fix_config(config: Any) -> None:
        for fix in fixes:
            fix(config)

    with contextlib.ExitStack() as stack:
        for repair in repairs:
            if repair.patch:
                stack.enter_context(repair.patch())
        call_builder(
            source,
            output,
            cache,
            with_repair_options(options, repairs),
            trust_remote_code,
            fix_config if fixes else None,
        )
    for repair in repairs:
        if repair.fix_output:
            repair.fix_output(output)
    return [repair.id for repair in repairs]
