"""The real window, offscreen: drop, select, pick a preset, convert through the queue, cancel, close."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QUrl
from PySide6.QtWidgets import QApplication

from app.hardware import probe_hardware
from app.hardware_probes import RecordedProbes
from app.paths import demo_checkpoint
from tests.ui.conftest import drag_enter_and_drop
from ui.main_window import MainWindow

RECORDINGS = Path(__file__).resolve().parent.parent / "data" / "hardware"


@pytest.fixture
def window(qtbot):
    window = MainWindow(probe_hardware=False)
    qtbot.addWidget(window)
    window.set_hardware(probe_hardware(RecordedProbes(RECORDINGS / "linux_no_gpu.json")))
    window.show()
    yield window
    window.jobs.cancel_all()
    window.close()


def drop_on(window: MainWindow, qtbot, folder: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(folder))])
    enter, drop = drag_enter_and_drop(window, mime)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(window, drop)
    path = str(folder.resolve())

    def selected() -> bool:
        entry = window.browser.selected_entry()
        return entry is not None and entry.path == path

    qtbot.waitUntil(selected, timeout=20_000)


def convert_ticked(window: MainWindow, qtbot, preset: str) -> None:
    window.presets.tick_presets([preset])
    window.presets.set_ep("cpu")
    with qtbot.waitSignal(window.jobs.job_started, timeout=20_000):
        window.presets.request_convert()


def test_drop_the_demo_convert_it_and_watch_it_arrive(window, qtbot, tmp_path):
    source = Path(shutil.copytree(demo_checkpoint(), tmp_path / "demo-copy"))
    drop_on(window, qtbot, source)
    assert window.browser.selected_entry().path == str(source.resolve())
    assert "demo-copy: llama" in window.presets.model_label.text()
    progress: list[float] = []
    window.jobs.job_started.connect(
        lambda _id: window.jobs.current_runner().progress.connect(lambda percent, *_: progress.append(percent))
    )
    convert_ticked(window, qtbot, "int4")
    assert window.tabs.currentWidget() is window.jobs
    with qtbot.waitSignal(window.jobs.job_finished, timeout=180_000) as finished:
        pass
    job_id, state, output = finished.args
    assert state == "succeeded", window.jobs.log_view.toPlainText()[-2000:]
    assert progress and progress[-1] == 100
    window.jobs.select(job_id)
    window.jobs.log_view.flush()
    assert "Reading layer 0" in window.jobs.log_view.toPlainText()
    assert json.loads((Path(output) / "forge.json").read_text())["preset"] == "int4"
    qtbot.waitUntil(
        lambda: any(e.path == output and e.kind == "onnx" for e in window.browser.entries()), timeout=20_000
    )


def test_cancel_a_running_conversion_leaves_no_output(window, qtbot, tmp_path):
    from tests.checkpoint_factory import make_checkpoint

    source = make_checkpoint("llama", tmp_path / "bigger", num_layers=12, hidden_size=512)
    drop_on(window, qtbot, source)
    window.presets.tick_presets(["int4"])
    output = Path(window.presets.outputs()["int4"])
    reached_layers = []

    def cancel_once_reading_layers(_percent: float, stage: str, _detail: str) -> None:
        if stage == "layers" and not reached_layers:
            reached_layers.append(True)
            window.jobs.cancel_all()

    window.jobs.job_started.connect(
        lambda _id: window.jobs.current_runner().progress.connect(cancel_once_reading_layers)
    )
    window.presets.set_ep("cpu")
    with qtbot.waitSignal(window.jobs.job_finished, timeout=180_000) as finished:
        window.presets.request_convert()
    assert finished.args[1] == "cancelled"
    assert reached_layers
    assert not output.exists()
    assert not list(output.parent.glob(".forge-staging-*"))


def test_a_broken_folder_is_listed_with_its_reason(window, qtbot, tmp_path):
    broken = Path(shutil.copytree(demo_checkpoint(), tmp_path / "broken"))
    (broken / "config.json").write_text("{ not json")
    drop_on(window, qtbot, broken)
    entry = next(e for e in window.browser.entries() if e.path == str(broken.resolve()))
    assert entry.kind == "broken" and "not valid JSON" in entry.reason


def test_closing_with_a_running_job_asks_first(window, qtbot, tmp_path, monkeypatch):
    from tests.checkpoint_factory import make_checkpoint

    drop_on(window, qtbot, make_checkpoint("llama", tmp_path / "big", num_layers=12, hidden_size=512))
    convert_ticked(window, qtbot, "int4")
    asked = []
    monkeypatch.setattr(window, "confirm_close", lambda busy: asked.append(busy) or False)
    window.close()
    assert asked[0].startswith("a conversion is running") and window.isVisible() and window.jobs.has_running()
    monkeypatch.setattr(window, "confirm_close", lambda busy: True)
    with qtbot.waitSignal(window.jobs.job_finished, timeout=30_000) as finished:
        window.close()
    assert not window.isVisible() and finished.args[1] == "cancelled"
