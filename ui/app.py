"""Starting the window: the application object, the one error path, the main window."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import traceback
from types import TracebackType


def install_error_hooks() -> None:
    """Every uncaught exception, from any thread or signal handler, reaches one dialog instead of vanishing."""
    from PySide6.QtCore import QObject, Signal, Slot

    from ui.widgets.error_dialog import show_error

    class ErrorBridge(QObject):
        """Lives in the GUI thread: a signal emitted from any thread is queued to its slot there."""

        raised = Signal(str, str, str)

        @Slot(str, str, str)
        def show(self, sentence: str, details: str, log_path: str) -> None:
            show_error(None, sentence, details, log_path)

    bridge = ErrorBridge()
    bridge.raised.connect(bridge.show)
    install_error_hooks.bridge = bridge  # keep it alive for the life of the app

    def report(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
        from app.errors import ForgeError
        from app.paths import data_dir

        details = "".join(traceback.format_exception(kind, error, tb))
        log_path = data_dir() / "logs" / "app.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("a", encoding="utf-8") as log:
            log.write(details + "\n")
        sentence = str(error) if isinstance(error, ForgeError) else f"Something went wrong: {error}"
        print(details, file=sys.stderr)
        bridge.raised.emit(sentence, details, str(log_path))

    sys.excepthook = report
    threading.excepthook = lambda args: report(args.exc_type, args.exc_value, args.exc_traceback)


def sweep_staging() -> None:
    """Staging that runs killed earlier left behind (a window killed mid-build among them) goes first."""
    from app.staging import sweep

    with contextlib.suppress(OSError):
        sweep()


def run_window() -> int:
    from PySide6.QtWidgets import QApplication

    from ui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv)
    app.setApplicationName("ONNX Forge")
    app.setOrganizationName("ONNX Forge")
    install_error_hooks()
    sweep_staging()
    window = MainWindow()
    if os.environ.get("FORGE_SMOKE_TEST"):
        from ui.smoke import SmokeTest

        SmokeTest(window)
    window.show()
    code = app.exec()
    # Tear the window down while Qt is still whole: left to interpreter shutdown, PySide6 6.12 sometimes
    # frees its objects in an order that aborts the process after the window has closed.
    window.deleteLater()
    app.processEvents()
    import gc

    gc.collect()
    return code
