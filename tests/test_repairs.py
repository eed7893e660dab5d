"""Each repair of app.repairs against the bare builder of the installed version: the defect it covers is still
there (when a fixed builder makes one of these fail, the repair comes out of REPAIRS for that version). That the
repaired build agrees with PyTorch is tests/test_architecture_matrix.py's job; the refusal of what no repair
covers is checked here through the command line, with the whole refusal contract.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from app.builder_info import builder_info
from app.checkpoints import read_config
from app.presets import BuildOptions
from app.repairs import REPAIRS, Repair, _rename_tokenizer_class, call_builder, repairs_for, with_repair_options
from tests.hostile.contract import refused

FP32 = BuildOptions("fp32", "fp32", "cpu")


def _bare(source: Path, tmp_path: Path) -> Path:
    call_builder(source, tmp_path / "bare", tmp_path / "cache", FP32, False)
    return tmp_path / "bare"


def _smollm3(checkpoints, tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="position_ids"):
        _bare(checkpoints("smollm3", num_layers=4), tmp_path)


def _gemma4(checkpoints, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="per-layer attribute") as failure:
        _bare(checkpoints("gemma4"), tmp_path)
    assert type(failure.value).__name__ == "AmbiguousGlobalPerLayerAttributeError"


def _gemma3(checkpoints, tmp_path: Path) -> None:
    with pytest.raises(AttributeError, match="rope_local_base_freq"):
        _bare(checkpoints("gemma3"), tmp_path)


def _sliding_window(checkpoints, tmp_path: Path) -> None:
    from app.chat import generate_once

    folder = _bare(checkpoints("gemma2"), tmp_path)
    with pytest.raises(Exception, match="local_window_size"):
        generate_once(folder, "Hello", max_new_tokens=8, ep="cpu")


def _qwen3_5(checkpoints, tmp_path: Path) -> None:
    from app.chat import check_tokenizer

    folder = _bare(checkpoints("qwen3_5"), tmp_path)
    assert json.loads((folder / "tokenizer_config.json").read_text())["tokenizer_class"] == "Qwen3_5Tokenizer"
    with pytest.raises(Exception, match="Unsupported tokenizer class: Qwen3_5Tokenizer"):
        check_tokenizer(folder)


def _olmo(checkpoints, tmp_path: Path) -> None:
    from app.evaluate import drift

    source = checkpoints("olmo")
    assert drift(_bare(source, tmp_path), source, max_tokens=300).top1_agreement < 0.95


REPRODUCTIONS: dict[str, Callable[..., None]] = {
    "smollm3-nope-layers": _smollm3,
    "gemma4-per-layer-head-dim": _gemma4,
    "gemma3-rope-local-base-freq": _gemma3,
    "sliding-window-full-kv-cache": _sliding_window,
    "qwen3_5-tokenizer-class": _qwen3_5,
    "olmo-layer-norm": _olmo,
}


def test_every_repair_has_a_reproduction_and_a_defect_in_words():
    assert sorted(REPRODUCTIONS) == sorted(repair.id for repair in REPAIRS)
    for repair in REPAIRS:
        assert repair.defect and repair.builder_versions
        assert repair.fix_config or repair.patch or repair.fix_output or repair.options


@pytest.mark.parametrize("repair", REPAIRS, ids=lambda repair: repair.id)
def test_the_bare_builder_still_has_the_defect(repair: Repair, checkpoints, tmp_path):
    if builder_info().version not in repair.builder_versions:
        pytest.skip(f"not needed on builder {builder_info().version}: the matrix refuses or converts these bare")
    REPRODUCTIONS[repair.id](checkpoints, tmp_path)


def test_config_repairs_are_only_keyed_on_builders_that_let_them_reach_the_config():
    # Up to 0.15 the builder loads the config inside create_model: a fix_config repair could not run there.
    for repair in REPAIRS:
        if repair.fix_config:
            assert all(not version.startswith(("0.14.", "0.15.")) for version in repair.builder_versions), repair.id


def test_repairs_apply_only_to_their_family(checkpoints):
    version = "0.18.0"
    assert repairs_for(read_config(checkpoints("llama")), version) == []
    assert [r.id for r in repairs_for(read_config(checkpoints("smollm3", num_layers=4)), version)] == [
        "smollm3-nope-layers"
    ]
    # Every layer with RoPE (no 0 in no_rope_layers): nothing to repair.
    assert repairs_for(read_config(checkpoints("smollm3", num_layers=3)), version) == []
    assert repairs_for({"model_type": "smollm3", "no_rope_layers": "lying"}, version) == []
    assert repairs_for({}, version) == [] and repairs_for({"model_type": 7}, version) == []
    assert repairs_for(read_config(checkpoints("qwen3_5")), "0.14.1") == []


def test_a_repair_option_never_overrides_the_users():
    repair = next(r for r in REPAIRS if r.options)
    user = BuildOptions("fp32", "fp32", "cpu", {"windowed_kv_cache": True})
    assert with_repair_options(user, [repair]).extra_options == {"windowed_kv_cache": True}
    assert with_repair_options(FP32, [repair]).extra_options == repair.options


@pytest.mark.parametrize(
    "content",
    ["", "[]", '"Qwen3_5Tokenizer"', '{"tokenizer_class": 5}', '{"tokenizer_class": "LlamaTokenizer"}'],
    ids=["empty", "a list", "a string", "a number", "another class"],
)
def test_the_tokenizer_class_repair_leaves_anything_else_alone(tmp_path, content):
    (tmp_path / "tokenizer_config.json").write_text(content)
    if content == "":
        with pytest.raises(ValueError):
            _rename_tokenizer_class(tmp_path)
    else:
        _rename_tokenizer_class(tmp_path)
    assert (tmp_path / "tokenizer_config.json").read_text() == content
    _rename_tokenizer_class(tmp_path / "absent")


def test_an_architecture_this_generation_cannot_convert_is_refused_in_one_sentence(checkpoints, tmp_path):
    version = builder_info().version
    source = checkpoints("qwen3_5") if version == "0.14.1" else checkpoints("gemma4")
    out = tmp_path / "out"
    args = ["convert", str(source), "-o", str(out), "--preset", "fp32", "--ep", "cpu"]
    result = refused(args, watch=[source], output=out)
    words = "needs onnxruntime-genai 0.18.0" if version == "0.14.1" else "build it for CUDA"
    assert words in result.line
