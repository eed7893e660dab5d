"""The Jobs pane: the queue of conversions, each run in a worker child, with its live log.

JobRunner drives one worker through QProcess and speaks the job protocol (app/jobs/protocol.py); JobsPane
runs the queue one job at a time, keeps the history (app/jobs/history.py) and shows the selected job's log.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QProcess,
    QProcessEnvironment,
    Qt,
    QTimer,
    QUrl,
    Signal,
)
from PySide6.QtGui import QAction, QDesktopServices, QGuiApplication, QPainter
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHBoxLayout,
    QLabel,
    QSplitter,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.convert import ConvertPlan, check_output, remove_stale_staging
from app.errors import ForgeError
from app.jobs.history import JobHistory, JobRecord, new_record, read_log_tail
from app.jobs.protocol import CANCEL_LINE, Error, LineAssembler, Log, Progress, Result, decode
from app.jobs.runner import (
    CANCEL_GRACE_SECONDS,
    Outcome,
    kill_tree,
    make_outcome,
    process_tree,
    total_rss,
    worker_command,
    worker_env,
)
from ui.widgets.log_view import LogView

_MEMORY_POLL_MS = 250
# Listing a process's descendants scans every process on the machine: do it every few polls only.
_TREE_SCAN_EVERY = 4
_STDERR_TAIL = 20
# Outcome statuses that are not job states of their own.
_STATE_OF_STATUS = {"did-not-start": "failed"}

ModelIndex = QModelIndex | QPersistentModelIndex
_ROOT = QModelIndex()


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
        self._memory_timer = _timer(self, _MEMORY_POLL_MS, self._poll_memory)
        self._kill_timer = _timer(self, int(CANCEL_GRACE_SECONDS * 1000), self._kill, single_shot=True)

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
        succeeded = self._result is not None and exit_code == 0
        outcome = make_outcome(
            exit_code,
            cancelled=self._cancelled and not succeeded,  # a cancel that came too late changes nothing
            result=self._result,
            error=self._error,
            peak=self._peak,
            seconds=time.monotonic() - self._started_at,
            stderr_tail=self._stderr_tail,
            pid=self._pid,
        )
        if not outcome.ok:
            self._remove_staging()
        self._finish(outcome)

    def _remove_staging(self) -> None:
        output = self.spec.get("request", {}).get("output")
        if self.job == "convert" and output and self._pid is not None:
            remove_stale_staging(Path(output).expanduser().resolve(), self._pid)

    def _finish(self, outcome: Outcome) -> None:
        if self._done:
            return
        self._done = True
        said = outcome.message not in ("", outcome.status)
        ending = f"{outcome.status}: {outcome.message}" if said else outcome.status
        self.log([f"--- {ending} ({outcome.seconds:.1f} s)"])
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        self.finished.emit(outcome)


def _timer(parent: QObject, interval_ms: int, slot: Any, single_shot: bool = False) -> QTimer:
    timer = QTimer(parent)
    timer.setInterval(interval_ms)
    timer.setSingleShot(single_shot)
    timer.timeout.connect(slot)
    return timer


COLUMNS = ("Model", "Preset", "State", "Progress", "Elapsed", "Output")
PROGRESS_COL, ELAPSED_COL = 3, 4
PROGRESS_ROLE = Qt.ItemDataRole.UserRole + 1
_CELL_TEXT = (
    lambda record: record.model,
    lambda record: f"{record.preset} ({record.ep})",
    lambda record: record.state,
    lambda record: f"{record.progress:.0f} %",
    lambda record: format_elapsed(elapsed_seconds(record)) if record.started else "",
    lambda record: record.output,
)
_CELL_TOOLTIP = (
    lambda record: record.title,
    lambda record: None,
    lambda record: record.message or None,
    lambda record: record.stage or None,
    lambda record: None,
    lambda record: record.output,
)


class JobTableModel(QAbstractTableModel):
    """The job history as a table, oldest first (the order jobs run in)."""

    def __init__(self, history: JobHistory, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._history = history

    def rowCount(self, parent: ModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._history.records)

    def columnCount(self, parent: ModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        horizontal = orientation == Qt.Orientation.Horizontal
        return COLUMNS[section] if horizontal and role == Qt.ItemDataRole.DisplayRole else None

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        record, column = self._history.records[index.row()], index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return _CELL_TEXT[column](record)
        if role == Qt.ItemDataRole.ToolTipRole:
            return _CELL_TOOLTIP[column](record)
        return record.progress if role == PROGRESS_ROLE and column == PROGRESS_COL else None

    def record(self, row: int) -> JobRecord:
        return self._history.records[row]

    def row_of(self, job_id: str) -> int:
        return next((row for row, record in enumerate(self._history.records) if record.id == job_id), -1)

    def add(self, record: JobRecord) -> None:
        row = len(self._history.records)
        self.beginInsertRows(QModelIndex(), row, row)
        self._history.add(record)
        self.endInsertRows()

    def remove(self, job_ids: set[str]) -> None:
        self.beginResetModel()
        self._history.remove(job_ids)
        self.endResetModel()

    def refresh(self, job_id: str, first: int = 0, last: int = len(COLUMNS) - 1) -> None:
        row = self.row_of(job_id)
        if row >= 0:
            self.dataChanged.emit(self.index(row, first), self.index(row, last))


def elapsed_seconds(record: JobRecord) -> float:
    return time.time() - record.started if record.state == "running" and record.started else record.seconds


def format_elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressDelegate(QStyledItemDelegate):
    """Draws the progress column as a progress bar, in the platform's style."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: ModelIndex) -> None:
        percent = index.data(PROGRESS_ROLE)
        if percent is None:
            super().paint(painter, option, index)
            return
        widget = option.widget
        style = widget.style() if widget is not None else QApplication.style()
        style.drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, option, painter, widget)
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(2, 2, -2, -2)
        bar.state = option.state | QStyle.StateFlag.State_Horizontal
        bar.minimum, bar.maximum = 0, 100
        bar.progress = int(percent)
        bar.text = f"{percent:.0f} %"
        bar.textVisible = True
        bar.textAlignment = Qt.AlignmentFlag.AlignCenter
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter, widget)


