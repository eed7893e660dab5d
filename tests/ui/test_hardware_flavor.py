"""The Hardware tab's runtime flavor: installed, best for this PC and why, how to get it; from recorded probes
(hand-written in the shape of the real APIs where their notes say so)."""

from __future__ import annotations

import copy
import json

import pytest

from app.flavors import advise
from app.hardware import HardwareReport, fold, probe_hardware
from app.hardware_probes import RecordedProbes, ask_probes
from tests.conftest import ROOT
from ui.hardware import HardwarePane

DATA = ROOT / "tests" / "data" / "hardware"


def machine(name: str) -> HardwareReport:
    return probe_hardware(RecordedProbes(DATA / f"{name}.json"))


def with_packages(name: str, packages: dict[str, str], os_version: str | None = None) -> HardwareReport:
    answers = copy.deepcopy(ask_probes(RecordedProbes(DATA / f"{name}.json")))
    answers["packages"]["distributions"] = packages
    if os_version:
        answers["system"]["os_version"] = os_version
    return fold(answers)


@pytest.fixture
def pane(qtbot):
    widget = HardwarePane()
    qtbot.addWidget(widget)
    return widget


def test_rtx_on_windows_11_24h2_is_told_winml_with_tensorrt_rtx(pane):
    pane.set_report(machine("windows11_24h2_rtx4070_cuda_trt_rtx_plugin"))
    lines = pane.flavor_label.text().splitlines()
    assert lines[0] == "Installed: CUDA (onnxruntime-genai-cuda 0.18.0)"
    assert lines[1].startswith("Best for this PC: Windows ML, because the NVIDIA GeForce RTX 4070 is an RTX GPU on")
    assert "TensorRT-RTX" in lines[1]
    assert lines[2].startswith("How: pip uninstall ") and "pip install onnxruntime-genai-winml==0.18.0" in lines[2]


def test_directml_laptop_before_24h2_is_told_cuda_and_why(pane):
    pane.set_report(machine("windows11_hybrid_laptop_rtx3060"))
    text = pane.flavor_label.text()
    assert "Installed: DirectML (onnxruntime-genai-directml 0.7.1)" in text  # as recorded
    assert "Best for this PC: CUDA, because CUDA runs on the NVIDIA GeForce RTX 3060 Laptop GPU" in text
    assert "Windows ML's provider catalog needs Windows 11 24H2 (build 26100)" in text


def test_the_same_laptop_on_24h2_is_told_winml():
    report = with_packages(
        "windows11_hybrid_laptop_rtx3060", {"onnxruntime-genai-directml": "0.14.1"}, os_version="10.0.26100"
    )
    assert advise(report).best == "winml"


def test_installed_best_flavor_needs_nothing(pane):
    report = with_packages(
        "windows11_24h2_rtx4070_cuda_trt_rtx_plugin", {"onnxruntime-genai-winml": "0.18.0", "onnxruntime": "1.24.4"}
    )
    pane.set_report(report)
    lines = pane.flavor_label.text().splitlines()
    assert lines[0] == "Installed: Windows ML (onnxruntime-genai-winml 0.18.0)"
    assert lines[1].startswith("Best for this PC: Windows ML, because")
    assert lines[2] == "How: Windows ML is installed: nothing to do."


def test_two_flavors_in_one_environment_are_a_clash(pane):
    report = with_packages(
        "windows11_rtx4090_directml", {"onnxruntime-genai-directml": "0.14.1", "onnxruntime-genai-cuda": "0.18.0"}
    )
    pane.set_report(report)
    first = pane.flavor_label.text().splitlines()[0]
    assert first.endswith("more than one flavor in one environment clash")


def test_no_flavor_and_no_gpu(pane):
    pane.set_report(with_packages("linux_no_gpu", {}))
    assert pane.flavor_label.text().splitlines()[:2] == [
        "Installed: none (no onnxruntime-genai package)",
        "Best for this PC: CPU, because no GPU a flavor could use was found, so the CPU build is the one that runs "
        "here.",
    ]


@pytest.mark.parametrize("name", sorted(path.stem for path in DATA.glob("*.json")))
def test_every_recorded_machine_gets_three_lines(pane, name):
    report = machine(name)
    pane.set_report(report)
    lines = pane.flavor_label.text().splitlines()
    assert [line.split(":")[0] for line in lines] == ["Installed", "Best for this PC", "How"]
    assert json.loads(json.dumps(report.to_dict())) == report.to_dict()


def test_data_center_gpu_is_not_told_tensorrt_rtx():
    assert "not this data-center GPU" in advise(machine("linux_h200_nvml")).why
