"""The hardware report: live on this machine, and folded from recorded machines in tests/data/hardware."""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from app import dxgi, hardware, hardware_probes
from app.dxgi import enumerate_dxgi_adapters
from app.hardware import HardwareReport, fold, format_report, probe_hardware
from app.hardware_probes import LiveProbes, RecordedProbes, record_probes

DATA = Path(__file__).parent / "data" / "hardware"
ROOT = Path(__file__).resolve().parent.parent
RECORDINGS = sorted(DATA.glob("*.json"))
# Captured by LiveProbes, for real; the rest are hand-written.
CAPTURED = {"linux_no_gpu.json", "linux_h200_nvml.json", "linux_h100_nvml.json", "linux_no_gpu_trt_rtx_plugin.json"}


def recording(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def report_of(name: str) -> HardwareReport:
    return probe_hardware(RecordedProbes(DATA / name))


def usable(report: HardwareReport) -> dict[str, bool]:
    return {status.name: status.usable for status in report.providers}


def is_sentence(reason: str) -> bool:
    return len(reason.split()) >= 4


# --------------------------------------------------------------------------------------------------------------------
# Cheap import


def test_importing_hardware_loads_no_heavy_module() -> None:
    heavy = ["torch", "onnxruntime", "onnxruntime_genai", "pynvml"]
    code = f"import json, sys; import app.hardware; print(json.dumps([m for m in {heavy!r} if m in sys.modules]))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == []


# --------------------------------------------------------------------------------------------------------------------
# This machine, for real


@pytest.fixture(scope="module")
def live_answers() -> dict[str, dict[str, Any]]:
    return hardware_probes.ask_probes(LiveProbes())


def test_live_probes_on_this_gpu_less_linux_machine(live_answers: dict[str, dict[str, Any]]) -> None:
    if sys.platform == "win32" or live_answers["nvml"].get("available"):
        pytest.skip("this machine has a GPU; the assertions below describe the project's GPU-less Linux machines")
    report = fold(live_answers)

    assert report.gpus == []
    assert report.default_dml_device is None
    assert "CPUExecutionProvider" in report.onnxruntime_providers
    devices = live_answers["ep_devices"]["devices"]
    assert devices and {device["device"]["type"] for device in devices} == {"CPU"}
    assert usable(report) == {"cpu": True, "dml": False, "cuda": False, "trt-rtx": False, "webgpu": False}
    for status in report.providers:
        assert is_sentence(status.reason), status
    assert report.provider("dml").reason.startswith("DirectML runs only on Windows")
    assert report.provider("cuda").reason == "no NVIDIA GPU found"
    assert report.provider("trt-rtx").reason == "no NVIDIA GPU found"
    assert report.probe_notes["dxgi_adapters"] == "DXGI exists only on Windows"
    assert is_sentence(report.probe_notes["nvml"])


def test_live_answers_have_the_recorded_shape(live_answers: dict[str, dict[str, Any]]) -> None:
    recorded = recording("linux_no_gpu.json")["probes"]
    for name in hardware_probes.PROBE_NAMES:
        assert set(live_answers[name]) == set(recorded[name]), name
    assert live_answers["packages"]["distributions"]["onnxruntime"]


def test_live_report_is_json_and_readable(live_answers: dict[str, dict[str, Any]]) -> None:
    report = fold(live_answers)
    data = report.to_dict()
    assert json.loads(json.dumps(data)) == data
    text = format_report(report)
    assert "cpu" in text and "usable" in text


# --------------------------------------------------------------------------------------------------------------------
# Recorded machines


EXPECTED = {
    "windows11_rtx4090_directml.json": {
        "gpus": [(0, "NVIDIA GeForce RTX 4090", True, "8.9")],
        "usable": {"cpu": True, "dml": True, "cuda": False, "trt-rtx": False, "webgpu": False},
        "int4": {"cpu": True, "dml": True, "cuda": None, "trt-rtx": True, "webgpu": None},
        "default_dml_device": 0,
    },
    "windows11_hybrid_laptop_rtx3060.json": {
        "gpus": [
            (0, "Intel(R) Iris(R) Xe Graphics", None, None),
            (1, "NVIDIA GeForce RTX 3060 Laptop GPU", True, "8.6"),
        ],
        "usable": {"cpu": True, "dml": True, "cuda": False, "trt-rtx": False, "webgpu": False},
        "int4": {"cpu": True, "dml": True, "cuda": None, "trt-rtx": True, "webgpu": None},
        "default_dml_device": 1,
    },
    "windows10_gtx1080_cuda.json": {
        "gpus": [(0, "NVIDIA GeForce GTX 1080", True, "6.1")],
        "usable": {"cpu": True, "dml": False, "cuda": True, "trt-rtx": False, "webgpu": False},
        "int4": {"cpu": True, "dml": None, "cuda": True, "trt-rtx": False, "webgpu": None},
        "default_dml_device": 0,
    },
    "windows11_rtx2080super_trt_rtx.json": {
        "gpus": [(0, "NVIDIA GeForce RTX 2080 SUPER", True, "7.5")],
        "usable": {"cpu": True, "dml": False, "cuda": False, "trt-rtx": True, "webgpu": False},
        "int4": {"cpu": True, "dml": None, "cuda": None, "trt-rtx": False, "webgpu": None},
        "default_dml_device": 0,
    },
    "linux_h200_nvml.json": {
        "gpus": [(None, "NVIDIA H200", True, "9.0")],
        "usable": {"cpu": True, "dml": False, "cuda": False, "trt-rtx": False, "webgpu": False},
        "int4": {"cpu": True, "dml": None, "cuda": None, "trt-rtx": False, "webgpu": None},
        "default_dml_device": None,
    },
    "linux_h100_nvml.json": {
        "gpus": [(None, "NVIDIA H100 80GB HBM3", True, "9.0")],
        "usable": {"cpu": True, "dml": False, "cuda": False, "trt-rtx": False, "webgpu": False},
        "int4": {"cpu": True, "dml": None, "cuda": None, "trt-rtx": False, "webgpu": None},
        "default_dml_device": None,
    },
    "windows11_24h2_rtx4070_cuda_trt_rtx_plugin.json": {
        "gpus": [(0, "NVIDIA GeForce RTX 4070", True, "8.9")],
        "usable": {"cpu": True, "dml": False, "cuda": True, "trt-rtx": True, "webgpu": False},
        "int4": {"cpu": True, "dml": None, "cuda": True, "trt-rtx": True, "webgpu": None},
        "default_dml_device": 0,
    },
    "windows11_rtx2080super_trt_rtx_plugin_no_device.json": {
        "gpus": [(0, "NVIDIA GeForce RTX 2080 SUPER", True, "7.5")],
        "usable": {"cpu": True, "dml": False, "cuda": False, "trt-rtx": False, "webgpu": False},
        "int4": {"cpu": True, "dml": None, "cuda": None, "trt-rtx": False, "webgpu": None},
        "default_dml_device": 0,
    },
    "linux_no_gpu_trt_rtx_plugin.json": {
        "gpus": [],
        "usable": {"cpu": True, "dml": False, "cuda": False, "trt-rtx": False, "webgpu": False},
        "int4": {"cpu": True, "dml": None, "cuda": None, "trt-rtx": None, "webgpu": None},
        "default_dml_device": None,
    },
    "linux_no_gpu.json": {
        "gpus": [],
        "usable": {"cpu": True, "dml": False, "cuda": False, "trt-rtx": False, "webgpu": False},
        "int4": {"cpu": True, "dml": None, "cuda": None, "trt-rtx": None, "webgpu": None},
        "default_dml_device": None,
    },
}


def test_every_recording_has_an_expectation() -> None:
    assert {path.name for path in RECORDINGS} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recorded_machine_folds_as_expected(name: str) -> None:
    expected = EXPECTED[name]
    report = report_of(name)

    gpus = [(gpu.index, gpu.name, gpu.discrete, gpu.compute_capability) for gpu in report.gpus]
    assert gpus == expected["gpus"]
    assert usable(report) == expected["usable"]
    assert {status.name: status.int4 for status in report.providers} == expected["int4"]
    assert report.default_dml_device == expected["default_dml_device"]
    for status in report.providers:
        assert is_sentence(status.reason), status
        assert status.int4_reason, status


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda path: path.name)
def test_recordings_say_where_they_came_from(path: Path) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["format"] == hardware_probes.RECORD_FORMAT
    captured = path.name in CAPTURED
    assert ("Captured by LiveProbes" in data["note"]) == captured
    assert ("Not captured from a real machine" in data["note"]) == (not captured)


