"""Defects of the installed builder that the studio steers users around.

Each entry is reproduced by a test that builds with the builder and expects the defect
(tests/test_builder_defects.py, tests/test_architecture_matrix.py; Gemma2's in tests/test_checkpoint_factory.py);
when a newer builder fixes one, that test fails and the entry comes out. Defects the studio can repair live in
app/repairs.py instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .builder_info import BuilderInfo
from .checkpoint_config import text_config


def _is_014(version: str) -> bool:
    return version.startswith("0.14.")


def combination_defect(precision: str, ep: str, builder_version: str) -> str | None:
    """A sentence refusing a precision x provider pair the builder declares valid but builds wrong (re-checked on
    0.18.0: the same dangling present.* outputs)."""
    if builder_version in ("0.14.1", "0.18.0") and (precision, ep) == ("fp32", "cuda"):
        return (
            f"builder {builder_version} writes FP32 CUDA models whose KV-cache outputs no node produces, so they load "
            "nowhere; pick fp16 or bf16 for CUDA, or fp32 for CPU."
        )
    return None


NEWEST_GENERATION = "0.18.0"
"""The default generation (pyproject.toml): what a user is told to move to."""

# Architectures the 0.18 builder dispatches on that 0.14.1's does not (both read with app.builder_info).
ADDED_IN_NEWEST = (
    "Gemma4ForConditionalGeneration",
    "Gemma4UnifiedForConditionalGeneration",
    "GraniteMoeHybridForCausalLM",
    "Lfm2AudioForConditionalGeneration",
    "Lfm2MoeForCausalLM",
    "Lfm2VlForConditionalGeneration",
)


@dataclass(frozen=True)
class Unconvertible:
    """A checkpoint the builder claims but cannot convert, where no repair (app.repairs) exists."""

    name: str
    applies: Callable[[dict[str, Any]], bool]
    builder_versions: tuple[str, ...] | None
    """Where it fails; None: every generation the studio knows."""
    why: str


def _type(config: dict[str, Any]) -> str:
    return str(config.get("model_type", ""))


def _layer_types(config: dict[str, Any]) -> set[str]:
    types = text_config(config).get("layer_types")
    return {t for t in types if isinstance(t, str)} if isinstance(types, list) else set()


UNCONVERTIBLE: tuple[Unconvertible, ...] = (
    Unconvertible(
        "Qwen3.5",
        lambda c: _type(c).startswith("qwen3_5"),
        ("0.14.1",),
        "its build does not load in its own runtime",
    ),
    Unconvertible(
        "Mistral 3", lambda c: _type(c) == "mistral3", ("0.14.1",), "its build does not load in its own runtime"
    ),
    Unconvertible(
        "Gemma 3",
        lambda c: _type(c) in ("gemma3", "gemma3_text"),
        ("0.14.1",),
        "it reads rope_local_base_freq, which transformers 5 no longer sets, and loads the config itself, so the "
        "studio's repair cannot reach it",
    ),
    Unconvertible(
        "gpt-oss",
        lambda c: _type(c) == "gpt_oss",
        ("0.14.1",),
        "its build disagrees with PyTorch: 92 % top-1 agreement on a tiny gpt-oss, 100 % with 0.18.0",
    ),
    Unconvertible(
        "Granite 4.0 H (Mamba layers)",
        # "mamba" in the real checkpoints' config.json; transformers 5.24 writes "linear_attention".
        lambda c: _type(c) == "granitemoehybrid" and bool({"mamba", "linear_attention"} & _layer_types(c)),
        None,
        "builder 0.18.0 builds GraniteMoeHybrid's attention layers only and crashes on a Mamba one",
    ),
    Unconvertible(
        "dense Gemma 4",
        lambda c: _type(c).startswith("gemma4") and not text_config(c).get("enable_moe_block", False),
        None,
        "builder 0.18.0 builds Gemma4ForConditionalGeneration as the mixture-of-experts Gemma 4 (26B-A4B) only and "
        "crashes on a dense one",
    ),
)


def flavor(info: BuilderInfo) -> str:
    """'onnxruntime-genai 0.18.0', or 'onnxruntime-genai-directml 0.14.1 (the DirectML flavor)'."""
    kind = info.distribution.removeprefix("onnxruntime-genai").removeprefix("-")
    names = {"directml": "DirectML", "cuda": "CUDA", "winml": "Windows ML"}
    return f"{info.distribution} {info.version}" + (f" (the {names.get(kind, kind)} flavor)" if kind else "")


def _move_to_newest(info: BuilderInfo) -> str:
    if "directml" in info.distribution:
        return f"use the Windows ML or CUDA flavor ({NEWEST_GENERATION}), which convert it"
    return f"install onnxruntime-genai {NEWEST_GENERATION} (scripts/setup.sh does), which converts it"


def _never_converted(config: dict[str, Any]) -> str | None:
    for known in UNCONVERTIBLE:
        if known.builder_versions is None and known.applies(config):
            return (
                f"no onnxruntime-genai up to {NEWEST_GENERATION} converts {known.name} checkpoints ({known.why}); "
                "pick another model."
            )
    return None


def checkpoint_defect(config: dict[str, Any], info: BuilderInfo) -> str | None:
    """A sentence refusing a checkpoint the installed builder claims but cannot convert, naming what can."""
    never = _never_converted(config)
    if never:
        return never
    for known in UNCONVERTIBLE:
        if known.builder_versions and known.applies(config) and info.version in known.builder_versions:
            return (
                f"{known.name} needs onnxruntime-genai {NEWEST_GENERATION}: this is {flavor(info)}, whose builder "
                f"cannot convert it ({known.why}); {_move_to_newest(info)}."
            )
    return None


def unsupported_architecture(architecture: str, config: dict[str, Any], info: BuilderInfo) -> str | None:
    """A sentence for an architecture the installed builder does not list but the newest generation does."""
    never = _never_converted(config)
    if never:
        return never
    if architecture in ADDED_IN_NEWEST and architecture not in info.architectures:
        return (
            f"{architecture} needs onnxruntime-genai {NEWEST_GENERATION}: this is {flavor(info)}, whose builder does "
            f"not know it; {_move_to_newest(info)}."
        )
    return None


def target_defect(config: dict[str, Any], ep: str, builder_version: str, precision: str = "") -> str | None:
    """A sentence refusing a checkpoint x provider (x precision) the builder cannot make or whose build would not
    load there."""
    text = text_config(config)
    if ep == "cpu" and _type(config).startswith("gemma4") and text.get("enable_moe_block"):
        return (
            "onnxruntime's CPU kernels cannot run Gemma 4's mixture of experts (GeGLU experts: 'Unsupported MoE "
            "activation type'), so a CPU build would not load; build it for CUDA (--ep cuda)."
        )
    quantization = config.get("quantization_config")
    mxfp4 = isinstance(quantization, dict) and quantization.get("quant_method") == "mxfp4"
    if _type(config) == "gpt_oss" and precision in ("int4", "int8") and not mxfp4:
        return (
            f"builder {builder_version} makes {precision.upper()} gpt-oss models only from the MXFP4 experts of the "
            "original checkpoint, and this one has none (it was dequantized); convert the original, or this one at "
            "fp32, fp16 or bf16."
        )
    return None


def checkpoint_warning(config: dict[str, Any], builder_version: str) -> str | None:
    window = config.get("sliding_window")
    layers = config.get("num_hidden_layers", 0)
    if _is_014(builder_version) and config.get("model_type") == "gemma2" and window and layers > 1:
        return (
            f"builder {builder_version} applies Gemma2's {window}-token sliding window to the odd layers where "
            "transformers uses the even ones, so replies to prompts longer than that lose accuracy."
        )
    return None
