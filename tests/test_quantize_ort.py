"""ONNX Runtime's quantizers, for real: the demo's FP32 GenAI build and a tiny MatMul+Add+Relu model, each result
loaded and run (onnxruntime-genai generates with every variant on the CPU), and bad input refused untouched."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from app.chat import generate_once
from app.convert import ConvertRequest, plan_conversion, run_conversion
from app.errors import InputError
from app.quantize import QuantizeRequest, plan_quantization, run_quantization
from app.quantize.ort import VARIANTS

GENAI_FILES = {"genai_config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "forge.json"}
# The operator each algorithm leaves in the graph, and the largest size it may have against FP32.
SIGNS = {
    "fp16": ("SkipSimplifiedLayerNormalization", 0.55),
    "q8": ("MatMulInteger", 0.35),
    "s8s8": ("QuantizeLinear", 0.35),
    "s8u8": ("QuantizeLinear", 0.35),
    "u8u8": ("QuantizeLinear", 0.35),
    "q4": ("MatMulNBits", 0.35),
    "q4f16": ("MatMulNBits", 0.25),
    "bnb4": ("MatMulBnb4", 0.35),
}


@pytest.fixture(scope="session")
def demo_fp32(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ort-demo") / "fp32"
    plan = plan_conversion(ConvertRequest("demo", str(out), preset="fp32", ep="cpu", check=False), usable_eps={"cpu"})
    run_conversion(plan, lambda message: None)
    return out


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """MatMul + Add + Relu with a symbolic batch dimension, saved as one plain .onnx file."""
    rng = np.random.default_rng(1)
    weight = numpy_helper.from_array(rng.standard_normal((64, 32)).astype(np.float32), "W")
    bias = numpy_helper.from_array(rng.standard_normal(32).astype(np.float32), "B")
    nodes = [
        helper.make_node("MatMul", ["X", "W"], ["h"], name="matmul"),
        helper.make_node("Add", ["h", "B"], ["a"], name="add"),
        helper.make_node("Relu", ["a"], ["Y"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 32])],
        [weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = tmp_path_factory.mktemp("ort-tiny") / "tiny.onnx"
    onnx.save(model, str(path))
    return path


def quantize(source: Path, out: Path, algo: str, evaluate: bool = True, **overrides: str) -> tuple[dict, list]:
    messages: list = []
    request = QuantizeRequest(str(source), str(out), algo, dict(overrides), evaluate=evaluate).to_dict()
    return run_quantization(request, messages.append), messages


def op_types(path: Path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node}


def snapshot(path: Path) -> dict[str, str]:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


ALGOS = [("fp16", {}), ("fp16", {"keep_io_types": "false"}), ("q8", {}), ("s8s8", {}), ("s8u8", {}), ("u8u8", {})]
ALGOS += [("s8s8", {"calibration_method": "entropy", "calibration_size": "4"}), ("q4", {}), ("q4f16", {})]
ALGOS += [("bnb4", {}), ("bnb4", {"bnb4_type": "fp4"})]


@pytest.mark.parametrize(("algo", "overrides"), ALGOS)
def test_each_algorithm_makes_a_genai_folder_that_generates(algo, overrides, demo_fp32, tmp_path):
    before = snapshot(demo_fp32)
    out = tmp_path / algo
    result, messages = quantize(demo_fp32, out, algo, **overrides)
    record = result["manifest"]
    assert {p.name for p in out.iterdir()} == GENAI_FILES | {"model.onnx", "model.onnx.data"}
    assert json.loads((out / "genai_config.json").read_text())["model"]["decoder"]["filename"] == "model.onnx"
    assert (out / "model.onnx.data").stat().st_mode == (out / "model.onnx").stat().st_mode
    sign, largest = SIGNS[algo]
    assert sign in op_types(out / "model.onnx")
    assert record["details"]["check"]["runs_in_onnxruntime"]
    quality = record["quality"]
    assert quality["size_ratio"] < largest
    assert abs(quality["perplexity_change"]) < 0.02, quality["verdict"]
    reply = generate_once(out, "Tom goes to the", max_new_tokens=12, ep="cpu")
    assert reply.new_tokens == 12 and len(re.findall(r"[A-Za-z]+", reply.text)) >= 4
    percents = [m.percent for m in messages if m.type == "progress"]
    assert percents == sorted(percents) and percents[0] == 5 and percents[-1] == 100
    assert snapshot(demo_fp32) == before
    assert not list(tmp_path.glob(".forge-staging-*"))


def test_fp16_keeps_logits_float32_and_moves_the_kv_cache_to_float16(demo_fp32, tmp_path):
    result, _ = quantize(demo_fp32, tmp_path / "fp16", "fp16", evaluate=False)
    session = ort.InferenceSession(str(tmp_path / "fp16" / "model.onnx"), providers=["CPUExecutionProvider"])
    types = {value.name: value.type for value in [*session.get_inputs(), *session.get_outputs()]}
    assert types["logits"] == "tensor(float)" and types["input_ids"] == "tensor(int64)"
    assert types["past_key_values.0.key"] == types["present.3.value"] == "tensor(float16)"
    assert result["manifest"]["details"]["float32_io"] == "logits"


def test_q8_picks_uint8_weights_for_a_graph_with_group_query_attention(demo_fp32, tmp_path):
    result, messages = quantize(demo_fp32, tmp_path / "q8", "q8", evaluate=False)
    details = result["manifest"]["details"]
    assert details["weight_type"] == "uint8" and "GroupQueryAttention" in details["why"]
    forced, _ = quantize(demo_fp32, tmp_path / "q8-int8", "q8", evaluate=False, weight_type="int8")
    assert forced["manifest"]["details"]["weight_type"] == "int8"


def test_static_calibration_reads_the_users_text(demo_fp32, tmp_path):
    text = tmp_path / "mine.txt"
    text.write_text("Tom goes to the park. He sees a red ball.\nAnna reads a book. The book is long.\n" * 20)
    result, messages = quantize(
        demo_fp32, tmp_path / "out", "u8u8", evaluate=False, calibration_text=str(text), calibration_length="16"
    )
    calibration = result["manifest"]["details"]["calibration"]
    assert calibration["data"] == str(text) and calibration["samples"] > 1
    assert any("windows of 16 tokens" in m.text for m in messages if m.type == "log")


def test_variants_write_every_named_file_into_one_folder(demo_fp32, tmp_path):
    out = tmp_path / "variants"
    result, _ = quantize(demo_fp32, out, "variants", evaluate=False)
    names = ["model"] + [f"model{variant.suffix}" for variant in VARIANTS]
    assert [f"model{v.suffix}.onnx" for v in VARIANTS] == [
        "model_fp16.onnx",
        "model_quantized.onnx",
        "model_int8.onnx",
        "model_uint8.onnx",
        "model_q4.onnx",
        "model_q4f16.onnx",
        "model_bnb4.onnx",
    ]
    expected = GENAI_FILES | {f"{name}.onnx" for name in names} | {f"{name}.onnx.data" for name in names}
    assert {p.name for p in out.iterdir()} == expected
    assert (out / "model.onnx.data").read_bytes() == (demo_fp32 / "model.onnx.data").read_bytes()
    rows = result["manifest"]["details"]["variants"]
    assert [row["file"] for row in rows] == [f"{name}.onnx" for name in names]
    for row in rows:
        assert row["runs_in_genai"], row
        assert row.get("check", {"runs_in_onnxruntime": True})["runs_in_onnxruntime"], row
        assert abs(row["perplexity"] / rows[0]["perplexity"] - 1) < 0.02, row
    sizes = {row["variant"]: row["bytes"] for row in rows}
    assert sizes["q4f16"] < sizes["q4"] < sizes["fp16"] < sizes["original"]


def test_variants_take_a_subset_and_the_q8_alias(demo_fp32, tmp_path):
    out = tmp_path / "two"
    quantize(demo_fp32, out, "variants", evaluate=False, variants="q8,fp16,q8", evaluate_variants="false")
    models = {p.name for p in out.glob("*.onnx")}
    assert models == {"model.onnx", "model_quantized.onnx", "model_fp16.onnx"}


@pytest.mark.parametrize("algo", ["q8", "s8s8", "q4"])
def test_a_plain_onnx_model_quantizes_and_runs(algo, tiny_model, tmp_path):
    out = tmp_path / algo
    result, messages = quantize(tiny_model, out, algo)
    assert {p.name for p in out.iterdir()} == {"tiny.onnx", "tiny.onnx.data", "forge.json"}
    x = np.random.default_rng(7).standard_normal((5, 64)).astype(np.float32)
    expected = ort.InferenceSession(str(tiny_model), providers=["CPUExecutionProvider"]).run(None, {"X": x})[0]
    got = ort.InferenceSession(str(out / "tiny.onnx"), providers=["CPUExecutionProvider"]).run(None, {"X": x})[0]
    assert got.shape == (5, 32)
    assert np.linalg.norm(got - expected) / np.linalg.norm(expected) < 0.2
    assert "not a GenAI model" in result["manifest"]["quality"]["verdict"]
    if algo == "s8s8":
        assert result["manifest"]["details"]["calibration"]["data"] == "random"
        assert any("seeded random inputs" in m.text for m in messages if m.type == "log")


def test_a_plain_model_gets_variants_named_after_its_file(tiny_model, tmp_path):
    out = tmp_path / "variants"
    quantize(tiny_model, out, "variants", variants="fp16,q4,bnb4")
    assert {p.name for p in out.glob("*.onnx")} == {"tiny.onnx", "tiny_fp16.onnx", "tiny_q4.onnx", "tiny_bnb4.onnx"}


# --- bad input -------------------------------------------------------------------------------------------------


def refused(source: Path, tmp_path: Path, algo: str, match: str, **overrides: str) -> None:
    before = snapshot(source)
    out = tmp_path / "refused"
    with pytest.raises(InputError, match=match):
        quantize(source, out, algo, **overrides)
    assert snapshot(source) == before
    assert not out.exists() and not list(tmp_path.glob(".forge-staging-*"))


def test_a_file_that_is_not_onnx_is_refused(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model")
    refused(notes, tmp_path, "q8", "not an ONNX model")
    fake = tmp_path / "fake.onnx"
    fake.write_bytes(b"\x00\x01garbage" * 50)
    refused(fake, tmp_path, "q4", "not a readable ONNX model")
    with pytest.raises(InputError, match="not an ONNX model"):
        plan_quantization(QuantizeRequest(str(notes), str(tmp_path / "o"), "q8"))


def test_an_already_quantized_model_is_refused(tiny_model, tmp_path):
    quantize(tiny_model, tmp_path / "q4", "q4", evaluate=False)
    refused(tmp_path / "q4" / "tiny.onnx", tmp_path, "q8", "already quantized")
    refused(tmp_path / "q4", tmp_path, "variants", "already quantized")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "is empty"),
        (b"   \n\n", "is empty"),
        (b"\x89PNG\r\n\x1a\n\xff\xfe\x00", "not UTF-8"),
        (b"a\x00b" * 9, "NUL"),
    ],
)
def test_calibration_text_that_is_empty_or_binary_is_refused(content, match, demo_fp32, tmp_path):
    text = tmp_path / "calibration.txt"
    text.write_bytes(content)
    refused(demo_fp32, tmp_path, "s8s8", match, calibration_text=str(text))


def test_bad_options_are_refused_before_any_work(demo_fp32, tiny_model, tmp_path):
    refused(tiny_model, tmp_path, "q4", "larger than the model's hidden size", block_size="128")
    refused(demo_fp32, tmp_path, "bnb4", "larger than the model's hidden size", block_size="256")
    refused(demo_fp32, tmp_path, "variants", "is not a variant", variants="fp16,int3")
    refused(demo_fp32, tmp_path, "q4", "no node named", exclude_nodes="/lm_head/matmul")
    refused(tiny_model, tmp_path, "s8s8", "no genai_config", calibration_text=str(tiny_model))


def test_a_float16_model_is_refused_where_float32_is_needed(demo_fp32, tmp_path):
    quantize(demo_fp32, tmp_path / "fp16", "fp16", evaluate=False)
    for algo in ("fp16", "q8", "u8u8"):
        refused(tmp_path / "fp16", tmp_path, algo, "float16 weights")
    result, _ = quantize(tmp_path / "fp16", tmp_path / "q4", "q4", evaluate=False)
    assert result["manifest"]["details"]["check"]["runs_in_onnxruntime"]
