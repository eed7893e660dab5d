"""The Chat tab: talk to a converted model, or to two side by side, each in its own chat child process.

The window never loads onnxruntime-genai: every model lives in a `main.py worker chat` child
(app/jobs/chat_worker.py) that streams reply pieces as protocol lines. Pieces are gathered and drawn on a
short timer, so a model that streams thousands of tokens a second does not flood the GUI thread.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QGuiApplication, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.chat import PROVIDER_NAMES, GenerationSettings, Reply, Transcript, Turn, model_provider
from app.errors import ForgeError
from app.hardware import PROVIDERS
from app.jobs.protocol import ChatEvent, Piece, decode
from ui.job_runner import JobRunner
from ui.widgets.generation_settings import SettingsBox

FLUSH_MS = 40
EP_LABELS = {"cpu": "CPU", "dml": "DirectML", "cuda": "CUDA", "trt-rtx": "TensorRT-RTX", "webgpu": "WebGPU"}
_WARNING_STYLE = "color: #b05a00;"
_ERROR_STYLE = "color: #b00020;"


class ChatProcess(JobRunner):
    """A chat child: a JobRunner (start, cancel, kill, memory) that also passes chat lines on and takes requests."""

    piece = Signal(str, int)
    """Text that arrived in one read, and how many pieces (about one per token) it joins."""
    event = Signal(str, object)
    """A ChatEvent's name and data (object: the dict passes as it is, with no round trip through QVariantMap)."""

    def __init__(self, spec: dict[str, Any], parent: QObject | None = None) -> None:
        super().__init__("chat", spec, parent=parent)

    def request(self, op: str, **fields: Any) -> None:
        if self.is_running():
            self._process.write((json.dumps({"op": op, **fields}) + "\n").encode())

    def _handle_stdout(self, lines: list[str]) -> None:
        rest: list[str] = []
        pieces: list[str] = []
        for line in lines:
            message = decode(line)
            if isinstance(message, Piece):
                pieces.append(message.text)
                continue
            if pieces:
                self.piece.emit("".join(pieces), len(pieces))
                pieces = []
            if isinstance(message, ChatEvent):
                self.event.emit(message.event, message.data)
            else:
                rest.append(line)
        if pieces:
            self.piece.emit("".join(pieces), len(pieces))
        if rest:
            super()._handle_stdout(rest)


