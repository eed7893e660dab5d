"""The Jobs pane with real worker children: a conversion, a cancel, history across restarts, the command
line of a job, and a window that stays responsive while a conversion floods the log."""

from __future__ import annotations

import itertools
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from PySide6.QtCore import QTimer
from PySide6.QtGui import QGuiApplication

from app.convert import ConvertPlan, ConvertRequest, plan_conversion
from app.jobs.history import JobHistory, format_command, new_record, program_command
from app.paths import demo_checkpoint
from ui.job_runner import JobRunner
from ui.jobs import JobsPane
from ui.widgets.log_view import LogView

CONVERSION_TIMEOUT_MS = 180_000


def demo_plan(out: Path) -> ConvertPlan:
    return plan_conversion(ConvertRequest(str(demo_checkpoint()), str(out), preset="int4", ep="cpu"), {"cpu"})


@pytest.fixture
def pane(qtbot):
    widget = JobsPane()
    qtbot.addWidget(widget)
    widget.resize(900, 600)
    widget.show()
    yield widget
    if widget.has_running():
        with qtbot.waitSignal(widget.job_finished, timeout=30_000):
            widget.cancel_all()


def log_text(pane: JobsPane) -> str:
    pane.log_view.flush()
    return pane.log_view.toPlainText()


def test_a_conversion_runs_to_the_end_with_its_log_on_screen_and_on_disk(qtbot, pane, tmp_path):
    percents: list[float] = []
    job_id = pane.enqueue(demo_plan(tmp_path / "out"))
    pane.current_runner().progress.connect(lambda percent, stage, detail: percents.append(percent))
    assert pane.has_running()
    with qtbot.waitSignal(pane.job_finished, timeout=CONVERSION_TIMEOUT_MS) as finished:
        pass
    assert finished.args[:2] == [job_id, "succeeded"]
    assert finished.args[2] == str((tmp_path / "out").resolve())
    assert percents[-1] == 100
    assert not pane.has_running()
    assert "Reading layer 0" in log_text(pane)
    record = JobHistory().get(job_id)
    assert record.state == "succeeded" and record.progress == 100 and record.seconds > 0
    log = Path(record.log_path).read_text(encoding="utf-8")
    assert log.startswith(f"$ {record.command_line}\n") and "Reading layer 0" in log
    assert (tmp_path / "out" / "forge.json").is_file()
    assert pane.open_output_action.isEnabled() and not pane.retry_action.isEnabled()


def test_cancel_mid_build_leaves_no_output_no_staging_and_no_process(qtbot, pane, tmp_path):
    from tests.checkpoint_factory import make_checkpoint

    checkpoint = make_checkpoint("llama", tmp_path / "ck", num_layers=12, hidden_size=512)
    out = tmp_path / "out"
    plan = plan_conversion(ConvertRequest(str(checkpoint), str(out), preset="int4", ep="cpu"), {"cpu"})
    job_id = pane.enqueue(plan)
    runner = pane.current_runner()
    with qtbot.waitSignal(runner.progress, timeout=CONVERSION_TIMEOUT_MS, check_params_cb=lambda *a: a[1] == "layers"):
        pass
    tree = [psutil.Process(runner.pid), *psutil.Process(runner.pid).children(recursive=True)]
    with qtbot.waitSignal(pane.job_finished, timeout=30_000) as finished:
        pane.cancel_action.trigger()  # the running job is the one selected
    assert finished.args[:2] == [job_id, "cancelled"]
    assert not out.exists()
    assert list(tmp_path.glob(".forge-staging-*")) == []
    qtbot.waitUntil(lambda: not any(_alive(process) for process in tree), timeout=5000)
    assert "cancelled" in Path(JobHistory().get(job_id).log_path).read_text(encoding="utf-8")


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_history_survives_a_restart_and_a_job_that_was_running_comes_back_interrupted(qtbot, tmp_path):
    history = JobHistory()
    done = new_record(demo_plan(tmp_path / "a").to_dict(), history.logs_dir)
    done.state, done.seconds = "succeeded", 7.0
    running = new_record(demo_plan(tmp_path / "b").to_dict(), history.logs_dir)
    running.state, running.started = "running", time.time()
    history.add(done)
    history.add(running)
    history.logs_dir.mkdir(parents=True)
    Path(done.log_path).write_text("Reading layer 0\nall done\n", encoding="utf-8")

    pane = JobsPane(JobHistory())
    qtbot.addWidget(pane)
    model = pane._table.model()
    states = [model.index(row, 2).data() for row in range(model.rowCount())]
    assert states == ["succeeded", "interrupted"]
    assert not pane.has_running()
    pane.select(done.id)
    assert log_text(pane) == "Reading layer 0\nall done"  # replayed from the log file
    pane.select(running.id)
    assert pane.retry_action.isEnabled() and pane.copy_command_action.isEnabled()
    pane.clear_finished_action.trigger()
    assert model.rowCount() == 0 and JobHistory().records == []