def test_rtx4090_is_seen_by_three_probes_and_merged_once() -> None:
    (gpu,) = report_of("windows11_rtx4090_directml.json").gpus
    assert gpu.sources == ["dxgi", "onnxruntime", "nvml"]
    assert gpu.luid == "0x0000000000011a47"
    assert gpu.vendor == "NVIDIA"
    assert (gpu.vendor_id, gpu.device_id) == (0x10DE, 0x2684)
    assert gpu.dedicated_memory_bytes == 24138 * 1024 * 1024  # DXGI's figure: what DirectML sees
    assert gpu.driver_version == "566.36"
    assert gpu.nvml_index == 0


def test_hybrid_laptop_without_ep_devices_falls_back_to_dxgi() -> None:
    report = report_of("windows11_hybrid_laptop_rtx3060.json")
    intel, nvidia = report.gpus
    assert intel.sources == ["dxgi"] and intel.vendor == "Intel"
    assert nvidia.sources == ["dxgi", "nvml"]
    assert "ep_devices" in report.probe_notes
    assert report.provider("dml").reason == "DirectML can use adapter 1 (NVIDIA GeForce RTX 3060 Laptop GPU)"


def test_ep_device_metadata_alone_describes_the_gpu() -> None:
    data = recording("windows11_rtx4090_directml.json")
    data["probes"]["dxgi_adapters"] = {"available": False, "reason": "dxgi.dll could not be loaded"}
    (gpu,) = probe_hardware(RecordedProbes(data)).gpus
    assert (gpu.index, gpu.luid, gpu.discrete) == (0, "0x0000000000011a47", True)
    assert gpu.dedicated_memory_bytes == 24138 * 1024 * 1024
    assert gpu.sources == ["onnxruntime", "nvml"]


