"""The newcomer's path from the README, through main.py and the worker child."""

from __future__ import annotations

import json
import re

import pytest

from app.presets import builder_key
from tests.conftest import run_main


def test_convert_the_demo_and_chat_with_it(tmp_path):
    out = tmp_path / "out"
    converted = run_main("convert", "demo", "-o", str(out), "--preset", "int4")
    assert converted.returncode == 0, converted.stderr + converted.stdout
    assert "Reading layer 0" in converted.stdout and "[100.0%] done" in converted.stdout
    manifest = json.loads((out / "forge.json").read_text())
    assert manifest["source"]["kind"] == "demo" and manifest["check"]["verdict"] == "ran"

    chat = run_main("chat", str(out), "--prompt", "Tom goes to the", "--json")
    assert chat.returncode == 0, chat.stderr
    reply = json.loads(chat.stdout)
    words = re.findall(r"[A-Za-z]+", reply["text"])
    assert len(words) >= 5
    # A trained story model answers in the corpus' own simple English, not in fragments of tokens.
    vocabulary = {w.lower() for w in re.findall(r"[A-Za-z]+", _heldout_text())}
    known = [w for w in words if w.lower() in vocabulary]
    assert len(known) / len(words) > 0.9, reply["text"]


def _heldout_text() -> str:
    from app.paths import resources_dir

    return (resources_dir() / "text" / "demo_heldout.txt").read_text()


def test_several_presets_build_one_folder_each_with_a_summary(tmp_path):
    out = tmp_path / "variants"
    result = run_main("convert", "demo", "-o", str(out), "--preset", "fp32,int4", "--preset", "uint4")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["fp32", "int4", "uint4"]
    for preset in ("fp32", "int4", "uint4"):
        assert json.loads((out / preset / "forge.json").read_text())["preset"] == preset
    assert "Conversions" in result.stdout and "uint4" in result.stdout
    sizes = {p: json.loads((out / p / "forge.json").read_text())["size_bytes"] for p in ("fp32", "int4")}
    assert sizes["int4"] < sizes["fp32"] / 2


def test_presets_and_hardware_commands_print_json():
    presets = json.loads(run_main("presets", "--json").stdout)
    assert [p["id"] for p in presets["presets"]][:3] == ["fp16", "fp32", "bf16"]
    assert presets["recommendations"]["by_family"]["gemma"] == ["bf16", "int4-bf16"]
    assert builder_key("block_size") in presets["builder"]["options"]  # int4_block_size up to 0.15
    hardware = json.loads(run_main("hardware", "--json").stdout)
    assert {p["name"] for p in hardware["providers"]} >= {"cpu", "dml", "cuda", "trt-rtx"}


def test_eval_reports_the_demo_models_perplexity_and_int4_costs_little(tmp_path):
    from app.evaluate import perplexity

    for preset in ("fp32", "int4"):
        assert (
            run_main("convert", "demo", "-o", str(tmp_path / preset), "--preset", preset, "--ep", "cpu").returncode == 0
        )
    fp32, int4 = perplexity(tmp_path / "fp32"), perplexity(tmp_path / "int4")
    assert fp32.tokens == int4.tokens > 5000
    assert 1.0 < fp32.perplexity < 2.0  # a trained model on text from its own generator
    assert int4.perplexity < fp32.perplexity * 1.05
    result = run_main("eval", str(tmp_path / "int4"), "--json")
    assert json.loads(result.stdout)["perplexity"] == pytest.approx(int4.perplexity)
    binary = run_main("eval", str(tmp_path / "int4"), "--text", str(tmp_path / "fp32" / "model.onnx"))
    assert binary.returncode == 2 and binary.stderr.startswith("error: ") and "not UTF-8 text" in binary.stderr


def test_bench_measures_speed_after_a_warm_up(tmp_path):
    assert run_main("convert", "demo", "-o", str(tmp_path / "m"), "--preset", "int4", "--ep", "cpu").returncode == 0
    result = run_main(
        "bench", str(tmp_path / "m"), "--prompt-tokens", "64", "--gen-tokens", "16", "--repeats", "2", "--json"
    )
    assert result.returncode == 0, result.stderr
    speed = json.loads(result.stdout)
    assert speed["generated_tokens"] == 16 and speed["repeats"] == 2
    assert speed["prompt_tokens_per_second"] > 0 and speed["generation_tokens_per_second"] > 0
    assert 0 < speed["time_to_first_token_seconds"] and speed["peak_memory_bytes"] > 0
    too_long = run_main("bench", str(tmp_path / "m"), "--prompt-tokens", "600")
    assert too_long.returncode == 2 and "exceed the model's context" in too_long.stderr
