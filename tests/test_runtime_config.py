"""The GPU choice as it reaches onnxruntime-genai's Config and onnxruntime's sessions, per provider.

The machines are the recordings in tests/data/hardware (hand-written in the shape of the real APIs where their notes
say so); the Config is the installed onnxruntime-genai's own, so every call below is the real API. The installed
wheel is a CPU build: for DirectML, CUDA and TensorRT-RTX the test checks that the Config takes every call and that
og.Model then fails on that provider's missing library (the provider reached the model), not what a GPU does next.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from app.errors import InputError
from app.hardware import Gpu, HardwareReport, probe_hardware
from app.hardware_probes import RecordedProbes
from app.quantize import calibration
from app.runtime_config import (
    RuntimeDevice,
    configure_genai,
    device_for,
    luid_option,
    pick_gpu,
    prepare_process,
    runtime_device,
)

DATA = Path(__file__).parent / "data" / "hardware"
ROOT = Path(__file__).resolve().parents[1]
HYBRID = "windows11_hybrid_laptop_rtx3060.json"  # Intel Iris Xe at DXGI 0, RTX 3060 Laptop at DXGI 1 (NVML 0)
RTX4070_PLUGIN = "windows11_24h2_rtx4070_cuda_trt_rtx_plugin.json"
RTX2080_BUILT_IN = "windows11_rtx2080super_trt_rtx.json"  # the old onnxruntime-trt-rtx layout


def report_of(name: str) -> HardwareReport:
    return probe_hardware(RecordedProbes(DATA / name))


@pytest.fixture(scope="module")
def og() -> Any:
    from app.chat import load_genai

    return load_genai()


@pytest.fixture
def genai_folder(tmp_path: Path) -> Path:
    """A genai_config.json that the real Config parses; its model file does not exist (the provider fails first)."""
    config = {
        "model": {
            "type": "llama",
            "context_length": 64,
            "vocab_size": 32,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "pad_token_id": 0,
            "decoder": {
                "filename": "model.onnx",
                "head_size": 8,
                "hidden_size": 16,
                "num_attention_heads": 2,
                "num_hidden_layers": 1,
                "num_key_value_heads": 2,
                "session_options": {"provider_options": []},
                "inputs": {"input_ids": "input_ids", "attention_mask": "attention_mask"},
                "outputs": {"logits": "logits"},
            },
        },
        "search": {"max_length": 64},
    }
    (tmp_path / "genai_config.json").write_text(json.dumps(config), encoding="utf-8")
    return tmp_path


class RecordingConfig:
    """The real og.Config, with each call written down on its way through (a call the real API refuses raises)."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.calls: list[tuple[Any, ...]] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.config, name)

        def call(*args: Any) -> Any:
            self.calls.append((name, *args))
            return method(*args)

        return call


def reaching_config(og: Any, folder: Path, device: RuntimeDevice) -> list[tuple[Any, ...]]:
    config = RecordingConfig(og.Config(str(folder)))
    configure_genai(config, device)
    return config.calls


def model_error(og: Any, folder: Path, device: RuntimeDevice) -> str:
    config = og.Config(str(folder))
    configure_genai(config, device)
    with pytest.raises(Exception) as raised:
        og.Model(config)
    return str(raised.value)


# --------------------------------------------------------------------------------------------------------------------
# DirectML: luid (or device_index), never device_id


def test_dml_on_a_hybrid_laptop_gets_the_picked_adapter_by_luid(og: Any, genai_folder: Path) -> None:
    device = device_for("dml", 1, report_of(HYBRID))
    # the RTX 3060's LUID 0x0000000000010d4e: HighPart 0, LowPart 68942
    assert reaching_config(og, genai_folder, device) == [
        ("clear_providers",),
        ("append_provider", "dml"),
        ("set_provider_option", "dml", "luid", "0:68942"),
    ]
    assert device.ort_options == {"device_id": "1"}  # onnxruntime's DmlExecutionProvider counts DXGI adapters
    assert device.calibration_ep() == "dml:1"


def test_dml_without_a_choice_takes_the_discrete_gpu_and_the_integrated_one_when_asked() -> None:
    report = report_of(HYBRID)
    assert device_for("dml", None, report).options == {"luid": "0:68942"}
    assert device_for("dml", 0, report).options == {"luid": "0:62386"}  # Iris Xe, 0xf3b2


def test_dml_without_a_luid_falls_back_to_device_index(og: Any, genai_folder: Path) -> None:
    gpu = Gpu(index=2, name="Radeon", vendor="AMD", luid=None)
    assert reaching_config(og, genai_folder, runtime_device("dml", gpu))[-1] == (
        "set_provider_option",
        "dml",
        "device_index",
        "2",
    )


def test_no_provider_gets_device_id_on_dml() -> None:
    for report in (report_of(HYBRID), report_of(RTX4070_PLUGIN)):
        assert "device_id" not in device_for("dml", None, report).options


