"""Expected sizes, fit verdicts and recommendations against recorded machines, the demo checkpoint and an 8B model."""

from __future__ import annotations

import dataclasses

import pytest

from app.checkpoints import inspect_checkpoint
from app.convert import GIB, disk_needed, estimate_needs
from app.fit import expected_size, fit_verdict, gpu_for, is_modern_nvidia, kv_cache_bytes, recommended
from app.hardware import Gpu, HardwareReport, probe_hardware
from app.hardware_probes import RecordedProbes
from app.paths import demo_checkpoint
from app.presets import resolve
from tests.conftest import ROOT

PLENTY_OF_DISK = 500 * GIB


def machine(name: str) -> HardwareReport:
    return probe_hardware(RecordedProbes(ROOT / "tests" / "data" / "hardware" / f"{name}.json"))


@pytest.fixture(scope="module")
def demo():
    return inspect_checkpoint(demo_checkpoint())


@pytest.fixture(scope="module")
def llama_8b(demo):
    """Llama-3-8B's shape: 8.03 B parameters in BF16, 128k vocabulary, 8 KV heads of 128."""
    return dataclasses.replace(
        demo,
        path="/models/Llama-3-8B",
        parameters=8_030_261_248,
        dtype="bfloat16",
        weight_bytes=16_060_522_496,
        num_layers=32,
        hidden_size=4096,
        vocab_size=128_256,
        context_length=8192,
        kv_hidden_size=1024,
    )


# --- size --------------------------------------------------------------------------------------


def test_expected_size_is_the_planners_estimate(demo, llama_8b):
    for info in (demo, llama_8b):
        for preset, ep in (("fp32", "cpu"), ("fp16", "dml"), ("int4", "cpu"), ("uint4", "cuda"), ("bf16", "trt-rtx")):
            size, _ = expected_size(info, preset, ep)
            assert size == estimate_needs(info, resolve(preset, ep))[0]


def test_expected_size_as_a_share_of_fp32(demo, llama_8b):
    assert expected_size(demo, "fp32", "cpu") == (demo.parameters * 4, 100.0)
    assert expected_size(demo, "fp16", "dml")[1] == 50.0
    size, percent = expected_size(llama_8b, "int4", "dml")
    assert 15 < percent < 30
    assert 5 * GIB < size < 6 * GIB


def test_expected_size_without_a_checkpoint_is_the_preset_tables_figure():
    assert expected_size(None, "int4", "cpu") == (0, 25.0)
    assert expected_size(None, "int4-int8", "cpu") == (0, 27.5)


def test_expected_size_of_a_pair_the_builder_refuses_is_still_told(demo):
    assert expected_size(demo, "fp16", "cpu")[1] == 50.0


def test_custom_overrides_change_the_size(demo):
    assert expected_size(demo, "custom", "cpu", {"precision": "fp32"})[1] == 100.0
    assert expected_size(demo, "custom", "cpu", {"precision": "int4"})[1] < 30


def test_kv_cache_uses_the_key_value_heads(demo, llama_8b):
    assert demo.kv_hidden_size == 2 * 32  # demo config: 2 KV heads of 32
    # Llama-3-8B over 4,096 tokens in FP16: 32 layers x (K + V) x 1024 x 4096 x 2 bytes = 0.5 GiB
    assert kv_cache_bytes(llama_8b, resolve("fp16", "dml")) == GIB // 2
    without_gqa = dataclasses.replace(llama_8b, kv_hidden_size=0)
    assert kv_cache_bytes(without_gqa, resolve("fp16", "dml")) == 2 * GIB


# --- verdicts ----------------------------------------------------------------------------------


def test_the_demo_fits_everywhere_it_can_run(demo):
    for name, ep in (
        ("windows11_rtx4090_directml", "dml"),
        ("linux_no_gpu", "cpu"),
        ("windows10_gtx1080_cuda", "cuda"),
    ):
        fit = fit_verdict(demo, "int4", ep, machine(name), PLENTY_OF_DISK)
        assert fit.level == "fits", fit.reason


