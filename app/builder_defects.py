"""Defects of the installed builder that the studio steers users around.

Each entry is reproduced by a test that builds with the builder and expects the defect
(tests/test_builder_defects.py; Gemma2's in tests/test_checkpoint_factory.py); when a newer builder
fixes one, that test fails and the entry comes out.
"""

from __future__ import annotations

from typing import Any


def _is_014(version: str) -> bool:
    return version.startswith("0.14.")


def combination_defect(precision: str, ep: str, builder_version: str) -> str | None:
    """A sentence refusing a precision x provider pair the builder declares valid but builds wrong."""
    if _is_014(builder_version) and (precision, ep) == ("fp32", "cuda"):
        return (
            f"builder {builder_version} writes FP32 CUDA models whose KV-cache outputs no node produces, so they load "
            "nowhere; pick fp16 or bf16 for CUDA, or fp32 for CPU."
        )
    return None


def checkpoint_defect(config: dict[str, Any], builder_version: str) -> str | None:
    """A sentence refusing a checkpoint the builder declares supported but cannot convert."""
    no_rope = config.get("no_rope_layers") or []
    if _is_014(builder_version) and config.get("model_type") == "smollm3" and 0 in no_rope:
        return (
            f"builder {builder_version} cannot convert SmolLM3 checkpoints with layers that skip RoPE "
            f"({no_rope.count(0)} of {len(no_rope)} here; it stops with KeyError 'position_ids'); "
            "wait for a newer onnxruntime-genai."
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
