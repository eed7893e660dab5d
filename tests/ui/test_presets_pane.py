"""The Convert pane: preset cards, provider, fit badges, output folders, the Custom dialog and Convert."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QLineEdit

from app.checkpoints import inspect_checkpoint
from app.convert import ConvertRequest
from app.hardware import probe_hardware
from app.hardware_probes import RecordedProbes
from app.paths import demo_checkpoint, models_dir
from app.presets import PRESETS, builder_key, settable_options
from tests.conftest import ROOT
from ui.presets import PresetPane
from ui.widgets.options_form import OptionsForm

# Option names as the installed builder spells them (0.18: generic names; up to 0.15: int4_*).
BLOCK = builder_key("int4_block_size")
SYMMETRIC = builder_key("int4_is_symmetric")
ALGO = builder_key("int4_algo_config")
EXCLUDE = builder_key("int4_nodes_to_exclude")

# The offscreen platform plugin says this whenever a shown dialog's layout sets its minimum size.
pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")


def machine(name: str):
    return probe_hardware(RecordedProbes(ROOT / "tests" / "data" / "hardware" / f"{name}.json"))


@pytest.fixture(scope="module")
def demo():
    return inspect_checkpoint(demo_checkpoint())


@pytest.fixture
def pane(qtbot):
    widget = PresetPane()
    qtbot.addWidget(widget)
    return widget


def pane_for(pane: PresetPane, info, recording: str) -> PresetPane:
    pane.set_checkpoint(info, "demo")
    pane.set_hardware(machine(recording))
    return pane


def convert(qtbot, pane: PresetPane) -> list[ConvertRequest]:
    with qtbot.waitSignal(pane.convert_requested, timeout=1000) as signal:
        qtbot.mouseClick(pane.convert_button, Qt.MouseButton.LeftButton)
    return signal.args[0]


def test_nine_cards_before_anything_is_known(pane):
    assert list(pane.cards) == list(PRESETS)
    assert "waits for the hardware report" in pane.recommendation_label.text()
    assert all(card.badge.isHidden() for card in pane.cards.values() if card.available)  # no fit without a report
    assert not pane.convert_button.isEnabled()


def test_rtx4090_recommends_fp16_for_llama_and_builds_for_directml(pane, demo):
    pane_for(pane, demo, "windows11_rtx4090_directml")
    assert pane.recommended_id == "fp16"
    card = pane.cards["fp16"]
    assert not card.recommended_label.isHidden()
    assert "recommended preset for llama models" in card.recommended_label.text()
    assert "recommended preset for llama models" in pane.recommendation_label.text()
    assert all(other.recommended_label.isHidden() for key, other in pane.cards.items() if key != "fp16")
    assert pane.selected_ep() == "dml"
    assert card.badge.text() == "fits"
    assert card.badge.toolTip().startswith("2 MB model on a 23.6 GB RTX 4090: fits")
    assert "50 % of FP32 · 2 MB" in card.size_label.text()


def test_provider_combo_marks_what_runs_here(pane, demo):
    pane_for(pane, demo, "windows11_rtx4090_directml")
    texts = {pane.ep_combo.itemData(i): pane.ep_combo.itemText(i) for i in range(pane.ep_combo.count())}
    assert set(texts) == {"cpu", "dml", "cuda", "webgpu", "trt-rtx"}
    assert "✓" in texts["dml"] and "✓" in texts["cpu"]
    assert "✗" in texts["cuda"] and "✗" in texts["trt-rtx"]
    assert "✗" in texts["webgpu"]  # checked like the others: the Hardware tab lists it too
    cuda_row = pane.ep_combo.findData("cuda")
    assert "onnxruntime-gpu" in pane.ep_combo.itemData(cuda_row, Qt.ItemDataRole.ToolTipRole)


def test_fp16_is_disabled_on_the_cpu_with_the_alternatives(pane, demo):
    pane_for(pane, demo, "linux_no_gpu")  # this machine's recording
    assert pane.selected_ep() == "cpu"
    assert pane.recommended_id == "int4"
    assert "no GPU this PC can run models on" in pane.cards["int4"].recommended_label.text()
    fp16 = pane.cards["fp16"]
    assert not fp16.available and not fp16.checkbox.isEnabled()
    assert fp16.toolTip().startswith(
        "the builder cannot make FP16 models for CPU: for FP16 pick --ep cuda or dml or trt-rtx, "
        "or on CPU pick precision fp32 or int4"  # "or int8" too where the installed builder makes it
    )
    assert fp16.badge.text() == "not for this provider"
    assert pane.cards["fp32"].available and pane.cards["int4"].available
    assert not pane.cards["bf16"].available


def test_changing_the_provider_reevaluates_the_cards(pane, demo):
    pane_for(pane, demo, "windows11_rtx4090_directml")
    pane.cards["fp32"].checkbox.setChecked(True)  # disabled on DirectML: ticking it does nothing
    assert pane.ticked() == []
    pane.set_ep("cuda")
    assert pane.cards["bf16"].available
    assert not pane.cards["fp32"].available
    assert "KV-cache outputs" in pane.cards["fp32"].toolTip()  # the builder defect, in the engine's words
    pane.set_ep("cpu")
    pane.cards["fp32"].checkbox.setChecked(True)
    pane.set_ep("dml")
    assert pane.ticked() == []  # a ticked card that becomes invalid is unticked


def test_ticking_int4_and_uint4_emits_two_requests(qtbot, pane, demo):
    pane_for(pane, demo, "linux_no_gpu")
    pane.cards["int4"].checkbox.setChecked(True)
    pane.cards["uint4"].checkbox.setChecked(True)
    assert "Parent folder" in pane.output_label.text()
    assert Path(pane.output_edit.text()) == models_dir()
    assert pane.convert_button.text() == "Convert (2)"
    requests = convert(qtbot, pane)
    assert [request.preset for request in requests] == ["int4", "uint4"]
    assert {request.ep for request in requests} == {"cpu"}
    assert {request.source for request in requests} == {demo.path}
    assert [Path(request.output) for request in requests] == [models_dir() / "demo-int4", models_dir() / "demo-uint4"]
    assert all(request.overrides == {} for request in requests)


def test_one_ticked_preset_gets_its_own_default_folder(qtbot, pane, demo):
    pane_for(pane, demo, "windows11_rtx4090_directml")
    pane.cards["fp16"].checkbox.setChecked(True)
    assert Path(pane.output_edit.text()) == models_dir() / "demo-fp16"
    (request,) = convert(qtbot, pane)
    assert (request.preset, request.ep, Path(request.output)) == ("fp16", "dml", models_dir() / "demo-fp16")


def test_a_folder_the_user_typed_is_kept(qtbot, pane, demo, tmp_path):
    pane_for(pane, demo, "linux_no_gpu")
    pane.cards["int4"].checkbox.setChecked(True)
    pane.output_edit.clear()
    qtbot.keyClicks(pane.output_edit, str(tmp_path / "mine"))
    pane.cards["fp32"].checkbox.setChecked(True)
    assert pane.output_edit.text() == str(tmp_path / "mine")
    outputs = [Path(request.output) for request in convert(qtbot, pane)]
    assert outputs == [tmp_path / "mine" / "demo-fp32", tmp_path / "mine" / "demo-int4"]


def test_fit_badges_for_an_8b_model_on_a_6gb_laptop(pane, demo):
    llama_8b = dataclasses.replace(
        demo, parameters=8_030_261_248, weight_bytes=16_060_522_496, num_layers=32, hidden_size=4096,
        vocab_size=128_256, context_length=8192, kv_hidden_size=1024,
    )  # fmt: skip
    pane.set_checkpoint(llama_8b, "Llama-3-8B")
    pane.set_hardware(machine("windows11_hybrid_laptop_rtx3060"))
    assert pane.selected_ep() == "dml"
    assert pane.recommended_id == "int4-fp16"
    assert pane.cards["fp16"].badge.text() == "won't fit"
    assert "RTX 3060 Laptop GPU: won't fit" in pane.cards["fp16"].badge.toolTip()
    assert pane.cards["int4"].badge.text() == "tight"
    assert pane.cards["int4"].size_label.text().endswith("% of FP32 · 5.3 GB")
    pane.set_gpu(0)  # the Intel iGPU, working in shared memory
    assert "shared with the Intel" in pane.cards["int4"].badge.toolTip()


def test_a_hub_id_without_a_local_copy_can_still_be_converted(qtbot, pane):
    pane.set_checkpoint(None, "Qwen/Qwen3-0.6B")
    pane.set_hardware(machine("windows11_rtx4090_directml"))
    pane.cards["int4"].checkbox.setChecked(True)
    assert "~25 % of FP32" in pane.cards["int4"].size_label.text()
    (request,) = convert(qtbot, pane)
    assert request.source == "Qwen/Qwen3-0.6B"
    assert Path(request.output) == models_dir() / "Qwen3-0.6B-int4"


def test_custom_dialog_validates_and_its_options_reach_the_request(qtbot, pane, demo):
    pane_for(pane, demo, "linux_no_gpu")
    qtbot.mouseClick(pane.cards["custom"].custom_button, Qt.MouseButton.LeftButton)
    dialog = pane.custom_dialog
    form = dialog.form
    assert form.values() == {"precision": "int4"}  # a fresh form starts from a precision the CPU can take
    assert dialog.ok_button.isEnabled()
    form.field("precision").setCurrentIndex(form.field("precision").findData("fp32"))
    block = form.field(BLOCK)
    block.setCurrentIndex(block.findData("64"))
    assert form.error_label.text().startswith(f"{BLOCK} only apply to int4")
    assert not dialog.ok_button.isEnabled()
    form.field("precision").setCurrentIndex(form.field("precision").findData("int4"))
    assert dialog.ok_button.isEnabled()
    assert "--extra_options" in form.command_label.text() and f"{BLOCK}=64" in form.command_label.text()
    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    assert pane.custom_dialog is None
    assert pane.custom_overrides == {"precision": "int4", BLOCK: "64"}
    assert pane.cards["custom"].is_ticked()
    assert pane.cards["custom"].precision_label.text() == "Precision: INT4"
    (request,) = convert(qtbot, pane)
    assert (request.preset, request.overrides) == ("custom", {"precision": "int4", BLOCK: "64"})
    assert Path(request.output) == models_dir() / "demo-custom"


def test_cancelling_the_custom_dialog_keeps_the_overrides(qtbot, pane, demo):
    pane_for(pane, demo, "windows11_rtx4090_directml")
    pane.open_custom_dialog()
    pane.custom_dialog.form.field("exclude_embeds").setChecked(True)
    pane.custom_dialog.reject()
    assert pane.custom_dialog is None
    assert pane.custom_overrides == {}


def test_options_form_is_generated_from_the_builder(qtbot):
    form = OptionsForm("dml")
    qtbot.addWidget(form)
    assert list(form._fields) == settable_options()
    assert isinstance(form.field(SYMMETRIC), QCheckBox)
    assert form.field(SYMMETRIC).isChecked()  # the builder's help says "Default is true."
    assert isinstance(form.field(ALGO), QComboBox)
    assert form.field(ALGO).findData("k_quant_mixed") >= 0
    assert isinstance(form.field(EXCLUDE), QLineEdit)
    assert "block size" in form.field(BLOCK).toolTip()
    assert form.values() == {}
    assert form.is_valid()


def test_options_form_shows_conflicts_and_takes_values(qtbot):
    form = OptionsForm("cuda", {"precision": "int4", EXCLUDE: "/lm_head/MatMul"})
    qtbot.addWidget(form)
    with qtbot.waitSignal(form.validity_changed) as signal:
        form.field("exclude_lm_head").setChecked(True)
    assert signal.args == [True]
    form.field("prune_lm_head").setChecked(True)
    assert not form.is_valid()
    assert form.error_label.text() == "exclude_lm_head and prune_lm_head cannot be used together; keep one of them."
    form.field("prune_lm_head").setChecked(False)
    form.field(SYMMETRIC).setChecked(False)
    assert form.values() == {
        "precision": "int4",
        SYMMETRIC: "false",
        EXCLUDE: "/lm_head/MatMul",
        "exclude_lm_head": "true",
    }
    form.set_ep("webgpu")
    assert form.is_valid()
    form.set_ep("trt-rtx")
    assert "cannot make INT4 models for TensorRT-RTX" in form.error_label.text()