def test_dml_reaches_the_model(og: Any, genai_folder: Path) -> None:
    if og.is_dml_available():
        pytest.skip("this onnxruntime-genai has DirectML: the model would really try the adapter")
    error = model_error(og, genai_folder, device_for("dml", 1, report_of(HYBRID)))
    assert "DML provider requested" in error


@pytest.mark.parametrize(
    ("luid", "option"),
    [
        ("0x0000000000010d4e", "0:68942"),
        ("0x00000001000012ab", "1:4779"),
        # genai reads each half with std::stol (32-bit on Windows): LowPart 0x800012ab is written as its signed twin
        ("0x00000000800012ab", "0:-2147478869"),
        ("0xffffffffffffffff", "-1:-1"),
        ("0x1", "0:1"),
    ],
)
def test_luid_halves(luid: str, option: str) -> None:
    assert luid_option(luid) == option
    high, low = (int(part) for part in option.split(":"))
    assert -(2**31) <= high < 2**31 and -(2**31) <= low < 2**31
    assert ((high & 0xFFFFFFFF) << 32 | (low & 0xFFFFFFFF)) == int(luid, 16)


@pytest.mark.parametrize(
    "luid", ["", "0x", "0x" + "f" * 17, "0x" + "1" * 10_000, "12345", "0xZZ", "0x12;rm -rf /", " 0x12", None, 42]
)
def test_luid_that_is_not_one_is_one_sentence(luid: Any) -> None:
    with pytest.raises(InputError, match="is not 0x followed by up to 16 hex digits"):
        luid_option(luid)


# --------------------------------------------------------------------------------------------------------------------
# CUDA: device_id, the same device made current, CUDA in PCI order


