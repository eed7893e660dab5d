"""The builder defects app.builder_defects steers around, reproduced with the builder itself.

When a newer builder fixes one of these, its reproduction here fails: then the entry comes out.
"""

from __future__ import annotations

import pytest

from app.builder_info import builder_info
from app.convert import ConvertRequest, build_model, dangling_outputs, plan_conversion
from app.errors import CheckpointError, PresetError
from app.presets import BuildOptions, get_preset, resolve, valid_eps


def test_fp32_cuda_is_refused_because_the_builder_writes_a_broken_graph(checkpoints, tmp_path):
    with pytest.raises(PresetError, match="fp16 or bf16 for CUDA"):
        resolve("fp32", "cuda")
    assert valid_eps(get_preset("fp32")) == ["cpu"]
    build_model(checkpoints("llama"), tmp_path / "out", tmp_path / "cache", BuildOptions("fp32", "fp32", "cuda"), False)
    assert dangling_outputs(tmp_path / "out" / "model.onnx")[:1] == ["present.0.key"]


def test_smollm3_with_layers_without_rope_is_refused_because_the_builder_crashes(checkpoints, tmp_path):
    source = checkpoints("smollm3", num_layers=4)  # transformers skips RoPE on every fourth layer
    with pytest.raises(CheckpointError, match="skip RoPE"):
        plan_conversion(ConvertRequest(str(source), str(tmp_path / "out"), preset="fp32", ep="cpu"), {"cpu"})
    with pytest.raises(KeyError, match="position_ids"):
        build_model(source, tmp_path / "raw", tmp_path / "cache", BuildOptions("fp32", "fp32", "cpu"), False)


def test_gemma2_conversions_warn_about_the_sliding_window(checkpoints, tmp_path):
    plan = plan_conversion(ConvertRequest(str(checkpoints("gemma2")), str(tmp_path / "out"), preset="int4"), {"cpu"})
    assert any("sliding window" in warning for warning in plan.warnings)
    assert builder_info().version.startswith("0.14.")
