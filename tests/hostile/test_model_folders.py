"""Hostile ONNX Runtime GenAI model folders given to quantize, eval, bench, chat and report.

The folder is made by hand (a one-MatMul graph whose weight lives in model.onnx.data, a genai_config.json, the tiny
checkpoint's tokenizer), so no conversion runs: every case is refused before anything loads it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.model_folder import check_model_folder
from tests.hostile.contract import refused, refused_in_process

WEIGHT_BYTES = 64 * 64 * 4


def make_genai_folder(folder: Path, tokenizer_from: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir(parents=True)
    weight = numpy_helper.from_array(np.ones((64, 64), dtype=np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save_model(model, str(folder / "model.onnx"), save_as_external_data=True, location="model.onnx.data")
    decoder = {"filename": "model.onnx", "session_options": {"provider_options": []}, "head_size": 16}
    config = {"model": {"type": "llama", "context_length": 256, "vocab_size": 384, "decoder": decoder}}
    (folder / "genai_config.json").write_text(json.dumps({**config, "search": {"max_length": 256}}))
    (folder / "forge.json").write_text(json.dumps({"source": str(tokenizer_from)}))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tokenizer_from / name, folder / name)
    return folder


def write(name: str, text: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_text(text)


def remove(name: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).unlink()


def fifo(name: str) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        (folder / name).unlink()
        os.mkfifo(folder / name)

    return apply


def edit_config(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        config = json.loads((folder / "genai_config.json").read_text())
        change(config)
        (folder / "genai_config.json").write_text(json.dumps(config))

    return apply


def cut_data(folder: Path) -> None:
    data = folder / "model.onnx.data"
    data.write_bytes(data.read_bytes()[: WEIGHT_BYTES // 2])


CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "genai_config {}": (write("genai_config.json", "{}"), "model"),
    "genai_config not JSON": (write("genai_config.json", '{"model": '), "not valid JSON"),
    "genai_config a list": (write("genai_config.json", "[]"), "JSON object"),
    "genai_config a FIFO": (fifo("genai_config.json"), "not a regular file"),
    "genai_config missing": (remove("genai_config.json"), "genai_config.json"),
    "no decoder": (edit_config(lambda c: c["model"].pop("decoder")), "model.decoder"),
    "decoder filename a number": (edit_config(lambda c: c["model"]["decoder"].update(filename=3)), "filename"),
    "decoder filename outside": (edit_config(lambda c: c["model"]["decoder"].update(filename="../m.onnx")), "outside"),
    "context_length a string": (edit_config(lambda c: c["model"].update(context_length="256")), "context_length"),
    "context_length 0": (edit_config(lambda c: c["model"].update(context_length=0)), "context_length"),
    "vocab_size missing": (edit_config(lambda c: c["model"].pop("vocab_size")), "vocab_size"),
    "provider_options a string": (
        edit_config(lambda c: c["model"]["decoder"]["session_options"].update(provider_options="cpu")),
        "provider_options",
    ),
    "model.onnx missing": (remove("model.onnx"), "model.onnx"),
    "model.onnx not ONNX": (write("model.onnx", "not a protobuf at all \x00\x01"), "not a readable ONNX model"),
    "model.onnx.data missing": (remove("model.onnx.data"), "model.onnx.data"),
    "model.onnx.data cut short": (cut_data, "cut short"),
    "model.onnx.data a FIFO": (fifo("model.onnx.data"), "not a regular file"),
    "forge.json a list": (write("forge.json", "[1]"), "forge.json"),
    "forge.json not JSON": (write("forge.json", "{"), "forge.json"),
    "tokenizer.json not JSON": (write("tokenizer.json", "{"), "tokenizer.json"),
}

COMMANDS: dict[str, Callable[[Path, Path], list[str]]] = {
    "quantize": lambda model, out: ["quantize", str(model), "-o", str(out), "--algo", "rtn"],
    "eval": lambda model, out: ["eval", str(model)],
    "bench": lambda model, out: ["bench", str(model), "--ep", "cpu"],
    "chat": lambda model, out: ["chat", str(model), "--prompt", "hello"],
    "report": lambda model, out: ["report", str(model)],
}


@pytest.fixture
def genai(checkpoints, tmp_path):
    return make_genai_folder(tmp_path / "model", checkpoints("llama"))


def test_the_hand_made_folder_is_accepted(genai):
    """The cases below are refused for what they break, not for the folder being made by hand."""
    assert check_model_folder(genai)["model"]["decoder"]["filename"] == "model.onnx"


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_model_folder_is_refused_by_every_command(case, genai, tmp_path):
    break_it, words = CASES[case]
    break_it(genai)
    out = tmp_path / "out" / "q"
    for command, args in COMMANDS.items():
        result = refused(args(genai, out), watch=[genai], output=out, timeout=60)
        assert words in result.line, f"{command}: {result.line}"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from([("model",), ("model", "decoder"), ("model", "context_length"), ("search",), ()]),
    value=st.recursive(
        st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=6),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
        max_leaves=5,
    ),
)
def test_any_genai_config_value_is_refused_in_one_sentence_or_accepted(checkpoints, tmp_path_factory, path, value):
    folder = make_genai_folder(tmp_path_factory.mktemp("genai") / "model", checkpoints("llama"))
    config = json.loads((folder / "genai_config.json").read_text())
    if path:
        parent = config
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = value
    else:
        config = value
    (folder / "genai_config.json").write_text(json.dumps(config))
    try:
        check_model_folder(folder)
    except Exception:  # noqa: BLE001 - refused_in_process says whether it was the right kind of refusal
        refused_in_process(check_model_folder, folder)
    shutil.rmtree(folder.parent)
