"""The Convert pane: the nine preset cards, the execution provider, the output folder and the Convert button.

Everything shown comes from the engine: the presets and their validity (app.presets), the expected size and
whether it fits (app.fit), default folder names (app.paths). The pane only asks for conversions; the main
window plans and runs them.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app.builder_info import builder_info
from app.checkpoints import CheckpointInfo
from app.convert import ConvertRequest, free_disk_bytes, human_size
from app.errors import PresetError
from app.fit import Fit, expected_size, fit_verdict, recommended
from app.hardware import PROVIDERS, HardwareReport
from app.paths import default_output, models_dir, output_name
from app.presets import EP_NAMES, PRESETS, Preset, default_ep, resolve
from ui.widgets.options_form import CustomOptionsDialog

_BADGE_STYLES = {
    "fits": "background: #d7f5dd; color: #14532d;",
    "tight": "background: #fff1c2; color: #713f12;",
    "won't fit": "background: #fde2e1; color: #7f1d1d;",
    "unavailable": "background: #e5e7eb; color: #374151;",
}
_BADGE_BASE = "border-radius: 6px; padding: 2px 8px; font-weight: bold;"
_COLUMNS = 3


def _count(parameters: int) -> str:
    return f"{parameters / 1e9:.2f} B" if parameters >= 1e8 else f"{parameters / 1e6:.1f} M"


def _holds_something(folder: Path) -> bool:
    try:
        return folder.is_dir() and any(folder.iterdir())
    except OSError:
        return False


def free_folder(folder: Path) -> Path:
    """The first of folder-2, folder-3, … that does not exist yet."""
    number = 2
    while (candidate := folder.with_name(f"{folder.name}-{number}")).exists():
        number += 1
    return candidate


class PresetCard(QFrame):
    """One preset: what it is, what it makes of the selected model, and whether that fits here."""

    toggled = Signal()
    custom_clicked = Signal()

    def __init__(self, preset: Preset, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.preset = preset
        self.available = True
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.checkbox = QCheckBox(preset.title)
        self.checkbox.setStyleSheet("font-weight: bold;")
        self.checkbox.toggled.connect(self.toggled)
        self.recommended_label = self._label("", "color: #1d4ed8; font-weight: bold;")
        self.recommended_label.hide()
        self.size_label = self._label("")
        self.precision_label = self._label(f"Precision: {preset.precision.upper()}")
        self.badge = QLabel()
        self.badge.hide()
        self._details = [
            self._label(preset.purpose),
            self.precision_label,
            self.size_label,
            self._label(f"Quality: {preset.quality}", "font-style: italic;"),
        ]
        layout = QVBoxLayout(self)
        layout.addWidget(self.checkbox)
        layout.addWidget(self.recommended_label)
        for label in self._details:
            layout.addWidget(label)
        footer = QHBoxLayout()
        footer.addWidget(self.badge)
        footer.addStretch(1)
        self.custom_button = QPushButton("Custom…") if preset.id == "custom" else None
        if self.custom_button:
            self.custom_button.clicked.connect(self.custom_clicked)
            footer.addWidget(self.custom_button)
        layout.addLayout(footer)
        layout.addStretch(1)

    @staticmethod
    def _label(text: str, style: str = "") -> QLabel:
        label = QLabel(text)
        label.setWordWrap(True)
        if style:
            label.setStyleSheet(style)
        return label

    def is_ticked(self) -> bool:
        return self.available and self.checkbox.isChecked()

    def set_available(self, available: bool, reason: str, command: str = "") -> None:
        """An invalid preset x provider pair greys the card (the Custom… button stays: it is the way out)."""
        self.available = available
        for widget in (self.checkbox, *self._details):
            widget.setEnabled(available)
        if not available:
            self.checkbox.setChecked(False)
            self._set_badge("unavailable", "not for this provider", reason)
        self.setToolTip(reason if not available else command)
        self.checkbox.setToolTip(self.toolTip())

    def set_precision(self, precision: str) -> None:
        self.precision_label.setText(f"Precision: {precision.upper()}")

    def set_size(self, size: int, percent: float) -> None:
        share = f"{percent:.0f} % of FP32"
        if not size:
            low, high = self.preset.size_percent_of_fp32
            share = f"~{low} % of FP32" if low == high else f"{low}–{high} % of FP32"
        self.size_label.setText(f"Expected size: {share}" + (f" · {human_size(size)}" if size else ""))

    def set_fit(self, fit: Fit | None) -> None:
        if not self.available:
            return
        if fit is None:
            self.badge.hide()
            return
        self._set_badge(fit.level, fit.level, fit.reason)

    def _set_badge(self, style: str, text: str, tooltip: str) -> None:
        self.badge.setText(text)
        self.badge.setStyleSheet(_BADGE_BASE + _BADGE_STYLES[style])
        self.badge.setToolTip(tooltip)
        self.badge.show()

    def set_recommended(self, reason: str | None) -> None:
        self.recommended_label.setVisible(reason is not None)
        self.recommended_label.setText(f"★ Recommended: {reason}" if reason else "")
        self.setStyleSheet("PresetCard { border: 2px solid #1d4ed8; }" if reason else "")


class PresetPane(QWidget):
    """Pick presets and a provider for the selected checkpoint; Convert emits one ConvertRequest per ticked card."""

    convert_requested = Signal(list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.info: CheckpointInfo | None = None
        self.name = ""
        self.report: HardwareReport | None = None
        self.gpu_index: int | None = None
        self.custom_overrides: dict[str, str] = {}
        self.custom_dialog: CustomOptionsDialog | None = None
        self.recommended_id: str | None = None
        self._ep_chosen_by_user = False
        self._output_chosen_by_user = False
        self._user_place: Path | None = None
        """The folder the user typed or browsed to hold the output(s); None while the studio's default is used, or
        when the user also named the output folder (then their name stays as it is)."""

        self.model_label = QLabel("No model selected: pick a checkpoint on the left.")
        self.model_label.setWordWrap(True)
        self.ep_combo = QComboBox()
        # Wide enough for "TensorRT-RTX ✗ cannot run here": a combo sized to its first item cuts the others.
        self.ep_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        # Fixed: a crowded header row may not squeeze it below its contents ("CPU ✓ runs he").
        self.ep_combo.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.ep_combo.activated.connect(self._on_ep_activated)
        self.recommendation_label = QLabel()
        self.recommendation_label.setWordWrap(True)
        self.cards = {preset_id: PresetCard(preset) for preset_id, preset in PRESETS.items()}
        for card in self.cards.values():
            card.toggled.connect(self._on_ticks_changed)
        self.cards["custom"].custom_clicked.connect(self.open_custom_dialog)
        self.output_label = QLabel("Output folder:")
        self.output_edit = QLineEdit()
        self.output_edit.textEdited.connect(self._on_output_edited)
        self.output_edit.textChanged.connect(self._update_convert_button)
        self.subfolders_label = QLabel()
        self.subfolders_label.setWordWrap(True)
        self.subfolders_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.browse_button = QPushButton("Browse…")
        self.browse_button.clicked.connect(self._browse)
        self.report_box = QCheckBox("Measure quality and speed when done")
        self.report_box.setToolTip(
            "Run eval and bench on the result once it is in place, so the Report tab fills itself (takes longer)."
        )
        self.convert_button = QPushButton("Convert")
        self.convert_button.setDefault(True)
        self.convert_button.clicked.connect(self.request_convert)
        self._layout()
        self._fill_ep_combo()
        self._refresh()

    def _layout(self) -> None:
        header = QHBoxLayout()
        header.addWidget(self.model_label, 1)
        header.addWidget(QLabel("Execution provider:"))
        header.addWidget(self.ep_combo)
        grid = QGridLayout()
        for position, card in enumerate(self.cards.values()):
            grid.addWidget(card, position // _COLUMNS, position % _COLUMNS)
        cards = QWidget()
        cards.setLayout(grid)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(cards)
        footer = QHBoxLayout()
        footer.addWidget(self.output_label)
        footer.addWidget(self.output_edit, 1)
        footer.addWidget(self.browse_button)
        footer.addWidget(self.report_box)
        footer.addWidget(self.convert_button)
        layout = QVBoxLayout(self)
        layout.addLayout(header)
        layout.addWidget(self.recommendation_label)
        layout.addWidget(scroll, 1)
        layout.addLayout(footer)
        layout.addWidget(self.subfolders_label)

    # --- inputs from the main window -------------------------------------------------------------

    def set_checkpoint(self, info: CheckpointInfo | None, name: str) -> None:
        self.info = info
        self.name = name
        self._refresh()

    def set_hardware(self, report: HardwareReport | None) -> None:
        self.report = report
        self._fill_ep_combo()
        self._refresh()

    def set_gpu(self, index: int | None) -> None:
        """The GPU picked in the hardware pane: the one DirectML runs on and the fit is judged against."""
        self.gpu_index = index
        self._refresh()

    # --- state ------------------------------------------------------------------------------------

    def selected_ep(self) -> str:
        return self.ep_combo.currentData()

    def set_ep(self, ep: str) -> None:
        self.ep_combo.setCurrentIndex(self.ep_combo.findData(ep))
        self._ep_chosen_by_user = True
        self._refresh()

    def tick_presets(self, preset_ids: list[str]) -> None:
        for preset_id, card in self.cards.items():
            card.checkbox.setChecked(preset_id in preset_ids and card.available)

    def ticked(self) -> list[str]:
        return [preset_id for preset_id, card in self.cards.items() if card.is_ticked()]

    def _usable(self) -> set[str]:
        return self.report.usable_providers() if self.report else {"cpu"}

    # --- execution providers ----------------------------------------------------------------------

    def _fill_ep_combo(self) -> None:
        current = self.ep_combo.currentData()
        self.ep_combo.clear()
        buildable = builder_info().execution_providers
        for ep in (ep for ep in PROVIDERS if ep in buildable):  # the Hardware tab's list, in its order
            text, reason = self._ep_entry(ep)
            self.ep_combo.addItem(text, ep)
            self.ep_combo.setItemData(self.ep_combo.count() - 1, reason, Qt.ItemDataRole.ToolTipRole)
        chosen = current if self._ep_chosen_by_user and current else self._default_ep()
        self.ep_combo.setCurrentIndex(max(self.ep_combo.findData(chosen), 0))

    def _ep_entry(self, ep: str) -> tuple[str, str]:
        name = EP_NAMES.get(ep, ep)
        if self.report is None:
            return name, "waiting for the hardware report"
        try:
            status = self.report.provider(ep)
        except KeyError:
            return f"{name} (not checked here)", f"the hardware report does not cover {name}"
        mark = "✓ runs here" if status.usable else "✗ cannot run here"
        return f"{name} {mark}", status.reason

    def _default_ep(self) -> str:
        preset_id = self.recommended_id or "int4"
        return default_ep(PRESETS[preset_id], self._usable())

    def _on_ep_activated(self, _index: int) -> None:
        self._ep_chosen_by_user = True
        self._refresh()
        if self.custom_dialog is not None:
            self.custom_dialog.form.set_ep(self.selected_ep())

    # --- refresh ----------------------------------------------------------------------------------

    def _refresh(self) -> None:
        self._update_recommendation()
        if not self._ep_chosen_by_user:
            self.ep_combo.setCurrentIndex(max(self.ep_combo.findData(self._default_ep()), 0))
        self._update_model_label()
        ep = self.selected_ep()
        free = self._free_disk()
        for preset_id, card in self.cards.items():
            self._update_card(card, preset_id, ep, free)
        self._update_output()
        self._update_convert_button()

    def _update_recommendation(self) -> None:
        self.recommended_id, reason = None, None
        if self.report is not None:
            self.recommended_id, reason = recommended(self.info, self.report)
        for preset_id, card in self.cards.items():
            card.set_recommended(reason if preset_id == self.recommended_id else None)
        if self.recommended_id is None:
            self.recommendation_label.setText("The recommendation waits for the hardware report.")
        else:
            self.recommendation_label.setText(f"★ {reason[0].upper()}{reason[1:]}")

    def _update_model_label(self) -> None:
        if self.info is not None:
            params = _count(self.info.parameters)
            self.model_label.setText(f"{self.name}: {self.info.family}, {params} parameters, {self.info.dtype}")
        elif self.name:
            self.model_label.setText(f"{self.name}: not downloaded yet, so its size is not known.")
        else:
            self.model_label.setText("No model selected: pick a checkpoint on the left.")

    def _update_card(self, card: PresetCard, preset_id: str, ep: str, free: int | None) -> None:
        overrides = self._custom_values(ep) if preset_id == "custom" else None
        try:
            options = resolve(preset_id, ep, overrides)
        except PresetError as error:
            card.set_available(False, str(error))
        else:
            card.set_available(True, "", "Builder flags: " + " ".join(options.builder_flags()))
        card.set_precision((overrides or {}).get("precision", PRESETS[preset_id].precision))
        card.set_size(*expected_size(self.info, preset_id, ep, overrides))
        if self.info is None or self.report is None:
            card.set_fit(None)
            return
        card.set_fit(
            fit_verdict(self.info, preset_id, ep, self.report, free, gpu_index=self.gpu_index, overrides=overrides)
        )

    def _free_disk(self) -> int | None:
        target = self.output_edit.text().strip()
        try:
            return free_disk_bytes(Path(target) if target else models_dir())
        except OSError:
            return None

    # --- output folder ----------------------------------------------------------------------------

    def _is_batch(self) -> bool:
        return len(self.ticked()) > 1

    def _update_output(self) -> None:
        batch = self._is_batch()
        self.output_label.setText("Parent folder (one sub-folder per preset):" if batch else "Output folder:")
        if not self._output_chosen_by_user or self._user_place is not None:
            place = self._user_place or models_dir()
            ticked = self.ticked()
            if self.name and len(ticked) == 1:
                self.output_edit.setText(str(default_output(self.name, ticked[0], place)))
            else:
                self.output_edit.setText(str(place))
        self._show_subfolders()

    def _show_subfolders(self) -> None:
        """In a batch, the names of the sub-folders the presets will be written to."""
        if not self._is_batch() or not self.name:
            self.subfolders_label.clear()
            return
        names = ", ".join(path.name for path in self.outputs().values())
        self.subfolders_label.setText(f"Makes {names} in {self.output_edit.text().strip()}")

    def _default_names(self) -> set[str]:
        return {output_name(self.name, preset_id) for preset_id in PRESETS} if self.name else set()

    def _on_output_edited(self, text: str) -> None:
        self._output_chosen_by_user = True
        self._take_place(Path(text.strip()).expanduser())
        self._show_subfolders()

    def _take_place(self, folder: Path) -> None:
        """What the user typed is where outputs go; a last part the studio named itself keeps following the
        preset and model, a name of the user's own stays."""
        if self._is_batch() or not self.name:
            self._user_place = folder
        elif folder.name in self._default_names():
            self._user_place = folder.parent
        else:
            self._user_place = None

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Output folder", self.output_edit.text())
        if folder:
            self._output_chosen_by_user = True
            self._user_place = Path(folder)  # a folder picked to hold the output: its name follows the preset
            self._update_output()

    def outputs(self) -> dict[str, Path]:
        """Where each ticked preset's model goes."""
        target = Path(self.output_edit.text().strip()).expanduser()
        ticked = self.ticked()
        if len(ticked) == 1:
            return {ticked[0]: target}
        return {preset_id: target / output_name(self.name, preset_id) for preset_id in ticked}

    # --- ticks and Convert ------------------------------------------------------------------------

    def _on_ticks_changed(self) -> None:
        self._update_output()
        self._update_convert_button()

    def clear_ticks(self) -> None:
        """Once a batch is queued: the next Convert starts from a clean slate."""
        for card in self.cards.values():
            card.checkbox.setChecked(False)

    def _source(self) -> str:
        return self.info.path if self.info is not None else self.name

    def _update_convert_button(self) -> None:
        problem = None
        if not self._source():
            problem = "Pick a checkpoint first."
        elif not self.ticked():
            problem = "Tick at least one preset."
        elif not self.output_edit.text().strip():
            problem = "Choose an output folder."
        self.convert_button.setEnabled(problem is None)
        count = len(self.ticked())
        self.convert_button.setText(f"Convert ({count})" if count > 1 else "Convert")
        self.convert_button.setToolTip(problem or "")

    def request_convert(self) -> None:
        """Emit one ConvertRequest per ticked preset (what clicking Convert does). Outputs that already hold
        something are replaced or kept beside the new one, as the user answers."""
        if not self.convert_button.isEnabled():
            return
        outputs = self.outputs()
        taken = [output for output in outputs.values() if _holds_something(output)]
        answer = self.ask_existing(taken) if taken else "new"
        if answer == "cancel":
            return
        ep = self.selected_ep()
        requests = []
        for preset_id, output in outputs.items():
            replace = answer == "replace" and output in taken
            if answer == "keep" and output in taken:
                output = free_folder(output)
            requests.append(
                ConvertRequest(
                    source=self._source(),
                    output=str(output),
                    preset=preset_id,
                    ep=ep,
                    overrides=self._custom_values(ep) if preset_id == "custom" else {},
                    report={} if self.report_box.isChecked() else None,
                    overwrite=replace,
                )
            )
        self.convert_requested.emit(requests)

    def ask_existing(self, taken: list[Path]) -> str:
        """'replace', 'keep' (both: the new one in a free name) or 'cancel', for outputs that already exist."""
        listed = "\n".join(str(path) for path in taken)
        one = len(taken) == 1
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Output folder already used",
            f"{'This folder already holds' if one else 'These folders already hold'} something:\n{listed}",
            QMessageBox.StandardButton.NoButton,
            self,
        )
        box.setInformativeText(
            "Replace deletes the old model once the new one is in place (a folder with your own files in it is "
            "never replaced). Keep both writes the new model beside it, in a free name."
        )
        replace = box.addButton("Replace", QMessageBox.ButtonRole.DestructiveRole)
        keep = box.addButton("Keep both", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(keep)
        box.exec()
        clicked = box.clickedButton()
        return "replace" if clicked is replace else "keep" if clicked is keep else "cancel"

    # --- Custom -----------------------------------------------------------------------------------

    def open_custom_dialog(self) -> None:
        if self.custom_dialog is not None:
            self.custom_dialog.raise_()
            return
        values = self._custom_values(self.selected_ep())
        dialog = CustomOptionsDialog(self.selected_ep(), values, self)
        dialog.accepted.connect(lambda: self._on_custom_accepted(dialog.values()))
        dialog.finished.connect(self._on_custom_finished)
        self.custom_dialog = dialog
        dialog.open()

    def _custom_values(self, ep: str) -> dict[str, str]:
        """The user's Custom options, or before they set any, a precision the builder makes for this provider."""
        return dict(self.custom_overrides) if self.custom_overrides else self._first_valid_precision(ep)

    @staticmethod
    def _first_valid_precision(ep: str) -> dict[str, str]:
        """A fresh Custom form starts from a precision the builder makes for this provider."""
        for precision in builder_info().precisions:
            try:
                resolve("custom", ep, {"precision": precision})
            except PresetError:
                continue
            return {"precision": precision}
        return {}

    def _on_custom_accepted(self, values: dict[str, str]) -> None:
        self.custom_overrides = values
        self._refresh()
        self.cards["custom"].checkbox.setChecked(self.cards["custom"].available)

    def _on_custom_finished(self, _result: int) -> None:
        if self.custom_dialog is not None:
            self.custom_dialog.deleteLater()
        self.custom_dialog = None