def test_the_command_line_is_copied_for_the_shell_chosen_in_the_buttons_menu(qtbot, tmp_path):
    history = JobHistory()
    record = new_record(demo_plan(tmp_path / "R&D").to_dict(), history.logs_dir)
    record.command_args.append("two\nlines")
    record.state = "failed"
    history.add(record)
    pane = JobsPane(JobHistory())
    qtbot.addWidget(pane)
    pane.select(record.id)
    copied = {}
    for action in pane.copy_for_shell_menu.actions():
        QGuiApplication.clipboard().setText("before")
        action.trigger()
        copied[action.text()] = QGuiApplication.clipboard().text()
    assert shlex.split(copied["Copy for a POSIX shell (bash, zsh)"]) == record.command_args
    assert f"'{(tmp_path / 'R&D').resolve()}'" in copied["Copy for PowerShell"]
    assert copied["Copy for Command Prompt (cmd.exe)"] == "before"  # cmd.exe cannot carry the line break
    assert "cannot copy the command: cmd.exe cannot take an argument with a line break" in pane._status.text()
    pane.copy_command_action.trigger()
    assert QGuiApplication.clipboard().text() == format_command(record.command_args)


def test_a_jobs_command_line_runs_the_same_conversion_from_a_terminal(tmp_path):
    plan = plan_conversion(
        ConvertRequest("demo", str(tmp_path / "first"), preset="custom", ep="cpu", overrides={"precision": "fp32"}),
        {"cpu"},
    )
    record = new_record(plan.to_dict(), tmp_path / "logs")
    args = shlex.split(record.command_line)
    assert args[:3] == program_command("convert") and args == record.command_args
    args[args.index("-o") + 1] = str(tmp_path / "again")
    result = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=tmp_path)  # as pasted, anywhere
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "again" / "forge.json").read_text())
    assert manifest["source"]["kind"] == "demo"
    assert manifest["options"] == plan.options.to_dict()


def test_a_conversion_that_floods_the_log_keeps_every_line_on_disk_and_a_capped_view(qtbot, pane, tmp_path):
    # The worst timer gap is printed, not asserted: times belong in bench/ (this machine is noisy); it was
    # 27-42 ms against a 100 ms target when measured.
    ticks: list[float] = []
    clock = QTimer()
    clock.setInterval(10)
    clock.timeout.connect(lambda: ticks.append(time.perf_counter()))
    sent = 0

    def flood() -> None:
        nonlocal sent
        runner = pane.current_runner()
        if runner is None or sent >= 20_000:
            return
        runner.log([f"flood line {sent + i} " + "x" * 80 for i in range(250)])
        sent += 250

    flooder = QTimer()
    flooder.setInterval(5)
    flooder.timeout.connect(flood)

    job_id = pane.enqueue(demo_plan(tmp_path / "out"))
    clock.start()
    flooder.start()
    with qtbot.waitSignal(pane.job_finished, timeout=CONVERSION_TIMEOUT_MS) as finished:
        pass
    clock.stop()
    flooder.stop()
    assert finished.args[:2] == [job_id, "succeeded"]
    assert sent == 20_000
    gap = max(later - earlier for earlier, later in itertools.pairwise(ticks))
    print(f"worst timer gap: {gap * 1000:.0f} ms over {len(ticks)} ticks")
    pane.log_view.flush()
    assert pane.log_view.blockCount() <= pane.log_view.max_lines()
    assert "flood line 19999" in Path(JobHistory().get(job_id).log_path).read_text(encoding="utf-8")


