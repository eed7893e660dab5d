"""The Jobs pane: the queue of conversions, each run in a worker child (ui/job_runner.py), with its live log.

JobsPane runs the queue one job at a time, keeps the history (app/jobs/history.py) and shows the selected
job's log.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QUrl,
    Signal,
)
from PySide6.QtGui import QAction, QColor, QDesktopServices, QGuiApplication, QPainter, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHBoxLayout,
    QLabel,
    QMenu,
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

from app.convert import ConvertPlan, check_output
from app.errors import ForgeError
from app.jobs.history import (
    JobHistory,
    JobRecord,
    default_shell,
    format_command,
    new_quantize_record,
    new_record,
    read_log_tail,
)
from app.jobs.runner import (
    Outcome,
)
from app.quantize import QuantizeRequest, plan_quantization
from ui.job_runner import JobRunner, make_timer
from ui.widgets.log_view import LogView

# Outcome statuses that are not job states of their own.
_STATE_OF_STATUS = {"did-not-start": "failed"}

ModelIndex = QModelIndex | QPersistentModelIndex
_ROOT = QModelIndex()


COLUMNS = ("Model", "Preset", "State", "Progress", "Elapsed", "Output")
PROGRESS_COL, ELAPSED_COL = 3, 4
PROGRESS_ROLE = Qt.ItemDataRole.UserRole + 1
STATE_ROLE = Qt.ItemDataRole.UserRole + 2
# The bar of a job that ended short of its goal is not the blue of work in progress.
_BAR_COLOURS = {"succeeded": "#2e7d32", "failed": "#c62828", "crashed": "#c62828", "out-of-memory": "#c62828"}
_STOPPED_COLOUR = "#9e9e9e"
_KIND_NAMES = {"convert": "a conversion", "quantize": "a quantization", "report": "a measurement"}
# Save a running job's progress and elapsed time this often (seconds), so a killed window still shows how far it got.
_SAVE_EVERY = 5
_CELL_TEXT = (
    lambda record: record.model,
    lambda record: f"{record.preset} ({record.ep})" if record.kind == "convert" else record.preset,
    lambda record: record.state,
    lambda record: f"{record.progress:.0f} %",
    lambda record: format_elapsed(elapsed_seconds(record)) if record.started else "",
    lambda record: output_text(record),
)
_CELL_TOOLTIP = (
    lambda record: record.title,
    lambda record: None,
    lambda record: record.message or None,
    lambda record: record.stage or None,
    lambda record: None,
    lambda record: "\n".join(record.plan.get("folders", [])) or record.output,
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
        if role == STATE_ROLE:
            return record.state
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


def output_text(record: JobRecord) -> str:
    """A measuring job's folders are all its outputs, not just the first."""
    folders = record.plan.get("folders") if record.kind == "report" else None
    if folders and len(folders) > 1:
        return f"{record.output} (+{len(folders) - 1} more)"
    return record.output


