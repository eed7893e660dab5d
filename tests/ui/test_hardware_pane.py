"""The Hardware pane, the status-bar summary, and the probe that runs `main.py hardware --json` in a child."""

from __future__ import annotations

import subprocess
import sys

import pytest

from app.hardware import HardwareReport, probe_hardware
from app.hardware_probes import RecordedProbes
from tests.conftest import ROOT
from ui import hardware as hardware_module
from ui.hardware import HardwarePane, HardwareProbe, status_summary


def machine(name: str) -> HardwareReport:
    return probe_hardware(RecordedProbes(ROOT / "tests" / "data" / "hardware" / f"{name}.json"))


@pytest.fixture
def pane(qtbot):
    widget = HardwarePane()
    qtbot.addWidget(widget)
    return widget


def test_hybrid_laptop_defaults_to_the_discrete_gpu(pane):
    pane.set_report(machine("windows11_hybrid_laptop_rtx3060"))
    assert pane.chosen_gpu() == 1
    assert "RTX 3060 Laptop GPU" in pane.gpu_combo.currentText()
    assert pane.gpu_combo.count() == 2 and pane.gpu_combo.isEnabled()
    assert pane.gpu_table.rowCount() == 2
    row = {pane.gpu_table.horizontalHeaderItem(c).text(): pane.gpu_table.item(1, c).text() for c in range(8)}
    assert row["Adapter"] == "DXGI 1 · NVML 0"
    assert row["Vendor"] == "NVIDIA"
    assert row["Memory"].startswith("5.9 GB")
    assert (row["Driver"], row["Compute capability"], row["Type"]) == ("552.22", "8.6", "discrete")
    assert row["LUID"] == "0x0000000000010d4e"
    assert "15.8 GB" in pane.system_label.text()


def test_providers_with_reasons_and_int4(pane):
    pane.set_report(machine("windows11_rtx2080super_trt_rtx"))
    table = pane.provider_table
    rows = {table.item(r, 0).text(): [table.item(r, c) for c in range(4)] for r in range(table.rowCount())}
    assert set(rows) == {"CPU", "DirectML", "CUDA", "TensorRT-RTX", "WebGPU"}
    assert rows["WebGPU"][1].text() == "✗"
    assert rows["WebGPU"][2].text() == "the onnxruntime-webgpu package is not installed"
    assert rows["TensorRT-RTX"][1].text() == "✓"
    assert rows["TensorRT-RTX"][3].text() == "✗"  # Turing: no INT4 weight-only GEMM on TensorRT-RTX
    assert "Ampere" in rows["TensorRT-RTX"][3].toolTip()
    assert rows["CUDA"][1].text() == "✗"
    assert rows["CUDA"][2].text() == "the onnxruntime-gpu package is not installed"
    assert "onnxruntime-trt-rtx" in pane.packages_label.text()


def test_gpu_picker_emits_only_what_the_user_picks(qtbot, pane):
    pane.set_report(machine("windows11_hybrid_laptop_rtx3060"))
    with qtbot.assertNotEmitted(pane.gpu_chosen):
        pane.select_gpu(0)
    assert pane.chosen_gpu() == 0
    with qtbot.waitSignal(pane.gpu_chosen) as signal:
        pane.gpu_combo.setCurrentIndex(1)
        pane.gpu_combo.activated.emit(1)
    assert signal.args == [1]


def test_no_directx_adapter_leaves_the_picker_empty(pane):
    pane.set_report(machine("linux_h200_nvml"))
    assert pane.chosen_gpu() is None
    assert not pane.gpu_combo.isEnabled()
    assert pane.gpu_table.rowCount() == 1
    assert "DXGI exists only on Windows" in pane.notes_label.text()


@pytest.mark.parametrize(
    ("recording", "summary"),
    [
        ("windows11_hybrid_laptop_rtx3060", "RTX 3060 Laptop GPU · 6 GB · DML ✓ CUDA ✗ TRT-RTX ✗ WEBGPU ✗"),
        ("windows11_rtx4090_directml", "RTX 4090 · 24 GB · DML ✓ CUDA ✗ TRT-RTX ✗ WEBGPU ✗"),
        ("windows11_rtx2080super_trt_rtx", "RTX 2080 SUPER · 8 GB · DML ✗ CUDA ✗ TRT-RTX ✓ WEBGPU ✗"),
        ("windows10_gtx1080_cuda", "GTX 1080 · 8 GB · DML ✗ CUDA ✓ TRT-RTX ✗ WEBGPU ✗"),
        ("linux_h200_nvml", "H200 · 140 GB · DML ✗ CUDA ✗ TRT-RTX ✗ WEBGPU ✗"),
        ("linux_no_gpu", "CPU only · DML ✗ CUDA ✗ TRT-RTX ✗ WEBGPU ✗"),
    ],
)
def test_status_summary(recording, summary):
    assert status_summary(machine(recording)) == summary


def test_probe_runs_main_py_hardware_for_real(qtbot):
    probe = HardwareProbe()
    with qtbot.waitSignal(probe.ready, timeout=120_000) as signal:
        probe.start()
    report = signal.args[0]
    assert isinstance(report, HardwareReport)
    assert report.provider("cpu").usable
    assert "onnxruntime" in report.packages
    assert not probe.is_running()


def test_probe_reports_a_failing_child(qtbot, monkeypatch):
    monkeypatch.setattr(
        hardware_module,
        "app_command",
        lambda *args: [sys.executable, "-c", "import sys; print('no driver', file=sys.stderr); sys.exit(3)"],
    )
    probe = HardwareProbe()
    with qtbot.waitSignal(probe.failed, timeout=30_000) as signal, qtbot.assertNotEmitted(probe.ready):
        probe.start()
    assert signal.args == ["the hardware probe stopped with exit code 3 (no driver)"]


def test_probe_reports_unreadable_output(qtbot, monkeypatch):
    monkeypatch.setattr(hardware_module, "app_command", lambda *args: [sys.executable, "-c", "print('{}')"])
    probe = HardwareProbe()
    with qtbot.waitSignal(probe.failed, timeout=30_000) as signal:
        probe.start()
    assert signal.args[0].startswith("the hardware probe answered something unreadable")


def test_probe_reports_a_program_that_does_not_start(qtbot, monkeypatch):
    monkeypatch.setattr(hardware_module, "app_command", lambda *args: [str(ROOT / "no-such-program")])
    probe = HardwareProbe()
    with qtbot.waitSignal(probe.failed, timeout=30_000) as signal:
        probe.start()
    assert signal.args[0].startswith("the hardware probe could not start")


def test_the_window_modules_leave_onnxruntime_and_torch_out():
    code = (
        "import os, sys\n"
        "os.environ['QT_QPA_PLATFORM'] = 'offscreen'\n"
        "from PySide6.QtWidgets import QApplication\n"
        "app = QApplication([])\n"
        "from ui.presets import PresetPane\n"
        "from ui.hardware import HardwarePane, HardwareProbe\n"
        "from ui.widgets.options_form import OptionsForm\n"
        "PresetPane(); HardwarePane(); OptionsForm('cpu'); HardwareProbe()\n"
        "print([m for m in ('torch', 'onnxruntime', 'onnxruntime_genai', 'transformers') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
