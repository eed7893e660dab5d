"""Bad input: one `error:` line on stderr, exit code 2, and nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_main


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_refused(result, *words: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0]


def _broken(kind: str, folder: Path) -> None:
    if kind == "config not json":
        (folder / "config.json").write_text("{ this is not json")
    elif kind == "unsupported architecture":
        config = json.loads((folder / "config.json").read_text())
        config["architectures"] = ["BertForMaskedLM"]
        (folder / "config.json").write_text(json.dumps(config))
    elif kind == "weights cut short":
        weights = folder / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:-1000])
    elif kind == "no weight files":
        (folder / "model.safetensors").unlink()
    elif kind == "no tokenizer":
        (folder / "tokenizer.json").unlink()


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("config not json", ["not valid JSON"]),
        ("unsupported architecture", ["cannot convert BertForMaskedLM", "Llama, "]),
        ("weights cut short", ["cut short"]),
        ("no weight files", ["no weight files"]),
        ("no tokenizer", ["no tokenizer"]),
    ],
)
def test_broken_checkpoints_are_refused(kind, words, checkpoints, copy_of, tmp_path):
    source = copy_of(checkpoints("llama"))
    _broken(kind, source)
    before = snapshot(source)
    out = tmp_path / "out"
    assert_refused(run_main("convert", str(source), "-o", str(out), "--preset", "int4"), *words)
    assert not out.exists()
    assert snapshot(source) == before
    assert not list(tmp_path.glob(".forge-staging-*"))


def test_missing_path_file_and_empty_folder_are_refused(tmp_path):
    out = tmp_path / "out"
    assert_refused(run_main("convert", str(tmp_path / "nowhere"), "-o", str(out)), "does not exist")
    a_file = tmp_path / "weights.bin"
    a_file.write_bytes(b"x")
    assert_refused(run_main("convert", str(a_file), "-o", str(out)), "is a file")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_refused(run_main("convert", str(empty), "-o", str(out)), "is empty")
    assert_refused(run_main("inspect", str(empty)), "is empty")
    assert not out.exists()


def test_a_non_empty_output_is_kept_unless_overwrite(checkpoints, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("mine")
    assert_refused(run_main("convert", str(checkpoints("llama")), "-o", str(out)), "not empty", "--overwrite")
    assert snapshot(out) == {"precious.txt": b"mine"}


def test_output_inside_source_and_source_inside_output_are_refused(checkpoints, copy_of, tmp_path):
    source = copy_of(checkpoints("llama"))
    before = snapshot(source)
    assert_refused(run_main("convert", str(source), "-o", str(source / "onnx")), "inside the source")
    assert snapshot(source) == before
    assert_refused(run_main("convert", str(source), "-o", str(source.parent), "--overwrite"), "inside the output")


def test_bad_preset_provider_and_options_are_refused(checkpoints, tmp_path):
    source, out = str(checkpoints("llama")), str(tmp_path / "out")
    assert_refused(run_main("convert", source, "-o", out, "--preset", "int5"), "unknown preset")
    assert_refused(run_main("convert", source, "-o", out, "--preset", "fp16", "--ep", "cpu"), "pick")
    assert_refused(run_main("convert", source, "-o", out, "--set", "int4_block_size=48"), "block_size takes one of")
    assert_refused(run_main("convert", source, "-o", out, "--set", "nonsense"), "KEY=VALUE")
    assert not Path(out).exists()
