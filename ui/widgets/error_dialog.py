"""One place every failure reaches the user: the sentence, a Details expander, and the log file."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox, QWidget


def show_error(parent: QWidget | None, sentence: str, details: str = "", log_path: str = "") -> None:
    box = QMessageBox(QMessageBox.Icon.Warning, "ONNX Forge", sentence, QMessageBox.StandardButton.Ok, parent)
    if log_path:
        box.setInformativeText(f"The full log is in {log_path}")
    if details:
        box.setDetailedText(details)
    box.exec()
