"""The worker child, driven the way the CLI and the window drive it: messages, cancel, kill."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import psutil
import pytest

from app.convert import ConvertRequest, plan_conversion
from app.jobs.protocol import Log, Progress
from app.jobs.runner import JobProcess, run_job


def plan_for(source: Path, out: Path, overwrite: bool = False) -> dict:
    request = ConvertRequest(str(source), str(out), preset="int4", ep="cpu", overwrite=overwrite)
    return plan_conversion(request, usable_eps={"cpu"}).to_dict()


def test_a_worker_converts_and_reports_through_the_protocol(checkpoints, tmp_path):
    messages: list = []
    outcome = run_job("convert", plan_for(checkpoints("llama"), tmp_path / "out"), messages.append)
    assert outcome.ok, outcome.message
    assert outcome.result["output"] == str((tmp_path / "out").resolve())
    assert outcome.peak_memory_bytes > 0
    logs = [m.text for m in messages if isinstance(m, Log)]
    assert any(text.startswith("Reading layer 0") for text in logs)
    assert [m.percent for m in messages if isinstance(m, Progress)][-1] == 100


def _start_and_wait_for_layers(plan: dict) -> JobProcess:
    reading_layers = threading.Event()

    def on_message(message) -> None:
        if isinstance(message, Progress) and message.stage == "layers":
            reading_layers.set()

    job = JobProcess("convert", plan, on_message)
    job.start()
    assert reading_layers.wait(timeout=300), "the build never reached its layers"
    return job


def _tree(pid: int) -> list[psutil.Process]:
    try:
        return [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


@pytest.fixture
def bigger_checkpoint(checkpoints):
    # Big enough that the build is still running when the test acts on it.
    return checkpoints("llama", num_layers=12, hidden_size=512)


def test_cancel_mid_build_ends_the_tree_and_leaves_no_output(bigger_checkpoint, tmp_path):
    out = tmp_path / "out"
    job = _start_and_wait_for_layers(plan_for(bigger_checkpoint, out))
    tree = _tree(job.pid)
    job.cancel()
    outcome = job.wait(timeout=10)
    assert outcome.status == "cancelled"
    assert not any(process.is_running() and process.status() != psutil.STATUS_ZOMBIE for process in tree)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(sys.platform == "win32", reason="the OOM killer's SIGKILL is a POSIX signal")
def test_a_worker_killed_by_the_system_is_reported_as_out_of_memory(bigger_checkpoint, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "genai_config.json").write_text("{}")  # an earlier model, which --overwrite may replace
    (out / "model.onnx").write_text("previous")
    job = _start_and_wait_for_layers(plan_for(bigger_checkpoint, out, overwrite=True))
    os.kill(job.pid, signal.SIGKILL)  # what the kernel's OOM killer does
    outcome = job.wait(timeout=10)
    assert outcome.status == "out-of-memory"
    assert "ran out of memory" in outcome.message and "GB" in outcome.message
    # the runner swept the dead worker's staging; the old model was never touched
    assert sorted(p.name for p in out.iterdir()) == ["genai_config.json", "model.onnx"]
    assert (out / "model.onnx").read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