def test_integrated_gpu_marked_by_onnxruntime_loses_to_the_discrete_one() -> None:
    data = recording("windows11_hybrid_laptop_rtx3060.json")
    adapters = data["probes"]["dxgi_adapters"]["adapters"]
    devices = []
    for adapter, discrete in ((adapters[0], "0"), (adapters[1], "1")):
        metadata = {
            "Description": adapter["description"],
            "LUID": str(int(adapter["luid"], 16)),
            "DxgiAdapterNumber": str(adapter["index"]),
            "Discrete": discrete,
        }
        devices.append(
            {
                "ep_name": "DmlExecutionProvider",
                "device": {
                    "type": "GPU",
                    "vendor": "",
                    "vendor_id": adapter["vendor_id"],
                    "device_id": adapter["device_id"],
                    "metadata": metadata,
                },
            }
        )
    data["probes"]["ep_devices"] = {"available": True, "devices": devices}
    report = probe_hardware(RecordedProbes(data))
    assert [gpu.discrete for gpu in report.gpus] == [False, True]
    assert [gpu.sources for gpu in report.gpus] == [["dxgi", "onnxruntime"], ["dxgi", "onnxruntime", "nvml"]]
    assert report.default_dml_device == 1


def test_two_identical_gpus_pair_with_nvml_in_order() -> None:
    data = recording("windows11_rtx4090_directml.json")
    probes = data["probes"]
    first = probes["dxgi_adapters"]["adapters"][0]
    second = dict(first, index=1, luid="0x0000000000011b00")
    probes["dxgi_adapters"]["adapters"] = [first, second]
    probes["ep_devices"] = {"available": False, "reason": "not recorded"}
    nvml_device = probes["nvml"]["devices"][0]
    probes["nvml"]["devices"] = [nvml_device, dict(nvml_device, index=1, pci_bus_id="00000000:02:00.0")]
    report = probe_hardware(RecordedProbes(data))
    pairs = [(gpu.index, gpu.nvml_index, gpu.compute_capability) for gpu in report.gpus]
    assert pairs == [(0, 0, "8.9"), (1, 1, "8.9")]


# --------------------------------------------------------------------------------------------------------------------
# Provider reasons


