"""NVIDIA ModelOpt INT4 on the demo's FP32 GenAI folder, for real: each algorithm end to end through
run_quantization, mixed INT4+INT8, and the refusals (bad calibration text, block size, quantized input, a
calibration provider this machine lacks, a Hub dataset offline)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from app.errors import InputError
from app.jobs.protocol import Progress
from app.quantize import QuantizeRequest, check_input, modelopt, options_for, parse_options, run_quantization
from app.quantize import calibration as calib
from tests.conftest import run_main

# Small calibration keeps the suite fast on 2 cores; equal sample lengths are what AWQ needs.
QUICK = {"calib_size": "8", "calib_seq_len": "64"}
# AWQ must not lose to RTN by more than noise: the demo's INT4 perplexities differ in the fourth digit.
NOISE = 0.01


@pytest.fixture(scope="session")
def demo_fp32(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("modelopt") / "demo-fp32"
    result = run_main("convert", "demo", "-o", str(out), "--preset", "fp32", "--ep", "cpu")
    assert result.returncode == 0, result.stderr + result.stdout
    return out


@pytest.fixture(scope="session")
def quantized(demo_fp32, tmp_path_factory):
    """quantized(algo, **overrides) -> (output folder, run_quantization result, messages), once per arguments."""
    made: dict[str, tuple[Path, dict, list]] = {}

    def make(algo: str, **overrides: str) -> tuple[Path, dict, list]:
        key = json.dumps([algo, overrides], sort_keys=True)
        if key not in made:
            out = tmp_path_factory.mktemp("quantized") / algo
            messages: list = []
            request = QuantizeRequest(str(demo_fp32), str(out), algo, overrides)
            made[key] = out, run_quantization(request.to_dict(), messages.append), messages
        return made[key]

    return make


def _story_words(text: str) -> list[str]:
    from app.paths import resources_dir

    vocabulary = set(re.findall(r"[a-z]+", (resources_dir() / "text" / "demo_heldout.txt").read_text().lower()))
    words = re.findall(r"[A-Za-z]+", text)
    assert len(words) >= 5, text
    assert sum(w.lower() in vocabulary for w in words) / len(words) > 0.9, text
    return words


def _assert_runs_and_is_recorded(out: Path, result: dict, messages: list) -> dict:
    from app.chat import generate_once

    _story_words(generate_once(out, "Tom goes to the", max_new_tokens=10).text)
    record = json.loads((out / "forge.json").read_text())
    quality = record["quality"]
    assert quality["perplexity"] > 1 and quality["input_perplexity"] > 1 and "perplexity" in quality["verdict"]
    assert {"model.onnx", "model.onnx.data", "genai_config.json", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    percents = [m.percent for m in messages if isinstance(m, Progress)]
    assert percents == sorted(percents) and percents[0] == 5 and 95 in percents
    stages = {m.stage for m in messages if isinstance(m, Progress) and m.percent <= 95}
    assert {"quantizing", "saving"} <= stages
    return record["details"]


def test_options_cover_the_guides_table_and_apply_to_their_algorithms():
    names = {option.name for option in modelopt.OPTIONS}
    assert {
        "calib_size", "calibration_data", "block_size", "use_zero_point", "calibration_eps", "add_position_ids",
        "awqlite_alpha_step", "awqlite_run_per_subgraph", "awqlite_fuse_nodes", "awqclip_alpha_step",
        "awqclip_alpha_min", "awqclip_bsz_col", "enable_mixed_quant", "layers_8bit", "gather_quantize_axis",
        "gather_block_size", "use_column_major",
    } <= names  # fmt: skip
    rtn = {option.name for option in options_for("rtn")}
    assert "calib_size" not in rtn and "use_column_major" not in rtn and "block_size" in rtn
    assert "awqclip_alpha_min" in {option.name for option in options_for("awq_clip")}
    assert "layers_8bit" not in {option.name for option in options_for("awq_clip")}
    values = parse_options("awq_lite", {"layers_8bit": "layers.0, down_proj", "block_size": "64"})
    assert values["layers_8bit"] == ["layers.0", "down_proj"] and values["block_size"] == 64
    with pytest.raises(InputError, match="block_size takes one of 32, 64, 128"):
        parse_options("rtn_dq", {"block_size": "48"})


def test_rtn_dq_makes_a_small_model_that_generates(quantized):
    out, result, messages = quantized("rtn_dq")
    details = _assert_runs_and_is_recorded(out, result, messages)
    assert details["weights"] == {"int4": 20}  # every decoder MatMul; lm_head stays FP32
    assert result["manifest"]["quality"]["size_ratio"] < 0.45
    assert "calibration" not in details


def test_awq_lite_calibrates_on_equal_samples_without_cuda(quantized):
    out, result, messages = quantized("awq_lite", **QUICK)
    details = _assert_runs_and_is_recorded(out, result, messages)
    calibration = details["calibration"]
    assert calibration["samples"] == 8 and calibration["tokens_per_sample"] == 64
    assert calibration["eps"] == ["cpu"] and calibration["inputs"][:2] == ["input_ids", "attention_mask"]
    assert details["modelopt_arguments"]["awqlite_fuse_nodes"] is False  # fusing crashes without CuPy/CUDA
    assert any(m.stage == "calibrating" and "AWQ scale search" in m.detail for m in messages if hasattr(m, "stage"))


def test_awq_clip_runs(quantized):
    out, result, messages = quantized("awq_clip", **QUICK)
    details = _assert_runs_and_is_recorded(out, result, messages)
    assert details["weights"] == {"int4": 20}


def test_mixed_int4_int8_by_layer_index_and_partial_name(quantized):
    out, result, messages = quantized("awq_lite", layers_8bit="layers.0,down_proj", **QUICK)
    details = _assert_runs_and_is_recorded(out, result, messages)
    # layers.0: qkv, o, gate, up, down; down_proj of layers 1-3: 8 INT8 weights, the other 12 INT4.
    assert details["weights"] == {"int8": 8, "int4": 12}
    assert details["modelopt_arguments"]["enable_mixed_quant"] is True


def test_plain_rtn_runs_here_and_says_it_is_for_tensorrt(quantized):
    out, result, messages = quantized("rtn")
    details = _assert_runs_and_is_recorded(out, result, messages)
    assert "TensorRT" in details["note"]
    assert result["manifest"]["quality"]["size_ratio"] > 0.95  # Q/DQ keeps the full-precision weights


def test_awq_is_not_worse_than_rtn_by_more_than_noise(quantized):
    def ppl(algo: str, **overrides: str) -> float:
        return quantized(algo, **overrides)[1]["manifest"]["quality"]["perplexity"]

    rtn = ppl("rtn_dq")
    assert ppl("awq_lite", **QUICK) <= rtn * (1 + NOISE)
    assert ppl("awq_clip", **QUICK) <= rtn * (1 + NOISE)


def test_our_logging_is_restored_and_stdout_stays_clean(demo_fp32, tmp_path, capfd):
    root = logging.getLogger()
    before = (root.level, list(root.handlers))
    request = QuantizeRequest(str(demo_fp32), str(tmp_path / "out"), "rtn_dq", evaluate=False)
    run_quantization(request.to_dict(), lambda message: None)
    assert (root.level, list(root.handlers)) == before
    assert not logging.getLogger("modelopt.onnx").handlers
    assert capfd.readouterr().out == ""  # the worker's stdout carries the job protocol only


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


@pytest.mark.parametrize(
    ("content", "sentence"),
    [(b"", "is empty"), (b"  \n\n ", "is empty"), (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 40, "not a text file")],
)
def test_a_bad_calibration_file_is_refused_and_the_input_untouched(demo_fp32, tmp_path, content, sentence):
    text = tmp_path / "calibration.txt"
    text.write_bytes(content)
    before = _snapshot(demo_fp32)
    out = tmp_path / "out"
    request = QuantizeRequest(str(demo_fp32), str(out), "awq_lite", {"calibration_data": str(text), **QUICK})
    with pytest.raises(InputError, match=sentence):
        run_quantization(request.to_dict(), lambda message: None)
    assert _snapshot(demo_fp32) == before and not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".forge")]


def test_a_user_text_file_calibrates(quantized, tmp_path_factory):
    text = tmp_path_factory.mktemp("text") / "mine.txt"
    text.write_text("Mia goes to the shop. She buys a red apple. The apple is sweet.\n" * 30, encoding="utf-8")
    out, result, messages = quantized("awq_lite", calibration_data=str(text), calib_size="4", calib_seq_len="32")
    details = _assert_runs_and_is_recorded(out, result, messages)
    assert details["calibration"]["source"] == str(text)


def test_block_size_larger_than_the_hidden_size_is_refused(checkpoints, tmp_path):
    out = tmp_path / "small-fp32"
    converted = run_main("convert", str(checkpoints("llama")), "-o", str(out), "--preset", "fp32", "--ep", "cpu")
    assert converted.returncode == 0, converted.stderr
    options = parse_options("rtn_dq", {"block_size": "128"})
    with pytest.raises(InputError, match="block_size 128 is larger than the model's hidden size 64; .* at most 64"):
        modelopt.check(out, "rtn_dq", options)
    request = QuantizeRequest(str(out), str(tmp_path / "q"), "rtn_dq", {"block_size": "128"})
    with pytest.raises(InputError, match="hidden size 64"):
        run_quantization(request.to_dict(), lambda message: None)
    assert not (tmp_path / "q").exists()


def test_an_already_quantized_input_is_refused(quantized):
    out, _, _ = quantized("rtn_dq")
    with pytest.raises(InputError, match="already quantized"):
        check_input("awq_lite", out)


def test_a_calibration_provider_this_machine_lacks_is_refused_with_a_cpu_estimate(demo_fp32, tmp_path):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    request = QuantizeRequest(str(demo_fp32), str(tmp_path / "out"), "awq_lite", {"calibration_eps": "cuda", **QUICK})
    with pytest.raises(InputError) as refused:
        run_quantization(request.to_dict(), lambda message: None)
    sentence = str(refused.value)
    assert sentence.startswith("calibration cannot run on cuda: this onnxruntime package has no CUDAExecutionProvider")
    assert re.search(r"on the CPU it would take about \d+ (s|minutes)", sentence) and "calibration_eps=cpu" in sentence


def test_hub_datasets_offline_and_mismatched_position_ids_are_refused_before_running(demo_fp32):
    options = parse_options("awq_lite", {"calibration_data": "cnn_dailymail"})
    with pytest.raises(InputError, match="cannot be reached|needs the datasets package"):
        modelopt.check(demo_fp32, "awq_lite", options)
    options = parse_options("awq_lite", {"add_position_ids": "true"})
    with pytest.raises(InputError, match="has no position_ids input"):
        modelopt.check(demo_fp32, "awq_lite", options)
    with pytest.raises(InputError, match="matches no quantized MatMul"):
        modelopt.check(demo_fp32, "awq_lite", parse_options("awq_lite", {"layers_8bit": "layers.9"}))


def test_calibration_inputs_come_from_the_graph(demo_fp32, tmp_path):
    import onnx

    config = json.loads((demo_fp32 / "genai_config.json").read_text())
    graph = onnx.load(str(demo_fp32 / "model.onnx"), load_external_data=False).graph
    inputs = calib.read_model_inputs(graph, config)
    assert inputs.position_ids is None and len(inputs.past) == 8
    assert {(p.dtype, p.heads, p.head_size) for p in inputs.past} == {("float32", 2, 32)}
    feeds = inputs.feeds([1, 5, 6, 7])
    assert feeds["input_ids"].shape == (1, 4) and feeds["past_key_values.3.value"].shape == (1, 2, 0, 32)

    dml = tmp_path / "fp16-dml"  # DirectML builds take position_ids and keep an FP16 cache
    assert run_main("convert", "demo", "-o", str(dml), "--preset", "fp16", "--ep", "dml").returncode == 0
    graph = onnx.load(str(dml / "model.onnx"), load_external_data=False).graph
    inputs = calib.read_model_inputs(graph, json.loads((dml / "genai_config.json").read_text()))
    assert inputs.position_ids == "position_ids" and inputs.past[0].dtype == "float16"
    assert inputs.feeds([1, 5, 6])["position_ids"].tolist() == [[0, 1, 2]]


def test_samples_have_equal_length_and_short_texts_are_refused():
    def encode(text: str) -> list[int]:
        return [len(word) for word in text.split()]

    samples = calib.make_samples("a bb ccc " * 100, encode, count=5, length=16, bos=1)
    assert {len(tokens) for tokens in samples.tokens} == {16} and all(t[0] == 1 for t in samples.tokens)
    assert not samples.overlapping
    assert calib.make_samples("a bb ccc " * 10, encode, count=5, length=16, bos=1).overlapping
    with pytest.raises(InputError, match="only 3 tokens, fewer than one sample of 16"):
        calib.make_samples("a bb ccc", encode, count=5, length=16, bos=None)