class ChatColumn(QWidget):
    """One model: its pickers, its state, its transcript. The pane sends the same prompt to every column."""

    state_changed = Signal(str)
    """idle, loading, ready, streaming or failed."""
    reply_finished = Signal(object)
    """The Reply, with its figures."""
    settings_loaded = Signal(object)
    """The GenerationSettings the model's genai_config starts from, and its context length (as max)."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = "idle"
        self.process: ChatProcess | None = None
        self.transcript = Transcript()
        self.context = 0
        self.cpu_build: str | None = None
        self._gpus: dict[str, list[tuple[str, int]]] = {}
        self._preferred_gpu = ""
        self._usable = {"cpu"}
        self._pending = ""
        self._streamed = 0
        self._streamed_drawn = False
        self._sent_at = 0.0
        self._first_at = 0.0
        self._handed = 0  # turns at the start of the transcript that came from another column's conversation
        self._handed_from = ""
        self._replaced: str | None = None  # the reply a greedy Regenerate dropped
        # Narrow minimums (names are elided, the full path is the tooltip): two columns side by side must fit where
        # one did, or ticking "Side by side" widens the window.
        self.model_combo = QComboBox()
        self.ep_combo = QComboBox()
        self.gpu_combo = QComboBox()
        for combo, characters in ((self.model_combo, 10), (self.ep_combo, 6), (self.gpu_combo, 6)):
            combo.setMinimumContentsLength(characters)
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.gpu_combo.setToolTip("Which GPU (set in this session's configuration, never in genai_config.json)")
        self.load_button = QPushButton("Load")
        self.cpu_button = QPushButton("Use CPU build")
        self.status = QLabel("No model loaded.")
        self.status.setWordWrap(True)
        self.warning = QLabel("")
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet(_WARNING_STYLE)
        self.view = QPlainTextEdit()  # lays out a long transcript far faster than a rich-text view
        self.view.setReadOnly(True)
        self.view.setUndoRedoEnabled(False)
        self.live = QLabel("")
        self.live.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)  # figures, never a minimum
        self._timer = QTimer(self)
        self._timer.setInterval(FLUSH_MS)
        self._timer.timeout.connect(self.flush)

        model_row = QHBoxLayout()
        model_row.addWidget(QLabel(f"<b>{title}</b>"))
        model_row.addWidget(self.model_combo, 1)
        run_row = QHBoxLayout()
        for widget in (self.ep_combo, self.gpu_combo, self.load_button, self.cpu_button):
            run_row.addWidget(widget)
        run_row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(model_row)
        layout.addLayout(run_row)
        layout.addWidget(self.status)
        layout.addWidget(self.warning)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.live)
        self.cpu_button.hide()
        self.gpu_combo.hide()
        self.warning.hide()
        self.model_combo.currentIndexChanged.connect(self._on_model_changed)
        self.ep_combo.currentIndexChanged.connect(self._show_gpus)
        self.load_button.clicked.connect(self.load)
        self.cpu_button.clicked.connect(self.use_cpu_build)
        self.set_hardware(set(), {})  # the CPU until the hardware report arrives

    # --- pickers ----------------------------------------------------------------------------------

    def set_models(self, models: list[tuple[str, str]]) -> None:
        """(name, path) of every GenAI model folder in the library; the current choice is kept."""
        current = self.model_path()
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        for name, path in models:
            self.model_combo.addItem(name, path)
            self.model_combo.setItemData(self.model_combo.count() - 1, path, Qt.ItemDataRole.ToolTipRole)
        self.model_combo.blockSignals(False)
        if current:
            self.select_model(current)
        else:
            self._on_model_changed()

    def select_model(self, path: str) -> None:
        index = self.model_combo.findData(path)
        if index < 0:
            self.model_combo.addItem(Path(path).name, path)
            index = self.model_combo.count() - 1
        self.model_combo.setCurrentIndex(index)
        self._on_model_changed()

    def model_path(self) -> str:
        return str(self.model_combo.currentData() or "")

    def set_hardware(self, usable: set[str], gpus: dict[str, list[tuple[str, int]]]) -> None:
        """usable providers (cpu is always there) and, per provider, the GPUs it can pick: (name, device_id)."""
        self._usable = usable | {"cpu"}
        self._gpus = gpus
        self.ep_combo.blockSignals(True)
        self.ep_combo.clear()
        for name in PROVIDERS:
            if name in self._usable:
                self.ep_combo.addItem(EP_LABELS[name], name)
        self.ep_combo.blockSignals(False)
        self._on_model_changed()

    def _on_model_changed(self) -> None:
        """Preselect the provider the model was built for, where it is usable here."""
        path = self.model_path()
        try:
            built_for = model_provider(Path(path)) if path else "cpu"
        except (ForgeError, KeyError, IndexError, ValueError):
            built_for = "cpu"
        index = self.ep_combo.findData(built_for)
        self.ep_combo.setCurrentIndex(index if index >= 0 else self.ep_combo.findData("cpu"))
        self._show_gpus()

    def prefer_gpu(self, name: str) -> None:
        """The GPU the Hardware tab chose, picked wherever the provider lists it."""
        self._preferred_gpu = name
        self._show_gpus()

    def _show_gpus(self) -> None:
        self.gpu_combo.clear()
        for name, device_id in self._gpus.get(str(self.ep_combo.currentData()), []):
            self.gpu_combo.addItem(name, device_id)
        preferred = self.gpu_combo.findText(self._preferred_gpu)
        if preferred >= 0:
            self.gpu_combo.setCurrentIndex(preferred)
        self.gpu_combo.setVisible(self.gpu_combo.count() > 1)

    # --- the child --------------------------------------------------------------------------------

    def load(self) -> None:
        """Load the chosen model in a fresh child; the previous one is ended, which frees its memory."""
        path = self.model_path()
        if not path:
            self._set_state("failed", "Pick a model first: convert one, or drop an ONNX GenAI folder on the window.")
            return
        self.unload()
        ep = str(self.ep_combo.currentData() or "cpu")
        device_id = self.gpu_combo.currentData() if self.gpu_combo.count() > 1 else None
        self.process = ChatProcess({"model": path, "ep": ep, "device_id": device_id}, parent=self)
        self.process.piece.connect(self._on_piece)
        self.process.event.connect(self._on_event)
        self.process.finished.connect(lambda outcome, process=self.process: self._on_finished(process, outcome))
        self.transcript = Transcript(model=path)
        self._handed = 0
        self.cpu_button.hide()
        self._show_warning("")
        self._render()
        self._set_state("loading", f"Loading {Path(path).name} on {PROVIDER_NAMES.get(ep, ep)}…")
        self.process.start()

    def unload(self, wait: bool = False) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.piece.disconnect()
        process.event.disconnect()
        if wait:
            process.stop_now()
        else:
            process.cancel()
        self._timer.stop()
        self._set_state("idle", "No model loaded.")

    def use_cpu_build(self) -> None:
        if self.cpu_build:
            self.select_model(self.cpu_build)
            self.ep_combo.setCurrentIndex(self.ep_combo.findData("cpu"))
            self.load()

    def send(self, text: str, system: str, settings: GenerationSettings) -> None:
        if self.process is None or self.state != "ready":
            return
        self.process.request("system", text=system)
        self.process.request("settings", settings=_fitted(settings, self.context).to_dict())
        self.process.request("send", text=text)
        self.transcript.system = system
        self.transcript.turns.append(Turn("user", text))
        self._append_message("user", text)
        self._begin_reply()

    def continue_conversation(self, turns: list[Turn], source: str) -> None:
        """Take another column's conversation so far: this model answers the next message in the same one."""
        if self.process is None or self.state != "ready":
            return
        self.process.request("history", turns=[{"role": turn.role, "content": turn.content} for turn in turns])
        self.transcript.turns = [Turn(turn.role, turn.content) for turn in turns]
        self._handed, self._handed_from = len(turns), source
        self._render()

    def regenerate(self, system: str, settings: GenerationSettings) -> None:
        turns = self.transcript.turns
        if self.process is None or self.state != "ready" or not turns:
            return
        self._replaced = None
        if turns[-1].role == "assistant":
            dropped = turns.pop()
            self._replaced = None if settings.do_sample else dropped.content
        self._render()
        self.process.request("system", text=system)
        self.process.request("settings", settings=_fitted(settings, self.context).to_dict())
        self.process.request("regenerate")
        self._begin_reply()

    def stop(self) -> None:
        if self.process is not None and self.state == "streaming":
            self.process.request("stop")

    def clear(self) -> None:
        if self.process is not None and self.state == "ready":
            self.process.request("clear")
        self.transcript.turns.clear()
        self._handed = 0
        self._show_warning("")
        self._render()

    def last_reply_text(self) -> str:
        replies = [turn.content for turn in self.transcript.turns if turn.role == "assistant"]
        return replies[-1] if replies else ""

    def _begin_reply(self) -> None:
        self._append_header("assistant")
        self._pending = ""
        self._streamed = 0
        self._streamed_drawn = False
        self._sent_at = time.perf_counter()
        self._first_at = 0.0
        self._set_state("streaming", self.status.text())
        self._timer.start()

    def _on_piece(self, text: str, count: int) -> None:
        if not self._first_at:
            self._first_at = time.perf_counter()
        self._pending += text
        self._streamed += count

    def flush(self) -> None:
        """Draw the pieces that arrived since the last call (the timer calls it while a reply streams)."""
        if self._pending:
            text = self._pending if self._streamed_drawn else self._pending.lstrip()
            self._end().insertText(text, _format())
            self._streamed_drawn = True
            self._pending = ""
            self.view.verticalScrollBar().setValue(self.view.verticalScrollBar().maximum())
        if self.state == "streaming" and self._first_at:
            elapsed = time.perf_counter() - self._first_at
            speed = f" · {(self._streamed - 1) / elapsed:.1f} tok/s" if elapsed > 0 and self._streamed > 1 else ""
            first = (self._first_at - self._sent_at) * 1000
            self.live.setText(f"{self._streamed} tokens{speed} · first token {first:.0f} ms")

    def _on_event(self, event: str, data: dict[str, Any]) -> None:
        if event == "ready":
            self.context = int(data["context_length"])
            settings = GenerationSettings(**data["settings"])
            where = PROVIDER_NAMES.get(data["provider"], data["provider"])
            self._set_state("ready", f"{Path(data['model']).name} on {where} · context {self.context:,} tokens")
            self.settings_loaded.emit((settings, self.context))
        elif event == "failed":
            self.cpu_build = data.get("cpu_build")
            self.cpu_button.setVisible(bool(self.cpu_build))
            self._set_state("failed", data["message"])
        elif event == "template" and data.get("warning"):
            self._show_warning(f"Chat template: {data['warning']}")
        elif event == "reply":
            self.flush()
            reply = Reply(**data)
            self.transcript.turns.append(Turn("assistant", reply.text, reply))
            self._append_figures(reply)
            self._show_warning(reply.warning or self._repeat_note(reply))
            self._timer.stop()
            self.live.setText("")
            self._set_state("ready", self.status.text())
            self.reply_finished.emit(reply)
        elif event == "refused":
            if self.state == "streaming" and data.get("op") in ("send", "regenerate"):
                self._timer.stop()
                if data.get("op") == "send" and self.transcript.turns:
                    self.transcript.turns.pop()
                self._render()
                self._set_state("ready", self.status.text())
            self._show_warning(data["message"])

    def _on_finished(self, process: ChatProcess, outcome: Any) -> None:
        process.deleteLater()
        if process is not self.process:
            return  # an old child, ended on purpose
        self.process = None
        self._timer.stop()
        if self.state != "failed":
            self._set_state("failed", f"The chat process ended: {outcome.message or outcome.status}.")

    def _repeat_note(self, reply: Reply) -> str:
        replaced, self._replaced = self._replaced, None
        if replaced is None or reply.text != replaced:
            return ""
        return (
            "The same reply again: greedy decoding always picks the likeliest next word, so it gives the same "
            "reply every time. Choose Sampling under Decoding for a different one."
        )

    def _set_state(self, state: str, text: str) -> None:
        self.state = state
        self.status.setText(text)
        self.status.setStyleSheet(_ERROR_STYLE if state == "failed" else "")
        self.load_button.setText("Reload" if state in ("ready", "streaming") else "Load")
        self.state_changed.emit(state)

    def _show_warning(self, text: str) -> None:
        self.warning.setText(text)
        self.warning.setVisible(bool(text))

    # --- the transcript view ----------------------------------------------------------------------

    def _render(self) -> None:
        self.view.clear()
        handed = min(self._handed, len(self.transcript.turns))
        for number, turn in enumerate(self.transcript.turns, start=1):
            self._append_message(turn.role, turn.content, handed=number <= handed)
            if turn.reply is not None:
                self._append_figures(turn.reply)
            if number == handed:
                cursor = self._end()
                cursor.insertBlock()
                note = f"↑ {self._handed_from}'s conversation so far: this model continues it."
                cursor.insertText(note, _format("#777777", smaller=True))

    def _end(self) -> QTextCursor:
        cursor = self.view.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        return cursor

    def _append_header(self, role: str, handed: bool = False) -> None:
        cursor = self._end()
        if not self.view.document().isEmpty():
            cursor.insertBlock()
            cursor.insertBlock()
        name = "You" if role == "user" else Path(self.transcript.model).name or "Model"
        if handed and role == "assistant":
            name = f"{self._handed_from}'s model"
        cursor.insertText(name, _format("#1f5fa8" if role == "user" else "#2e7d32", bold=True))
        cursor.insertBlock()

    def _append_message(self, role: str, text: str, handed: bool = False) -> None:
        self._append_header(role, handed)
        self._end().insertText(text.lstrip() if role == "assistant" else text, _format())

    def _append_figures(self, reply: Reply) -> None:
        cursor = self._end()
        cursor.insertBlock()
        cursor.insertText(reply.figures(), _format("#777777", smaller=True))


