"""JobRunner: one worker child driven through QProcess, speaking the job protocol (app/jobs/protocol.py)."""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from PySide6.QtCore import (
    QObject,
    QProcess,
    QProcessEnvironment,
    QTimer,
    Signal,
)

from app.jobs.protocol import CANCEL_LINE, Error, LineAssembler, Log, Progress, Result, decode
from app.jobs.runner import (
    CANCEL_GRACE_SECONDS,
    Outcome,
    after_job,
    kill_tree,
    make_outcome,
    process_tree,
    total_rss,
    worker_command,
    worker_env,
)

_MEMORY_POLL_MS = 250
# Listing a process's descendants scans every process on the machine: do it every few polls only.
_TREE_SCAN_EVERY = 4
_STDERR_TAIL = 20


class JobRunner(QObject):
    """One worker child. `finished` is emitted exactly once, also when the child never started, and never
    from inside start(). Every log line is kept (history()) and written to the log file."""

    started = Signal()
    progress = Signal(float, str, str)
    output = Signal(list)
    finished = Signal(object)

    def __init__(
        self,
        job: str,
        spec: dict[str, Any],
        log_path: str | Path | None = None,
        parent: QObject | None = None,
        command: list[str] | None = None,
    ) -> None:
        super().__init__(parent)
        self.job, self.spec = job, spec
        self._command = command or worker_command(job, spec)
        self._log_path = Path(log_path) if log_path else None
        self._log_file: TextIO | None = None
        self._history: list[str] = []
        self._stdout, self._stderr = LineAssembler(), LineAssembler()
        self._result: Result | None = None
        self._error: Error | None = None
        self._stderr_tail: list[str] = []
        self._cancelled = self._done = False
        self._pid: int | None = None
        self._memory_root: Any = None
        self._memory_tree: list[Any] = []
        self._memory_polls = self._peak = 0
        self._started_at = 0.0
        self._process = QProcess(self)
        self._process.started.connect(self._on_started)
        self._process.readyReadStandardOutput.connect(self._read_stdout)
        self._process.readyReadStandardError.connect(self._read_stderr)
        self._process.finished.connect(self._on_finished)
        self._process.errorOccurred.connect(self._on_error)
        self._memory_timer = make_timer(self, _MEMORY_POLL_MS, self._poll_memory)
        self._kill_timer = make_timer(self, int(CANCEL_GRACE_SECONDS * 1000), self._kill, single_shot=True)

    @property
    def pid(self) -> int | None:
        return self._pid

    def history(self) -> list[str]:
        """Every log line so far, for a view opened late."""
        return list(self._history)

    def is_running(self) -> bool:
        return self._process.state() != QProcess.ProcessState.NotRunning

    def start(self) -> None:
        environment = QProcessEnvironment()
        for key, value in worker_env(self.job, self.spec).items():
            environment.insert(key, value)
        self._process.setProcessEnvironment(environment)
        if sys.platform != "win32":
            # Its own session: a terminal's Ctrl+C stays with us, and kill_tree can end the whole group.
            self._process.setUnixProcessParameters(QProcess.UnixProcessFlag.CreateNewSession)
        if self._log_path is not None:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self._log_path, "a", encoding="utf-8")  # noqa: SIM115 - open for the job's life
            self._log_file.write("".join(f"{line}\n" for line in self._history))  # lines logged before start
        self._started_at = time.monotonic()
        self._process.start(self._command[0], self._command[1:])

    def log(self, lines: list[str]) -> None:
        """Add lines to this job's log: its history, its file and the `output` signal."""
        if not lines:
            return
        self._history.extend(lines)
        if self._log_file is not None:
            self._log_file.write("".join(f"{line}\n" for line in lines))
            self._log_file.flush()
        self.output.emit(lines)

    def cancel(self, grace: float = CANCEL_GRACE_SECONDS) -> None:
        """Ask the worker to stop, then kill its process tree if it is still there after `grace` seconds."""
        if self._cancelled or not self.is_running():
            return
        self._cancelled = True
        self._process.write(CANCEL_LINE.encode())
        self._kill_timer.start(int(grace * 1000))

    def stop_now(self, grace: float = CANCEL_GRACE_SECONDS) -> None:
        """Cancel and wait for the end, blocking: for quitting, when no event loop is left to wait in."""
        self.cancel(grace)
        if self.is_running() and not self._process.waitForFinished(int(grace * 1000)):
            self._kill()
            self._process.waitForFinished(5000)

    def _on_started(self) -> None:
        import psutil

        self._pid = self._process.processId()
        with contextlib.suppress(psutil.Error):
            self._memory_root = psutil.Process(self._pid)
        self._memory_timer.start()
        self.started.emit()

    def _poll_memory(self) -> None:
        if self._memory_root is None:
            return
        if self._memory_polls % _TREE_SCAN_EVERY == 0:
            self._memory_tree = process_tree(self._memory_root)
        self._memory_polls += 1
        self._peak = max(self._peak, total_rss(self._memory_tree))

    def _read_stdout(self, final: bool = False) -> None:
        lines = self._stdout.feed(self._process.readAllStandardOutput().data())
        self._handle_stdout([*lines, *self._stdout.flush()] if final else lines)

    def _read_stderr(self, final: bool = False) -> None:
        lines = self._stderr.feed(self._process.readAllStandardError().data())
        self._handle_stderr([*lines, *self._stderr.flush()] if final else lines)

    def _handle_stdout(self, lines: list[str]) -> None:
        logs: list[str] = []
        latest: Progress | None = None
        for line in lines:
            message = decode(line)
            if isinstance(message, Log):
                logs.append(message.text)
            elif isinstance(message, Progress):
                latest = message  # one bar update per read is all a person can see
            elif isinstance(message, Result):
                self._result = message
            elif isinstance(message, Error):
                self._error = message
                logs.extend(message.details.splitlines())
        self.log(logs)
        if latest is not None:
            self.progress.emit(float(latest.percent), latest.stage, latest.detail)

    def _handle_stderr(self, lines: list[str]) -> None:
        self._stderr_tail = [*self._stderr_tail, *lines][-_STDERR_TAIL:]
        self.log(lines)

    def _kill(self) -> None:
        if self._pid is not None and self.is_running():
            kill_tree(self._pid, wait=False)  # QProcess reaps its own child

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error != QProcess.ProcessError.FailedToStart:
            return  # a crash also ends in `finished`, which reports it
        outcome = Outcome("did-not-start", None, message=f"the worker could not start: {self._process.errorString()}")
        after_job(self.job, self.spec)  # its spec file
        QTimer.singleShot(0, self, lambda: self._finish(outcome))

    def _on_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        self._memory_timer.stop()
        self._kill_timer.stop()
        self._poll_memory()
        self._read_stdout(final=True)
        self._read_stderr(final=True)
        if self._pid is not None:
            kill_tree(self._pid, wait=False)  # anything the worker started and left behind
        crashed = status == QProcess.ExitStatus.CrashExit and sys.platform != "win32"
        exit_code = -code if crashed else code  # a POSIX signal, as subprocess reports it
        outcome = make_outcome(
            exit_code,
            cancelled=self._cancelled,
            placed=after_job(self.job, self.spec),  # also sweeps this job's staging if it did not succeed
            result=self._result,
            error=self._error,
            peak=self._peak,
            seconds=time.monotonic() - self._started_at,
            stderr_tail=self._stderr_tail,
            pid=self._pid,
        )
        self._finish(outcome)

    def _finish(self, outcome: Outcome) -> None:
        if self._done:
            return
        self._done = True
        said = outcome.message not in ("", outcome.status)
        ending = f"{outcome.status}: {outcome.message}" if said else outcome.status
        self.log([f"--- {ending} ({outcome.seconds:.1f} s)", *([f"note: {outcome.note}"] if outcome.note else [])])
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        self.finished.emit(outcome)


def make_timer(parent: QObject, interval_ms: int, slot: Any, single_shot: bool = False) -> QTimer:
    timer = QTimer(parent)
    timer.setInterval(interval_ms)
    timer.setSingleShot(single_shot)
    timer.timeout.connect(slot)
    return timer
