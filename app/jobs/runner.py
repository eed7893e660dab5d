"""Running a worker child from the parent (CLI or window), with no Qt: start, read, cancel, kill.

The child is started in its own process group/session so a terminal's Ctrl+C reaches only the parent,
which then cancels deliberately: a "cancel" line first, then the whole process tree is killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .protocol import CANCEL_LINE, Error, LineAssembler, Log, Message, Result, decode

if TYPE_CHECKING:
    import psutil

CANCEL_GRACE_SECONDS = 1.0
_MEMORY_POLL_SECONDS = 0.2


def worker_env(job: str, spec: dict[str, Any], extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a worker runs in, for every parent: unbuffered UTF-8 output, and no Hub access unless the
    job may need it, so a local path that is missing fails as missing instead of turning into a Hub lookup."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}
    if not _may_use_hub(job, spec):
        env["HF_HUB_OFFLINE"] = "1"
    return {**env, **(extra or {})}


def _may_use_hub(job: str, spec: dict[str, Any]) -> bool:
    """A download, a conversion of a hub id, and a quantization (it may calibrate on a Hub dataset)."""
    if job == "convert":
        return not spec.get("source_path")
    return job in ("download", "quantize")


def app_command(*args: str) -> list[str]:
    """The command that re-launches this program with `args`: when frozen, sys.executable is the app itself
    (the very .exe that is running, windowed or console) and there is no script to name."""
    if getattr(sys, "frozen", False):
        return [sys.executable, *args]
    main_py = Path(__file__).resolve().parents[2] / "main.py"
    return [sys.executable, str(main_py), *args]


def worker_command(job: str, spec: dict[str, Any]) -> list[str]:
    """The worker's command line; the spec travels in a private file (`@path`), which the worker deletes once read:
    a spec can be larger than the system's limit on a command line."""
    from ..staging import write_spec

    return app_command("worker", job, f"@{write_spec(spec)}")


def job_target(job: str, spec: dict[str, Any]) -> tuple[str, str] | None:
    """(output folder, job id) of a job that makes a model, so its end can be read off the disk."""
    request = spec.get("request", spec) if job == "convert" else spec
    if job not in ("convert", "quantize") or not isinstance(request, dict) or not request.get("output"):
        return None
    return str(Path(request["output"]).expanduser()), str(request.get("job_id", ""))


def after_job(job: str, spec: dict[str, Any]) -> dict[str, Any] | None:
    """Once a worker is gone: sweep what dead jobs left (this one's staging among them) and, if this job put its
    model in place, the result it would have reported: {"output", "manifest"}."""
    from .. import staging

    target = job_target(job, spec)
    if target is None:
        staging.sweep()
        return None
    output = Path(target[0]).resolve()
    staging.sweep(output)
    record = staging.placed(output, target[1])
    return {"output": str(output), "manifest": record} if record else None


@dataclass
class Outcome:
    status: str
    """succeeded, failed, cancelled, out-of-memory, crashed or did-not-start."""
    exit_code: int | None
    message: str = ""
    result: dict[str, Any] | None = None
    error: Error | None = None
    peak_memory_bytes: int = 0
    seconds: float = 0.0
    note: str = ""
    """What did not finish after the model was in place (a cancelled or failed --report step)."""
    stderr_tail: list[str] = field(default_factory=list)
    pid: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


