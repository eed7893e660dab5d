from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def forge_home(tmp_path, monkeypatch):
    """Every UI test gets its own library, job history and settings."""
    home = tmp_path / "forge-home"
    monkeypatch.setenv("FORGE_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def no_leaked_windows(qapp):
    """A test must close every top-level widget it opened."""
    from PySide6.QtWidgets import QApplication

    before = {id(w) for w in QApplication.topLevelWidgets() if w.isVisible()}
    yield
    QApplication.processEvents()
    leaked = [w for w in QApplication.topLevelWidgets() if w.isVisible() and id(w) not in before]
    for widget in leaked:
        widget.close()
    assert not leaked, f"top-level widgets left open: {leaked}"


def drag_enter_and_drop(widget, mime):
    """A real drag-enter and drop event pair at the widget's centre, as the window system delivers them.

    PySide6 6.12 takes the drag-enter position as QPointF, 6.11 and earlier as QPoint (the C++ signature).
    """
    from PySide6.QtCore import QPointF, Qt
    from PySide6.QtGui import QDragEnterEvent, QDropEvent

    centre = widget.rect().center()
    buttons, modifiers = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    try:
        enter = QDragEnterEvent(centre, Qt.DropAction.CopyAction, mime, buttons, modifiers)
    except TypeError:
        enter = QDragEnterEvent(QPointF(centre), Qt.DropAction.CopyAction, mime, buttons, modifiers)
    return enter, QDropEvent(QPointF(centre), Qt.DropAction.CopyAction, mime, buttons, modifiers)