def test_fits_reason_names_model_gpu_and_what_is_spare(demo):
    fit = fit_verdict(demo, "fp16", "dml", machine("windows11_rtx4090_directml"), PLENTY_OF_DISK)
    assert fit.reason == "2 MB model on a 23.6 GB RTX 4090: fits with 23.6 GB to spare."


def test_8b_on_a_6gb_laptop_gpu(llama_8b):
    laptop = machine("windows11_hybrid_laptop_rtx3060")
    fp16 = fit_verdict(llama_8b, "fp16", "dml", laptop, PLENTY_OF_DISK)
    assert fp16.level == "won't fit"
    assert fp16.reason.startswith("15.0 GB model on a 5.9 GB RTX 3060 Laptop GPU: won't fit")
    assert "INT4 preset" in fp16.reason
    int4 = fit_verdict(llama_8b, "int4", "dml", laptop, PLENTY_OF_DISK)
    assert int4.level == "tight"
    assert "5.3 GB model on a 5.9 GB RTX 3060 Laptop GPU: tight, 0.5 GB to spare" in int4.reason
    assert "4,096-token" in int4.reason


def test_8b_on_bigger_gpus(llama_8b):
    assert fit_verdict(llama_8b, "int4", "trt-rtx", machine("windows11_rtx2080super_trt_rtx"), None).level == "fits"
    assert fit_verdict(llama_8b, "fp16", "dml", machine("windows11_rtx4090_directml"), None).level == "fits"
    assert fit_verdict(llama_8b, "fp16", "cuda", machine("windows10_gtx1080_cuda"), None).level == "won't fit"


def test_cpu_builds_are_judged_against_ram(llama_8b):
    no_gpu = machine("linux_no_gpu")  # 23.5 GB of RAM
    fp32 = fit_verdict(llama_8b, "fp32", "cpu", no_gpu, PLENTY_OF_DISK)
    assert fp32.level == "won't fit"
    assert fp32.reason.startswith("29.9 GB model in 23.5 GB of RAM: won't fit")
    assert fit_verdict(llama_8b, "int4", "cpu", no_gpu, PLENTY_OF_DISK).level == "fits"
    assert fit_verdict(llama_8b, "fp32", "cpu", machine("windows10_gtx1080_cuda"), None).level == "tight"


def test_an_int4_model_too_big_for_the_gpu_points_at_the_cpu(llama_8b):
    big = dataclasses.replace(llama_8b, parameters=5 * llama_8b.parameters)  # ~25 GB in INT4; the PC has 63.7 GB RAM
    fit = fit_verdict(big, "int4", "dml", machine("windows11_rtx4090_directml"), None)
    assert fit.level == "won't fit"
    assert "build it for the CPU" in fit.reason


def test_no_gpu_for_a_gpu_provider(demo):
    fit = fit_verdict(demo, "fp16", "dml", machine("linux_no_gpu"), PLENTY_OF_DISK)
    assert fit.level == "won't fit"
    assert "no GPU DirectML can use" in fit.reason


def test_directml_needs_a_dxgi_adapter(demo):
    h200 = machine("linux_h200_nvml")  # NVML sees the H200; there is no DXGI on Linux
    assert gpu_for(h200, "dml") is None
    assert gpu_for(h200, "cuda").name == "NVIDIA H200"


def test_the_picked_gpu_is_the_one_judged(llama_8b):
    laptop = machine("windows11_hybrid_laptop_rtx3060")
    assert gpu_for(laptop, "dml").index == 1  # the discrete RTX 3060 by default
    integrated = fit_verdict(llama_8b, "int4", "dml", laptop, None, gpu_index=0)
    assert "shared with the Intel(R) Iris(R) Xe Graphics" in integrated.reason
    # CUDA cannot run on the Intel GPU, so picking it leaves CUDA on the NVIDIA one.
    assert gpu_for(laptop, "cuda", gpu_index=0).index == 1