class JobProcess:
    """One worker child. on_message is called from reader threads, in order for stdout."""

    def __init__(
        self, job: str, spec: dict[str, Any], on_message: Callable[[Message], None], env: dict[str, str] | None = None
    ) -> None:
        self.job = job
        self._spec = spec
        self.command = worker_command(job, spec)
        self._on_message = on_message
        self._env = worker_env(job, spec, env)
        self._process: subprocess.Popen[bytes] | None = None
        self._result: Result | None = None
        self._error: Error | None = None
        self._cancelled = False
        self._peak = 0
        self._stderr_tail: list[str] = []
        self._threads: list[threading.Thread] = []
        self._started = 0.0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> None:
        flags: dict[str, Any] = {}
        if sys.platform == "win32":
            flags["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW
        else:
            flags["start_new_session"] = True
        self._started = time.monotonic()
        self._process = subprocess.Popen(
            self.command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self._env,
            **flags,
        )
        self._threads = [
            threading.Thread(target=self._read, args=(self._process.stdout, True), daemon=True),
            threading.Thread(target=self._read, args=(self._process.stderr, False), daemon=True),
            threading.Thread(target=self._watch_memory, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read(self, pipe: Any, protocol: bool) -> None:
        assembler = LineAssembler()
        for chunk in iter(lambda: pipe.read1(65536), b""):
            for line in assembler.feed(chunk):
                self._handle(decode(line) if protocol else Log(line, "stderr"))
        for line in assembler.flush():
            self._handle(decode(line) if protocol else Log(line, "stderr"))

    def _handle(self, message: Message) -> None:
        if isinstance(message, Result):
            self._result = message
        elif isinstance(message, Error):
            self._error = message
        elif isinstance(message, Log) and message.stream == "stderr":
            self._stderr_tail = [*self._stderr_tail[-19:], message.text]
        self._on_message(message)

    def _watch_memory(self) -> None:
        import psutil

        try:
            root = psutil.Process(self._process.pid)
        except psutil.Error:
            return
        while self._process.poll() is None:
            self._peak = max(self._peak, tree_rss(root))
            time.sleep(_MEMORY_POLL_SECONDS)

    def cancel(self, grace: float = CANCEL_GRACE_SECONDS) -> None:
        """Ask the child to stop, then kill its whole process tree if it is still there after `grace`."""
        if self._process is None or self._process.poll() is not None:
            return
        self._cancelled = True
        try:
            self._process.stdin.write(CANCEL_LINE.encode())
            self._process.stdin.flush()
        except OSError:
            pass
        try:
            self._process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        kill_tree(self._process.pid)

    def wait(self, timeout: float | None = None) -> Outcome:
        assert self._process is not None, "start() first"
        code = self._process.wait(timeout=timeout)
        kill_tree(self._process.pid)  # grandchildren a crashed worker left behind
        for thread in self._threads[:2]:
            thread.join(timeout=5)
        return self._outcome(code, after_job(self.job, self._spec))

    def _outcome(self, code: int, placed: dict[str, Any] | None) -> Outcome:
        return make_outcome(
            code,
            cancelled=self._cancelled,
            placed=placed,
            result=self._result,
            error=self._error,
            peak=self._peak,
            seconds=time.monotonic() - self._started,
            stderr_tail=self._stderr_tail,
            pid=self.pid,
        )


def make_outcome(
    code: int,
    *,
    cancelled: bool,
    placed: dict[str, Any] | None = None,
    result: Result | None,
    error: Error | None,
    peak: int,
    seconds: float,
    stderr_tail: list[str],
    pid: int | None,
) -> Outcome:
    """How a worker ended, from its exit code (negative: the POSIX signal that ended it), what it said, and what it
    left on disk: a job whose model is in place (`placed`, its forge.json) succeeded, whatever came after."""
    common = {
        "exit_code": code,
        "peak_memory_bytes": peak,
        "seconds": seconds,
        "stderr_tail": stderr_tail,
        "pid": pid,
    }
    if result is not None and code == 0:
        return Outcome("succeeded", result=result.data, **common)
    if placed is not None:
        after = "was cancelled" if cancelled else "did not finish"
        return Outcome(
            "succeeded",
            result=placed,
            note=f"the model is in place; what came after it (measuring for the report) {after}.",
            **common,
        )
    if cancelled:
        return Outcome("cancelled", message="cancelled", **common)
    if error is not None:
        status = "out-of-memory" if error.kind == "OutOfMemory" else "failed"
        return Outcome(status, message=error.message, error=error, **common)
    if killed_by_system(code, peak):
        return Outcome(
            "out-of-memory",
            message=f"the worker was stopped by the system after using {peak / 1024**3:.1f} GB of memory: "
            "it ran out of memory; close other programs, pick an INT4 preset, or use a machine with more RAM.",
            **common,
        )
    last = stderr_tail[-1] if stderr_tail else "no output"
    return Outcome("crashed", message=f"the worker stopped with exit code {code} ({last}).", **common)


def killed_by_system(code: int, peak: int) -> bool:
    """The kernel's OOM killer sends SIGKILL; Windows ends a process that cannot commit memory abruptly."""
    if sys.platform != "win32":
        return code == -signal.SIGKILL
    import psutil

    return peak >= 0.9 * psutil.virtual_memory().total


def process_tree(root: psutil.Process) -> list[psutil.Process]:
    """A process and everything it started; empty once it is gone."""
    import psutil

    try:
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def total_rss(processes: list[psutil.Process]) -> int:
    """Resident memory of these processes together, in bytes; those that have ended count nothing."""
    import psutil

    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue
    return total


def tree_rss(root: psutil.Process) -> int:
    return total_rss(process_tree(root))


def kill_tree(pid: int, wait: bool = True) -> None:
    """Kill a worker and everything it started, also when the worker itself has already exited.

    wait=False returns at once and reaps nothing: a QProcess parent must collect its own child's exit status.
    """
    import psutil

    if sys.platform != "win32":
        try:
            os.killpg(pid, signal.SIGKILL)  # the worker leads its own session, so this is its group
        except (ProcessLookupError, PermissionError):
            pass
    try:
        root = psutil.Process(pid)
        processes = [*root.children(recursive=True), root]
    except psutil.Error:
        return
    for process in processes:
        try:
            process.kill()
        except psutil.Error:
            continue
    if wait:
        psutil.wait_procs(processes, timeout=2)


def run_job(
    job: str, spec: dict[str, Any], on_message: Callable[[Message], None], env: dict[str, str] | None = None
) -> Outcome:
    """Run a worker to the end; Ctrl+C cancels it (tree killed) and is reported as a cancelled outcome."""
    process = JobProcess(job, spec, on_message, env)
    try:
        process.start()
    except OSError as error:
        after_job(job, spec)
        return Outcome("did-not-start", None, message=f"the worker could not start: {error}")
    with _stop_signals_cancel():
        try:
            while True:
                try:
                    return process.wait(timeout=0.2)
                except subprocess.TimeoutExpired:
                    continue
        except KeyboardInterrupt:
            process.cancel()
            return process.wait()


@contextlib.contextmanager
def _stop_signals_cancel() -> Iterator[None]:
    """SIGTERM and SIGHUP (a closed terminal, `kill`) cancel the job like Ctrl+C does, so its staging goes too.
    Signal handlers can only be set on the main thread; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread() or sys.platform == "win32":
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    kept = {signum: signal.signal(signum, interrupt) for signum in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for signum, handler in kept.items():
            signal.signal(signum, handler)