def test_reasons_name_what_is_missing() -> None:
    rtx4090 = report_of("windows11_rtx4090_directml.json")
    assert rtx4090.provider("cuda").reason == "the onnxruntime-gpu package is not installed"
    assert "onnxruntime-trt-rtx" in rtx4090.provider("trt-rtx").reason

    gtx1080 = report_of("windows10_gtx1080_cuda.json")
    assert gtx1080.provider("dml").reason == "the onnxruntime-directml package is not installed"
    trt = gtx1080.provider("trt-rtx")
    assert "too old for TensorRT-RTX" in trt.reason and "Turing (compute capability 7.5)" in trt.reason
    assert "6.1" in trt.reason

    rtx2080 = report_of("windows11_rtx2080super_trt_rtx.json").provider("trt-rtx")
    assert rtx2080.int4 is False
    assert "need Ampere (compute capability 8.6) or newer" in rtx2080.int4_reason


def test_nvml_on_a_real_nvidia_machine() -> None:
    report = report_of("linux_h200_nvml.json")
    (gpu,) = report.gpus
    assert gpu.sources == ["nvml"]
    assert (gpu.vendor_id, gpu.device_id, gpu.nvml_index) == (0x10DE, 0x2335, 0)
    assert gpu.driver_version == "580.159.04"
    assert report.provider("cuda").reason == "the onnxruntime-gpu package is not installed"
    trt = report.provider("trt-rtx")
    assert trt.reason == (
        "the NVIDIA H200 (compute capability 9.0) is not an RTX GPU; "
        "TensorRT-RTX supports compute capability 7.5, 8.6, 8.9 and 12.x"
    )
    assert trt.int4_reason == trt.reason


def test_old_driver_blocks_cuda_with_the_versions_in_words() -> None:
    data = recording("windows10_gtx1080_cuda.json")
    data["probes"]["nvml"].update(driver_version="512.95", cuda_driver_version="11.6")
    cuda = probe_hardware(RecordedProbes(data)).provider("cuda")
    assert not cuda.usable
    assert cuda.reason == (
        "NVIDIA driver 512.95 supports CUDA up to 11.6, older than the CUDA 12 this needs; install driver 525 or newer"
    )

    data["probes"]["nvml"].update(driver_version="516.94", cuda_driver_version=None)
    cuda = probe_hardware(RecordedProbes(data)).provider("cuda")
    assert cuda.reason == "NVIDIA driver 516.94 is older than the 525 that CUDA 12.x needs"


def test_nvidia_gpu_without_a_working_driver() -> None:
    data = recording("windows11_rtx4090_directml.json")
    data["probes"]["nvml"] = {"available": False, "reason": "the NVIDIA driver is not loaded"}
    report = probe_hardware(RecordedProbes(data))
    (gpu,) = report.gpus
    assert gpu.compute_capability is None and gpu.discrete is True
    assert report.provider("cuda").reason.endswith(
        "the NVIDIA driver could not be queried: the NVIDIA driver is not loaded"
    )
    assert report.provider("trt-rtx").int4 is None
    assert report.provider("dml").usable


@pytest.mark.parametrize("name", ["NvTensorRtRtx", "NvTensorRTRTXExecutionProvider", "NvTensorRtRtxExecutionProvider"])
def test_trt_rtx_name_variants(name: str) -> None:
    data = recording("windows11_rtx2080super_trt_rtx.json")
    data["probes"]["providers"]["onnxruntime"] = [name, "CPUExecutionProvider"]
    data["probes"]["ep_devices"] = {"available": False, "reason": "not recorded"}
    assert probe_hardware(RecordedProbes(data)).provider("trt-rtx").usable


def test_trt_rtx_plugin_ep_seen_only_in_ep_devices_counts() -> None:
    data = recording("windows11_rtx2080super_trt_rtx.json")
    data["probes"]["providers"]["onnxruntime"] = ["CPUExecutionProvider"]
    assert probe_hardware(RecordedProbes(data)).provider("trt-rtx").usable


def test_dml_needs_genai_built_with_directml() -> None:
    data = recording("windows11_rtx4090_directml.json")
    data["probes"]["providers"]["genai"]["dml"] = False
    dml = probe_hardware(RecordedProbes(data)).provider("dml")
    assert not dml.usable and "onnxruntime-genai-directml" in dml.reason


def test_windows_version_comes_from_the_build_number() -> None:
    assert report_of("windows11_rtx4090_directml.json").system.os == "Windows 11"
    assert report_of("windows10_gtx1080_cuda.json").system.os == "Windows 10"


# --------------------------------------------------------------------------------------------------------------------
# Failing probes


