"""The Serve tab: start and stop `main.py serve` for chosen library models, show where it listens with examples
to copy, and log every request with its figures (the server's JSON request log, app/serve)."""

from __future__ import annotations

import json
import secrets
import sys
import time
from typing import Any

from PySide6.QtCore import QProcess, QProcessEnvironment, Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.jobs.protocol import LineAssembler
from app.jobs.runner import app_command

LOG_COLUMNS = ("Time", "Model", "Endpoint", "Status", "Tokens", "tok/s", "First token", "End")
MAX_LOG_ROWS = 1000
_STOP_WAIT_MS = 3000
_API_KEY_ENV = "ONNX_FORGE_API_KEY"


class ServePane(QWidget):
    """One server at a time, in a child process; `state_changed` says 'starting', 'serving' or 'stopped'."""

    state_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = "stopped"
        self.url = ""
        self._process: QProcess | None = None
        self._lines = LineAssembler()
        self._errors: list[str] = []
        self.models = QListWidget(self)
        self.host = QLineEdit("127.0.0.1", self)
        self.port = QSpinBox(self)
        self.port.setRange(0, 65535)
        self.port.setValue(8000)
        self.port.setToolTip("0 picks a free port")
        self.require_key = QCheckBox("Require an API key", self)
        self.api_key = QLineEdit(self)
        self.api_key.setEchoMode(QLineEdit.EchoMode.Password)
        self.api_key.setPlaceholderText("needed to listen beyond 127.0.0.1")
        self.start_button = QPushButton("Start", self)
        self.stop_button = QPushButton("Stop", self)
        self.status = QLabel("Stopped.", self)
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.example = QPlainTextEdit(self)
        self.example.setReadOnly(True)
        self.copy_example = QPushButton("Copy example", self)
        self.log = QTableWidget(0, len(LOG_COLUMNS), self)
        self.log.setHorizontalHeaderLabels(LOG_COLUMNS)
        self.log.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self._layout()
        self.start_button.clicked.connect(lambda *_: self.start())
        self.stop_button.clicked.connect(lambda *_: self.stop())
        self.copy_example.clicked.connect(lambda *_: QGuiApplication.clipboard().setText(self.example.toPlainText()))
        self.require_key.toggled.connect(self._on_require_key)
        self._set_state("stopped")

    def _layout(self) -> None:
        form = QFormLayout()
        form.addRow("Models to serve", self.models)
        form.addRow("Address", self.host)
        form.addRow("Port", self.port)
        form.addRow(self.require_key, self.api_key)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        buttons.addStretch(1)
        buttons.addWidget(self.copy_example)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(self.example, 1)
        layout.addWidget(QLabel("Requests", self))
        layout.addWidget(self.log, 2)

    # --- public API ---------------------------------------------------------------------------------

    def set_models(self, entries: list[Any]) -> None:
        """The library's entries; those of kind 'onnx' can be served. Ticks the user set are kept."""
        ticked = set(self.chosen_models())
        self.models.clear()
        for entry in entries:
            if entry.kind != "onnx":
                continue
            item = QListWidgetItem(entry.name, self.models)
            item.setData(Qt.ItemDataRole.UserRole, entry.path)
            item.setToolTip(entry.path)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if entry.path in ticked else Qt.CheckState.Unchecked)

    def chosen_models(self) -> list[str]:
        items = [self.models.item(row) for row in range(self.models.count())]
        return [item.data(Qt.ItemDataRole.UserRole) for item in items if item.checkState() == Qt.CheckState.Checked]

    def is_running(self) -> bool:
        return self._process is not None

    def start(self) -> None:
        if self._process is not None:
            return
        models = self.chosen_models()
        if not models:
            self.status.setText("Tick at least one model to serve.")
            return
        key = self.api_key.text().strip() if self.require_key.isChecked() else ""
        args = ["serve", *models, "--host", self.host.text().strip(), "--port", str(self.port.value())]
        process = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        env.insert("PYTHONIOENCODING", "utf-8")
        env.remove(_API_KEY_ENV)
        if key:
            env.insert(_API_KEY_ENV, key)  # not on the command line, where other users' process lists show it
        process.setProcessEnvironment(env)
        program, *rest = app_command(*args, "--log-format", "json")
        process.readyReadStandardOutput.connect(self._read_output)
        process.readyReadStandardError.connect(self._read_errors)
        process.finished.connect(self._on_finished)
        process.errorOccurred.connect(self._on_error)
        self._process, self._lines, self._errors = process, LineAssembler(), []
        self._set_state("starting")
        process.start(program, rest)

    def stop(self) -> None:
        """Stop the server; the child is killed if it has not gone after a short wait."""
        process = self._process
        if process is None:
            return
        # Windows: terminate() sends WM_CLOSE, which a console child ignores.
        process.kill() if sys.platform == "win32" else process.terminate()
        if not process.waitForFinished(_STOP_WAIT_MS):
            process.kill()
            process.waitForFinished(_STOP_WAIT_MS)

    def shutdown(self) -> None:
        self.stop()

    # --- the child ----------------------------------------------------------------------------------

    def _read_output(self) -> None:
        if self._process is None:
            return
        for line in self._lines.feed(bytes(self._process.readAllStandardOutput())):
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("type") == "listening":
                self._on_listening(event)
            elif isinstance(event, dict) and event.get("type") == "request":
                self._add_row(event)

    def _read_errors(self) -> None:
        if self._process is None:
            return
        text = bytes(self._process.readAllStandardError()).decode("utf-8", errors="replace")
        self._errors = (self._errors + [line for line in text.splitlines() if line.strip()])[-20:]

    def _on_listening(self, event: dict[str, Any]) -> None:
        self.url = str(event.get("url", ""))
        names = ", ".join(str(name) for name in event.get("models", []))
        self._set_state("serving")
        self.status.setText(f"Serving {names} at {self.url} (batching: {event.get('batching', '?')}).")
        first = str(next(iter(event.get("models", [])), "MODEL"))
        self.example.setPlainText(examples(self.url, first, bool(self.require_key.isChecked())))

    def _on_finished(self, *_: Any) -> None:
        if self._process is None:
            return
        self._read_output()
        self._read_errors()
        said = next((line for line in reversed(self._errors) if line.startswith("error:")), "")
        was_starting = self.state == "starting"
        self._process.deleteLater()
        self._process = None
        self._set_state("stopped")
        if said:
            self.status.setText(said[len("error:") :].strip().capitalize())
        elif was_starting:
            self.status.setText("The server stopped before it listened: " + " ".join(self._errors[-2:]))
        else:
            self.status.setText("Stopped.")

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart and self._process is not None:
            self._process.deleteLater()
            self._process = None
            self._set_state("stopped")
            self.status.setText("The server could not be started (the program was not found).")

    def _add_row(self, record: dict[str, Any]) -> None:
        if self.log.rowCount() >= MAX_LOG_ROWS:
            self.log.removeRow(0)
        row = self.log.rowCount()
        self.log.insertRow(row)
        end = record.get("error") or record.get("finish_reason") or ""
        if record.get("disconnected"):
            end = "client went away"
        cells = (
            time.strftime("%H:%M:%S"),
            record.get("model", ""),
            record.get("endpoint", ""),
            record.get("status", ""),
            record.get("completion_tokens", 0),
            f"{float(record.get('tokens_per_second') or 0):.1f}",
            f"{float(record.get('first_token_ms') or 0):.0f} ms",
            end,
        )
        for column, value in enumerate(cells):
            item = QTableWidgetItem(str(value))
            item.setToolTip(str(value))
            self.log.setItem(row, column, item)
        self.log.scrollToBottom()

    def _on_require_key(self, on: bool) -> None:
        self.api_key.setEnabled(on)
        if on and not self.api_key.text():
            self.api_key.setText(secrets.token_urlsafe(24))

    def _set_state(self, state: str) -> None:
        self.state = state
        idle = state == "stopped"
        for widget in (self.models, self.host, self.port, self.require_key, self.start_button):
            widget.setEnabled(idle)
        self.api_key.setEnabled(idle and self.require_key.isChecked())
        self.stop_button.setEnabled(not idle)
        self.copy_example.setEnabled(state == "serving")
        if state == "starting":
            self.status.setText("Loading the models…")
        self.state_changed.emit(state)


def examples(url: str, model: str, with_key: bool) -> str:
    """What to paste: the OpenAI Python client and curl, against this server."""
    key = f"os.environ['{_API_KEY_ENV}']" if with_key else "'not-needed'"
    header = f' -H "Authorization: Bearer ${_API_KEY_ENV}"' if with_key else ""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Hello!"}]})
    return (
        "# Python (pip install openai)\n"
        "import os\n"
        "from openai import OpenAI\n\n"
        f"client = OpenAI(base_url='{url}', api_key={key})\n"
        f"reply = client.chat.completions.create(model='{model}', messages=[{{'role': 'user', 'content': 'Hello!'}}])\n"
        "print(reply.choices[0].message.content)\n\n"
        "# curl\n"
        f"curl {url}/chat/completions -H \"Content-Type: application/json\"{header} -d '{body}'\n"
    )
