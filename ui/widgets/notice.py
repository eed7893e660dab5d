"""A notice bar above the panes: what a finished job made, with the actions that follow from it.

It announces; it never moves the user's selection, tab or inputs itself. Only a click on one of its actions does.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

_STYLES = {
    "ok": "NoticeBar { background: #e8f5e9; border: 1px solid #a5d6a7; }",
    "problem": "NoticeBar { background: #fdecea; border: 1px solid #f5c2c0; }",
}


class NoticeBar(QFrame):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.close_button = QPushButton("Dismiss")
        self.close_button.clicked.connect(self.hide)
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(8, 4, 8, 4)
        self._layout.addWidget(self.label, 1)
        self._layout.addWidget(self.close_button)
        self.buttons: dict[str, QPushButton] = {}
        self.hide()

    def announce(self, text: str, actions: dict[str, Callable[[], None]], kind: str = "ok") -> None:
        """Show text with one button per action (name -> what a click does); a click also closes the notice."""
        for button in self.buttons.values():
            self._layout.removeWidget(button)
            button.deleteLater()
        self.buttons = {}
        for position, (name, action) in enumerate(actions.items()):
            button = QPushButton(name)
            button.clicked.connect(lambda _checked=False, action=action: self._run(action))
            self._layout.insertWidget(1 + position, button)
            self.buttons[name] = button
        self.label.setText(text)
        self.setStyleSheet(_STYLES[kind])
        self.show()

    def _run(self, action: Callable[[], None]) -> None:
        self.hide()
        action()
