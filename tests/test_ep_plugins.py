"""The TensorRT-RTX plugin: registration through the real onnxruntime API, and every decision the hardware report
makes from a plugin's answers (recordings in tests/data/hardware; which are hand-written their notes say)."""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from app import ep_plugins
from app.hardware import fold
from app.hardware_probes import RecordedProbes, ask_probes

DATA = Path(__file__).parent / "data" / "hardware"
ROOT = Path(__file__).resolve().parents[1]
# The real cu12 0.5.0 wheel unpacked with `pip install --target` (not in the venv); absent on CI.
PLUGIN_SITE = Path("/tmp/trtplug/site")


def answers(name: str) -> dict[str, dict[str, Any]]:
    return ask_probes(RecordedProbes(DATA / name))


def test_plugin_registered_with_a_device_makes_trt_rtx_usable() -> None:
    status = fold(answers("windows11_24h2_rtx4070_cuda_trt_rtx_plugin.json")).provider("trt-rtx")
    assert status.usable
    assert "through the onnxruntime-ep-nv-tensorrt-rtx-cu12 0.5.0 plugin" in status.reason
    assert status.plugin_library and status.plugin_library.endswith("onnxruntime_providers_nv_tensorrt_rtx.dll")


def test_plugin_that_offers_no_device_for_turing_says_ampere() -> None:
    status = fold(answers("windows11_rtx2080super_trt_rtx_plugin_no_device.json")).provider("trt-rtx")
    assert not status.usable and status.plugin_library is None
    assert status.reason == (
        "the onnxruntime-ep-nv-tensorrt-rtx-cu12 0.5.0 plugin is registered but offers no device for the NVIDIA "
        "GeForce RTX 2080 SUPER: it needs Ampere (compute capability 8.0) or newer, and the NVIDIA GeForce RTX 2080 "
        "SUPER is 7.5"
    )


def test_plugin_that_offers_no_device_for_an_ampere_card_names_the_driver() -> None:
    data = answers("windows11_24h2_rtx4070_cuda_trt_rtx_plugin.json")
    data["ep_devices"]["devices"] = [d for d in data["ep_devices"]["devices"] if "NvTensorRTRTX" not in d["ep_name"]]
    status = fold(data).provider("trt-rtx")
    assert not status.usable
    assert status.reason.endswith(
        "it needs NVIDIA driver 555.85 or newer (570 for compute capability 12.x) and a working CUDA driver"
    )


def test_plugin_that_failed_to_register_gives_its_reason() -> None:
    data = answers("windows11_24h2_rtx4070_cuda_trt_rtx_plugin.json")
    data["ep_devices"]["devices"] = [d for d in data["ep_devices"]["devices"] if "NvTensorRTRTX" not in d["ep_name"]]
    data["ep_devices"]["plugins"][0].update(registered=False, reason="the plugin could not be registered: boom")
    assert fold(data).provider("trt-rtx").reason == "the plugin could not be registered: boom"


def test_built_in_provider_wins_over_a_plugin_that_failed() -> None:
    data = answers("windows11_rtx2080super_trt_rtx.json")
    data["ep_devices"]["plugins"] = [
        {"ep_name": ep_plugins.TRT_RTX_EP_NAME, "registered": False, "reason": "the plugin could not be registered: x"}
    ]
    status = fold(data).provider("trt-rtx")
    assert status.usable and status.plugin_library is None


def test_hardware_problems_come_before_the_plugin() -> None:
    """The one real recording: a GPU-less machine with the real plugin wheel, whose registration failed."""
    data = answers("linux_no_gpu_trt_rtx_plugin.json")
    plugin = data["ep_devices"]["plugins"][0]
    assert plugin["version"] == "0.5.0" and not plugin["registered"]
    assert (
        plugin["reason"]
        == "the plugin could not be registered: no NVIDIA driver is installed (libcuda.so.1 is missing)"
    )
    assert fold(data).provider("trt-rtx").reason == "no NVIDIA GPU found"


@pytest.mark.parametrize("plugins", [[], "nonsense", [None, 3, "x"], [{"ep_name": None}], None])
def test_plugins_answers_that_lie_are_ignored(plugins: Any) -> None:
    data = copy.deepcopy(answers("windows11_rtx2080super_trt_rtx.json"))
    data["ep_devices"]["plugins"] = plugins
    assert fold(data).provider("trt-rtx").usable


def test_registration_without_the_package() -> None:
    import onnxruntime

    if importlib.util.find_spec(ep_plugins.TRT_RTX_MODULE):
        pytest.skip("the plugin package is installed here")
    answer = ep_plugins.register_trt_rtx(onnxruntime)
    assert (answer.registered, answer.reason) == (False, "the onnxruntime-ep-nv-tensorrt-rtx package is not installed")
    assert json.loads(json.dumps(answer.to_dict())) == answer.to_dict()


def test_onnxruntime_refusing_a_library_is_reported_in_one_line(tmp_path: Path) -> None:
    import onnxruntime

    not_a_library = tmp_path / "libfake.so"
    not_a_library.write_text("not a shared library\n" * 3, encoding="utf-8")
    failure = ep_plugins._try_register(onnxruntime.register_execution_provider_library, str(not_a_library))
    assert failure and "\n" not in failure and str(not_a_library) in failure
    assert ep_plugins._explain(failure).startswith("the plugin could not be registered: ")


def test_the_missing_driver_is_named() -> None:
    failure = (
        "Failed to load library /x/libonnxruntime_providers_nv_tensorrt_rtx.so with error: libcuda.so.1: "
        "cannot open shared object file: No such file or directory"
    )
    assert ep_plugins._explain(failure) == (
        "the plugin could not be registered: no NVIDIA driver is installed (libcuda.so.1 is missing)"
    )


@pytest.mark.skipif(
    not PLUGIN_SITE.is_dir(), reason="the real plugin wheel is unpacked only on the development machine"
)
def test_the_real_plugin_wheel_registers_up_to_the_driver() -> None:
    code = (
        "import onnxruntime, onnxruntime_genai\n"
        "from app.ep_plugins import register_trt_rtx\n"
        "for runtime in (onnxruntime, onnxruntime_genai):\n"
        "    answer = register_trt_rtx(runtime)\n"
        "    print(answer.registered, answer.version, answer.reason)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={"PYTHONPATH": str(PLUGIN_SITE)}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    for line in lines:  # libcudart.so.12 came from the wheel itself; the driver is what this machine lacks
        assert (
            line
            == "False 0.5.0 the plugin could not be registered: no NVIDIA driver is installed (libcuda.so.1 is missing)"
        )
