"""The Report tab: every variant of the selected model's source, as a table and bar charts, the recommended one marked.

It shows cached figures only (app.report reads forge.json and the data folder's cache; nothing is loaded), so it
opens at once; "Measure" queues a report job for the variants without figures. Charts are pyqtgraph bar graphs,
made when the tab is first shown: importing pyqtgraph costs ~0.7 s (it loads its Qt modules), too much for start-up.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.report import RULE, Row, recommend, rows

STAR = "★"
_PICKED = QColor("#2e7d32")
_OTHER = QColor("#5c7ea8")
_SOURCE = QColor("#9e9e9e")
_LABEL_CHARS = 10


def _number(value: float | None, form: str, scale: float = 1.0) -> str:
    return "–" if value is None else format(value * scale, form)


# (header, text of a row); sizes in decimal MB, as the library shows them.
COLUMNS: tuple[tuple[str, Callable[[Row], str]], ...] = (
    ("", lambda row: ""),
    ("Variant", lambda row: row.name),
    ("Made as", lambda row: row.label),
    ("Size MB", lambda row: _number(row.size_bytes, ",.1f", 1e-6)),
    ("Perplexity", lambda row: _number(row.perplexity, ".4f")),
    ("Gen tok/s", lambda row: _speed_text(row)),
    ("Prompt tok/s", lambda row: _number(row.prompt_tps, ",.0f")),
    ("TTFT ms", lambda row: _number(row.ttft_seconds, ",.1f", 1000)),
    ("Peak MB", lambda row: _number(row.peak_memory_bytes, ",.0f", 1e-6)),
    ("Top-1 agree", lambda row: _number(row.top1_agreement, ".2%")),
    ("Mean KL", lambda row: _number(row.mean_kl, ".2g")),
)
HEADER_TIPS = {
    "Size MB": "Size on disk in megabytes (1 MB = 1,000,000 bytes), as the library shows it.",
    "Perplexity": "How surprised the model is by held-out text: lower is better; compare it with the source's.",
    "Gen tok/s": "Generated tokens per second: the median of the bench's runs, the slowest–fastest run below it.",
    "TTFT ms": "Time to first token: how long the prompt takes before the answer starts.",
    "Peak MB": "The most memory the model's process held while it ran.",
    "Top-1 agree": "How often this model's most likely next token is the PyTorch source's too (100 % = always).",
    "Mean KL": "How far this model's next-token probabilities drift from the PyTorch source's (0 = identical).",
}


def _speed_text(row: Row) -> str:
    spread = row.generation_spread
    text = _number(row.generation_tps, ",.1f")
    return f"{text} ({spread[0]:,.0f}–{spread[1]:,.0f})" if spread else text


def _perplexity_change(row: Row, reference: float | None) -> float | None:
    if row.perplexity is None or not reference:
        return None
    return (row.perplexity / reference - 1) * 100


# (key, title, the figure of a row); a row without the figure gets no bar. Perplexity is drawn as its change
# against the source (or the best variant): a bar from zero would show 1.4248 and 1.4263 as the same height.
CHARTS: tuple[tuple[str, str, Callable[[Row], float | None]], ...] = (
    ("size", "Size on disk (MB)", lambda row: row.size_bytes / 1e6),
    ("perplexity", "Perplexity change (%, lower is better)", lambda row: None),
    ("generation", "Generation (tokens/s, bars: slowest–fastest run)", lambda row: row.generation_tps),
    ("ttft", "Time to first token (ms)", lambda row: row.ttft_seconds * 1000 if row.ttft_seconds else None),
)


def short_labels(names: list[str]) -> list[str]:
    """Bar labels that fit under their bars: the part the names share in front is dropped, the rest cut short."""
    prefix = os.path.commonprefix(names) if len(names) > 1 else ""
    prefix = prefix[: prefix.rfind("-") + 1] if "-" in prefix else ""
    return [_cut(name[len(prefix) :] or name, _LABEL_CHARS) for name in names]


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class BarChart(QWidget):
    """One figure across the variants: a bar per row that has it, labelled with the variant's name."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        import pyqtgraph as pg

        super().__init__(parent)
        self._pg = pg
        self.plot = pg.PlotWidget(self, background="w")
        self.plot.setTitle(title, color="#222", size="10pt")
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.setMenuEnabled(False)
        for side in ("left", "bottom"):
            self.plot.getAxis(side).setTextPen("#333")
        self.plot.getAxis("left").setWidth(48)  # room for "1,000": a narrower axis drops the labels that do not fit
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)
        self.setMinimumHeight(150)
        self.bars = None
        self.labels: list[str] = []

    def set_bars(
        self,
        labels: list[str],
        values: list[float],
        colors: list[QColor],
        spreads: list[tuple[float, float] | None] | None = None,
    ) -> None:
        """One bar per value; spreads (low, high) draw an error bar over the bar they belong to."""
        self.plot.clear()
        self.labels = short_labels(labels)
        self.bars = None
        if not values:
            return
        self.bars = self._pg.BarGraphItem(
            x=list(range(len(values))), height=values, width=0.6, brushes=[QBrush(c) for c in colors], pen=None
        )
        self.plot.addItem(self.bars)
        tops = list(values)
        marked = [(x, spread) for x, spread in enumerate(spreads or []) if spread is not None]
        if marked:
            import numpy as np  # pyqtgraph's own dependency; its error bars do arithmetic on arrays, not lists

            x = np.array([index for index, _ in marked], dtype=float)
            y = np.array([values[index] for index, _ in marked], dtype=float)
            low = y - np.array([spread[0] for _, spread in marked])
            high = np.array([spread[1] for _, spread in marked]) - y
            pen = self._pg.mkPen("#333", width=1)
            self.plot.addItem(self._pg.ErrorBarItem(x=x, y=y, top=high, bottom=low, beam=0.2, pen=pen))
            tops += [spread[1] for _, spread in marked]
        self.plot.getAxis("bottom").setTicks([list(enumerate(self.labels))])
        self.plot.setXRange(-0.6, len(values) - 0.4, padding=0)
        low, high = min(0.0, *tops), max(0.0, *tops)
        self.plot.setYRange(low * 1.1, high * 1.1 or 1, padding=0)

    def bar_count(self) -> int:
        return 0 if self.bars is None else len(self.bars.opts["height"])


