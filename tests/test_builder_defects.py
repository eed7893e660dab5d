"""The builder defects app.builder_defects steers around, reproduced with the builder itself.

When a newer builder fixes one of these, its reproduction here fails: then the entry comes out. Defects the
studio repairs (SmolLM3's layers without RoPE among them) are reproduced in tests/test_repairs.py.
"""

from __future__ import annotations

import pytest

from app.builder_info import builder_info
from app.convert import ConvertRequest, dangling_outputs, plan_conversion
from app.errors import InputError, PresetError
from app.presets import BuildOptions, get_preset, resolve, valid_eps
from app.repairs import call_builder


def test_fp32_cuda_is_refused_because_the_builder_writes_a_broken_graph(checkpoints, tmp_path):
    with pytest.raises(PresetError, match="fp16 or bf16 for CUDA"):
        resolve("fp32", "cuda")
    assert valid_eps(get_preset("fp32")) == ["cpu"]
    call_builder(
        checkpoints("llama"), tmp_path / "out", tmp_path / "cache", BuildOptions("fp32", "fp32", "cuda"), False
    )
    assert dangling_outputs(tmp_path / "out" / "model.onnx")[:1] == ["present.0.key"]


def test_gemma2_conversions_warn_about_the_sliding_window_on_0_14_only(checkpoints, tmp_path):
    # 0.18 slides the window on the even layers, as transformers does (tests/test_checkpoint_factory.py proves it).
    plan = plan_conversion(ConvertRequest(str(checkpoints("gemma2")), str(tmp_path / "out"), preset="int4"), {"cpu"})
    warned = any("sliding window" in warning for warning in plan.warnings)
    assert warned == builder_info().version.startswith("0.14.")


def test_int4_gpt_oss_is_refused_unless_its_experts_are_the_original_mxfp4(checkpoints, tmp_path):
    if builder_info().version.startswith("0.14."):
        pytest.skip("gpt-oss is refused as a whole on 0.14.1 (tests/test_architecture_matrix.py)")
    source = checkpoints("gpt_oss")  # dequantized experts, as in the BF16 re-uploads
    with pytest.raises(InputError, match="only from the MXFP4 experts"):
        plan_conversion(ConvertRequest(str(source), str(tmp_path / "out"), preset="int4", ep="cpu"), {"cpu"})
    with pytest.raises(RuntimeError, match="MXFP4 tensor"):
        call_builder(source, tmp_path / "raw", tmp_path / "cache", resolve("int4", "cpu"), False)