def test_disk_space_is_part_of_the_verdict(llama_8b):
    report = machine("windows11_rtx4090_directml")
    size, _ = expected_size(llama_8b, "int4", "dml")
    full = fit_verdict(llama_8b, "int4", "dml", report, 1 * GIB)
    assert full.level == "won't fit"
    assert "output drive has 1.0 GB free" in full.reason
    nearly = fit_verdict(llama_8b, "int4", "dml", report, disk_needed(size) + GIB)
    assert nearly.level == "tight"
    assert "leaving 1.0 GB" in nearly.reason


def test_unknown_size_or_memory_is_tight(demo):
    report = machine("linux_no_gpu")
    assert fit_verdict(None, "int4", "cpu", report, None).level == "tight"
    report.system.ram_bytes = None
    fit = fit_verdict(demo, "int4", "cpu", report, None)
    assert fit.level == "tight"
    assert "does not say how much memory" in fit.reason


# --- recommendation ----------------------------------------------------------------------------


def test_recommendation_follows_family_and_gpu(demo):
    assert recommended(demo, machine("windows11_rtx4090_directml")) == (
        "fp16",
        "FP16 - Half Precision (GPU) is the recommended preset for llama models.",
    )
    preset, reason = recommended(demo, machine("linux_no_gpu"))
    assert preset == "int4"  # the CPU: INT4, the smallest and fastest build, FP32 as the alternative
    assert "no GPU this PC can run models on" in reason


def test_a_gpu_no_provider_can_use_is_the_cpu_case(demo):
    report = machine("windows11_rtx4090_directml")
    cpu_only = dataclasses.replace(report, providers=[p for p in report.providers if p.name == "cpu"])
    assert cpu_only.usable_providers() == {"cpu"}
    assert recommended(demo, cpu_only) == recommended(demo, machine("linux_no_gpu"))


def test_bf16_families_need_a_provider_that_runs_bf16(demo):
    gemma = dataclasses.replace(demo, family="gemma2")
    preset, reason = recommended(gemma, machine("windows11_rtx4090_directml"))  # DirectML only: no BF16 builds
    assert preset == "int4-bf16"
    assert "run only on CUDA or TensorRT-RTX, which this PC cannot use" in reason
    preset, reason = recommended(gemma, machine("windows11_rtx2080super_trt_rtx"))  # Turing: not modern
    assert preset == "int4-bf16"
    assert "RTX 30xx" in reason


def test_recommendation_moves_to_int4_when_the_model_would_not_fit(llama_8b):
    preset, reason = recommended(llama_8b, machine("windows11_hybrid_laptop_rtx3060"))
    assert preset == "int4-fp16"
    assert "would not fit" in reason


def test_recommendation_without_a_checkpoint_uses_the_hardware_table():
    assert recommended(None, machine("linux_no_gpu")) == (
        "int4",
        recommended(None, machine("linux_no_gpu"))[1],
    )
    assert "INT4 - 4-bit Quantized is the choice for the CPU" in recommended(None, machine("linux_no_gpu"))[1]


def test_modern_gpus():
    def gpu(name: str, capability: str | None) -> Gpu:
        return Gpu(index=0, name=name, vendor="NVIDIA", vendor_id=0x10DE, compute_capability=capability)

    assert is_modern_nvidia(gpu("NVIDIA GeForce RTX 3060 Laptop GPU", "8.6"))
    assert is_modern_nvidia(gpu("NVIDIA A100", "8.0"))
    assert not is_modern_nvidia(gpu("NVIDIA GeForce RTX 2080 SUPER", "7.5"))
    assert is_modern_nvidia(gpu("NVIDIA GeForce RTX 5090", None))
    assert not is_modern_nvidia(gpu("NVIDIA GeForce RTX 2060", None))
    assert not is_modern_nvidia(Gpu(index=0, name="Intel(R) Arc(TM) A770", vendor="Intel", vendor_id=0x8086))