class BrokenProbes(RecordedProbes):
    def nvml(self) -> dict[str, Any]:
        raise RuntimeError("NVML blew up")

    def dxgi_adapters(self) -> dict[str, Any]:
        return None  # type: ignore[return-value]


class AllBroken:
    def __getattr__(self, name: str) -> Any:
        def fail() -> dict[str, Any]:
            raise OSError(f"{name} is broken")

        return fail


def test_a_raising_probe_does_not_break_the_report() -> None:
    report = probe_hardware(BrokenProbes(DATA / "windows11_rtx4090_directml.json"))
    assert report.probe_notes["nvml"] == "the nvml probe failed: RuntimeError: NVML blew up"
    assert "not a dict" in report.probe_notes["dxgi_adapters"]
    (gpu,) = report.gpus  # still seen through onnxruntime's ep devices
    assert gpu.sources == ["onnxruntime"]
    assert usable(report) == {"cpu": True, "dml": True, "cuda": False, "trt-rtx": False, "webgpu": False}
    assert "could not be queried" in report.provider("cuda").reason


def test_every_probe_raising_still_gives_a_report() -> None:
    report = probe_hardware(AllBroken())  # type: ignore[arg-type]
    assert set(report.probe_notes) == set(hardware_probes.PROBE_NAMES)
    assert report.system.os == "unknown"
    assert usable(report) == {"cpu": True, "dml": False, "cuda": False, "trt-rtx": False, "webgpu": False}
    assert json.loads(json.dumps(report.to_dict())) == report.to_dict()
    assert format_report(report)


# --------------------------------------------------------------------------------------------------------------------
# JSON


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda path: path.name)
def test_to_dict_round_trips_through_json(path: Path) -> None:
    report = probe_hardware(RecordedProbes(path))
    data = json.loads(json.dumps(report.to_dict()))
    assert data == report.to_dict()
    assert HardwareReport.from_dict(data) == report
    assert {"gpus", "providers", "system", "default_dml_device"} <= set(data)


def test_record_probes_replays_to_the_same_report(tmp_path: Path) -> None:
    source = RecordedProbes(DATA / "windows11_hybrid_laptop_rtx3060.json")
    written = record_probes(tmp_path / "machine.json", source)
    assert written["format"] == hardware_probes.RECORD_FORMAT
    assert probe_hardware(RecordedProbes(tmp_path / "machine.json")) == probe_hardware(source)


def test_recorded_probes_accept_a_dict_and_miss_softly() -> None:
    report = probe_hardware(RecordedProbes({"probes": {}}))
    assert set(report.probe_notes) == set(hardware_probes.PROBE_NAMES)
    assert "has no nvml answer" in report.probe_notes["nvml"]


def test_format_report_lists_gpus_and_providers() -> None:
    text = format_report(report_of("windows11_hybrid_laptop_rtx3060.json"))
    assert "[1] NVIDIA GeForce RTX 3060 Laptop GPU (discrete, 5.9 GB, compute capability 8.6" in text
    assert "DirectML adapter to use: 1" in text
    assert "cuda     not usable  the onnxruntime-gpu package is not installed" in text


# --------------------------------------------------------------------------------------------------------------------
# DXGI's COM calls, against a fake IDXGIFactory1 built in ctypes (dxgi.dll exists only on Windows)


pointer_size_is_64_bits = ctypes.sizeof(ctypes.c_void_p) == 8
FN = ctypes.CFUNCTYPE


class FakeComObject:
    """A COM object as DXGI lays it out: a pointer to a table of function pointers."""

    def __init__(self, slots: int, methods: dict[int, Any]) -> None:
        self.methods = methods  # keeps the callbacks alive
        table = [
            ctypes.cast(methods[slot], ctypes.c_void_p).value if slot in methods else None for slot in range(slots)
        ]
        self.vtable = (ctypes.c_void_p * slots)(*table)
        self.vtable_pointer = ctypes.c_void_p(ctypes.addressof(self.vtable))
        self.pointer = ctypes.addressof(self.vtable_pointer)


