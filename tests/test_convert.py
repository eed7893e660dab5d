"""Real conversions of tiny real checkpoints, through the engine and through the worker child."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.builder_info import builder_info
from app.chat import generate_once, model_provider
from app.convert import ConvertRequest, plan_conversion, run_conversion
from app.jobs.protocol import Progress
from app.presets import PRESETS, valid_eps

ARCHITECTURES = ["llama", "mistral", "qwen2", "qwen3", "phi3", "gemma", "gemma2", "smollm3"]


def convert(source: Path, out: Path, preset: str, ep: str = "cpu", **request) -> tuple[dict, list]:
    messages: list = []
    plan = plan_conversion(ConvertRequest(str(source), str(out), preset=preset, ep=ep, **request), usable_eps={"cpu"})
    return run_conversion(plan, messages.append), messages


@pytest.mark.parametrize("preset", ["fp32", "int4"])
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_architecture_converts_and_generates_on_cpu(arch, preset, checkpoints, tmp_path):
    out = tmp_path / "out"
    result, _ = convert(checkpoints(arch), out, preset)
    manifest = result["manifest"]
    assert manifest["check"]["verdict"] == "ran"
    config = json.loads((checkpoints(arch) / "config.json").read_text())
    assert manifest["checkpoint"]["architecture"] == config["architectures"][0]
    assert builder_info().supports_architecture(config["architectures"][0])
    reply = generate_once(out, "Hello there", max_new_tokens=6)
    assert reply.new_tokens == 6
    assert not list(tmp_path.glob(".forge-staging-*"))


BUILDS = [(preset.id, ep) for preset in PRESETS.values() if preset.id != "custom" for ep in valid_eps(preset)]


@pytest.mark.parametrize(("preset", "ep"), BUILDS, ids=[f"{p}-{e}" for p, e in BUILDS])
def test_every_preset_builds_for_every_provider_it_is_valid_for(preset, ep, checkpoints, tmp_path):
    out = tmp_path / "out"
    result, _ = convert(checkpoints("llama"), out, preset, ep)
    assert model_provider(out) == ep
    check = result["manifest"]["check"]
    assert check["verdict"] == ("ran" if ep == "cpu" else "tokenizer ok, not run"), check
    expected_loader = "transformers" if preset == "bf16" else "onnxruntime-genai"  # no BF16 MatMul on the CPU
    assert check["tokenizer"].startswith(expected_loader)
    options = result["manifest"]["options"]
    assert options["extra_options"] == PRESETS[preset].options
    if preset == "int4":
        assert "int4_accuracy_level" not in options["extra_options"]


def test_custom_options_reach_the_built_model(checkpoints, tmp_path):
    import onnx

    out = tmp_path / "out"
    convert(
        checkpoints("llama"),
        out,
        "custom",
        "cpu",
        overrides={"precision": "int4", "int4_block_size": "16", "int4_accuracy_level": "1"},
    )
    model = onnx.load(out / "model.onnx", load_external_data=False)
    matmuls = [node for node in model.graph.node if node.op_type == "MatMulNBits"]
    assert matmuls
    for node in matmuls:
        attributes = {attribute.name: attribute.i for attribute in node.attribute}
        assert attributes["block_size"] == 16 and attributes["accuracy_level"] == 1


def test_manifest_records_source_options_versions_and_every_file(checkpoints, tmp_path):
    from app.manifest import sha256

    out = tmp_path / "out"
    convert(checkpoints("qwen3"), out, "int4")
    manifest = json.loads((out / "forge.json").read_text())
    assert manifest["source"]["kind"] == "folder"
    assert manifest["options"]["precision"] == "int4"
    assert {"onnxruntime-genai", "onnxruntime", "torch", "transformers"} <= set(manifest["versions"])
    assert manifest["wall_seconds"] > 0 and manifest["peak_memory_bytes"] > 0
    files = {record["path"]: record for record in manifest["files"]}
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != "forge.json"}
    assert set(files) == on_disk
    assert {"model.onnx", "model.onnx.data", "genai_config.json", "tokenizer.json"} <= on_disk
    for name, record in files.items():
        assert record["size"] == (out / name).stat().st_size and record["sha256"] == sha256(out / name)


def test_progress_moves_forward_through_every_layer(checkpoints, tmp_path):
    _, messages = convert(checkpoints("llama", num_layers=6), tmp_path / "out", "int4")
    progress = [m for m in messages if isinstance(m, Progress)]
    percents = [m.percent for m in progress]
    assert percents == sorted(percents) and percents[-1] == 100
    layer_steps = {m.detail for m in progress if m.stage == "layers" and m.detail.startswith("layer ")}
    assert layer_steps >= {f"layer {n} of 6" for n in range(1, 7)}
    assert any(m.stage == "quantizing" for m in progress) and any(m.stage == "saving" for m in progress)
    # No stretch of the bar jumps more than a fifth of the way at once.
    assert max(b - a for a, b in zip(percents, percents[1:], strict=False)) <= 20


def test_overwrite_replaces_the_output_only_when_the_build_succeeds(checkpoints, copy_of, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "genai_config.json").write_text("{}")  # an earlier build, which --overwrite may replace
    (out / "model.onnx").write_text("previous build")
    broken = copy_of(checkpoints("llama"))
    config = json.loads((broken / "config.json").read_text())
    config["hidden_size"] *= 2  # the weights no longer fit the config: the builder fails while loading them
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(Exception):  # noqa: B017 - whatever the builder raises, the output must survive
        convert(broken, out, "int4", overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["genai_config.json", "model.onnx"]
    assert not list(tmp_path.glob(".forge-staging-*"))
    convert(checkpoints("llama"), out, "int4", overwrite=True)
    assert (out / "model.onnx").read_bytes() != b"previous build" and (out / "forge.json").is_file()
