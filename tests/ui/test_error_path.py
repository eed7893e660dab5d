"""An exception anywhere reaches one dialog (sentence, details, log path) instead of vanishing."""

from __future__ import annotations

import sys
import threading

from app.errors import OutputError


def test_exceptions_from_threads_and_slots_reach_the_dialog(qtbot, monkeypatch, forge_home):
    import ui.widgets.error_dialog as error_dialog
    from ui.app import install_error_hooks

    shown: list[tuple[str, str, str]] = []
    monkeypatch.setattr(error_dialog, "show_error", lambda parent, *args: shown.append(args))
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    install_error_hooks()

    def fail() -> None:
        raise OutputError("the output folder is not empty; choose a new folder.")

    thread = threading.Thread(target=fail)
    thread.start()
    thread.join()
    qtbot.waitUntil(lambda: len(shown) == 1)
    sentence, details, log_path = shown[0]
    assert sentence == "the output folder is not empty; choose a new folder."
    assert "Traceback" in details and "OutputError" in details
    assert log_path.startswith(str(forge_home)) and "OutputError" in open(log_path).read()

    sys.excepthook(ValueError, ValueError("boom"), None)  # what Qt calls for an exception in a slot
    qtbot.waitUntil(lambda: len(shown) == 2)
    assert shown[1][0] == "Something went wrong: boom"
