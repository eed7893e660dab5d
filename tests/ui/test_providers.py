"""Execution providers as the window shows them (issue 13, finding 22): the Convert combo shows whole entries, and
Convert, Hardware and Chat list the same providers, from app.hardware.PROVIDERS, in the same order."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.builder_info import builder_info
from app.hardware import PROVIDERS, probe_hardware
from app.hardware_probes import RecordedProbes
from app.presets import EP_NAMES
from ui.main_window import MainWindow

RECORDINGS = Path(__file__).resolve().parent.parent / "data" / "hardware"
pytestmark = pytest.mark.qt_log_ignore(r"^This plugin does not support (propagateSizeHints|raise)\(\)$")


@pytest.fixture
def window(qtbot):
    window = MainWindow(probe_hardware=False)
    qtbot.addWidget(window)
    window.show()  # shown first, as in real use: the hardware report arrives later
    yield window
    window.close()


def report(name: str):
    return probe_hardware(RecordedProbes(RECORDINGS / name))


@pytest.mark.parametrize("recording", ["linux_no_gpu.json", "windows11_rtx4090_directml.json"])
def test_the_provider_combo_shows_each_entry_whole(qtbot, window, recording):
    combo = window.presets.ep_combo
    window.set_hardware(report(recording))
    window.resize(window.minimumSizeHint().width(), 700)  # the narrowest window: the header row is crowded
    qtbot.wait(50)
    widest = max(combo.fontMetrics().horizontalAdvance(combo.itemText(i)) for i in range(combo.count()))
    assert "CPU ✓ runs here" in [combo.itemText(i) for i in range(combo.count())]
    combo.setFocus()
    for _ in range(combo.count()):  # every entry, picked with the keyboard as a user would
        assert combo.width() >= combo.sizeHint().width() and combo.width() > widest, combo.currentText()
        qtbot.keyClick(combo, Qt.Key.Key_Down)


@pytest.mark.parametrize("recording", ["linux_no_gpu.json", "windows11_rtx4090_directml.json"])
def test_convert_hardware_and_chat_list_the_same_providers(window, recording):
    window.set_hardware(report(recording))
    convert = window.presets.ep_combo
    listed = [convert.itemData(i) for i in range(convert.count())]
    assert listed == [ep for ep in PROVIDERS if ep in builder_info().execution_providers]
    assert "webgpu" in listed  # the installed builder builds for WebGPU

    table = window.hardware.provider_table
    assert [table.item(row, 0).text() for row in range(table.rowCount())] == [EP_NAMES[ep] for ep in PROVIDERS]
    # Convert marks each provider with the Hardware tab's verdict, WebGPU included ("not checked" before).
    for row, ep in enumerate(PROVIDERS):
        mark = table.item(row, 1).text()
        assert convert.itemText(listed.index(ep)).startswith(f"{EP_NAMES[ep]} {mark}")

    chat = window.chat.columns[0].ep_combo
    usable = window.hardware_report.usable_providers()
    assert [chat.itemData(i) for i in range(chat.count())] == [ep for ep in PROVIDERS if ep in usable]
