"""The Quantization tab: algorithms for the selected kind of model, options as widgets, a checked request."""

from __future__ import annotations

import pytest

from app.quantize import ALGORITHMS, options_for
from ui.quantize import QuantizePane


@pytest.fixture
def pane(qtbot):
    pane = QuantizePane()
    qtbot.addWidget(pane)
    return pane


def algorithms_listed(pane: QuantizePane) -> list[str]:
    return [pane.algo_combo.itemData(i) for i in range(pane.algo_combo.count())]


def test_the_algorithms_offered_follow_the_kind_of_model(pane, tmp_path):
    pane.set_model(str(tmp_path), "demo-fp32", "onnx")
    assert algorithms_listed(pane) == [a for a in ALGORITHMS if a != "quark-awq"]
    pane.set_model(str(tmp_path), "demo", "checkpoint")
    assert algorithms_listed(pane) == ["quark-awq"]


def test_every_option_of_an_algorithm_gets_an_editor_and_only_changes_become_overrides(pane, tmp_path):
    pane.set_model(str(tmp_path), "demo-fp32", "onnx")
    pane.set_algo("q4")
    names = [option.name for option in options_for("q4")]
    assert names and [pane.options_form.itemAt(i * 2).widget().text() for i in range(len(names))] == names
    assert pane.overrides() == {}
    assert pane.output_edit.text().endswith("demo-fp32-q4")
    pane._editors["block_size"].set_value("64")
    assert pane.overrides() == {"block_size": "64"}


def test_a_refused_request_says_why_and_emits_nothing(pane, qtbot, tmp_path):
    pane.set_model(str(tmp_path / "missing"), "missing", "onnx")
    pane.set_algo("q8")
    emitted = []
    pane.quantize_requested.connect(emitted.append)
    pane.request_quantize()
    assert emitted == [] and "does not exist" in pane.message.text()


def test_results_made_from_the_input_show_size_perplexity_and_verdict(pane, tmp_path):
    from app.library import LibraryEntry, _manifest_summary

    source = tmp_path / "demo-fp32"
    source.mkdir()
    pane.set_model(str(source), "demo-fp32", "onnx")
    record = {
        "kind": "quantization",
        "algorithm": "q4",
        "source": {"kind": "folder", "path": str(source.resolve())},
        "quality": {"size_ratio": 0.31, "input_perplexity": 1.4248, "perplexity": 1.4263, "verdict": "31% ..."},
    }
    info = {"provider": "cpu"} | _manifest_summary(record)
    mine = LibraryEntry("onnx", str(tmp_path / "q4"), "demo-q4", "converted", info)
    other = LibraryEntry("onnx", str(tmp_path / "x"), "other", "converted", {**mine.info, "source": {"path": "/else"}})
    pane.show_results([mine, other])
    assert pane.results.rowCount() == 1
    cells = [pane.results.item(0, column).text() for column in range(pane.results.columnCount())]
    assert cells == ["demo-q4", "q4", "31%", "1.425 → 1.426", "31% ..."]