def fake_adapter(
    description: str, vendor_id: int, device_id: int, dedicated: int, luid_low: int, flags: int, released: list[str]
) -> FakeComObject:
    def get_desc1(this: int, desc_pointer: Any) -> int:
        desc = ctypes.cast(desc_pointer, ctypes.POINTER(dxgi._AdapterDesc1)).contents
        encoded = description.encode("utf-16-le")
        ctypes.memmove(ctypes.addressof(desc.Description), encoded, len(encoded))
        desc.VendorId, desc.DeviceId, desc.DedicatedVideoMemory = vendor_id, device_id, dedicated
        desc.SharedSystemMemory = 8 * 1024**3
        desc.AdapterLuid.LowPart, desc.AdapterLuid.HighPart = luid_low, 0
        desc.Flags = flags
        return 0

    def release(this: int) -> int:
        released.append(description)
        return 0

    return FakeComObject(
        11,
        {
            2: FN(ctypes.c_ulong, ctypes.c_void_p)(release),
            10: FN(ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p)(get_desc1),
        },
    )


@pytest.mark.skipif(not pointer_size_is_64_bits, reason="DXGI_ADAPTER_DESC1's layout below is the 64-bit one")
def test_adapter_desc1_has_the_windows_x64_layout() -> None:
    desc = dxgi._AdapterDesc1
    assert ctypes.sizeof(desc) == 312
    offsets = {name: getattr(desc, name).offset for name, _ in desc._fields_}
    assert offsets == {
        "Description": 0,
        "VendorId": 256,
        "DeviceId": 260,
        "SubSysId": 264,
        "Revision": 268,
        "DedicatedVideoMemory": 272,
        "DedicatedSystemMemory": 280,
        "SharedSystemMemory": 288,
        "AdapterLuid": 296,
        "Flags": 304,
    }


@pytest.mark.skipif(not pointer_size_is_64_bits, reason="the fake vtable assumes the x64 calling convention")
def test_enumerate_dxgi_adapters_walks_the_vtable() -> None:
    released: list[str] = []
    adapters = [
        fake_adapter("Intel(R) Iris(R) Xe Graphics", 0x8086, 0x46A6, 128 * 1024**2, 0xF3B2, 0, released),
        fake_adapter("NVIDIA GeForce RTX 3060 Laptop GPU", 0x10DE, 0x2520, 6 * 1024**3, 0x10D4E, 0, released),
        fake_adapter("Microsoft Basic Render Driver", 0x1414, 0x8C, 0, 0x11C20, 2, released),
    ]

    def enum_adapters1(this: int, index: int, out: Any) -> int:
        if index >= len(adapters):
            return ctypes.c_long(0x887A0002 - 2**32).value  # DXGI_ERROR_NOT_FOUND
        out[0] = adapters[index].pointer
        return 0

    factory = FakeComObject(
        14, {12: FN(ctypes.c_long, ctypes.c_void_p, ctypes.c_uint, ctypes.POINTER(ctypes.c_void_p))(enum_adapters1)}
    )
    answer = enumerate_dxgi_adapters(ctypes.c_void_p(factory.pointer))

    assert [adapter["description"] for adapter in answer] == [
        "Intel(R) Iris(R) Xe Graphics",
        "NVIDIA GeForce RTX 3060 Laptop GPU",
        "Microsoft Basic Render Driver",
    ]
    assert answer[1] == {
        "index": 1,
        "description": "NVIDIA GeForce RTX 3060 Laptop GPU",
        "vendor_id": 0x10DE,
        "device_id": 0x2520,
        "subsys_id": 0,
        "revision": 0,
        "dedicated_video_memory": 6 * 1024**3,
        "dedicated_system_memory": 0,
        "shared_system_memory": 8 * 1024**3,
        "luid": "0x0000000000010d4e",
        "flags": 0,
    }
    assert released == [adapter["description"] for adapter in answer]  # each adapter released once

    gpus = hardware.fold_gpus({"dxgi_adapters": {"available": True, "adapters": answer}})
    assert [gpu.name for gpu in gpus] == ["Intel(R) Iris(R) Xe Graphics", "NVIDIA GeForce RTX 3060 Laptop GPU"]
    assert hardware.default_dml_device(gpus) == 1


def test_live_dxgi_probe_says_why_not_off_windows() -> None:
    if sys.platform == "win32":
        pytest.skip("runs DXGI for real on Windows")
    assert LiveProbes().dxgi_adapters() == {"available": False, "reason": "DXGI exists only on Windows"}


def test_recordings_are_independent_copies() -> None:
    probes = RecordedProbes(DATA / "windows11_rtx4090_directml.json")
    first = probes.nvml()
    first["devices"].clear()
    assert probes.nvml()["devices"]