def test_the_log_view_keeps_only_its_newest_lines(qtbot):
    view = LogView(max_lines=100)
    qtbot.addWidget(view)
    for start in range(0, 300, 10):  # a trickle: the view holds exactly the newest 100
        view.append_lines([f"line {i}" for i in range(start, start + 10)])
        view.flush()
    assert view.toPlainText().splitlines() == [f"line {i}" for i in range(200, 300)]
    view.append_lines([f"flood {i}" for i in range(10_000)])  # a flood: never more than the cap, newest last
    view.flush()
    lines = view.toPlainText().splitlines()
    assert view.blockCount() <= 100 and lines == [f"flood {i}" for i in range(10_000 - len(lines), 10_000)]


def test_the_log_view_follows_the_tail_only_while_the_reader_is_at_the_bottom(qtbot):
    view = LogView(max_lines=1000)
    qtbot.addWidget(view)
    view.resize(400, 200)
    view.show()
    view.set_lines([f"line {i}" for i in range(900)])
    bar = view.verticalScrollBar()
    assert bar.value() == bar.maximum() > 0
    view.append_lines(["line 900"])
    view.flush()
    assert bar.value() == bar.maximum()
    bar.setValue(200)
    view.append_lines([f"line {i}" for i in range(901, 1051)])  # the cap drops 51 lines from the top
    view.flush()
    assert view.cursorForPosition(view.viewport().rect().topLeft()).block().text() == "line 200"
    view.close()


def test_a_runner_whose_worker_cannot_start_finishes_once(qtbot, tmp_path):
    runner = JobRunner("convert", {}, tmp_path / "x.log", command=[str(tmp_path / "no-such-program")])
    outcomes: list = []
    runner.finished.connect(outcomes.append)
    with qtbot.waitSignal(runner.finished, timeout=5000):
        runner.start()
    qtbot.wait(50)
    assert [outcome.status for outcome in outcomes] == ["did-not-start"]


@pytest.mark.skipif(sys.platform == "win32", reason="the OOM killer's SIGKILL is a POSIX signal")
def test_a_worker_killed_by_the_system_is_reported_as_out_of_memory(qtbot, tmp_path):
    script = (
        "import json, os, signal, sys\n"
        "print(json.dumps({'type': 'progress', 'percent': 5, 'stage': 'loading'}), flush=True)\n"
        "print('half a line\\rwhole line', file=sys.stderr, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    runner = JobRunner("convert", {}, tmp_path / "x.log", command=[sys.executable, "-c", script])
    with qtbot.waitSignal(runner.finished, timeout=10_000) as finished:
        runner.start()
    outcome = finished.args[0]
    assert outcome.status == "out-of-memory" and "ran out of memory" in outcome.message
    assert "whole line" in runner.history() and "half a line" not in "\n".join(runner.history())


def test_stopping_at_quit_ends_a_worker_that_ignores_cancel_and_what_it_started(qtbot, tmp_path):
    script = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, file=sys.stderr, flush=True)\n"
        "time.sleep(60)\n"
    )
    runner = JobRunner("convert", {}, tmp_path / "x.log", command=[sys.executable, "-c", script])
    outcomes: list = []
    runner.finished.connect(outcomes.append)
    runner.start()
    qtbot.waitUntil(lambda: runner.history() != [], timeout=10_000)
    grandchild = psutil.Process(int(runner.history()[0]))
    runner.stop_now(grace=0.2)  # blocking: no event loop needed
    assert [outcome.status for outcome in outcomes] == ["cancelled"]
    qtbot.waitUntil(lambda: not _alive(grandchild), timeout=5000)
