"""The Quantization tab: pick an algorithm for the selected model, set its options, queue the job.

Algorithms and options come from app.quantize's one table; this pane only turns them into widgets.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.errors import ForgeError
from app.library import LibraryEntry
from app.paths import default_output
from app.quantize import ALGORITHMS, INPUT_KIND, QuantizeRequest, QuantOption, options_for, plan_quantization
from ui.widgets.fields import BoolField, ChoiceField, Field, TextField

_RESULT_COLUMNS = ["Output", "Algorithm", "Size", "Perplexity", "Verdict"]
_BACKEND_NAMES = {"modelopt": "NVIDIA ModelOpt", "ort": "ONNX Runtime", "quark": "AMD Quark"}
# Which library kinds (app.library) each backend's input kind accepts.
_ACCEPTS = {"genai": {"onnx"}, "onnx": {"onnx"}, "checkpoint": {"checkpoint"}}


class QuantizePane(QWidget):
    quantize_requested = Signal(object)
    """A QuantizeRequest that passed app.quantize.plan_quantization."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._entry_kind = ""
        self._input = ""
        self._name = ""
        self._editors: dict[str, Field] = {}
        self.input_label = QLabel("Select an ONNX model (or a checkpoint, for Quark) on the left.")
        self.algo_combo = QComboBox()
        self.algo_combo.currentIndexChanged.connect(self._on_algo_changed)
        self.options_form = QFormLayout()
        options_widget = QWidget()
        options_widget.setLayout(self.options_form)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(options_widget)
        self.output_edit = QLineEdit()
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.quantize_button = QPushButton("Quantize")
        self.quantize_button.clicked.connect(self.request_quantize)
        self.report_box = QCheckBox("Measure quality and speed when done")
        self.report_box.setToolTip(
            "Run eval and bench on the result once it is in place, so the Report tab fills itself (takes longer)."
        )
        self.results = QTableWidget(0, len(_RESULT_COLUMNS))
        self.results.setHorizontalHeaderLabels(_RESULT_COLUMNS)
        self.results.horizontalHeader().setStretchLastSection(True)
        self.results.verticalHeader().setVisible(False)
        self.results.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.results.setMaximumHeight(160)
        algo_row = QHBoxLayout()
        algo_row.addWidget(QLabel("Algorithm:"))
        algo_row.addWidget(self.algo_combo, 1)
        output_row = QHBoxLayout()
        output_row.addWidget(QLabel("Output folder:"))
        output_row.addWidget(self.output_edit, 1)
        output_row.addWidget(self.report_box)
        output_row.addWidget(self.quantize_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.input_label)
        layout.addLayout(algo_row)
        layout.addWidget(scroll, 1)
        layout.addWidget(self.message)
        layout.addLayout(output_row)
        layout.addWidget(QLabel("Results from this input (size and perplexity against it, on the held-out text):"))
        layout.addWidget(self.results)
        self._fill_algorithms()

    def set_model(self, path: str, name: str, kind: str) -> None:
        """The library entry to quantize: kind is 'onnx' or 'checkpoint' (anything else disables the pane)."""
        self._input, self._name, self._entry_kind = path, name, kind
        self.input_label.setText(f"Input: {name} ({path})" if path else "Select a model on the left.")
        self._fill_algorithms()

    def show_results(self, entries: list[LibraryEntry]) -> None:
        """The library's quantization outputs made from the current input, with what forge.json says they cost."""
        made = [
            entry
            for entry in entries
            if entry.kind == "onnx"
            and entry.info.get("algorithm")
            and self._input
            and (entry.info.get("source") or {}).get("path") == str(Path(self._input).expanduser().resolve())
        ]
        self.results.setRowCount(len(made))
        for row, entry in enumerate(made):
            quality = entry.info.get("quality") or {}
            before, after = quality.get("input_perplexity"), quality.get("perplexity")
            cells = [
                entry.name,
                str(entry.info["algorithm"]),
                f"{quality['size_ratio']:.0%}" if "size_ratio" in quality else "",
                f"{before:.3f} → {after:.3f}" if before and after else f"{after:.3f}" if after else "",
                quality.get("verdict", "not measured"),
            ]
            for column, text in enumerate(cells):
                self.results.setItem(row, column, QTableWidgetItem(text))
        self.results.resizeColumnsToContents()

    def selected_algo(self) -> str:
        return self.algo_combo.currentData() or ""

    def set_algo(self, algo: str) -> None:
        index = self.algo_combo.findData(algo)
        if index >= 0:
            self.algo_combo.setCurrentIndex(index)

    def _fill_algorithms(self) -> None:
        previous = self.selected_algo()
        self.algo_combo.blockSignals(True)
        self.algo_combo.clear()
        for algo, module in ALGORITHMS.items():
            if not self._entry_kind or self._entry_kind in _ACCEPTS[INPUT_KIND[module]]:
                self.algo_combo.addItem(f"{algo} ({_BACKEND_NAMES[module]})", algo)
        self.algo_combo.blockSignals(False)
        self.set_algo(previous)
        self._on_algo_changed()

    def _on_algo_changed(self, _index: int = 0) -> None:
        while self.options_form.rowCount():
            self.options_form.removeRow(0)
        self._editors = {}
        algo = self.selected_algo()
        enabled = bool(algo and self._input)
        self.quantize_button.setEnabled(enabled)
        if not algo:
            return
        for option in options_for(algo):
            editor = _editor_for(option)
            editor.setToolTip(option.help)
            self._editors[option.name] = editor
            self.options_form.addRow(option.name, editor)
        if self._name:
            self.output_edit.setText(str(default_output(self._name, algo)))

    def overrides(self) -> dict[str, str]:
        """Only the options changed from their defaults, as --set strings."""
        values = {name: editor.value() for name, editor in self._editors.items()}
        return {name: value for name, value in values.items() if value is not None}

    def request_quantize(self) -> None:
        request = QuantizeRequest(self._input, self.output_edit.text().strip(), self.selected_algo(), self.overrides())
        request.report = {} if self.report_box.isChecked() else None
        try:
            plan_quantization(request)
        except ForgeError as error:
            self.message.setText(str(error))
            return
        self.message.setText("")
        self.quantize_requested.emit(request)


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value)
    return "" if value is None else str(value)


def _editor_for(option: QuantOption) -> Field:
    if option.kind == "bool":
        return BoolField(bool(option.default))
    if option.choices:
        return ChoiceField(list(option.choices), None, baseline=_text(option.default))
    return TextField(None, baseline=_text(option.default))