class ReportPane(QWidget):
    measure_requested = Signal(list)
    """GenAI folders (str) to measure: the variants shown without figures."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._folder: str = ""
        self._stale = False
        self.rows: list[Row] = []
        self.recommended: Row | None = None
        self.title = QLabel("Select a model on the left to see its report card.")
        self.title.setWordWrap(True)
        self.measure_button = QPushButton("Measure")
        self.measure_button.setToolTip("Measure perplexity, speed and drift of the variants without figures (a job).")
        self.measure_button.clicked.connect(self.request_measure)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh)
        self.recommendation = QLabel("")
        self.recommendation.setWordWrap(True)
        self.recommendation.setToolTip(RULE)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels([header for header, _ in COLUMNS])
        for column, (header, _text) in enumerate(COLUMNS):
            self.table.horizontalHeaderItem(column).setToolTip(HEADER_TIPS.get(header, ""))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.charts: dict[str, BarChart] = {}
        self._charts_grid = QGridLayout()
        self._layout()
        self._update_buttons()

    def _layout(self) -> None:
        header = QHBoxLayout()
        header.addWidget(self.title, 1)
        header.addWidget(self.refresh_button)
        header.addWidget(self.measure_button)
        charts = self._charts_widget = QWidget()
        charts.setLayout(self._charts_grid)
        upper = QWidget()
        upper_layout = QVBoxLayout(upper)
        upper_layout.setContentsMargins(0, 0, 0, 0)
        upper_layout.addWidget(self.table, 1)
        upper_layout.addWidget(self.recommendation)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(upper)
        splitter.addWidget(charts)
        splitter.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(header)
        layout.addWidget(splitter, 1)

    # --- inputs ------------------------------------------------------------------------------------------------------

    def set_model(self, path: str) -> None:
        """The library entry to report on: a GenAI folder or a checkpoint ('' clears the view). Read when shown."""
        self._folder = path
        self.refresh()

    def refresh(self) -> None:
        """Read the cached figures again (after a measuring job, or when files changed); while hidden, on show."""
        self._stale = not self.isVisible()
        if not self._stale:
            self._read()

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt's name
        if self._stale:
            self._read()
        super().showEvent(event)

    def _read(self) -> None:
        self._stale = False
        self.rows = rows(Path(self._folder)) if self._folder else []
        pick = recommend(self.rows)
        self.recommended = pick[0] if pick else None
        if not self._folder:
            self.title.setText("Select a model on the left to see its report card.")
        elif not self.rows:
            self.title.setText(f"{Path(self._folder).name}: no GenAI variant of it yet; convert it first.")
        else:
            count = sum(row.kind == "onnx" for row in self.rows)
            self.title.setText(f"{Path(self._folder).name}: {count} GenAI variant{'s' * (count != 1)} of one source")
        if pick:
            self.recommendation.setText(f"{STAR} Recommended: <b>{pick[0].name}</b> — {pick[1]}")
        elif self.rows:
            self.recommendation.setText("Nothing measured yet: press Measure to fill the report card.")
        else:
            self.recommendation.setText("")
        self._fill_table()
        self._fill_charts()
        self._update_buttons()

    def unmeasured(self) -> list[str]:
        return [row.folder for row in self.rows if row.kind == "onnx" and not row.measured]

    def request_measure(self) -> None:
        folders = self.unmeasured()
        if folders:
            self.measure_requested.emit(folders)

    # --- drawing -----------------------------------------------------------------------------------------------------

    def _fill_table(self) -> None:
        self.table.setRowCount(len(self.rows))
        bold = QFont(self.table.font())
        bold.setBold(True)
        for index, row in enumerate(self.rows):
            picked = row is self.recommended
            for column, (_header, text) in enumerate(COLUMNS):
                item = QTableWidgetItem(STAR if picked and column == 0 else text(row))
                if column >= 3:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if picked:
                    item.setFont(bold)
                    item.setForeground(QBrush(_PICKED))
                item.setToolTip(self._tooltip(row, picked))
                self.table.setItem(index, column, item)

    def _tooltip(self, row: Row, picked: bool) -> str:
        lines = [row.folder]
        if picked:
            lines.append("Recommended. " + RULE)
        if row.figures and row.figures.get("measured"):
            lines.append(f"measured {row.figures['measured']} on {row.figure('perplexity', 'text') or 'the eval text'}")
        if row.kind == "checkpoint":
            lines.append("The PyTorch checkpoint: its perplexity comes from the drift measurement of a variant.")
        return "\n".join([*lines, *row.notes])

    def _fill_charts(self) -> None:
        if not self.charts:
            for index, (key, title, _figure) in enumerate(CHARTS):
                self.charts[key] = BarChart(title)
                self._charts_grid.addWidget(self.charts[key], index // 2, index % 2)
        # Axes with nothing measured on them say nothing: the charts wait for the first figures.
        self._charts_widget.setVisible(any(row.measured for row in self.rows))
        reference = self._perplexity_reference()
        if reference is not None:
            self.charts["perplexity"].plot.setTitle(
                f"Perplexity against {reference.name} (% change, lower is better)", color="#222", size="10pt"
            )
        for key, _title, figure in CHARTS:
            if key == "perplexity":
                figure = partial(_perplexity_change, reference=reference.perplexity if reference else None)
            shown = [(row, figure(row)) for row in self.rows]
            shown = [(row, value) for row, value in shown if value is not None]
            colors = [
                _PICKED if row is self.recommended else _SOURCE if row.kind == "checkpoint" else _OTHER
                for row, _value in shown
            ]
            spreads = [row.generation_spread for row, _ in shown] if key == "generation" else None
            self.charts[key].set_bars([row.name for row, _ in shown], [value for _, value in shown], colors, spreads)

    def _perplexity_reference(self) -> Row | None:
        """The PyTorch source where its perplexity was measured, else the best variant."""
        measured = [row for row in self.rows if row.perplexity is not None]
        source = next((row for row in measured if row.kind == "checkpoint"), None)
        return source or min(measured, key=lambda row: row.perplexity, default=None)

    def _update_buttons(self) -> None:
        missing = len(self.unmeasured())
        self.measure_button.setEnabled(missing > 0)
        self.measure_button.setText(f"Measure ({missing})" if missing else "Measure")
        self.refresh_button.setEnabled(bool(self._folder))
