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
    save_chat(window, save, wait_for)
    save_report(window, save, wait_for, finished[0][2])
    window.close()
    window.deleteLater()  # see ui/app.py: tear down while Qt is whole
    app.processEvents()
    return 0


def save_chat(window, save, wait_for) -> None:
    """The Chat tab with the converted demo: one finished turn, and the next reply caught while it streams."""
    chat = window.chat  # the converted model, selected above, is preselected here
    column = chat.columns[0]
    window.tabs.setCurrentWidget(chat)
    chat.system_edit.setText("You tell short stories for children.")
    column.load()
    wait_for(column.settings_loaded, 60000)
    chat.input.setText("Tom goes to the")
    chat.send()
    wait_for(column.reply_finished, 60000)
    streamed: list[str] = []

    def mid_reply(text: str, _count: int) -> None:
        streamed.append(text)
        if len("".join(streamed)) >= 50 and len(streamed) < 10_000:
            streamed.extend([""] * 10_000)  # once
            column.flush()
            save("chat")

    column.process.piece.connect(mid_reply)
    chat.input.setText("Then Lily")
    chat.send()
    wait_for(column.reply_finished, 60000)
    column.unload(wait=True)


def save_report(window, save, wait_for, int4: str) -> None:
    """The Quantize tab with its q4 result, and the Report tab for the demo's FP32, INT4 and q4 (FP32 quantized)
    builds, each measured by a real job: FP32 and q4 through the panes' "Measure quality and speed when done",
    INT4 through the Report tab's Measure."""
    from pathlib import Path

    from app.paths import demo_checkpoint

    window.browser.select_path(demo_checkpoint())
    window.presets.tick_presets(["fp32"])
    window.presets.report_box.setChecked(True)
    window.presets.request_convert()
    wait_for(window.jobs.job_finished, 600000)
    wait_for(window.browser.refreshed, 30000)
    fp32 = str(Path(int4).with_name(Path(int4).name.replace("int4", "fp32")))
    window.browser.select_path(fp32)
    window.quantize.set_algo("q4")
    window.quantize.report_box.setChecked(True)
    window.quantize.request_quantize()
    wait_for(window.jobs.job_finished, 600000)
    wait_for(window.browser.refreshed, 30000)
    window.browser.select_path(fp32)  # the Quantize tab with its q4 result
    window.quantize.set_algo("q4")
    window.tabs.setCurrentWidget(window.quantize)
    save("quantize")
    window.browser.select_path(int4)
    window.tabs.setCurrentWidget(window.report)
    window.report.request_measure()  # the INT4 build, converted above without figures
    wait_for(window.jobs.job_finished, 600000)
    window.tabs.setCurrentWidget(window.report)
    window.report.refresh()
    save("report")


if __name__ == "__main__":
    sys.exit(main())
