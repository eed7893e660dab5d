"""Short, interruptible I/O (folder scans, Hub queries) on a thread pool, with the outcome delivered on the GUI thread.

Heavy work goes to a worker child instead (app.jobs); a thread here cannot be killed, only left to finish.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot


class _Relay(QObject):
    """The one object pool threads emit on. It lives as long as its Background and is never deleted while a task
    may still be emitting (deleting a sender another thread is inside emit() on crashes)."""

    done = Signal(int, object)
    failed = Signal(int, object)


class _Task(QRunnable):
    def __init__(self, number: int, work: Callable[[], Any], relay: _Relay) -> None:
        super().__init__()
        self._number = number
        self._work = work
        self._relay = relay

    def run(self) -> None:
        try:
            result = self._work()
        except Exception as error:  # noqa: BLE001 - every failure is handed to the GUI thread's on_failed
            self._relay.failed.emit(self._number, error)
            return
        self._relay.done.emit(self._number, result)


class Background(QObject):
    """A pool of `threads` threads owned by `parent`.

    The pool is this object's first child, so on destruction it is deleted (and waits for the running task) before
    the relay the task emits on.
    """

    def __init__(self, parent: QObject, threads: int = 1) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(threads)
        self._relay = _Relay(self)
        self._relay.done.connect(self._deliver_done)
        self._relay.failed.connect(self._deliver_failure)
        self._numbers = itertools.count()
        self._callbacks: dict[int, tuple[Callable[[Any], None], Callable[[BaseException], None]]] = {}

    def run(
        self,
        work: Callable[[], Any],
        on_done: Callable[[Any], None],
        on_failed: Callable[[BaseException], None],
    ) -> None:
        """Run work() on the pool; on_done(result) or on_failed(error) is then called on the GUI thread."""
        number = next(self._numbers)
        self._callbacks[number] = (on_done, on_failed)
        self.pool.start(_Task(number, work, self._relay))

    @property
    def busy(self) -> bool:
        return bool(self._callbacks)

    def wait(self, msecs: int = -1) -> bool:
        return self.pool.waitForDone(msecs)

    @Slot(int, object)
    def _deliver_done(self, number: int, result: Any) -> None:
        on_done, _ = self._callbacks.pop(number)
        on_done(result)

    @Slot(int, object)
    def _deliver_failure(self, number: int, error: BaseException) -> None:
        _, on_failed = self._callbacks.pop(number)
        on_failed(error)
