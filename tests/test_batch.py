"""A batch of presets from one checkpoint (app/batch.py): one worker, the weights loaded once, float tensors made
once, identical builds copied; every output equal to what a conversion of that preset alone makes."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from app.batch import BATCH_JOB, batch_spec, batches, outcomes, run_batch, same_build
from app.convert import ConvertPlan, ConvertRequest, plan_conversion, run_conversion
from app.jobs.protocol import Progress
from app.jobs.runner import JobProcess
from app.presets import resolve
from app.staging import STAGING_PREFIX

PRESETS = ("fp32", "int4", "uint4", "int4-int8")


def plans_for(source: Path | str, out: Path, presets=PRESETS, check=False, overrides=None) -> list[ConvertPlan]:
    overrides = overrides or {}
    return [
        plan_conversion(
            ConvertRequest(
                str(source),
                str(out / preset),
                preset=preset,
                ep="cpu",
                check=check,
                overrides=overrides.get(preset, {}),
            ),
            {"cpu"},
        )
        for preset in presets
    ]


def model_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != "forge.json"}


def staging_left(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(STAGING_PREFIX)]


@pytest.mark.parametrize(
    ("arch", "kwargs"),
    [
        ("llama", {}),
        ("llama", {"tie_word_embeddings": True}),  # the INT4 embedding reads the quantized LM head
        ("phi3", {}),  # the builder unpacks the fused QKV and gate/up modules of the shared PyTorch model
        ("gemma", {}),  # tied, scaled embeddings and norms with an offset
        ("qwen3", {}),
    ],
)
def test_batch_outputs_equal_separate_conversions_file_by_file(checkpoints, tmp_path, arch, kwargs):
    source = checkpoints(arch, **kwargs)
    result = run_batch(batch_spec(plans_for(source, tmp_path / "batch")), lambda message: None)
    assert [entry["status"] for entry in result["outputs"]] == ["succeeded"] * len(PRESETS), result
    for plan in plans_for(source, tmp_path / "alone"):
        run_conversion(plan, lambda message: None)
    for preset in PRESETS:
        batch, alone = tmp_path / "batch" / preset, tmp_path / "alone" / preset
        assert model_files(batch) == model_files(alone), preset
        batch_record, alone_record = (json.loads((f / "forge.json").read_text()) for f in (batch, alone))
        for key in ("preset", "options", "builder_command", "files", "repairs"):
            assert batch_record[key] == alone_record[key], (preset, key)
        assert "batch" not in alone_record
    records = {p: json.loads((tmp_path / "batch" / p / "forge.json").read_text())["batch"] for p in PRESETS}
    assert records["fp32"]["shared"]["weights"] == "loaded by this build"
    assert records["int4"]["shared"]["weights"] == "loaded by an earlier build of this batch"
    assert records["int4"]["shared"]["float_tensors_reused"] > 0
    # On the CPU the builder's default accuracy level is the 4 that INT4+INT8 asks for: one build, copied.
    assert records["int4-int8"]["copied_from"]["preset"] == "int4"
    assert staging_left(tmp_path / "batch") == []


def test_the_demo_batch_checks_each_output_and_says_what_it_shared(tmp_path):
    plans = plans_for("demo", tmp_path, presets=("fp32", "int4", "int4-int8"), check=True)
    logs: list[str] = []
    result = run_batch(batch_spec(plans), lambda message: logs.append(getattr(message, "text", "")))
    assert [entry["manifest"]["check"]["verdict"] for entry in result["outputs"]] == ["ran"] * 3
    assert "int4-int8: the builder makes the same model as int4 here; copied" in logs
    assert any(line.startswith("int4: weights reused;") for line in logs)


def test_same_build_is_the_builders_own_reading_of_the_options():
    assert same_build(resolve("int4", "cpu"), resolve("int4-int8", "cpu"))
    assert not same_build(resolve("int4", "cuda"), resolve("int4-int8", "cuda"))  # level 0 against 4 on a GPU
    assert not same_build(resolve("int4", "cpu"), resolve("uint4", "cpu"))
    assert not same_build(resolve("int4", "cpu"), resolve("int4", "cpu", {"block_size": "64"}))
    assert not same_build(resolve("fp32", "cpu"), resolve("int4", "cpu"))


def test_plans_of_one_local_checkpoint_form_one_batch_and_hub_ids_run_alone(checkpoints, tmp_path):
    other = checkpoints("qwen3")
    demo_plans = plans_for("demo", tmp_path / "demo", presets=("fp32", "int4"))
    other_plans = plans_for(other, tmp_path / "other", presets=("int4",))
    hub = plan_conversion(ConvertRequest("org/model", str(tmp_path / "hub"), preset="int4", ep="cpu"), {"cpu"})
    groups = batches([demo_plans[0], other_plans[0], hub, demo_plans[1]])
    assert [[plan.request.output for plan in group] for group in groups] == [
        [demo_plans[0].request.output, demo_plans[1].request.output],
        [other_plans[0].request.output],
        [hub.request.output],
    ]


def test_a_failing_preset_leaves_the_others_in_place_and_no_staging(checkpoints, tmp_path):
    # num_blocks without paged attention passes the plan (it is a builder option) and the builder refuses it.
    plans = plans_for(
        checkpoints("llama"), tmp_path, presets=("fp32", "int4", "int4-int8"), overrides={"int4": {"num_blocks": "4"}}
    )
    result = run_batch(batch_spec(plans), lambda message: None)
    statuses = {entry["preset"]: entry["status"] for entry in result["outputs"]}
    assert statuses == {"fp32": "succeeded", "int4": "failed", "int4-int8": "succeeded"}
    failed = next(entry for entry in result["outputs"] if entry["status"] == "failed")
    assert "num_blocks" in failed["error"] and failed["kind"] == "InternalError"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fp32", "int4-int8"]
    record = json.loads((tmp_path / "int4-int8" / "forge.json").read_text())
    assert "copied_from" not in record["batch"]  # the INT4 it could have copied never got built
    assert record["batch"]["shared"]["weights"] == "loaded by an earlier build of this batch"


def test_cancelling_a_batch_keeps_the_presets_in_place_and_removes_the_rest(checkpoints, tmp_path):
    plans = plans_for(checkpoints("llama", hidden_size=128, num_layers=4), tmp_path, presets=("fp32", "int4", "uint4"))
    second_started = threading.Event()

    def on_message(message) -> None:
        if isinstance(message, Progress) and message.stage == "starting" and "(2 of 3)" in message.detail:
            second_started.set()

    process = JobProcess(BATCH_JOB, batch_spec(plans), on_message)
    process.start()
    assert second_started.wait(timeout=300), "the batch never reached its second preset"
    process.cancel()
    rows = outcomes(plans, process.wait(timeout=60))
    assert [outcome.status for _, outcome in rows][0] == "succeeded"
    assert rows[-1][1].status == "cancelled"
    for plan, outcome in rows:
        in_place = (Path(plan.request.output) / "forge.json").is_file()
        assert in_place == (outcome.status == "succeeded"), plan.options.preset
        assert in_place or not Path(plan.request.output).exists()
    assert staging_left(tmp_path) == []