def ending_text(record: JobRecord) -> str:
    """A finished job's state in words, with what is on disk now."""
    output = Path(record.output) if record.output and record.kind != "report" else None
    there = output is not None and output.is_dir() and any(output.iterdir())
    if record.state == "succeeded":
        where = f"the model is in {output}" if output is not None else "done"
        return f"{where}; {record.message}" if record.message else where
    said = record.message if record.message and record.message != record.state else ""
    if output is None:
        return said
    disk = f"{output} holds a model from before" if there else f"nothing was written to {output}"
    return f"{said}; {disk}" if said else disk


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
        state = index.data(STATE_ROLE)
        if state not in ("queued", "running"):
            colour = _BAR_COLOURS.get(state, _STOPPED_COLOUR)
            bar.palette.setColor(QPalette.ColorRole.Highlight, QColor(colour))
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
        self._clock = make_timer(self, 1000, self._tick)
        self._ticks = 0
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
        self._add_shell_choices()
        self._update_actions()
        QApplication.instance().aboutToQuit.connect(self._stop_for_quit)

    # --- public API ---------------------------------------------------------------------------------

    def enqueue(self, plan: ConvertPlan) -> str:
        """Queue a conversion; it starts when the jobs before it have ended. Returns the job id."""
        return self._enqueue(new_record(plan.to_dict(), self._history.logs_dir))

    def enqueue_quantization(self, request: QuantizeRequest) -> str:
        """Queue a quantization (a request already checked by app.quantize.plan_quantization)."""
        return self._enqueue(new_quantize_record(request.to_dict(), self._history.logs_dir))

    def enqueue_report(self, folders: list[str], settings: Any = None) -> str:
        """Queue measuring these GenAI folders for the report card (app.report; settings: MeasureSettings)."""
        from app.report import new_report_job

        return self._enqueue(new_report_job(folders, self._history.logs_dir, settings))

    def has_running(self) -> bool:
        return self._runner is not None

    def busy_text(self) -> str:
        """What quitting now would stop, in words ('' when nothing): the running job and how many wait."""
        parts = []
        running = self._history.get(self._running_id or "")
        if running is not None:
            parts.append(f"{_KIND_NAMES.get(running.kind, 'a job')} is running ({running.title})")
        queued = sum(record.state == "queued" for record in self._history.records)
        if queued:
            parts.append(f"{queued} more job{'s' * (queued != 1)} {'wait' if queued != 1 else 'waits'} in the queue")
        return "; ".join(parts)

    def cancel_all(self) -> None:
        """Drop every queued job and cancel the running one (it reports `job_finished` when it has ended)."""
        for record in [r for r in self._history.records if r.state == "queued"]:
            self._cancel_queued(record)
        if self._runner is not None:
            self._runner.cancel()

    def current_runner(self) -> JobRunner | None:
        return self._runner

    def record(self, job_id: str) -> JobRecord | None:
        return self._history.get(job_id)

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

    def _enqueue(self, record: JobRecord) -> str:
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
            new_stage = record.stage.split(":", 1)[0] != stage
            record.progress, record.stage = percent, f"{stage}: {detail}" if detail else stage
            self._model.refresh(record.id, PROGRESS_COL, PROGRESS_COL)
            if new_stage:  # on disk at every stage, so a window killed now still shows how far the job got
                record.seconds = elapsed_seconds(record)
                self._history.save()

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
        message = outcome.message if outcome.message != outcome.status else ""
        if outcome.ok:  # what did not finish once the model was in place (an Outcome.note; older outcomes have none)
            message = getattr(outcome, "note", "") or message
        record = self._history.update(
            job_id,
            state=state,
            message=message,
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
        if self._running_id is None:
            return
        self._model.refresh(self._running_id, ELAPSED_COL, ELAPSED_COL)
        record = self._history.get(self._running_id)
        self._ticks += 1
        if record is not None and self._ticks % _SAVE_EVERY == 0:
            record.seconds = elapsed_seconds(record)
            self._history.save()

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
        said = ending_text(record) if record.is_finished else record.message
        self._status.setText(f"{text}: {said}" if said else text)

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
        try:
            if record.kind == "report":
                from app.report import MeasureSettings

                settings = MeasureSettings(**record.plan.get("settings", {}))
                self.select(self.enqueue_report(record.plan["folders"], settings))
                return
            if record.kind == "quantize":
                request = QuantizeRequest(**{**record.plan, "job_id": ""})  # a new job: a new id
                plan_quantization(request)
                self.select(self.enqueue_quantization(request))
                return
            source, overwrite = record.plan.get("source_path"), record.plan["request"].get("overwrite", False)
            state = check_output(Path(record.output), Path(source) if source else None, overwrite)
        except ForgeError as error:
            self._status.setText(f"cannot retry: {error}")
            return
        # The output is claimed as it is now, by a job with its own id.
        request = {**record.plan["request"], "job_id": uuid.uuid4().hex}
        plan = {**record.plan, "request": request, "output_state": state.to_dict()}
        self.select(self._enqueue(new_record(plan, self._history.logs_dir)))

    def _open_output(self) -> None:
        record = self._selected()
        if record is not None and Path(record.output).is_dir():
            QDesktopServices.openUrl(QUrl.fromLocalFile(record.output))

    def _add_shell_choices(self) -> None:
        """The copy button copies for the user's usual shell (default_shell()); its menu, for the others."""
        self.copy_for_shell_menu = QMenu(self)
        labels = {"powershell": "PowerShell", "cmd": "Command Prompt (cmd.exe)", "posix": "a POSIX shell (bash, zsh)"}
        for shell, label in labels.items():
            action = self.copy_for_shell_menu.addAction(f"Copy for {label}")
            action.triggered.connect(self._copier(shell))
        button = next(b for b in self.findChildren(QToolButton) if b.defaultAction() is self.copy_command_action)
        button.setMenu(self.copy_for_shell_menu)
        button.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)

    def _copier(self, shell: str) -> Any:
        return lambda *_: self._copy_command_for(shell)  # triggered(bool)'s argument is not the shell

    def _copy_command(self) -> None:
        self._copy_command_for(default_shell())

    def _copy_command_for(self, shell: str) -> None:
        record = self._selected()
        if record is None:
            return
        try:  # a record from before command_args were kept has only its line, for the default shell
            text = format_command(record.command_args, shell) if record.command_args else record.command_line
        except ValueError as error:
            self._status.setText(f"cannot copy the command: {error}.")
            return
        QGuiApplication.clipboard().setText(text)

    def _clear_finished(self) -> None:
        finished = {record.id for record in self._history.records if record.is_finished}
        if self._shown_id in finished:
            self._shown_id = None
        self._model.remove(finished)
        self._on_selection()
