"""FORGE_SMOKE_TEST=1: the window closes itself once it has painted and sat idle for a moment, and prints one line,
`forge-smoke {json}`: seconds from spawn to the first paint, resident memory when idle, whether torch or
onnxruntime were loaded, and every module of app/ and ui/ that fails to import (in a frozen app, a hidden import
PyInstaller missed). installer/smoke_test.py and bench/startup.py read it."""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import sys
import time

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QWidget

IDLE_MS = 1500
HEAVY_MODULES = ("torch", "onnxruntime", "onnxruntime_genai", "transformers")


def process_seconds() -> float:
    """Seconds since the parent started this process (FORGE_SMOKE_T0, its time.time() just before spawning), else
    since the process was created (on Linux only as exact as the boot time's whole second)."""
    started = os.environ.get("FORGE_SMOKE_T0")
    if started:
        return time.time() - float(started)
    import psutil

    return time.time() - psutil.Process().create_time()


class SmokeTest(QObject):
    def __init__(self, window: QWidget) -> None:
        super().__init__(window)
        self._window = window
        self._first_paint: float | None = None
        QApplication.instance().installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if self._first_paint is None and event.type() == QEvent.Type.Paint and isinstance(watched, QWidget):
            if watched.window() is self._window:
                self._first_paint = process_seconds()
                QApplication.instance().removeEventFilter(self)
                QTimer.singleShot(IDLE_MS, self._finish)
        return False

    def _finish(self) -> None:
        import psutil

        report = {
            "first_window_s": round(self._first_paint or 0.0, 3),
            "idle_rss_mb": round(psutil.Process().memory_info().rss / 2**20, 1),
            "heavy_modules_loaded": [name for name in HEAVY_MODULES if name in sys.modules],
            "frozen": bool(getattr(sys, "frozen", False)),
            "utf8_mode": sys.flags.utf8_mode,
            "unbuffered": bool(getattr(sys.stdout, "write_through", False)),
        }
        report.update(import_everything())
        print("forge-smoke " + json.dumps(report), flush=True)
        self._window.close()


def import_everything() -> dict[str, object]:
    """Import every module of our two packages, after the memory figure was taken; the engine's modules import
    torch and onnxruntime only inside functions, so this stays light."""
    failures: dict[str, str] = {}
    count = 0
    for package_name in ("app", "ui"):
        package = importlib.import_module(package_name)
        for module in pkgutil.walk_packages(package.__path__, package_name + "."):
            count += 1
            try:
                importlib.import_module(module.name)
            except Exception as error:  # noqa: BLE001 - each failure is what the report is for
                failures[module.name] = f"{type(error).__name__}: {error}"
    return {"modules_imported": count - len(failures), "import_failures": failures}