class ChatPane(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.columns = [ChatColumn("A"), ChatColumn("B")]
        self.settings_box = SettingsBox()
        self.system_edit = QLineEdit()
        self.system_edit.setPlaceholderText("System prompt (optional)")
        self.side_by_side = QCheckBox("Side by side")
        self.side_by_side.setToolTip("Send each prompt to two models and watch both answers stream")
        self.input = QLineEdit()
        self.input.setPlaceholderText("Message — Enter sends")
        self.send_button = QPushButton("Send")
        self.stop_button = QPushButton("Stop")
        self.regenerate_button = QPushButton("Regenerate")
        self.clear_button = QPushButton("Clear")
        self.copy_button = QPushButton("Copy reply")
        self.export_button = QPushButton("Export…")
        self.send_hint = QLabel("")
        self.send_hint.setWordWrap(True)
        self._layout()
        self.columns[1].hide()
        for column in self.columns:
            column.state_changed.connect(self._update_buttons)
        self.columns[0].settings_loaded.connect(lambda loaded: self.settings_box.show_settings(*loaded))
        self.columns[1].settings_loaded.connect(self._hand_conversation_to_b)
        self.side_by_side.toggled.connect(self._toggle_side_by_side)
        self.input.returnPressed.connect(self.send)
        self.send_button.clicked.connect(self.send)
        self.stop_button.clicked.connect(self.stop)
        self.regenerate_button.clicked.connect(self.regenerate)
        self.clear_button.clicked.connect(self.clear)
        self.copy_button.clicked.connect(self.copy_reply)
        self.export_button.clicked.connect(self.choose_export)
        self._update_buttons()

    def _layout(self) -> None:
        split = self._split = QSplitter(Qt.Orientation.Horizontal)
        for column in self.columns:
            split.addWidget(column)
        side = QVBoxLayout()
        side.addWidget(self.settings_box)
        side.addWidget(self.side_by_side)
        side.addStretch(1)
        top = self._top = QHBoxLayout()
        top.addWidget(split, 1)
        top.addLayout(side)
        buttons = QHBoxLayout()
        buttons.addWidget(self.input, 1)
        for button in (self.send_button, self.stop_button, self.regenerate_button, self.clear_button):
            buttons.addWidget(button)
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.system_edit)
        layout.addLayout(top, 1)
        layout.addWidget(self.send_hint)
        layout.addLayout(buttons)

    def minimumSizeHint(self) -> QSize:
        """Room for column B even while it is hidden: ticking "Side by side" must not widen the window."""
        hint = super().minimumSizeHint()
        if not self.columns[1].isHidden():
            return hint
        margins = self.layout().contentsMargins()
        with_b = self._top.minimumSize().width() + self._split.handleWidth() + self.columns[1].minimumSizeHint().width()
        hint.setWidth(max(hint.width(), with_b + margins.left() + margins.right()))
        return hint

    def active_columns(self) -> list[ChatColumn]:
        return self.columns if self.side_by_side.isChecked() else self.columns[:1]

    # --- fed by the main window -------------------------------------------------------------------

    def set_models(self, entries: list[Any]) -> None:
        """The library's entries; those of kind 'onnx' are the models one can chat with."""
        models = [(entry.name, entry.path) for entry in entries if entry.kind == "onnx"]
        for column in self.columns:
            column.set_models(models)

    def select_model(self, path: str) -> None:
        """Preselect a model for column A (the library's selection); nothing is loaded until Load."""
        self.columns[0].select_model(path)

    def set_hardware(self, report: Any) -> None:
        gpus: dict[str, list[tuple[str, int]]] = {
            "dml": [(gpu.name, gpu.index) for gpu in report.gpus if gpu.index is not None],
            "cuda": [(gpu.name, gpu.nvml_index) for gpu in report.gpus if gpu.nvml_index is not None],
        }
        for column in self.columns:
            column.set_hardware(report.usable_providers(), gpus)

    def select_gpu(self, report: Any, index: int) -> None:
        """Follow the Hardware tab's GPU choice (a DXGI adapter index)."""
        chosen = next((gpu.name for gpu in report.gpus if gpu.index == index), "")
        for column in self.columns:
            column.prefer_gpu(chosen)

    def loaded_count(self) -> int:
        """Chat sessions holding a model (loading, ready or answering)."""
        return sum(column.process is not None for column in self.columns)

    def shutdown(self) -> None:
        """End every chat child and wait for it: the window is closing."""
        for column in self.columns:
            column.unload(wait=True)

    # --- actions ----------------------------------------------------------------------------------

    def send(self) -> None:
        text = self.input.text().strip()
        columns = self.active_columns()
        if not text or any(column.state != "ready" for column in columns):
            return  # side by side, a message goes to both models or to neither
        for column in columns:
            column.send(text, self.system_edit.text(), self.settings_box.settings())
        self.input.clear()

    def stop(self) -> None:
        for column in self.columns:
            column.stop()

    def regenerate(self) -> None:
        for column in self.active_columns():
            column.regenerate(self.system_edit.text(), self.settings_box.settings())

    def clear(self) -> None:
        for column in self.columns:
            column.clear()

    def copy_reply(self) -> None:
        """The last reply; side by side, both, each under its column's letter and model."""
        if not self.side_by_side.isChecked():
            QGuiApplication.clipboard().setText(self.columns[0].last_reply_text())
            return
        parts = [f"{label} · {_model_name(column)}:\n{column.last_reply_text()}" for label, column in self._labelled()]
        QGuiApplication.clipboard().setText("\n\n".join(parts))

    def choose_export(self) -> None:
        title = "Export both conversations" if self.side_by_side.isChecked() else "Export the conversation"
        path, _ = QFileDialog.getSaveFileName(self, title, "conversation.md", "Markdown (*.md);;JSON (*.json)")
        if path:
            self.export(Path(path))

    def export(self, path: Path) -> None:
        """Markdown or JSON by the file's suffix; side by side, both conversations, labelled A and B."""
        as_json = path.suffix.lower() == ".json"
        if not self.side_by_side.isChecked():
            transcript = self.columns[0].transcript
            path.write_text(transcript.to_json() if as_json else transcript.to_markdown(), encoding="utf-8")
            return
        if as_json:
            both = [{"column": label, **json.loads(column.transcript.to_json())} for label, column in self._labelled()]
            text = json.dumps({"side_by_side": both}, indent=2, ensure_ascii=False)
        else:
            text = "\n---\n\n".join(
                column.transcript.to_markdown().replace("# Chat with", f"# {label} · Chat with", 1)
                for label, column in self._labelled()
            )
        path.write_text(text, encoding="utf-8")

    def _labelled(self) -> list[tuple[str, ChatColumn]]:
        return list(zip("AB", self.columns, strict=True))

    def _hand_conversation_to_b(self, _loaded: Any = None) -> None:
        """B, once loaded, continues A's conversation: both answer the next message in the same one."""
        turns = list(self.columns[0].transcript.turns)
        if turns and turns[-1].role == "user":
            turns.pop()  # a message A is still answering; it reaches B only as a message sent to both
        if self.side_by_side.isChecked() and turns:
            self.columns[1].continue_conversation(turns, "A")

    def _toggle_side_by_side(self, on: bool) -> None:
        self.columns[1].setVisible(on)
        if not on:
            self.columns[1].unload()
        self.copy_button.setText("Copy both replies" if on else "Copy reply")
        self.export_button.setText("Export both…" if on else "Export…")
        self._update_buttons()

    def _update_buttons(self, *_: Any) -> None:
        columns = self.active_columns()
        states = {column.state for column in columns}
        streaming = "streaming" in states
        ready = states == {"ready"}
        self.send_button.setEnabled(ready)
        self.regenerate_button.setEnabled(ready)
        self.stop_button.setEnabled(streaming)
        self.clear_button.setEnabled(not streaming)
        self.export_button.setEnabled(not streaming)
        waiting = [label for label, column in self._labelled()[: len(columns)] if column.state != "ready"]
        hint = ""
        if self.side_by_side.isChecked() and waiting and not streaming:
            hint = f"Load {' and '.join(waiting)} to send: side by side, each message goes to both models."
        self.send_hint.setText(hint)
        self.send_hint.setVisible(bool(hint))
        self.send_button.setToolTip(hint)


def _model_name(column: ChatColumn) -> str:
    return Path(column.transcript.model).name or "no model"


def _fitted(settings: GenerationSettings, context: int) -> GenerationSettings:
    """The settings for a model whose context may be shorter than the one the box was sized for."""
    if context and settings.max_length > context:
        return GenerationSettings(**{**settings.to_dict(), "max_length": context})
    return settings


def _format(colour: str = "", bold: bool = False, smaller: bool = False) -> QTextCharFormat:
    text_format = QTextCharFormat()
    if colour:
        text_format.setForeground(QColor(colour))
    if bold:
        text_format.setFontWeight(QFont.Weight.Bold)
    if smaller:
        text_format.setFontPointSize(max(QFont().pointSizeF() - 1.5, 6.0))
    return text_format
