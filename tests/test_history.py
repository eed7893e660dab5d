"""The job history: records, their command lines, and the file that keeps them across restarts (no Qt)."""

from __future__ import annotations

import json
import shlex
import sys

import pytest

from app.convert import ConvertRequest, plan_conversion
from app.jobs.history import JobHistory, JobRecord, convert_command, new_record, program_command, read_log_tail


@pytest.fixture
def plan(tmp_path):
    request = ConvertRequest("demo", str(tmp_path / "out"), preset="int4", ep="cpu")
    return plan_conversion(request, {"cpu"}).to_dict()


def test_a_new_record_describes_its_conversion(plan, tmp_path):
    record = new_record(plan, tmp_path / "logs")
    assert record.title == "demo · int4 (cpu)"
    assert (record.model, record.preset, record.ep, record.state) == ("demo", "int4", "cpu", "queued")
    assert record.output == str((tmp_path / "out").resolve())
    assert record.log_path == str(tmp_path / "logs" / f"{record.id}.log")
    assert record.plan == plan


def test_the_command_line_carries_every_choice_but_never_a_token(tmp_path):
    request = ConvertRequest(
        "demo",
        str(tmp_path / "my out"),
        preset="custom",
        ep="cpu",
        overrides={"precision": "int4", "int4_block_size": "64"},
        overwrite=True,
        revision="main",
        check=False,
    )
    plan = plan_conversion(request, {"cpu"}).to_dict()
    plan["request"]["overrides"]["hf_token"] = "hf_secret"  # the planner refuses it; the command drops it anyway
    args = convert_command(plan)
    assert args[:4] == [*program_command("convert"), "demo"]
    assert args[args.index("-o") + 1] == str((tmp_path / "my out").resolve())
    assert args[args.index("--preset") + 1] == "custom" and args[args.index("--ep") + 1] == "cpu"
    assert "precision=int4" in args and "int4_block_size=64" in args
    assert {"--overwrite", "--no-check"} <= set(args) and args[args.index("--revision") + 1] == "main"
    assert not any("secret" in arg or "token" in arg for arg in args)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX shell quoting")
def test_the_command_line_is_quoted_for_a_shell(tmp_path):
    request = ConvertRequest("demo", str(tmp_path / "with space"), preset="int4", ep="cpu")
    record = new_record(plan_conversion(request, {"cpu"}).to_dict(), tmp_path)
    assert str((tmp_path / "with space").resolve()) in shlex.split(record.command_line)


def test_records_survive_a_restart_and_unfinished_ones_come_back_interrupted(plan, tmp_path):
    history = JobHistory(tmp_path / "jobs.json")
    assert history.logs_dir == tmp_path / "logs"
    states = ["succeeded", "running", "queued", "failed"]
    for state in states:
        record = new_record(plan, history.logs_dir)
        record.state = state
        history.add(record)
    ids = [record.id for record in history.records]

    again = JobHistory(tmp_path / "jobs.json")
    assert [record.id for record in again.records] == ids
    assert [record.state for record in again.records] == ["succeeded", "interrupted", "interrupted", "failed"]
    assert "while this job ran" in again.records[1].message
    assert "before this job started" in again.records[2].message
    assert again.records[0].plan == plan


def test_update_saves_and_remove_forgets_jobs_with_their_logs(plan, tmp_path):
    history = JobHistory(tmp_path / "jobs.json")
    record = new_record(plan, history.logs_dir)
    history.add(record)
    history.update(record.id, state="failed", message="it broke")
    assert JobHistory(tmp_path / "jobs.json").get(record.id).message == "it broke"
    history.logs_dir.mkdir()
    (history.logs_dir / f"{record.id}.log").write_text("log\n")
    history.remove({record.id})
    assert JobHistory(tmp_path / "jobs.json").records == []
    assert list(history.logs_dir.iterdir()) == []


def test_saving_replaces_the_file_whole_and_leaves_no_temporary_file(plan, tmp_path):
    history = JobHistory(tmp_path / "jobs.json")
    for _ in range(3):
        history.add(new_record(plan, history.logs_dir))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jobs.json"]
    assert len(json.loads((tmp_path / "jobs.json").read_text())["jobs"]) == 3


def test_an_unreadable_history_is_set_aside_not_lost(tmp_path):
    (tmp_path / "jobs.json").write_text("{ not json")
    assert JobHistory(tmp_path / "jobs.json").records == []
    assert (tmp_path / "jobs.json.unreadable").read_text() == "{ not json"


def test_a_record_ignores_fields_it_does_not_know(plan, tmp_path):
    data = {**new_record(plan, tmp_path).to_dict(), "added_by_a_newer_version": 1}
    assert JobRecord.from_dict(data).plan == plan


def test_the_log_tail_reads_only_the_end_of_a_long_log(tmp_path):
    log = tmp_path / "job.log"
    log.write_text("".join(f"line {i}\n" for i in range(1_000_000)), encoding="utf-8")
    assert read_log_tail(log, 3) == ["line 999997", "line 999998", "line 999999"]
    assert read_log_tail(tmp_path / "missing.log", 3) == []
