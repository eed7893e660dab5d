"""The Qt binding must not lose references to None or True: PySide6 6.12.0 on Python 3.10/3.11 does (one per
void method call, one per Python-side emit), and the window then aborts with "Fatal Python error: none_dealloc"
or "bool_dealloc" after a few thousand calls, which a streaming chat or a busy job log makes in seconds.
On Python 3.12+ None and True are immortal and the counts do not move."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QLabel

CALLS = 500


class _Emitter(QObject):
    text = Signal(str)


def test_void_calls_and_emits_keep_none_and_true_alive(qtbot):
    label = QLabel()
    qtbot.addWidget(label)
    timer = QTimer()
    emitter = _Emitter()
    emitter.text.connect(label.setText)
    none_before, true_before = sys.getrefcount(None), sys.getrefcount(True)
    for index in range(CALLS):
        label.setText(str(index))
        timer.start(1000)
        emitter.text.emit(str(index))
    timer.stop()
    # A defective binding loses 2 * CALLS references to None and CALLS to True; the rest of the process moves
    # the counts by a few at most.
    assert none_before - sys.getrefcount(None) < CALLS // 5
    assert true_before - sys.getrefcount(True) < CALLS // 5
