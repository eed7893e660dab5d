"""Search the Hugging Face Hub and download a checkpoint: the search on a thread, the download in a worker child.

The token is never put in settings or on a command line: it is saved in the OS credential store, which the worker
reads itself, or, typed but not saved, handed to the worker in its HF_TOKEN environment variable.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from PySide6.QtCore import QProcess, QProcessEnvironment, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.errors import ForgeError
from app.hardware import HardwareReport
from app.hub import (
    HubSearchResult,
    Suggestion,
    clear_token,
    format_size,
    get_token,
    looks_like_hub_id,
    search_models,
    set_token,
    suggested_models,
)
from app.jobs.protocol import CANCEL_LINE, Error, LineAssembler, Progress, Result, decode
from app.jobs.runner import CANCEL_GRACE_SECONDS, worker_command
from app.library import Library
from app.presets import EP_NAMES, PRESETS
from ui.widgets.background import Background

COLUMNS = ("Model", "Downloads", "Size", "License", "Gated")
SUGGESTION_COLUMNS = ("Model", "Builds here as", "Download", "License", "Gated")
SEARCH_LIMIT = 50
_REPO_ROLE = Qt.ItemDataRole.UserRole


class HubDialog(QDialog):
    downloaded = Signal(str)
    """The folder of a finished download, already added to the library."""
    download_finished = Signal(str)
    """How a download ended: succeeded, failed or cancelled."""

    def __init__(
        self, library: Library | None = None, parent: QWidget | None = None, report: HardwareReport | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Search the Hugging Face Hub")
        self.resize(760, 520)
        self.library = library if library is not None else Library()
        # An abandoned search cannot be killed, only left to end (within app.hub.SEARCH_TIMEOUT_S): spare threads
        # let the next search start at once.
        self._background = Background(self, threads=4)
        self._search_number = 0
        self._searching = False
        self._showing_suggestions = False
        self._process: QProcess | None = None
        self._repo_id = ""
        self._reset_job_state()

        self.query = QLineEdit()
        self.query.setPlaceholderText("Part of a model name, e.g. Qwen3 or SmolLM2, or an exact org/name")
        self.search_button = QPushButton("Search")
        self.search_busy = QProgressBar()
        self.search_busy.setRange(0, 0)  # no figures: it only moves while a search waits for the Hub
        self.search_busy.setTextVisible(False)
        self.search_busy.setMaximumWidth(120)
        self.cancel_search_button = QPushButton("Cancel search")
        self.results = QTableWidget(0, len(COLUMNS))
        self.results.setHorizontalHeaderLabels(COLUMNS)
        self.results.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.results.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.results.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.results.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.results.verticalHeader().hide()
        self.token = QLineEdit()
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.save_token_button = QPushButton("Save to credential store")
        self.forget_token_button = QPushButton("Forget saved token")
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress_detail = QLabel()
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.download_button = QPushButton("Download")
        self.cancel_button = QPushButton("Cancel download")
        self.close_button = QPushButton("Close")
        for button in self._buttons():
            # An auto-default button is clicked by the Enter the query box also answers: one Enter, two searches.
            button.setAutoDefault(False)
        self._layout()
        self._show_search_busy(False)
        self._show_progress(False)

        self.query.returnPressed.connect(self.search)
        self.search_button.clicked.connect(self.search)
        self.cancel_search_button.clicked.connect(self.cancel_search)
        self.results.itemDoubleClicked.connect(lambda _item: self.download())
        self.save_token_button.clicked.connect(self.save_token)
        self.forget_token_button.clicked.connect(self.forget_token)
        self.download_button.clicked.connect(lambda: self.download())
        self.cancel_button.clicked.connect(self.cancel_download)
        self.close_button.clicked.connect(self.reject)
        self._update_token_hint()
        self._update_buttons()
        self.set_hardware(report)

    def _buttons(self) -> list[QPushButton]:
        return [widget for widget in vars(self).values() if isinstance(widget, QPushButton)]

    def _layout(self) -> None:
        search_row = QHBoxLayout()
        search_row.addWidget(self.query, 1)
        search_row.addWidget(self.search_button)
        search_row.addWidget(self.search_busy)
        search_row.addWidget(self.cancel_search_button)
        token_row = QHBoxLayout()
        token_row.addWidget(QLabel("Token:"))
        token_row.addWidget(self.token, 1)
        token_row.addWidget(self.save_token_button)
        token_row.addWidget(self.forget_token_button)
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.progress_detail)
        buttons = QHBoxLayout()
        buttons.addWidget(self.download_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        buttons.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.addLayout(search_row)
        layout.addWidget(self.results, 1)
        layout.addLayout(token_row)
        layout.addLayout(progress_row)
        layout.addWidget(self.message)
        layout.addLayout(buttons)

    # --- search -------------------------------------------------------------------------------------------------------

    def search(self) -> None:
        """Search the Hub for the query text, off the GUI thread; only the latest search's results are shown."""
        self._search_number += 1
        text = self.query.text().strip()
        typed = self.token.text().strip()
        self.message.setText(f"Searching for {text!r}…" if text else "Listing the most downloaded models…")
        self._show_search_busy(True)
        self._background.run(
            lambda: search_models(text, SEARCH_LIMIT, token=typed or get_token()),
            partial(self._show_results, self._search_number),
            partial(self._search_failed, self._search_number),
        )

    @property
    def is_searching(self) -> bool:
        return self._searching

    def cancel_search(self) -> None:
        """Abandon the running search: its answer, whenever it comes, is dropped; the list stays as it was."""
        if not self._searching:
            return
        self._search_number += 1
        self._show_search_busy(False)
        self.message.setText("Search cancelled.")

    def _show_search_busy(self, busy: bool) -> None:
        self._searching = busy
        self.search_busy.setVisible(busy)
        self.cancel_search_button.setVisible(busy)

    def repo_ids(self) -> list[str]:
        """The repos listed, in order."""
        return [self.results.item(row, 0).data(_REPO_ROLE) for row in range(self.results.rowCount())]

    def _show_results(self, number: int, found: list[HubSearchResult]) -> None:
        if number != self._search_number:
            return
        self._show_search_busy(False)
        self._showing_suggestions = False
        self.results.setRowCount(0)
        self.results.setHorizontalHeaderLabels(COLUMNS)
        for result in found:
            self._add_row(result)
        if found:
            self.results.selectRow(0)
        self.message.setText(f"{len(found)} models found." if found else "No model matches; try a shorter name.")
        self._update_buttons()

    def _add_row(self, result: HubSearchResult) -> None:
        row = self.results.rowCount()
        self.results.insertRow(row)
        cells = (
            result.repo_id,
            f"{result.downloads:,}",
            format_size(result.size_bytes) if result.size_bytes is not None else "unknown",
            result.license or "not stated",
            "yes: needs a token and the licence accepted" if result.gated else "",
        )
        self._fill_row(row, result.repo_id, cells, right_aligned=(1, 2))

    def _fill_row(self, row: int, repo_id: str, cells: tuple[str, ...], right_aligned: tuple[int, ...]) -> None:
        for column, text in enumerate(cells):
            item = QTableWidgetItem(text)
            if column in right_aligned:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.results.setItem(row, column, item)
        self.results.item(row, 0).setData(_REPO_ROLE, repo_id)

    def _search_failed(self, number: int, error: BaseException) -> None:
        if number != self._search_number:
            return
        self._show_search_busy(False)
        self.message.setText(str(error) if isinstance(error, ForgeError) else f"The search failed: {error}")

    # --- suggestions --------------------------------------------------------------------------------------------------

    def set_hardware(self, report: HardwareReport | None) -> None:
        """The machine the suggestions are fitted to; they fill the list while no search has been made."""
        self._report = report
        if self.results.rowCount() and not self._showing_suggestions:
            return  # a search's results stay
        if report is None:
            self.message.setText("Type part of a model name and press Enter to search the Hub.")
            return
        self._show_suggestions(suggested_models(report))

    def _show_suggestions(self, suggestions: list[Suggestion]) -> None:
        self._showing_suggestions = True
        self.results.setRowCount(0)
        self.results.setHorizontalHeaderLabels(SUGGESTION_COLUMNS)
        for suggestion in suggestions:
            row = self.results.rowCount()
            self.results.insertRow(row)
            built = f"{PRESETS[suggestion.preset].precision.upper()} for {EP_NAMES[suggestion.ep]}"
            cells = (suggestion.repo_id, built, format_size(suggestion.download_bytes), suggestion.license, "")
            self._fill_row(row, suggestion.repo_id, cells, right_aligned=(2,))
            for column in range(len(cells)):
                self.results.item(row, column).setToolTip(suggestion.reason)
        if not suggestions:
            self.message.setText(
                "None of the small models this studio knows fits this PC's memory; search for an even smaller one."
            )
            return
        self.message.setText(
            f"Suggested for this PC: {len(suggestions)} small models the installed builder converts and that fit "
            "here as the Convert tab would build them (the tooltips say how). Search to see every other model."
        )

    # --- token --------------------------------------------------------------------------------------------------------

    def save_token(self) -> None:
        try:
            set_token(self.token.text())
        except ForgeError as error:
            self.message.setText(str(error))
            return
        self.token.clear()
        self.message.setText("The token is saved in this computer's credential store.")
        self._update_token_hint()

    def forget_token(self) -> None:
        try:
            clear_token()
        except ForgeError as error:
            self.message.setText(str(error))
            return
        self.message.setText("No token is saved any more.")
        self._update_token_hint()

    def _update_token_hint(self) -> None:
        saved = get_token() is not None
        self.token.setPlaceholderText(
            "a token is saved in the credential store" if saved else "hf_… (needed for gated models only)"
        )
        self.forget_token_button.setEnabled(saved)

    # --- download -----------------------------------------------------------------------------------------------------

    @property
    def is_downloading(self) -> bool:
        return self._process is not None

    def download(self, repo_id: str | None = None, revision: str | None = None) -> None:
        """Download the selected repo (or repo_id) in a worker child; progress and the outcome show in the dialog."""
        if self.is_downloading:
            return
        repo_id = repo_id or self._chosen_repo()
        if not repo_id:
            self.message.setText("Pick a model in the list first, or type its exact org/name.")
            return
        self._reset_job_state()
        self._repo_id = repo_id
        self._process = self._start_worker({"repo_id": repo_id, "revision": revision})
        self.progress.setValue(0)
        self.progress_detail.setText("")
        self._show_progress(True)
        self.message.setText(f"Downloading {repo_id}…")
        self._update_buttons()

    def cancel_download(self) -> None:
        """Ask first; then ask the worker to stop, and kill it if it has not after a short grace."""
        if not self.is_downloading or not self.confirm_cancel():
            return
        self._cancelled = True
        process = self._process
        process.write(CANCEL_LINE.encode())
        QTimer.singleShot(int(CANCEL_GRACE_SECONDS * 1000), self, partial(self._kill_if_running, process))

    def confirm_cancel(self) -> bool:
        answer = QMessageBox.question(
            self,
            "Stop the download?",
            f"Stop downloading {self._repo_id}? What has arrived stays in the Hugging Face cache, "
            "and downloading it again resumes from there.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def _chosen_repo(self) -> str:
        rows = self.results.selectionModel().selectedRows()
        if rows:
            return self.results.item(rows[0].row(), 0).data(_REPO_ROLE)
        text = self.query.text().strip()
        return text if looks_like_hub_id(text) else ""

    def _start_worker(self, spec: dict[str, Any]) -> QProcess:
        program, *arguments = worker_command("download", spec)
        environment = QProcessEnvironment.systemEnvironment()
        environment.insert("PYTHONUNBUFFERED", "1")
        environment.insert("PYTHONIOENCODING", "utf-8")
        if self.token.text().strip():
            environment.insert("HF_TOKEN", self.token.text().strip())
        process = QProcess(self)
        process.setProcessEnvironment(environment)
        process.readyReadStandardOutput.connect(self._read_stdout)
        process.readyReadStandardError.connect(self._read_stderr)
        process.finished.connect(self._on_finished)
        process.errorOccurred.connect(self._on_process_error)
        process.start(program, arguments)
        return process

    def _reset_job_state(self) -> None:
        self._stdout = LineAssembler()
        self._stderr = LineAssembler()
        self._stderr_tail: list[str] = []
        self._result: Result | None = None
        self._error: Error | None = None
        self._cancelled = False

    def _read_stdout(self) -> None:
        if self._process is not None:
            self._handle_lines(self._stdout.feed(self._process.readAllStandardOutput().data()))

    def _read_stderr(self) -> None:
        if self._process is not None:
            lines = self._stderr.feed(self._process.readAllStandardError().data())
            self._stderr_tail = [*self._stderr_tail, *lines][-20:]

    def _handle_lines(self, lines: list[str]) -> None:
        for message in map(decode, lines):
            if isinstance(message, Progress):
                self.progress.setValue(round(message.percent))
                self.progress_detail.setText(message.detail)
            elif isinstance(message, Result):
                self._result = message
            elif isinstance(message, Error):
                self._error = message

    def _on_finished(self, exit_code: int, _status: QProcess.ExitStatus) -> None:
        self._read_stdout()
        self._read_stderr()
        self._handle_lines(self._stdout.flush())
        process, self._process = self._process, None
        if process is not None:
            process.deleteLater()
        self._update_buttons()
        if self._cancelled:
            self._show_progress(False)
            self.message.setText(f"Stopped downloading {self._repo_id}.")
            self.download_finished.emit("cancelled")
        elif self._result is not None and exit_code == 0:
            self._finish(self._result.data)
        else:
            self._failed(self._failure_sentence(exit_code))

    def _failed(self, sentence: str) -> None:
        """A failed download shows its sentence, not a progress bar stuck where it stopped."""
        self._show_progress(False)
        self.message.setText(sentence)
        self.download_finished.emit("failed")

    def _show_progress(self, shown: bool) -> None:
        self.progress.setVisible(shown)
        self.progress_detail.setVisible(shown)

    def _failure_sentence(self, exit_code: int) -> str:
        if self._error is not None:
            return self._error.message
        last = self._stderr_tail[-1] if self._stderr_tail else "no output"
        return f"the download stopped unexpectedly (exit code {exit_code}: {last})"

    def _finish(self, data: dict[str, Any]) -> None:
        path = data["path"]
        try:
            self.library.add_folder(path, origin="hub", repo_id=self._repo_id, revision=data.get("revision"))
        except ForgeError as error:
            self._failed(str(error))
            return
        self.progress.setValue(100)
        offline = " (the Hub was not reachable: this is the complete copy already in the cache)"
        self.message.setText(f"Downloaded {self._repo_id} to {path}{offline if data.get('offline') else ''}.")
        self.downloaded.emit(path)
        self.download_finished.emit("succeeded")

    def _on_process_error(self, error: QProcess.ProcessError) -> None:
        if error != QProcess.ProcessError.FailedToStart or self._process is None:
            return
        process, self._process = self._process, None
        process.deleteLater()
        self._update_buttons()
        self._failed(f"The download worker could not start ({process.errorString()}).")

    def _kill_if_running(self, process: QProcess) -> None:
        if self._process is process and process.state() != QProcess.ProcessState.NotRunning:
            process.kill()

    def _update_buttons(self) -> None:
        self.download_button.setEnabled(not self.is_downloading)
        self.cancel_button.setEnabled(self.is_downloading)

    # --- closing ------------------------------------------------------------------------------------------------------

    def reject(self) -> None:
        """Close (button, Esc, title bar): a running download is stopped first, once the user agrees."""
        if self.is_downloading:
            if not self.confirm_cancel():
                return
            self._stop_now()
        super().reject()

    def _stop_now(self) -> None:
        process = self._process
        self._cancelled = True
        process.kill()
        process.waitForFinished(5000)