class JobsPane(QWidget):
    """The conversion queue: jobs run one at a time in the order they were queued, and stay listed (with
    their logs) across restarts until cleared. A job still running when the application quits is stopped."""

    job_started = Signal(str)
    job_finished = Signal(str, str, str)

    def __init__(self, history: JobHistory | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._history = history if history is not None else JobHistory()
        self._model = JobTableModel(self._history, self)
        self._runner: JobRunner | None = None
        self._running_id: str | None = None
        self._shown_id: str | None = None
        self._last_finished_id: str | None = None
        self._clock = _timer(self, 1000, self._tick)
        self._table = QTableView(self)
        self.log_view = LogView(self)
        self._status = QLabel(self)
        self._status.setWordWrap(True)
        self._status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._build_table()
        self.cancel_action = self._action("Cancel", self._cancel_selected)
        self.retry_action = self._action("Retry", self._retry_selected)
        self.open_output_action = self._action("Open output folder", self._open_output)
        self.copy_command_action = self._action("Copy command line", self._copy_command)
        self.clear_finished_action = self._action("Clear finished", self._clear_finished)
        self._build_layout()
        self._update_actions()
        QApplication.instance().aboutToQuit.connect(self._stop_for_quit)

    # --- public API ---------------------------------------------------------------------------------

    def enqueue(self, plan: ConvertPlan) -> str:
        """Queue a conversion; it starts when the jobs before it have ended. Returns the job id."""
        return self._enqueue(plan.to_dict())

    def has_running(self) -> bool:
        return self._runner is not None

    def cancel_all(self) -> None:
        """Drop every queued job and cancel the running one (it reports `job_finished` when it has ended)."""
        for record in [r for r in self._history.records if r.state == "queued"]:
            self._cancel_queued(record)
        if self._runner is not None:
            self._runner.cancel()

    def current_runner(self) -> JobRunner | None:
        return self._runner

    def seconds_of(self, job_id: str) -> float:
        record = self._history.get(job_id)
        return elapsed_seconds(record) if record else 0.0

    def select(self, job_id: str) -> None:
        self.select_row(self._model.row_of(job_id))

    def select_row(self, row: int) -> None:
        if 0 <= row < self._model.rowCount():
            self._table.selectRow(row)

    # --- building -----------------------------------------------------------------------------------

    def _build_table(self) -> None:
        self._table.setModel(self._model)
        self._table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self._table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self._table.setItemDelegateForColumn(PROGRESS_COL, ProgressDelegate(self._table))
        self._table.verticalHeader().hide()
        self._table.setWordWrap(False)
        self._table.horizontalHeader().setStretchLastSection(True)
        self._table.horizontalHeader().resizeSection(PROGRESS_COL, 140)
        self._table.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        self._table.selectionModel().selectionChanged.connect(self._on_selection)

    def _action(self, text: str, slot: Any) -> QAction:
        action = QAction(text, self)
        action.triggered.connect(slot)
        self._table.addAction(action)
        return action

    def _build_layout(self) -> None:
        buttons = QHBoxLayout()
        for action in self._table.actions():
            button = QToolButton(self)
            button.setDefaultAction(action)
            buttons.addWidget(button)
        buttons.addStretch(1)
        lower = QWidget(self)
        lower_layout = QVBoxLayout(lower)
        lower_layout.setContentsMargins(0, 0, 0, 0)
        lower_layout.addWidget(self._status)
        lower_layout.addWidget(self.log_view, 1)
        splitter = QSplitter(Qt.Orientation.Vertical, self)
        splitter.addWidget(self._table)
        splitter.addWidget(lower)
        splitter.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(splitter, 1)

    # --- the queue ----------------------------------------------------------------------------------

    def _enqueue(self, plan: dict[str, Any]) -> str:
        record = new_record(plan, self._history.logs_dir)
        self._model.add(record)
        if self._shown_id is None:
            self.select(record.id)
        self._start_next()
        self._update_actions()
        return record.id

    def _start_next(self) -> None:
        record = next((r for r in self._history.records if r.state == "queued"), None)
        if self._runner is not None or record is None:
            return
        runner = JobRunner(record.kind, record.plan, record.log_path, self)
        runner.progress.connect(self._on_progress)
        runner.output.connect(self._on_output)
        runner.finished.connect(self._on_finished)
        self._runner, self._running_id = runner, record.id
        self._history.update(record.id, state="running", started=time.time(), stage="starting")
        self._model.refresh(record.id)
        runner.log([f"$ {record.command_line}", *(f"warning: {text}" for text in record.plan.get("warnings", []))])
        if self._shown_id in (None, self._last_finished_id):
            self.select(record.id)  # whoever watched the queue keeps watching it
        elif self._shown_id == record.id:
            self._show(record)
        self._clock.start()
        self.job_started.emit(record.id)
        runner.start()

    def _on_progress(self, percent: float, stage: str, detail: str) -> None:
        record = self._history.get(self._running_id or "")
        if record is not None:
            record.progress, record.stage = percent, f"{stage}: {detail}" if detail else stage
            self._model.refresh(record.id, PROGRESS_COL, PROGRESS_COL)

    def _on_output(self, lines: list[str]) -> None:
        if self._shown_id is not None and self._shown_id == self._running_id:
            self.log_view.append_lines(lines)

    def _on_finished(self, outcome: Outcome) -> None:
        job_id, runner = self._running_id or "", self._runner
        self._runner = self._running_id = None
        self._clock.stop()
        if runner is not None:
            runner.deleteLater()
        state = _STATE_OF_STATUS.get(outcome.status, outcome.status)
        record = self._history.update(
            job_id,
            state=state,
            message=outcome.message,
            finished=time.time(),
            seconds=outcome.seconds,
            peak_memory_bytes=outcome.peak_memory_bytes,
            progress=100.0 if outcome.ok else self._history.get(job_id).progress,
        )
        self._last_finished_id = job_id
        self._model.refresh(job_id)
        if self._shown_id == job_id:
            self._show_status(record)
        self._update_actions()
        self.job_finished.emit(job_id, state, record.output)
        self._start_next()

    def _cancel_queued(self, record: JobRecord) -> None:
        self._history.update(record.id, state="cancelled", message="cancelled before it started", finished=time.time())
        self._model.refresh(record.id)
        self.job_finished.emit(record.id, "cancelled", record.output)

    def _stop_for_quit(self) -> None:
        for record in [r for r in self._history.records if r.state == "queued"]:
            self._cancel_queued(record)
        if self._runner is not None:
            self._runner.stop_now()

    def _tick(self) -> None:
        if self._running_id is not None:
            self._model.refresh(self._running_id, ELAPSED_COL, ELAPSED_COL)

    # --- selection and actions ----------------------------------------------------------------------

    def _selected(self) -> JobRecord | None:
        rows = self._table.selectionModel().selectedRows()
        return self._model.record(rows[0].row()) if rows else None

    def _on_selection(self) -> None:
        record = self._selected()
        if record is None:
            self._shown_id = None
            self.log_view.set_lines([])
            self._status.clear()
        elif record.id != self._shown_id:
            self._show(record)
        self._update_actions()

    def _show(self, record: JobRecord) -> None:
        """Show a job's log: the live history of the running job, the end of the log file of any other."""
        self._shown_id = record.id
        if record.id == self._running_id and self._runner is not None:
            self.log_view.set_lines(self._runner.history())
        else:
            self.log_view.set_lines(read_log_tail(record.log_path, self.log_view.max_lines()))
        self._show_status(record)

    def _show_status(self, record: JobRecord) -> None:
        text = f"{record.title} — {record.state}"
        self._status.setText(f"{text}: {record.message}" if record.message else text)

    def _update_actions(self) -> None:
        record = self._selected()
        self.cancel_action.setEnabled(record is not None and not record.is_finished)
        self.retry_action.setEnabled(record is not None and record.is_finished and record.state != "succeeded")
        self.open_output_action.setEnabled(record is not None and Path(record.output).is_dir())
        self.copy_command_action.setEnabled(record is not None and bool(record.command_line))
        self.clear_finished_action.setEnabled(any(r.is_finished for r in self._history.records))

    def _cancel_selected(self) -> None:
        record = self._selected()
        if record is not None and record.id == self._running_id and self._runner is not None:
            self._runner.cancel()
        elif record is not None and record.state == "queued":
            self._cancel_queued(record)
        self._update_actions()

    def _retry_selected(self) -> None:
        """Queue the same plan again, once its output is still free to write (the plan was checked before)."""
        record = self._selected()
        if record is None or not record.is_finished:
            return
        source, overwrite = record.plan.get("source_path"), record.plan["request"].get("overwrite", False)
        try:
            check_output(Path(record.output), Path(source) if source else None, overwrite)
        except ForgeError as error:
            self._status.setText(f"cannot retry: {error}")
            return
        self.select(self._enqueue(record.plan))

    def _open_output(self) -> None:
        record = self._selected()
        if record is not None and Path(record.output).is_dir():
            QDesktopServices.openUrl(QUrl.fromLocalFile(record.output))

    def _copy_command(self) -> None:
        record = self._selected()
        if record is not None:
            QGuiApplication.clipboard().setText(record.command_line)

    def _clear_finished(self) -> None:
        finished = {record.id for record in self._history.records if record.is_finished}
        if self._shown_id in finished:
            self._shown_id = None
        self._model.remove(finished)
        self._on_selection()
