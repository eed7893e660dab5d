"""AMD Quark AWQ then the model builder, for real, on the demo checkpoint: the built model must agree with Quark's
own fake-quantized torch model token for token."""

from __future__ import annotations

import dataclasses
import importlib.util
import json

import pytest

from app.errors import InputError
from app.paths import demo_checkpoint
from app.presets import builder_key
from app.quantize import QuantizeRequest, parse_options, quark, run_quantization

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("quark") is None, reason="amd-quark is not installed (pip install -e .[quantize])"
)

# Small calibration keeps each AWQ run of the demo under a minute on 2 cores.
CALIBRATION = {"calib_size": "8", "calib_seq_len": "128"}
PROMPT = "Tom goes to the"
NEW_TOKENS = 30


def quantize(tmp_path_factory, name: str, overrides: dict[str, str], evaluate: bool = True):
    output = tmp_path_factory.mktemp(name) / "out"
    messages = []
    request = QuantizeRequest(str(demo_checkpoint()), str(output), "quark-awq", {**CALIBRATION, **overrides})
    request.evaluate = evaluate
    result = run_quantization(request.to_dict(), messages.append)
    return output, result, messages


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    return quantize(tmp_path_factory, "quark-default", {})


@pytest.fixture(scope="module")
def lm_head_run(tmp_path_factory):
    return quantize(tmp_path_factory, "quark-lm-head", {"include_lm_head": "true"}, evaluate=False)


def prompt_ids() -> list[int]:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(demo_checkpoint()))(PROMPT)["input_ids"]


def torch_greedy(model, ids: list[int]) -> list[int]:
    import torch

    with torch.no_grad():
        return model.generate(torch.tensor([ids]), max_new_tokens=NEW_TOKENS, do_sample=False)[0].tolist()


def genai_greedy(folder, ids: list[int]) -> list[int]:
    from app.chat import load_genai, load_model

    og = load_genai()
    model, _ = load_model(folder, "cpu")
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(ids) + NEW_TOKENS, do_sample=False)
    generator = og.Generator(model, params)
    generator.append_tokens(ids)
    while not generator.is_done():
        generator.generate_next_token()
    return [int(token) for token in generator.get_sequence(0)]


def without_end(tokens: list[int], eos: set[int]) -> list[int]:
    # transformers keeps the end-of-text token it stopped on; onnxruntime-genai does not.
    while tokens and tokens[-1] in eos:
        tokens = tokens[:-1]
    return tokens


def test_built_model_matches_quarks_fake_quantized_model_token_for_token(default_run, tmp_path):
    output, result, _ = default_run
    settings = quark.plan(demo_checkpoint(), parse_options("quark-awq", CALIBRATION)).settings
    reference = quark.quantize_checkpoint(demo_checkpoint(), tmp_path / "reference", settings, lambda message: None)
    ids = prompt_ids()
    eos_ids = json.loads((output / "genai_config.json").read_text())["model"]["eos_token_id"]
    eos = set(eos_ids) if isinstance(eos_ids, list) else {eos_ids}
    expected = without_end(torch_greedy(reference, ids), eos)
    built = without_end(genai_greedy(output, ids), eos)
    assert len(expected) > len(ids) + 10
    assert built == expected


def test_output_is_a_genai_folder_with_its_manifest_and_quality(default_run):
    output, result, _ = default_run
    assert (output / "genai_config.json").is_file() and (output / "model.onnx").is_file()
    details = result["manifest"]["details"]
    assert details["settings"]["group_size"] == 128  # hidden 128, o_proj input 128, intermediate 384
    assert details["settings"]["data_type"] == "fp32"  # the demo's own dtype
    assert details["builder_options"]["extra_options"][builder_key("nodes_to_exclude")] == ["/lm_head/MatMul"]
    assert result["manifest"]["quality"]["perplexity"] < 3  # the trained demo stays fluent
    assert not list(output.parent.glob(".forge-staging-*"))


