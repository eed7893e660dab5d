"""The report card's engine: eval --against (drift from the PyTorch checkpoint), measure() and its cache in
forge.json, the recommend rule, and the bad inputs; on real FP32 and INT4 builds of the demo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.convert import ConvertRequest, plan_conversion, run_conversion
from app.errors import InputError
from app.evaluate import MIN_SCORED_TOKENS, drift, perplexity
from app.paths import demo_checkpoint
from tests.conftest import run_main

# Enough tokens for tight figures, few enough to keep each test to seconds.
TOKENS = 1500


@pytest.fixture(scope="session")
def demo_builds(tmp_path_factory) -> dict[str, Path]:
    """The demo converted once at FP32 and INT4 (CPU), side by side in one folder like a batch conversion does."""
    root = tmp_path_factory.mktemp("report-demo")
    builds = {}
    for preset in ("fp32", "int4"):
        request = ConvertRequest("demo", str(root / preset), preset=preset, ep="cpu", check=False)
        run_conversion(plan_conversion(request, usable_eps={"cpu"}), lambda message: None)
        builds[preset] = root / preset
    return builds


def test_fp32_build_matches_pytorch_and_int4_drifts_more(demo_builds):
    fp32 = drift(demo_builds["fp32"], demo_checkpoint(), max_tokens=TOKENS)
    int4 = drift(demo_builds["int4"], demo_checkpoint(), max_tokens=TOKENS)
    assert fp32.tokens == int4.tokens >= TOKENS
    assert fp32.top1_agreement >= 0.99 and fp32.mean_kl < 1e-3
    assert fp32.onnx_perplexity == pytest.approx(fp32.torch_perplexity, rel=1e-4)
    assert int4.mean_kl > fp32.mean_kl * 100  # INT4 changes the distributions; FP32 only rounds differently
    assert int4.top1_agreement < 1.0
    assert int4.torch_perplexity == pytest.approx(fp32.torch_perplexity)  # the same tokens went to PyTorch
    assert fp32.same_tokenization and "same ids" in fp32.tokenization_note
    assert fp32.onnx_perplexity == pytest.approx(perplexity(demo_builds["fp32"], max_tokens=TOKENS).perplexity)


def test_eval_against_through_the_cli(demo_builds):
    result = run_main("eval", str(demo_builds["int4"]), "--against", "demo", "--max-tokens", "300", "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert 0.8 < figures["top1_agreement"] < 1.0 and 0 < figures["mean_kl"] < 0.1
    assert figures["source"] == str(demo_checkpoint())
    plain = run_main("eval", str(demo_builds["int4"]), "--against", "demo", "--max-tokens", "300")
    assert "top-1 agreement" in plain.stdout and "mean KL" in plain.stdout


def test_against_a_folder_that_is_not_a_checkpoint_is_refused(demo_builds, tmp_path):
    result = run_main("eval", str(demo_builds["int4"]), "--against", str(demo_builds["fp32"]))
    assert result.returncode == 2 and result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
    assert "config.json" in result.stderr


def test_against_a_checkpoint_with_another_vocabulary_is_refused(demo_builds, checkpoints):
    other = checkpoints("llama", config_overrides={"vocab_size": 2048})
    with pytest.raises(InputError, match="vocabulary of 2048 tokens .* of 1024"):
        drift(demo_builds["int4"], other)


def test_a_text_shorter_than_one_window_is_refused(demo_builds, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("Tom goes to the park.\n", encoding="utf-8")
    with pytest.raises(InputError, match=f"fewer than the {MIN_SCORED_TOKENS} a perplexity needs"):
        perplexity(demo_builds["fp32"], short)
    result = run_main("eval", str(demo_builds["fp32"]), "--text", str(short), "--against", "demo")
    assert result.returncode == 2 and "give a longer text" in result.stderr
    enough = tmp_path / "enough.txt"
    enough.write_text("Tom goes to the park. He sees a big dog. The dog is happy. Tom pets the dog.\n" * 2)
    assert perplexity(demo_builds["fp32"], enough).tokens >= MIN_SCORED_TOKENS
