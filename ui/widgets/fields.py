"""Option editors shared by the Custom preset form and the Quantize tab.

Each field knows the value it started from; value() is None while it still holds it, else the text for --set.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QCheckBox, QComboBox, QLineEdit


def _default_text(default: str | None) -> str:
    return f"builder default ({default})" if default and default != "default" else "builder default"


class BoolField(QCheckBox):
    def __init__(self, default: bool) -> None:
        super().__init__()
        self._default = default
        self.setChecked(default)

    def value(self) -> str | None:
        return None if self.isChecked() == self._default else str(self.isChecked()).lower()

    def set_value(self, raw: str) -> None:
        self.setChecked(raw.strip().lower() in {"true", "1"})

    def on_change(self, slot: Callable[..., None]) -> None:
        self.toggled.connect(slot)


class ChoiceField(QComboBox):
    """The enumerated values; unless a baseline is given, a first entry leaves the choice to the builder."""

    def __init__(self, choices: list[str], default: str | None, baseline: str | None = None) -> None:
        super().__init__()
        if baseline is None:
            self.addItem(_default_text(default), None)
        for choice in choices:
            self.addItem(choice, choice)
        self._baseline = baseline
        if baseline is not None:
            self.setCurrentIndex(self.findData(baseline))

    def value(self) -> str | None:
        chosen = self.currentData()
        return None if chosen == self._baseline else chosen

    def set_value(self, raw: str) -> None:
        index = self.findData(raw)
        if index >= 0:
            self.setCurrentIndex(index)

    def on_change(self, slot: Callable[..., None]) -> None:
        self.currentIndexChanged.connect(slot)


class TextField(QLineEdit):
    """Free text. Without a baseline it starts empty and names the builder's default as its placeholder;
    with one it starts holding that text."""

    def __init__(self, default: str | None, baseline: str | None = None) -> None:
        super().__init__(baseline or "")
        self._baseline = baseline or ""
        if baseline is None:
            self.setPlaceholderText(_default_text(default))

    def value(self) -> str | None:
        text = self.text().strip()
        return None if text == self._baseline else text

    def set_value(self, raw: str) -> None:
        self.setText(raw)

    def on_change(self, slot: Callable[..., None]) -> None:
        self.textChanged.connect(slot)


Field = BoolField | ChoiceField | TextField
