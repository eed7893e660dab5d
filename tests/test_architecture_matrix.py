"""Every architecture the checkpoint factory makes, through the installed generation: planned, converted at FP32
and INT4 on the CPU (repairs included), asked a prompt, and the FP32 build compared with PyTorch (eval --against).

The verdict of each architecture per builder version is the table below (README "Architectures and
generations" holds the same); a builder that changes one fails here, and the table, the README and the repairs
move with it. CI runs this file on 0.18 (the main environment) and on 0.14.1 (the DirectML flavor's generation, in
a second environment).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.builder_info import builder_info
from app.convert import ConvertRequest, plan_conversion, run_conversion
from app.errors import ForgeError
from app.evaluate import drift
from app.repairs import repairs_for
from tests.checkpoint_factory import ARCHITECTURES, granite_h_mamba_layers

CONVERTS, REPAIRED, REFUSED = "converts", "converts with a repair", "refused"
# SmolLM3 skips RoPE on every fourth layer, so its checkpoint has four; the rest have the factory's two.
LAYERS = {"smollm3": 4}
CASES = {
    **{arch: (arch, {}) for arch in ARCHITECTURES},
    "gemma4_dense": ("gemma4", {"enable_moe_block": False}),
    "granitemoehybrid_mamba": ("granitemoehybrid", granite_h_mamba_layers(2)),
}

EXPECTED: dict[str, dict[str, str]] = {
    "0.18.0": {
        **dict.fromkeys(
            ("llama", "mistral", "qwen2", "qwen3", "phi3", "gemma", "mistral3", "granite", "ernie4_5", "lfm2")
            + ("granitemoehybrid", "lfm2_moe"),
            CONVERTS,
        ),
        **dict.fromkeys(("gemma2", "smollm3", "qwen3_5", "qwen3_5_moe", "gemma3", "olmo", "gpt_oss"), REPAIRED),
        **dict.fromkeys(("gemma4", "gemma4_dense", "qwen3_moe", "granitemoehybrid_mamba"), REFUSED),
    },
    "0.14.1": {
        **dict.fromkeys(
            ("llama", "mistral", "qwen2", "qwen3", "phi3", "gemma", "gemma2", "granite", "ernie4_5", "lfm2"),
            CONVERTS,
        ),
        **dict.fromkeys(("smollm3", "olmo"), REPAIRED),
        **dict.fromkeys(
            ("qwen3_5", "qwen3_5_moe", "mistral3", "gemma3", "gemma4", "gemma4_dense", "qwen3_moe", "gpt_oss"), REFUSED
        ),
        **dict.fromkeys(("granitemoehybrid", "lfm2_moe", "granitemoehybrid_mamba"), REFUSED),
    },
}
# What each refusal must say: the generation or flavor that can, or why none can.
REFUSAL_WORDS = {
    "0.18.0": {
        "gemma4": "build it for CUDA",
        "gemma4_dense": "no onnxruntime-genai up to 0.18.0",
        "granitemoehybrid_mamba": "no onnxruntime-genai up to 0.18.0",
        "qwen3_moe": "cannot convert Qwen3MoeForCausalLM",
    },
    "0.14.1": {
        **dict.fromkeys(
            ("qwen3_5", "qwen3_5_moe", "mistral3", "gemma3", "gemma4", "gpt_oss", "granitemoehybrid", "lfm2_moe"),
            "needs onnxruntime-genai 0.18.0",
        ),
        **dict.fromkeys(("gemma4_dense", "granitemoehybrid_mamba"), "no onnxruntime-genai up to 0.18.0"),
        "qwen3_moe": "cannot convert Qwen3MoeForCausalLM",
    },
}
MIN_TOP1 = 0.99
# The factory's gpt-oss is dequantized (BF16-style experts); the builder makes INT4 gpt-oss only from the original
# MXFP4 experts, so its INT4 plan is a refusal (tests/test_builder_defects.py holds the bare builder's failure).
PRESETS = {"gpt_oss": ("fp32",)}


def _version() -> str:
    version = builder_info().version
    if version not in EXPECTED:
        pytest.fail(f"builder {version} has no row in the matrix; run it and add one (and the README's table)")
    return version


def _source(checkpoints, case: str) -> Path:
    arch, overrides = CASES[case]
    return checkpoints(arch, num_layers=LAYERS.get(arch, 2), config_overrides=overrides)


def _plan(source: Path, output: Path, preset: str, ep: str = "cpu"):
    return plan_conversion(ConvertRequest(str(source), str(output), preset=preset, ep=ep), {"cpu"})


@pytest.mark.parametrize("case", sorted(CASES))
def test_architecture(case, checkpoints, tmp_path):
    version = _version()
    expected = EXPECTED[version][case]
    source = _source(checkpoints, case)
    claimed = ARCHITECTURES[CASES[case][0]].model_class.__name__ in builder_info().architectures
    if expected == REFUSED:
        with pytest.raises(ForgeError) as refusal:
            _plan(source, tmp_path / "fp32", "fp32")
        sentence = str(refusal.value)
        assert REFUSAL_WORDS[version][case] in sentence and "\n" not in sentence and "Traceback" not in sentence
        assert not (tmp_path / "fp32").exists()
        return
    assert claimed
    figures = {}
    for preset in PRESETS.get(case, ("fp32", "int4")):
        plan = _plan(source, tmp_path / preset, preset)
        result = run_conversion(plan, lambda message: None)
        manifest = result["manifest"]
        assert manifest["check"]["verdict"] == "ran", manifest["check"]
        assert manifest["check"]["new_tokens"] > 0
        assert bool(manifest["repairs"]) == (expected == REPAIRED), manifest["repairs"]
        assert plan.checkpoint.builder_repairs == manifest["repairs"]  # what inspect and the window announce
        figures[preset] = drift(tmp_path / preset, source, max_tokens=300)
    fp32 = figures["fp32"]
    int4 = (
        f"INT4 top-1 {figures['int4'].top1_agreement:.4f} KL {figures['int4'].mean_kl:.2e}" if "int4" in figures else ""
    )
    print(
        f"\nmatrix {version} {case}: {expected} {manifest['repairs']}; FP32 top-1 {fp32.top1_agreement:.4f} "
        f"KL {fp32.mean_kl:.2e}; {int4 or 'INT4 refused'}"
    )
    if "int4" not in figures:
        with pytest.raises(ForgeError, match="MXFP4"):
            _plan(source, tmp_path / "int4", "int4")
    assert fp32.top1_agreement >= MIN_TOP1, fp32
    assert fp32.same_tokenization, fp32.tokenization_note


def test_gemma4_builds_for_cuda_with_its_repair(checkpoints, tmp_path):
    """The CPU cannot run Gemma 4's experts, so its matrix row is a refusal there; the CUDA build is made and its
    tokenizer loaded (no GPU here to run it)."""
    version = _version()
    source = _source(checkpoints, "gemma4")
    if version == "0.14.1":
        with pytest.raises(ForgeError, match="needs onnxruntime-genai 0.18.0"):
            _plan(source, tmp_path / "int4", "int4", ep="cuda")
        return
    result = run_conversion(_plan(source, tmp_path / "int4", "int4", ep="cuda"), lambda message: None)
    assert result["manifest"]["repairs"] == [r.id for r in repairs_for(_config(source), version)]
    assert "gemma4-per-layer-head-dim" in result["manifest"]["repairs"]
    assert result["manifest"]["check"]["verdict"] == "tokenizer ok, not run"


def _config(source: Path) -> dict:
    from app.checkpoints import read_config

    return read_config(source)
