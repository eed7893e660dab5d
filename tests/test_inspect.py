from __future__ import annotations

import json

from app.checkpoints import estimate_parameters, inspect_checkpoint
from tests.conftest import run_main


def test_inspect_reads_a_checkpoint_without_loading_it(checkpoints):
    import torch  # the test may load weights to count them; the engine does not
    from safetensors.torch import load_file

    folder = checkpoints("qwen3")
    info = inspect_checkpoint(folder)
    weights = load_file(folder / "model.safetensors")
    assert info.parameters == sum(tensor.numel() for tensor in weights.values())
    assert info.parameters_source == "safetensors"
    assert (info.architecture, info.family, info.dtype) == ("Qwen3ForCausalLM", "qwen3", "float32")
    assert info.tokenizer and info.chat_template and info.builder_supported
    assert info.quantization is None and info.problems == []
    assert info.size_bytes == sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert torch  # imported above on purpose


def test_the_config_estimate_is_close_to_the_real_count(checkpoints):
    for arch in ("llama", "qwen2", "mistral"):
        folder = checkpoints(arch)
        config = json.loads((folder / "config.json").read_text())
        real = inspect_checkpoint(folder).parameters
        assert abs(estimate_parameters(config) - real) / real < 0.05


def test_pre_quantized_checkpoints_and_remote_code_are_reported(checkpoints, copy_of):
    folder = copy_of(checkpoints("llama"))
    config = json.loads((folder / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "awq", "bits": 4}
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_custom.CustomForCausalLM"}
    (folder / "config.json").write_text(json.dumps(config))
    info = inspect_checkpoint(folder)
    assert info.quantization == "awq" and info.needs_remote_code


def test_inspect_command_prints_json(checkpoints):
    result = run_main("inspect", str(checkpoints("gemma2")), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["family"] == "gemma2" and data["builder_supported"] is True
