"""The Custom preset's form: one field per option the installed builder documents.

Fields come from app.presets.settable_options() and the help text in app.builder_info.builder_info(), so a newer
builder brings its new options with it. Only fields moved away from their starting value become --set overrides,
and every change is checked by app.presets.resolve, the same check the command line makes.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from app.builder_info import BuilderOption, builder_info
from app.errors import PresetError
from app.presets import EP_NAMES, PRESETS, option_choices, option_default, resolve, settable_options
from ui.widgets.fields import BoolField, ChoiceField, Field, TextField

_ERROR_STYLE = "color: #b00020;"


class OptionsForm(QWidget):
    """Every builder option for the Custom preset; values() are the --set overrides."""

    validity_changed = Signal(bool)

    def __init__(self, ep: str = "cpu", values: dict[str, str] | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._ep = ep
        self._fields: dict[str, Field] = {}
        self._valid = False
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet(_ERROR_STYLE)
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.command_label = QLabel()
        self.command_label.setWordWrap(True)
        self.command_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._build(values or {})
        self._validate()

    def _build(self, values: dict[str, str]) -> None:
        info = builder_info()
        options = {option.name: option for option in info.options}
        form = QFormLayout()
        for name in settable_options(info):
            field = self._field(name, options.get(name), info.boolean_options, info.precisions)
            if name in values:
                field.set_value(values[name])
            field.on_change(self._validate)
            label = QLabel(name)
            if options.get(name):
                field.setToolTip(options[name].help)
                label.setToolTip(options[name].help)
            form.addRow(label, field)
            self._fields[name] = field
        inner = QWidget()
        inner.setLayout(form)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(inner)
        self.ep_label = QLabel()
        layout = QVBoxLayout(self)
        layout.addWidget(self.ep_label)
        layout.addWidget(scroll, 1)
        layout.addWidget(self.error_label)
        layout.addWidget(self.command_label)

    @staticmethod
    def _field(
        name: str, option: BuilderOption | None, booleans: frozenset[str], precisions: tuple[str, ...]
    ) -> Field:
        if option is None:  # "precision" is the builder's -p flag, not one of its extra options
            return ChoiceField(list(precisions), None, baseline=PRESETS["custom"].precision)
        default = option_default(option.help)
        if name in booleans:
            return BoolField(default == "true")
        choices = option_choices(option.help)
        if choices:
            return ChoiceField(choices, default)
        return TextField(default)

    def field(self, name: str) -> QWidget:
        """The editor of one option (for tests and for focusing it)."""
        return self._fields[name]

    def values(self) -> dict[str, str]:
        """The options moved away from their starting value, as KEY -> VALUE for --set."""
        changed = {name: field.value() for name, field in self._fields.items()}
        return {name: value for name, value in changed.items() if value is not None}

    def set_ep(self, ep: str) -> None:
        self._ep = ep
        self._validate()

    def is_valid(self) -> bool:
        return self._valid

    def _validate(self) -> None:
        self.ep_label.setText(f"Building for {EP_NAMES.get(self._ep, self._ep)}.")
        try:
            options = resolve("custom", self._ep, self.values())
        except PresetError as error:
            self.error_label.setText(str(error))
            self.command_label.clear()
            valid = False
        else:
            self.error_label.clear()
            self.command_label.setText("Builder flags: " + " ".join(options.builder_flags()))
            valid = True
        self.error_label.setVisible(not valid)
        self._valid = valid
        self.validity_changed.emit(valid)


class CustomOptionsDialog(QDialog):
    """The options form with OK enabled only while the options resolve."""

    def __init__(self, ep: str, values: dict[str, str] | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Custom preset options")
        self.form = OptionsForm(ep, values, self)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.form.validity_changed.connect(self._on_validity)
        self._on_validity(self.form.is_valid())
        layout = QVBoxLayout(self)
        layout.addWidget(self.form)
        layout.addWidget(self.buttons)
        self.resize(640, 600)

    @property
    def ok_button(self) -> QPushButton:
        return self.buttons.button(QDialogButtonBox.StandardButton.Ok)

    def _on_validity(self, valid: bool) -> None:
        self.ok_button.setEnabled(valid)

    def values(self) -> dict[str, str]:
        return self.form.values()