def test_the_job_announces_its_time_and_reports_every_layer(default_run):
    _, _, messages = default_run
    logs = [message.text for message in messages if message.type == "log"]
    assert any(text.startswith("Estimated time on this CPU: about") for text in logs)
    assert not any("\x1b[" in text for text in logs)  # Quark's colour codes are stripped
    details = [message.detail for message in messages if message.type == "progress" and message.stage == "awq"]
    assert [f"layer {n} of 4" for n in (1, 2, 3, 4)] == [d for d in dict.fromkeys(details) if d.startswith("layer")]
    percents = [message.percent for message in messages if message.type == "progress"]
    assert percents == sorted(percents) and percents[-1] == 100


def lm_head_node(output):
    import onnx

    graph = onnx.load(str(output / "model.onnx"), load_external_data=False).graph
    (node,) = [node for node in graph.node if node.name.startswith("/lm_head/")]
    return node


def test_lm_head_stays_float_by_default_and_is_quarks_uint4_when_included(default_run, lm_head_run):
    assert lm_head_node(default_run[0]).op_type == "MatMul"
    node = lm_head_node(lm_head_run[0])
    attributes = {attribute.name: attribute.i for attribute in node.attribute}
    # Quark's weights as they are: its group size, with zero points (asymmetric); not the builder's RTN.
    assert node.op_type == "MatMulNBits" and attributes["block_size"] == 128 and len(node.input) >= 4
    assert (
        builder_key("nodes_to_exclude") not in lm_head_run[1]["manifest"]["details"]["builder_options"]["extra_options"]
    )


def test_a_group_size_that_does_not_divide_the_layers_is_refused_in_words(checkpoints, tmp_path):
    narrow = checkpoints("llama", hidden_size=96)  # intermediate 192, o_proj input 96
    assert quark.plan(narrow, parse_options("quark-awq", {})).settings.group_size == 32
    with pytest.raises(
        InputError,
        match=r"group size 128 does not divide .*hidden_size 96, .* are not multiples of 128\); use 32, or auto",
    ):
        quark.plan(narrow, parse_options("quark-awq", {"group_size": "128"}))
    output = tmp_path / "out"
    request = QuantizeRequest(str(narrow), str(output), "quark-awq", {"group_size": "64"})
    with pytest.raises(InputError, match="group size 64 does not divide"):
        run_quantization(request.to_dict(), lambda message: None)
    assert not output.exists()


def test_auto_group_size_is_the_largest_that_divides_every_layer():
    def config(hidden: int, intermediate: int) -> dict:
        return {"hidden_size": hidden, "intermediate_size": intermediate, "num_attention_heads": hidden // 64}

    assert quark.choose_group_size(config(576, 1536), "auto") == 64  # SmolLM2-135M: 576 is not a multiple of 128
    assert quark.choose_group_size(config(2048, 8192), "auto") == 128
    with pytest.raises(InputError, match="none of the group sizes"):
        quark.choose_group_size({"hidden_size": 100, "intermediate_size": 200}, "auto")


def test_the_estimate_scales_with_the_model_and_the_calibration():
    small = quark.plan(demo_checkpoint(), parse_options("quark-awq", CALIBRATION))
    more_text = quark.plan(demo_checkpoint(), parse_options("quark-awq", {"calib_size": "64", "calib_seq_len": "512"}))
    assert 40 < quark.estimate_seconds(small) < quark.estimate_seconds(more_text) < 10 * 60
    # SmolLM2-135M: 30 layers of 3.5M weights take well over the half hour after which a GPU is recommended.
    smol_config = {"hidden_size": 576, "intermediate_size": 1536, "num_attention_heads": 9, "num_key_value_heads": 3}
    smol_info = dataclasses.replace(small.info, num_layers=30, parameters=134_515_008)
    default = quark.plan(demo_checkpoint(), parse_options("quark-awq", {})).settings
    smol = quark.Plan(smol_info, {**smol_config, "head_dim": 64}, default, small.build)
    assert 30 * 60 < quark.estimate_seconds(smol) < 90 * 60
