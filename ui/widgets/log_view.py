"""A read-only log that keeps up with a flood of lines without freezing the window.

Lines are buffered and appended in one batch every 100 ms; the widget keeps only the newest lines (the
full log is on disk), and follows the tail only while the user has not scrolled away from the bottom.

QPlainTextEdit drops lines over its block limit one at a time (about 40 µs each): appending 5000 lines to a
full view blocks the window for 200 ms. So when a batch would drop more than a few lines, or is itself large,
the view is rebuilt from a copy of the lines it shows, keeping the newest half of its limit; no step then
handles more than half the limit (about 8 ms for 2500 lines), however fast lines arrive.
"""

from __future__ import annotations

from collections import deque

from PySide6.QtCore import QTimer
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QPlainTextEdit, QWidget

DEFAULT_MAX_LINES = 5000
FLUSH_INTERVAL_MS = 100
# A single huge line (a tensor dump, a minified JSON) costs layout time for nothing a person can read.
MAX_LINE_CHARS = 2000
# Lines the widget may drop by itself on an append before a rebuild is cheaper.
_TRIM_IN_PLACE = 100


class LogView(QPlainTextEdit):
    def __init__(
        self, parent: QWidget | None = None, max_lines: int = DEFAULT_MAX_LINES, flush_ms: int = FLUSH_INTERVAL_MS
    ) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setUndoRedoEnabled(False)
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.setMaximumBlockCount(max_lines)
        self._pending: list[str] = []
        self._shown: deque[str] = deque(maxlen=max_lines)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(flush_ms)
        self._timer.timeout.connect(self.flush)

    def max_lines(self) -> int:
        return self.maximumBlockCount()

    def append_lines(self, lines: list[str]) -> None:
        """Queue lines for the next batch; lines the cap would drop anyway are dropped now."""
        if not lines:
            return
        self._pending.extend(lines)
        if len(self._pending) > self.max_lines():
            del self._pending[: -self.max_lines()]
        if not self._timer.isActive():
            self._timer.start()

    def set_lines(self, lines: list[str]) -> None:
        """Replace the content with the tail of a log (a job selected, or opened late) and follow it."""
        self._pending.clear()
        self._timer.stop()
        self._shown.clear()
        self._shown.extend(_prepare(lines[-self.max_lines() :]))
        self.setPlainText("\n".join(self._shown))
        self._scroll_to_bottom()

    def clear(self) -> None:
        self.set_lines([])

    def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = _prepare(self._pending), []
        bar = self.verticalScrollBar()
        following = bar.value() >= bar.maximum()
        blocks_before, position = self.blockCount(), bar.value()
        half = max(1, self.max_lines() // 2)
        if len(batch) > half or len(self._shown) + len(batch) - self.max_lines() > _TRIM_IN_PLACE:
            kept = [*self._shown, *batch][-half:]
            self._shown.clear()
            self._shown.extend(kept)
            self.setPlainText("\n".join(kept))
        else:
            self._shown.extend(batch)
            self.appendPlainText("\n".join(batch))
        if following:
            self._scroll_to_bottom()
            return
        # Lines dropped from the top would slide the text under a reader who scrolled up: hold it still.
        dropped = max(0, blocks_before + len(batch) - self.blockCount())
        bar.setValue(max(0, position - dropped))

    def _scroll_to_bottom(self) -> None:
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())


def _prepare(lines: list[str]) -> list[str]:
    """One entry per line the widget will show (a message may hold several), each of a length worth laying out."""
    parts = (part for line in lines for part in line.split("\n"))
    return [part if len(part) <= MAX_LINE_CHARS else part[:MAX_LINE_CHARS] + " …" for part in parts]