def test_cuda_gets_device_id_and_pci_order(og: Any, genai_folder: Path) -> None:
    device = device_for("cuda", 0, report_of(RTX4070_PLUGIN))
    assert reaching_config(og, genai_folder, device) == [
        ("clear_providers",),
        ("append_provider", "cuda"),
        ("set_provider_option", "cuda", "device_id", "0"),
    ]
    assert device.cuda_ordinal == 0
    assert device.environment == {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    assert device.calibration_ep() == "cuda:0"


def test_cuda_reaches_the_model(og: Any, genai_folder: Path) -> None:
    if og.is_cuda_available():
        pytest.skip("this onnxruntime-genai has CUDA: the model would really try the GPU")
    assert "Cuda interface not available" in model_error(
        og, genai_folder, device_for("cuda", 0, report_of(RTX4070_PLUGIN))
    )


def test_preparing_a_cuda_device_on_a_cpu_build_does_not_crash() -> None:
    """set_current_gpu_device_id kills a CPU build's process (SIGSEGV, seen here): it is asked first. A child keeps
    a crash from taking the test run with it."""
    code = (
        "import os\n"
        "from app.chat import load_genai\n"
        "from app.runtime_config import prepare_process, runtime_device\n"
        "from app.hardware import Gpu\n"
        "og = load_genai()\n"
        "prepare_process(runtime_device('cuda', Gpu(index=None, name='x', vendor='NVIDIA', nvml_index=1)), og)\n"
        "print(os.environ['CUDA_DEVICE_ORDER'], og.is_cuda_available())\n"
    )
    environment = {key: value for key, value in os.environ.items() if key != "CUDA_DEVICE_ORDER"}
    environment["CUDA_DEVICE_ORDER"] = "FASTEST_FIRST"  # the ordinal was computed in PCI order: forced
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "PCI_BUS_ID"


def test_prepare_process_makes_the_ordinal_current_where_cuda_is_there(monkeypatch: pytest.MonkeyPatch) -> None:
    class CudaBuild:  # stands for a CUDA wheel, which this machine does not have
        current: int | None = None

        def is_cuda_available(self) -> bool:
            return True

        def set_current_gpu_device_id(self, ordinal: int) -> None:
            self.current = ordinal

    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    build = CudaBuild()
    prepare_process(device_for("cuda", 0, report_of(RTX4070_PLUGIN)), build)
    assert build.current == 0
    assert os.environ["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"


def test_a_gpu_number_the_pc_does_not_have_is_one_sentence() -> None:
    with pytest.raises(InputError) as raised:
        device_for("cuda", 7, report_of(RTX4070_PLUGIN))
    assert str(raised.value) == (
        "GPU 7 is not a NVML GPU this PC has (it lists: 0); pick one the Hardware tab or `main.py hardware` shows."
    )
    with pytest.raises(InputError, match=r"not a DXGI adapter this PC has \(it lists: 0, 1\)"):
        device_for("dml", 5, report_of(HYBRID))
    with pytest.raises(InputError, match="it lists: none"):
        device_for("cuda", 0, report_of("linux_no_gpu.json"))


def test_unknown_provider_is_one_sentence() -> None:
    for provider in ("", "rocm", "dml; rm", "x" * 10_000):
        with pytest.raises(InputError, match="is not an execution provider the studio knows"):
            runtime_device(provider, None)


def test_no_gpu_means_the_runtime_default(og: Any, genai_folder: Path) -> None:
    report = report_of("linux_no_gpu.json")
    assert pick_gpu(report, "cuda", None) is None
    assert reaching_config(og, genai_folder, device_for("cuda", None, report)) == [
        ("clear_providers",),
        ("append_provider", "cuda"),
    ]


# --------------------------------------------------------------------------------------------------------------------
# TensorRT-RTX: a device filter for the plugin, device_id for the built-in layout; the CPU: no provider at all


def test_trt_rtx_plugin_is_picked_by_device_filter(og: Any, genai_folder: Path) -> None:
    device = device_for("trt-rtx", 0, report_of(RTX4070_PLUGIN))
    assert reaching_config(og, genai_folder, device) == [
        ("clear_providers",),
        ("append_provider", "NvTensorRtRtx"),
        ("set_decoder_provider_options_hardware_device_type", "NvTensorRtRtx", "gpu"),
        ("set_decoder_provider_options_hardware_vendor_id", "NvTensorRtRtx", 0x10DE),
        ("set_decoder_provider_options_hardware_device_id", "NvTensorRtRtx", 10118),  # RTX 4070's PCI id 0x2786
    ]
    assert device.options == {}  # the plugin numbers its own devices: a device_id here could name another GPU


def test_trt_rtx_built_in_gets_device_id(og: Any, genai_folder: Path) -> None:
    device = device_for("trt-rtx", None, report_of(RTX2080_BUILT_IN))
    assert reaching_config(og, genai_folder, device) == [
        ("clear_providers",),
        ("append_provider", "NvTensorRtRtx"),
        ("set_provider_option", "NvTensorRtRtx", "device_id", "0"),
    ]


def test_trt_rtx_reaches_the_model(og: Any, genai_folder: Path) -> None:
    if og.is_cuda_available():
        pytest.skip("this onnxruntime-genai has CUDA: the model would really try the GPU")
    error = model_error(og, genai_folder, device_for("trt-rtx", 0, report_of(RTX4070_PLUGIN)))
    assert "Cuda interface not available" in error  # genai's TensorRT-RTX path starts with its CUDA interface


def test_cpu_gets_no_provider(og: Any, genai_folder: Path) -> None:
    for report in (report_of(HYBRID), report_of(RTX4070_PLUGIN)):
        device = device_for("cpu", 1, report)
        assert reaching_config(og, genai_folder, device) == [("clear_providers",)]
        assert device.calibration_ep() == "cpu"


# --------------------------------------------------------------------------------------------------------------------
# Calibration: ModelOpt's spelling, turned into onnxruntime's provider options by ModelOpt itself


def test_calibration_on_a_picked_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    assert calibration.resolve_eps(["dml:1", "cpu"], report_of(HYBRID)) == ["dml:1", "cpu"]
    assert "CUDA_DEVICE_ORDER" not in os.environ
    assert calibration.resolve_eps(["cuda:0"], report_of(RTX4070_PLUGIN)) == ["cuda:0"]
    assert os.environ["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    with pytest.raises(InputError, match="GPU 3 is not a DXGI adapter"):
        calibration.resolve_eps(["dml:3"], report_of(HYBRID))


def test_modelopt_turns_the_spelling_into_session_provider_options() -> None:
    from modelopt.onnx.quantization.ort_utils import _prepare_ep_list

    eps = calibration.resolve_eps(["dml:1", "cpu"], report_of(HYBRID))
    assert _prepare_ep_list(eps) == [("DmlExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]


@pytest.mark.parametrize(
    "ep", ["", "cuda:", "cuda:x", "cuda:-1", "cuda:12345", "dml:1:2", "rocm:0", "cuda:0 ", "c" * 9999]
)
def test_calibration_eps_that_are_not_ones_are_refused(ep: str) -> None:
    with pytest.raises(InputError, match="calibration_eps takes auto"):
        calibration.check_eps([ep])


def test_calibration_eps_accept_a_gpu() -> None:
    calibration.check_eps(["cuda:0", "DML:3", "cpu", "auto"])


# --------------------------------------------------------------------------------------------------------------------
# The command line


def test_hardware_command_names_the_flavor() -> None:
    from tests.conftest import run_main

    done = run_main("hardware")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("Runtime flavor: ")


@pytest.mark.parametrize("value", ["", "-1", "x", "1e3", "99999999999999999999"])
def test_bench_device_id_that_is_not_a_gpu_number_is_refused_in_one_line(value: str, tmp_path: Path) -> None:
    from tests.conftest import run_main

    done = run_main("bench", str(tmp_path), "--device-id", value)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in done.stderr
