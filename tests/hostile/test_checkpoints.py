"""Hostile checkpoints: lying safetensors headers, impossible config.json values, broken tokenizer files.

Each case through the real command line, `inspect` and `convert` (refused at planning, so no build runs), asserts the
whole contract of tests/hostile/contract.py. The Hypothesis cases call inspect_checkpoint in-process: a refusal must be
an InputError with one sentence, and an accepted input must be one that agrees with the tensors.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from app.checkpoints import inspect_checkpoint
from app.errors import InputError
from tests.hostile.contract import plant_canary, refused, refused_in_process

WEIGHTS = "model.safetensors"
# The tiny Llama the factory makes by default (tests/checkpoint_factory.py).
LAYERS, HIDDEN, VOCAB, HEADS, KV_HEADS, HEAD_DIM, INTERMEDIATE = 2, 64, 384, 4, 2, 16, 128


def read_weights(folder: Path) -> tuple[dict[str, Any], bytes]:
    raw = (folder / WEIGHTS).read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + size]), raw[8 + size :]


def write_weights(folder: Path, header: Any, data: bytes, *, raw_header: bytes | None = None) -> None:
    encoded = raw_header if raw_header is not None else json.dumps(header).encode()
    (folder / WEIGHTS).write_bytes(struct.pack("<Q", len(encoded)) + encoded + data)


def edit_header(change: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        header, data = read_weights(folder)
        write_weights(folder, change(header), data)

    return apply


def edit_tensor(name: str, **fields: Any) -> Callable[[Path], None]:
    def change(header: dict[str, Any]) -> dict[str, Any]:
        entry = header[name]
        for key, value in fields.items():
            if value is _DROP:
                entry.pop(key)
            else:
                entry[key] = value
        return header

    return edit_header(change)


_DROP = object()
Q_PROJ = "model.layers.1.self_attn.q_proj.weight"


def drop_tensor(name: str) -> Callable[[Path], None]:
    return edit_header(lambda header: {k: v for k, v in header.items() if k != name})


def raw_weights(content: bytes) -> Callable[[Path], None]:
    return lambda folder: (folder / WEIGHTS).write_bytes(content)


def length_prefix(size: int, rest: bytes = b"{}") -> Callable[[Path], None]:
    return raw_weights(struct.pack("<Q", size) + rest)


def deep_header(folder: Path) -> None:
    _, data = read_weights(folder)
    write_weights(folder, None, data, raw_header=b"[" * 100_000 + b"]" * 100_000)


def replace_with(kind: str, name: str = WEIGHTS) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        path = folder / name
        path.unlink()
        if kind == "dir":
            path.mkdir()
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "socket":
            _bind_socket(path)
        elif kind == "device":
            path.symlink_to("/dev/zero")
        elif kind == "loop":
            path.symlink_to(path.name)

    return apply


def _bind_socket(path: Path) -> None:
    # AF_UNIX paths are limited to ~107 bytes: bind from inside the folder with a short relative name.
    here = os.getcwd()
    os.chdir(path.parent)
    try:
        server = socket.socket(socket.AF_UNIX)
        server.bind(path.name)
        server.close()
    finally:
        os.chdir(here)


def sharded(missing: bool = False, index: str | None = None) -> Callable[[Path], None]:
    """Split the weights into two shards with an index; optionally lose one shard, or write `index` as the index."""

    def apply(folder: Path) -> None:
        header, data = read_weights(folder)
        names = sorted(k for k in header if k != "__metadata__")
        halves = {"model-00001-of-00002.safetensors": names[: len(names) // 2]}
        halves["model-00002-of-00002.safetensors"] = names[len(names) // 2 :]
        weight_map = {}
        for shard, tensors in halves.items():
            part, chunks, offset = {}, [], 0
            for name in tensors:
                begin, end = header[name]["data_offsets"]
                part[name] = {**header[name], "data_offsets": [offset, offset + end - begin]}
                chunks.append(data[begin:end])
                offset += end - begin
                weight_map[name] = shard
            encoded = json.dumps(part).encode()
            (folder / shard).write_bytes(struct.pack("<Q", len(encoded)) + encoded + b"".join(chunks))
        (folder / WEIGHTS).unlink()
        text = index if index is not None else json.dumps({"metadata": {}, "weight_map": weight_map})
        (folder / "model.safetensors.index.json").write_text(text)
        if missing:
            (folder / "model-00002-of-00002.safetensors").unlink()

    return apply


def edit_json(name: str, change: Callable[[Any], Any]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        path = folder / name
        path.write_text(json.dumps(change(json.loads(path.read_text()))))

    return apply


def set_config(**values: Any) -> Callable[[Path], None]:
    def change(config: dict[str, Any]) -> dict[str, Any]:
        for key, value in values.items():
            if value is _DROP:
                config.pop(key, None)
            else:
                config[key] = value
        return config

    return edit_json("config.json", change)


def write_text(name: str, text: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_text(text)


# Family -> case -> (how to break the checkpoint, words the sentence must hold).
HEADER_CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "length 2**63-1": (length_prefix(2**63 - 1), "header claims"),
    "length beyond the file": (length_prefix(10_000), "header claims"),
    "empty file": (raw_weights(b""), "cut short"),
    "four bytes": (raw_weights(b"\x01\x00\x00\x00"), "cut short"),
    "header a list": (lambda f: write_weights(f, [1, 2], read_weights(f)[1]), "not a JSON object"),
    "header not JSON": (lambda f: write_weights(f, None, b"", raw_header=b"{nope"), "not JSON"),
    "header not UTF-8": (lambda f: write_weights(f, None, b"", raw_header=b'{"\xff\xfe": 1}'), "not JSON"),
    "nesting 100,000 deep": (deep_header, "not JSON"),
    "entry a string": (edit_header(lambda h: {**h, Q_PROJ: "x"}), "not described by an object"),
    "no data_offsets": (edit_tensor(Q_PROJ, data_offsets=_DROP), "data_offsets"),
    "data_offsets a string": (edit_tensor(Q_PROJ, data_offsets="0-10"), "data_offsets"),
    "negative offsets": (edit_tensor(Q_PROJ, data_offsets=[-16, 0]), "data_offsets"),
    "unknown dtype": (edit_tensor(Q_PROJ, dtype="F128"), "unknown dtype"),
    "dtype null": (edit_tensor(Q_PROJ, dtype=None), "unknown dtype"),
    "negative shape": (edit_tensor(Q_PROJ, shape=[-64, -64]), "shape"),
    "shape of floats": (edit_tensor(Q_PROJ, shape=[64.0, 64]), "shape"),
    "shape a string": (edit_tensor(Q_PROJ, shape="64x64"), "shape"),
    "shape larger than its bytes": (edit_tensor(Q_PROJ, shape=[64, 6400]), "offsets spanning"),
    "offsets beyond the file": (edit_tensor(Q_PROJ, data_offsets=[10**9, 10**9 + 16384]), "cut short"),
    "a folder named model.safetensors": (replace_with("dir"), "is a folder"),
    "a FIFO named model.safetensors": (replace_with("fifo"), "not a regular file"),
    "a socket named model.safetensors": (replace_with("socket"), "not a regular file"),
    "a device named model.safetensors": (replace_with("device"), "not a regular file"),
    "a symlink loop named model.safetensors": (replace_with("loop"), "cannot be read"),
    "a missing shard": (sharded(missing=True), "model-00002-of-00002.safetensors"),
    "an index that is not JSON": (sharded(index="{"), "not valid JSON"),
    "an index without weight_map": (sharded(index="[]"), "weight_map"),
    "an index naming ../ shards": (sharded(index='{"weight_map": {"a": "../x.safetensors"}}'), "outside its folder"),
}

CONFIG_CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "config a list": (write_text("config.json", "[1, 2]"), "JSON object"),
    "config a FIFO": (replace_with("fifo", "config.json"), "not a regular file"),
    "num_hidden_layers 0": (set_config(num_hidden_layers=0), "num_hidden_layers"),
    "num_hidden_layers 10**9": (set_config(num_hidden_layers=10**9), "num_hidden_layers"),
    "num_hidden_layers a string": (set_config(num_hidden_layers="2"), "num_hidden_layers"),
    "num_hidden_layers null": (set_config(num_hidden_layers=None), "num_hidden_layers"),
    "num_hidden_layers true": (set_config(num_hidden_layers=True), "num_hidden_layers"),
    "num_hidden_layers 2.5": (set_config(num_hidden_layers=2.5), "num_hidden_layers"),
    "num_hidden_layers missing": (set_config(num_hidden_layers=_DROP), "num_hidden_layers"),
    "hidden size not divisible by heads": (
        set_config(num_attention_heads=3, num_key_value_heads=3, head_dim=None),
        "not divisible",
    ),
    "vocab 0": (set_config(vocab_size=0), "vocab_size"),
    "heads 0": (set_config(num_attention_heads=0), "num_attention_heads"),
    "key-value heads not dividing heads": (set_config(num_key_value_heads=3), "key-value heads"),
    "negative context": (set_config(max_position_embeddings=-1), "max_position_embeddings"),
    "context null": (set_config(max_position_embeddings=None), "max_position_embeddings"),
    "text_config a string": (set_config(text_config="llama"), "text_config"),
    "quantization_config a string": (set_config(quantization_config="awq"), "quantization_config"),
    "architectures a string": (set_config(architectures="LlamaForCausalLM"), "architectures"),
    "tie_word_embeddings a string": (set_config(tie_word_embeddings="false"), "tie_word_embeddings"),
    "absurd size": (set_config(vocab_size=2**24, hidden_size=2**18, head_dim=None, intermediate_size=2**21), "more"),
    "more layers than the weights": (set_config(num_hidden_layers=3), "3 layers"),
    "fewer layers than the weights": (set_config(num_hidden_layers=1), "says 1 layer,"),
    "vocab disagrees with the embedding": (set_config(vocab_size=500), "embed_tokens"),
    "hidden size disagrees": (set_config(hidden_size=128), "disagree"),
    "intermediate size disagrees": (set_config(intermediate_size=100), "mlp"),
    "key-value heads disagree": (set_config(num_key_value_heads=4), "k_proj"),
    "head_dim disagrees": (set_config(head_dim=32), "self_attn"),
    "a layer's tensor missing": (drop_tensor(Q_PROJ), Q_PROJ),
    "lm_head missing, embeddings untied": (drop_tensor("lm_head.weight"), "lm_head.weight"),
}

TOKENIZER_CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "tokenizer.json not JSON": (write_text("tokenizer.json", '{"model": '), "tokenizer.json"),
    "tokenizer.json a list": (write_text("tokenizer.json", "[]"), "tokenizer.json"),
    "tokenizer.json without a model": (edit_json("tokenizer.json", lambda t: {**t, "model": 3}), "tokenizer.json"),
    "tokenizer.json a FIFO": (replace_with("fifo", "tokenizer.json"), "tokenizer.json"),
    "tokenizer.json nested deep": (write_text("tokenizer.json", "[" * 100_000 + "]" * 100_000), "tokenizer.json"),
    "tokenizer_config.json not JSON": (write_text("tokenizer_config.json", "chat_template: x"), "tokenizer_config"),
    "tokenizer_config.json null": (write_text("tokenizer_config.json", "null"), "tokenizer_config.json"),
    "chat_template a number": (edit_json("tokenizer_config.json", lambda t: {**t, "chat_template": 5}), "chat_templ"),
    "special_tokens_map.json not JSON": (write_text("special_tokens_map.json", "<s>"), "special_tokens_map.json"),
    "generation_config.json a list": (write_text("generation_config.json", "[1]"), "generation_config.json"),
    "generation_config.json eos a string": (
        edit_json("generation_config.json", lambda g: {**g, "eos_token_id": "</s>"}),
        "eos_token_id",
    ),
    "generation_config.json not UTF-8": (lambda f: (f / "generation_config.json").write_bytes(b"\xff{"), "generation"),
}

FAMILIES = {"header": HEADER_CASES, "config": CONFIG_CASES, "tokenizer": TOKENIZER_CASES}
CASES = [(family, name) for family, cases in FAMILIES.items() for name in cases]


@pytest.fixture
def hostile(checkpoints, tmp_path):
    """make(break_it) -> (a broken copy of the tiny Llama with a canary planted, the canary's path)."""

    def make(break_it: Callable[[Path], None]) -> tuple[Path, Path]:
        folder = Path(shutil.copytree(checkpoints("llama"), tmp_path / "ck"))
        canary = tmp_path / "canary"
        plant_canary(folder, canary)
        break_it(folder)
        return folder, canary

    return make


@pytest.mark.parametrize(("family", "name"), CASES, ids=[f"{f}: {n}" for f, n in CASES])
def test_hostile_checkpoint_is_refused_by_inspect_and_convert(family, name, hostile, tmp_path):
    break_it, words = FAMILIES[family][name]
    folder, canary = hostile(break_it)
    out = tmp_path / "new" / "out"
    for args in (["inspect", str(folder)], ["convert", str(folder), "-o", str(out), "--ep", "cpu"]):
        result = refused(args, watch=[folder], output=out, canary=canary, timeout=60)
        assert words in result.line, result.line


def test_the_untouched_checkpoint_with_a_canary_is_accepted(hostile):
    """The cases above are refused for what they break, not for the canary planted in them."""
    folder, canary = hostile(lambda folder: None)
    assert inspect_checkpoint(folder).num_layers == LAYERS
    assert not canary.exists()


def test_a_complete_sharded_checkpoint_is_accepted(checkpoints, hostile):
    folder, _ = hostile(sharded())
    assert len(list(folder.glob("model-*.safetensors"))) == 2
    assert inspect_checkpoint(folder).parameters == inspect_checkpoint(checkpoints("llama")).parameters


# ----------------------------------------------------------------------------------------------------------------------
# Hypothesis: many more values in-process. A fresh copy per example; the tiny checkpoint is ~200 KB.
# ----------------------------------------------------------------------------------------------------------------------

_FEW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
SIZES = st.integers(-5, 2**65) | st.sampled_from([0, 1, 2, 3, 4, 16, 64, 128, 384, 10**9]) | ANY_JSON


def _fresh(source: Path) -> tuple[tempfile.TemporaryDirectory, Path]:
    scratch = tempfile.TemporaryDirectory()
    return scratch, Path(shutil.copytree(source, Path(scratch.name) / "ck"))


def _outcome(folder: Path) -> str | None:
    """None if accepted, else the one-sentence refusal; anything but an InputError fails the test."""
    try:
        inspect_checkpoint(folder)
    except InputError:
        return refused_in_process(inspect_checkpoint, folder)
    return None


@_FEW
@given(
    dtype=st.sampled_from(["F32", "F16", "I8", "F128", "f32", ""]) | ANY_JSON,
    shape=ANY_JSON | st.lists(SIZES, max_size=3),
)
def test_any_tensor_entry_is_refused_in_one_sentence_unless_it_is_consistent(checkpoints, dtype, shape):
    scratch, folder = _fresh(checkpoints("llama"))
    with scratch:
        header, data = read_weights(folder)
        begin, end = header[Q_PROJ]["data_offsets"]
        header[Q_PROJ] |= {"dtype": dtype, "shape": shape}
        write_weights(folder, header, data)
        refusal = _outcome(folder)
    consistent = dtype == "F32" and shape == [HEADS * HEAD_DIM, HIDDEN] and all(type(d) is int for d in shape)
    assert (refusal is None) == consistent, refusal


@_FEW
@given(begin=SIZES, end=SIZES)
def test_any_data_offsets_are_refused_in_one_sentence_unless_they_match(checkpoints, begin, end):
    scratch, folder = _fresh(checkpoints("llama"))
    with scratch:
        header, data = read_weights(folder)
        true_begin, true_end = header[Q_PROJ]["data_offsets"]
        header[Q_PROJ]["data_offsets"] = [begin, end]
        write_weights(folder, header, data)
        refusal = _outcome(folder)
    fits = (
        all(isinstance(v, int) and not isinstance(v, bool) for v in (begin, end))
        and 0 <= begin
        and end - begin == true_end - true_begin
        and end <= len(data)
    )
    assert (refusal is None) == fits, refusal


@_FEW
@given(
    key=st.sampled_from(
        ["num_hidden_layers", "hidden_size", "vocab_size", "num_attention_heads", "num_key_value_heads", "head_dim"]
    ),
    value=SIZES,
)
def test_any_config_size_is_refused_in_one_sentence_unless_it_matches_the_weights(checkpoints, key, value):
    scratch, folder = _fresh(checkpoints("llama"))
    with scratch:
        set_config(**{key: value})(folder)
        refusal = _outcome(folder)
    truth = {"num_hidden_layers": LAYERS, "hidden_size": HIDDEN, "vocab_size": VOCAB, "num_attention_heads": HEADS}
    truth |= {"num_key_value_heads": KV_HEADS, "head_dim": HEAD_DIM}
    # null key-value heads or head_dim mean "derive it": 4 heads and 64 // 4 = 16, what the weights hold.
    matches = (value == truth[key] and type(value) is int) or (value is None and key == "head_dim")
    assert (refusal is None) == matches, refusal


@_FEW
@given(
    key=st.sampled_from(["max_position_embeddings", "text_config", "quantization_config", "architectures"]),
    value=ANY_JSON,
)
@example(key="text_config", value=None)  # found by Hypothesis: estimate_parameters read a null text_config
def test_any_config_value_is_refused_in_one_sentence_or_accepted(checkpoints, key, value):
    scratch, folder = _fresh(checkpoints("llama"))
    with scratch:
        set_config(**{key: value})(folder)
        refusal = _outcome(folder)
    if key == "max_position_embeddings" and (type(value) is not int or not 1 <= value <= 2**24):
        assert refusal is not None
    if key in ("text_config", "quantization_config") and value is not None and not isinstance(value, dict):
        assert refusal is not None and key in refusal


@_FEW
@given(
    name=st.sampled_from(
        ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"]
    ),
    value=ANY_JSON,
)
def test_any_tokenizer_file_content_is_refused_naming_the_file_or_accepted(checkpoints, name, value):
    scratch, folder = _fresh(checkpoints("llama"))
    with scratch:
        (folder / name).write_text(json.dumps(value))
        refusal = _outcome(folder)
    if not isinstance(value, dict) or name == "tokenizer.json":
        assert refusal is not None and name in refusal, refusal
