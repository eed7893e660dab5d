"""Screenshots of the real window, offscreen, with the demo model loaded: python scripts/screenshots.py [OUT_DIR]

Converts the demo through the Jobs queue for real, so the Jobs picture shows a finished job and its log.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("FORGE_HOME", tempfile.mkdtemp(prefix="forge-screenshots-"))


def main() -> int:
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from app.paths import demo_checkpoint
    from ui.main_window import MainWindow

    out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots"
    out_dir.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance() or QApplication(sys.argv)
    window = MainWindow()
    window.resize(1360, 820)
    window.show()

    def wait_for(signal, timeout_ms: int) -> None:
        loop = QEventLoop()
        signal.connect(loop.quit)
        QTimer.singleShot(timeout_ms, loop.quit)
        loop.exec()

    if window.hardware_report is None:
        wait_for(window.probe.ready, 30000)
    window.browser.add_folder(demo_checkpoint())
    wait_for(window.browser.refreshed, 30000)
    window.browser.select_path(demo_checkpoint())
    app.processEvents()

    def save(name: str) -> None:
        app.processEvents()
        path = out_dir / f"{name}.png"
        window.grab().save(str(path))
        print(path)

    window.tabs.setCurrentWidget(window.presets)
    save("convert")
    finished: list[tuple] = []
    window.jobs.job_finished.connect(lambda *args: finished.append(args))
    window.presets.tick_presets(["int4"])
    window.presets.request_convert()
    wait_for(window.jobs.job_finished, 180000)
    wait_for(window.browser.refreshed, 30000)  # the new ONNX model joins the library
    window.tabs.setCurrentWidget(window.jobs)
    window.jobs.select_row(0)
    save("jobs")
    window.tabs.setCurrentWidget(window.hardware)
    save("hardware")
    window.browser.select_path(finished[0][2])  # the converted model: (job id, state, output)
    window.quantize.set_algo("q4")
    window.tabs.setCurrentWidget(window.quantize)
    save("quantize")
    window.close()
    window.deleteLater()  # see ui/app.py: tear down while Qt is whole
    app.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())
