"""The report card's engine: eval --against (drift from the PyTorch checkpoint), measure() and its cache in
forge.json, the recommend rule, and the bad inputs; on real FP32 and INT4 builds of the demo."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from app.convert import ConvertRequest, plan_conversion, run_conversion
from app.errors import InputError
from app.evaluate import MIN_SCORED_TOKENS, drift, perplexity
from app.jobs.history import convert_command, quantize_command
from app.paths import demo_checkpoint
from app.report import MeasureSettings, Row, cached, foreign_cache_path, measure, recommend, rows
from tests.conftest import ROOT, run_main

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


# --- the report engine ------------------------------------------------------------------------------------------------

QUICK = MeasureSettings(max_tokens=300, prompt_tokens=32, gen_tokens=8, repeats=1)


@pytest.fixture(scope="session")
def measured(demo_builds) -> dict[str, dict]:
    """Both demo builds measured once, in this process, drift included (the demo checkpoint is on disk)."""
    return {preset: measure(folder, QUICK) for preset, folder in demo_builds.items()}


@pytest.fixture(autouse=True)
def forge_home(tmp_path, monkeypatch):
    """Each test its own data folder: the library and the cache of foreign folders."""
    monkeypatch.setenv("FORGE_HOME", str(tmp_path / "forge-home"))
    return tmp_path / "forge-home"


def test_measure_caches_the_figures_in_forge_json(demo_builds, measured):
    record = json.loads((demo_builds["int4"] / "forge.json").read_text())
    figures = record["report"]
    assert figures == json.loads(json.dumps(measured["int4"]))
    assert figures["perplexity"]["tokens"] >= 300 and 1 < figures["perplexity"]["perplexity"] < 2
    assert figures["speed"]["generation_tokens_per_second"] > 0 and figures["speed"]["peak_memory_bytes"] > 0
    assert figures["drift"]["source"] == str(demo_checkpoint()) and figures["drift"]["mean_kl"] > 0
    assert figures["perplexity"]["perplexity"] == figures["drift"]["onnx_perplexity"]
    assert figures["text"].endswith("demo_heldout.txt") and len(figures["text_sha256"]) == 64
    assert "onnxruntime-genai" in figures["versions"] and figures["measured"]
    assert set(figures["files"]) == {item["path"] for item in record["files"]}
    assert all(figures["files"][item["path"]]["sha256"] == item["sha256"] for item in record["files"])


def test_rows_gather_the_variants_and_the_source_without_measuring(demo_builds, measured):
    table = rows(demo_builds["fp32"])
    assert [(row.name, row.kind) for row in table] == [("fp32", "onnx"), ("int4", "onnx"), ("demo", "checkpoint")]
    fp32, int4, source = table
    assert fp32.label == "fp32 (cpu)" and int4.label == "int4 (cpu)"
    assert int4.size_bytes < fp32.size_bytes / 2
    assert int4.perplexity == measured["int4"]["perplexity"]["perplexity"]
    assert fp32.top1_agreement >= 0.99 and int4.mean_kl > fp32.mean_kl
    assert source.perplexity == pytest.approx(measured["fp32"]["drift"]["torch_perplexity"])
    assert source.generation_tps is None
    assert [row.name for row in rows(demo_builds["int4"])] == ["int4", "fp32", "demo"]


def test_a_changed_model_file_invalidates_the_cache(demo_builds, measured, copy_of):
    folder = copy_of(demo_builds["int4"])
    assert cached(folder)[0] is not None  # a copy keeps the figures: same files, same sha256
    os.utime(folder / "genai_config.json")  # a new mtime alone: the sha256 is read again and still matches
    assert cached(folder)[0] is not None
    data = folder / "model.onnx.data"
    data.write_bytes(data.read_bytes()[:-4] + b"\0\0\0\1")
    figures, stale = cached(folder)
    assert figures is None and stale
    row = rows(folder, candidates=[])[0]
    assert not row.measured and row.stale and "changed" in row.notes[0]


def test_a_folder_we_did_not_make_is_cached_under_the_data_folder(demo_builds, copy_of, forge_home):
    folder = copy_of(demo_builds["int4"])
    (folder / "forge.json").unlink()
    figures = measure(folder, QUICK)
    assert not (folder / "forge.json").exists()
    assert foreign_cache_path(folder).is_relative_to(forge_home) and foreign_cache_path(folder).is_file()
    assert figures["drift"] is None  # no forge.json, so no known source
    (row,) = rows(folder)
    assert row.label == "GenAI model" and row.perplexity == figures["perplexity"]["perplexity"]


def _row(name: str, size: int, ppl: float | None, tps: float | None, spread: float = 0.01) -> Row:
    """A measured variant whose five speed runs lie within +-spread of its median."""
    figures = None
    if ppl is not None:
        runs = [tps * (1 + spread * step) for step in (-1, -0.5, 0, 0.5, 1)] if tps else []
        speed = {"generation_tokens_per_second": tps, "generation_tokens_per_second_runs": runs}
        figures = {"perplexity": {"perplexity": ppl}, "speed": speed}
    return Row(f"/m/{name}", name, "onnx", name, size, figures)


def test_recommend_takes_the_smallest_of_the_good_and_fast_ones():
    fp32, fp16 = _row("fp32", 400, 1.400, 100.0), _row("fp16", 200, 1.401, 97.0)
    int4, bad = _row("int4", 100, 1.420, 60.0), _row("int2", 50, 1.60, 300.0)
    assert recommend([fp32, fp16, bad])[0] is fp16  # within 2 % and within 5 % of the fastest: the smaller one
    assert recommend([fp32, fp16, int4, bad])[0] is fp16  # int4 is as good but much slower
    choice, reason = recommend([fp32, fp16, _row("int4", 100, 1.420, 200.0), bad])
    assert choice.name == "int4" and "within 2 % of the best (1.400)" in reason and "no other" in reason
    assert recommend([bad, _row("new", 10, None, None)])[0] is bad
    assert recommend([_row("new", 10, None, None)]) is None


def test_recommend_never_ranks_on_a_speed_difference_inside_the_noise():
    fp32 = _row("fp32", 400, 1.4248, 3700.0, spread=0.5)  # a busy machine: runs from 1,850 to 5,550 tok/s
    int4 = _row("int4", 116, 1.4263, 1075.0, spread=1.0)  # ... and from 0 to 2,150
    choice, reason = recommend([fp32, int4])
    assert choice is int4 and "cannot be told from the fastest (3,700)" in reason
    quiet = _row("int4", 116, 1.4263, 1075.0)  # a quiet machine: its runs never reach fp32's slowest, a real gap
    assert recommend([fp32, quiet])[0] is fp32
    once = Row(
        "/m/once",
        "once",
        "onnx",
        "int4",
        116,
        {
            "perplexity": {"perplexity": 1.4263},
            "speed": {"generation_tokens_per_second": 1075.0, "generation_tokens_per_second_runs": [1075.0]},
        },
    )
    choice, reason = recommend([_row("fp32", 400, 1.4248, 3700.0), once])
    assert choice is once and "timed too few times" in reason  # one sample ranks nothing
    assert once.generation_spread is None and int4.generation_spread == pytest.approx((0.0, 2150.0))


def test_report_command_prints_the_table_and_the_pick(demo_builds, measured):
    result = run_main("report", str(demo_builds["fp32"]), "--no-measure", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [row["name"] for row in data["rows"]] == ["fp32", "int4", "demo"]
    assert data["recommended"] in {str(demo_builds["fp32"]), str(demo_builds["int4"])} and data["reason"]
    plain = run_main("report", str(demo_builds["int4"]), "--no-measure")
    assert "Report card" in plain.stdout and "recommended: " in plain.stdout
    refused = run_main("report", str(demo_checkpoint()))
    assert refused.returncode == 2
    assert "has no genai_config.json, so it is not an ONNX Runtime GenAI model folder" in refused.stderr


def test_report_command_measures_what_is_not_cached_in_worker_children(demo_builds, copy_of):
    folder = copy_of(demo_builds["int4"])
    record = json.loads((folder / "forge.json").read_text())
    record.pop("report", None)
    (folder / "forge.json").write_text(json.dumps(record))
    result = run_main("report", str(folder), "--max-tokens", "200", "--repeats", "1", "--no-drift", "--json")
    assert result.returncode == 0, result.stderr
    (row, source) = json.loads(result.stdout)["rows"]
    assert row["perplexity"] > 1 and row["generation_tokens_per_second"] > 0 and row["top1_agreement"] is None
    assert source["kind"] == "checkpoint" and "measuring" in result.stderr
    assert json.loads((folder / "forge.json").read_text())["report"]["settings"]["max_tokens"] == 200


def test_a_conversion_asked_to_report_fills_its_report_card(tmp_path):
    request = ConvertRequest("demo", str(tmp_path / "int4"), preset="int4", ep="cpu", check=False)
    request.report = {"max_tokens": 200, "repeats": 1, "prompt_tokens": 32, "gen_tokens": 8, "against_source": False}
    messages = []
    plan = plan_conversion(request, usable_eps={"cpu"})
    result = run_conversion(plan, messages.append)
    assert result["report"]["perplexity"] > 1 and result["report"]["speed"]["repeats"] == 1
    (row, _source) = rows(tmp_path / "int4", candidates=[])
    assert row.measured and row.perplexity == result["report"]["perplexity"]
    assert any(getattr(message, "stage", "") == "measuring" for message in messages)
    assert "--report" in convert_command(plan.to_dict())


def test_the_report_engine_imports_nothing_heavy_until_it_measures():
    import subprocess
    import sys

    code = (
        "import sys, app.report, app.evaluate\n"
        "print([name for name in ('torch', 'onnxruntime', 'onnxruntime_genai', 'transformers') if name in sys.modules])"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert found.stdout.strip() == "[]", found.stderr


def test_a_quantization_asked_to_report_fills_its_report_card(demo_builds, tmp_path):
    from app.quantize import QuantizeRequest, run_quantization

    request = QuantizeRequest(str(demo_builds["fp32"]), str(tmp_path / "q4"), "q4", evaluate=False)
    request.report = {"max_tokens": 200, "repeats": 1, "prompt_tokens": 32, "gen_tokens": 8}
    result = run_quantization(request.to_dict(), lambda message: None)
    assert result["report"]["perplexity"] > 1 and result["report"]["drift"]["source"] == str(demo_checkpoint())
    (row, source) = rows(tmp_path / "q4", candidates=[])
    assert row.label == "q4" and row.measured and source.kind == "checkpoint"
    assert "--report" in quantize_command(request.to_dict())
