"""A checkpoint's own code never runs unless the user says --trust-remote-code, even when something answers
transformers' "run the custom code? [y/N]" prompt on stdin.

Each case plants a canary (tests/hostile/contract.py: an auto_map module and a malicious pickle that write a file
when anything runs them), feeds "y" to the child's stdin, and checks both the outcome and the canary.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from app.paths import demo_checkpoint
from tests.hostile.contract import CANARY_MODULE, plant_canary, refused, run_main

YES = "y\n" * 8


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory) -> Path:
    """The demo built at FP32 for the CPU by the builder itself (no forge.json: a folder we did not make)."""
    from app.presets import BuildOptions
    from app.repairs import call_builder

    root = tmp_path_factory.mktemp("remote-code-model")
    call_builder(demo_checkpoint(), root / "model", root / "cache", BuildOptions("fp32", "fp32", "cpu"), False)
    return root / "model"


def canary_checkpoint(root: Path, *, model_type: str | None = None, custom_tokenizer: bool = False) -> Path:
    """The demo's weights with a canary planted; model_type replaces llama's (one transformers does not know makes
    the checkpoint loadable only through its code); custom_tokenizer points AutoTokenizer at the module too."""
    folder = Path(shutil.copytree(demo_checkpoint(), root / "checkpoint"))
    plant_canary(folder, root / "canary")
    config = json.loads((folder / "config.json").read_text())
    if model_type:
        config |= {"model_type": model_type, "architectures": ["CanaryModel"]}
    (folder / "config.json").write_text(json.dumps(config))
    if custom_tokenizer:
        tokenizer_config = {
            "tokenizer_class": "CanaryTokenizer",
            "auto_map": {"AutoTokenizer": [None, f"{CANARY_MODULE}.CanaryTokenizer"]},
        }
        (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    return folder


@pytest.fixture
def isolated_modules(tmp_path, monkeypatch) -> dict[str, str]:
    """transformers copies trusted code into HF_MODULES_CACHE: keep that inside the test's folder."""
    return {"HF_MODULES_CACHE": str(tmp_path / "modules"), "FORGE_HOME": str(tmp_path / "home")}


def test_eval_against_a_code_only_checkpoint_is_refused_even_when_stdin_says_yes(
    onnx_model, tmp_path, isolated_modules
):
    checkpoint = canary_checkpoint(tmp_path, model_type="canarylm")
    refusal = refused(
        ["eval", str(onnx_model), "--against", str(checkpoint), "--max-tokens", "64"],
        watch=[checkpoint, onnx_model],
        canary=tmp_path / "canary",
        env=isolated_modules,
        stdin=YES,
    )
    assert "own Python code" in refusal.line and "--trust-remote-code" in refusal.line


def test_eval_against_a_checkpoint_with_a_custom_tokenizer_never_runs_it(onnx_model, tmp_path, isolated_modules):
    # model_type stays llama: transformers loads the model with its own class, and the tokenizer's auto_map (the
    # prompt's other way in) is declined, so the ONNX model's ids are used and the note says so.
    checkpoint = canary_checkpoint(tmp_path, custom_tokenizer=True)
    result, left = run_main(
        ["eval", str(onnx_model), "--against", str(checkpoint), "--max-tokens", "64", "--json"],
        env=isolated_modules,
        stdin=YES,
    )
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "canary").exists() and not left
    figures = json.loads(result.stdout)
    assert figures["top1_agreement"] > 0.99 and "no tokenizer transformers can load" in figures["tokenization_note"]


def test_eval_against_with_trust_remote_code_does_run_it(onnx_model, tmp_path, isolated_modules):
    # The control: the canary really detects code that runs. The planted classes are not a model, so the load
    # then fails, in one sentence.
    checkpoint = canary_checkpoint(tmp_path, model_type="canarylm")
    result, _left = run_main(
        ["eval", str(onnx_model), "--against", str(checkpoint), "--max-tokens", "64", "--trust-remote-code"],
        env=isolated_modules,
    )
    assert (tmp_path / "canary").exists()
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("case", ["code-only model", "custom tokenizer"])
def test_the_reports_drift_step_never_runs_the_checkpoints_code(onnx_model, tmp_path, isolated_modules, case):
    checkpoint = canary_checkpoint(
        tmp_path, model_type="canarylm" if case == "code-only model" else None, custom_tokenizer=True
    )
    model = Path(shutil.copytree(onnx_model, tmp_path / "model"))
    # What a conversion records: the report measures drift against the checkpoint named here.
    (model / "forge.json").write_text(json.dumps({"format": 1, "source": {"kind": "folder", "path": str(checkpoint)}}))
    result, left = run_main(
        ["report", str(model), "--max-tokens", "64", "--repeats", "1", "--json"],
        env=isolated_modules,
        stdin=YES,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "canary").exists() and not left
    row = json.loads(result.stdout)["rows"][0]
    assert row["perplexity"] > 1
    if case == "code-only model":
        assert row["top1_agreement"] is None and "loads only through its own Python code" in result.stderr
    else:
        assert row["top1_agreement"] > 0.99


def test_inspect_never_runs_the_checkpoints_code(tmp_path, isolated_modules):
    checkpoint = canary_checkpoint(tmp_path, model_type="canarylm", custom_tokenizer=True)
    result, left = run_main(["inspect", str(checkpoint), "--json"], env=isolated_modules, stdin=YES)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["needs_remote_code"] is True
    assert not (tmp_path / "canary").exists() and not left


def test_convert_of_a_code_only_checkpoint_is_refused_and_never_runs_it(tmp_path, isolated_modules):
    checkpoint = canary_checkpoint(tmp_path, model_type="canarylm", custom_tokenizer=True)
    refusal = refused(
        ["convert", str(checkpoint), "-o", str(tmp_path / "out"), "--ep", "cpu"],
        watch=[checkpoint],
        output=tmp_path / "out",
        canary=tmp_path / "canary",
        env=isolated_modules,
        stdin=YES,
    )
    assert "--trust-remote-code" in refusal.line
