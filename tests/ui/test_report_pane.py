"""The Report tab on real builds of the demo (FP32 and INT4, measured once): the table of variants, one bar per
figure per variant, the recommended row marked, Measure queued through the Jobs pane, and no heavy import."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.convert import ConvertRequest, plan_conversion, run_conversion
from app.jobs.history import JobHistory
from app.report import MeasureSettings, measure
from tests.conftest import ROOT
from ui.report import STAR, ReportPane

QUICK = MeasureSettings(max_tokens=300, prompt_tokens=32, gen_tokens=8, repeats=1)


@pytest.fixture(scope="session")
def measured_builds(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("report-pane")
    builds = {}
    for preset in ("fp32", "int4"):
        request = ConvertRequest("demo", str(root / preset), preset=preset, ep="cpu", check=False)
        run_conversion(plan_conversion(request, usable_eps={"cpu"}), lambda message: None)
        measure(root / preset, QUICK)
        builds[preset] = root / preset
    return builds


@pytest.fixture
def pane(qtbot):
    pane = ReportPane()
    qtbot.addWidget(pane)
    pane.resize(1000, 700)
    pane.show()
    return pane


def unmeasured_copy(folder: Path, destination: Path) -> Path:
    copy = Path(shutil.copytree(folder, destination))
    record = json.loads((copy / "forge.json").read_text())
    record.pop("report")
    (copy / "forge.json").write_text(json.dumps(record))
    return copy


def test_the_table_lists_the_variants_and_the_source_with_the_pick_marked(pane, measured_builds):
    pane.set_model(str(measured_builds["fp32"]))
    names = [pane.table.item(row, 1).text() for row in range(pane.table.rowCount())]
    assert names == ["fp32", "int4", "demo"]
    picked = names.index(pane.recommended.name)
    assert pane.table.item(picked, 0).text() == STAR and pane.table.item(picked, 1).font().bold()
    others = [row for row in range(3) if row != picked]
    assert all(pane.table.item(row, 0).text() == "" and not pane.table.item(row, 1).font().bold() for row in others)
    assert f"Recommended: <b>{pane.recommended.name}</b>" in pane.recommendation.text()
    assert "within 2 % of the best" in pane.recommendation.text()
    assert pane.table.item(1, 4).text() == f"{pane.rows[1].perplexity:.4f}"
    assert pane.table.item(2, 5).text() == "–"  # the PyTorch source has no generation speed
    assert not pane.measure_button.isEnabled()


def test_each_chart_has_one_bar_per_variant_with_that_figure(pane, measured_builds):
    pane.set_model(str(measured_builds["int4"]))
    counts = {key: chart.bar_count() for key, chart in pane.charts.items()}
    assert counts == {"size": 3, "perplexity": 3, "generation": 2, "ttft": 2}
    sizes = list(pane.charts["size"].bars.opts["height"])
    assert sizes == pytest.approx([row.size_bytes / 1e6 for row in pane.rows])
    assert pane.charts["generation"].labels == ["int4", "fp32"]


def test_perplexity_is_drawn_as_its_change_against_the_source_and_sizes_read_as_the_library_says(pane, measured_builds):
    from app.hub import format_size

    pane.set_model(str(measured_builds["fp32"]))
    source = next(row for row in pane.rows if row.kind == "checkpoint")
    chart = pane.charts["perplexity"]
    assert f"against {source.name}" in chart.plot.plotItem.titleLabel.text
    expected = [(row.perplexity / source.perplexity - 1) * 100 for row in pane.rows]
    assert list(chart.bars.opts["height"]) == pytest.approx(expected)
    low, high = chart.plot.viewRange()[1]
    assert high - low < 50  # the axis spans the differences, not 0 to 1.4
    for index, row in enumerate(pane.rows):
        assert f"{pane.table.item(index, 3).text()} MB" == format_size(row.size_bytes)
    headers = {pane.table.horizontalHeaderItem(c).text(): pane.table.horizontalHeaderItem(c) for c in range(11)}
    assert "PyTorch source" in headers["Mean KL"].toolTip() and "most likely" in headers["Top-1 agree"].toolTip()


def test_speed_shows_the_spread_of_its_runs(pane, measured_builds, tmp_path):
    import pyqtgraph as pg

    copy = Path(shutil.copytree(measured_builds["int4"], tmp_path / "int4-runs"))
    record = json.loads((copy / "forge.json").read_text())
    record["report"]["speed"]["generation_tokens_per_second_runs"] = [900.0, 1000.0, 1100.0]
    record["report"]["speed"]["generation_tokens_per_second"] = 1000.0
    (copy / "forge.json").write_text(json.dumps(record))
    pane.set_model(str(copy))
    row = pane.rows.index(next(r for r in pane.rows if r.folder == str(copy.resolve())))
    assert pane.table.item(row, 5).text() == "1,000.0 (900–1,100)"
    errors = [item for item in pane.charts["generation"].plot.items() if isinstance(item, pg.ErrorBarItem)]
    assert len(errors) == 1 and list(errors[0].opts["top"]) == [100.0]


def test_nothing_measured_draws_no_axes(pane, measured_builds, tmp_path):
    pane.set_model("")
    assert not pane._charts_widget.isVisible() and "Select a model" in pane.title.text()
    pane.set_model(str(unmeasured_copy(measured_builds["int4"], tmp_path / "alone" / "int4")))
    assert pane.rows and not pane._charts_widget.isVisible()
    assert "press Measure" in pane.recommendation.text()


def test_a_checkpoint_shows_the_report_of_its_variants(pane, measured_builds):
    from app.library import Library

    Library().add_folder(measured_builds["fp32"].parent)
    pane.set_model(str(ROOT / "resources" / "demo"))
    assert {row.name for row in pane.rows} == {"fp32", "int4", "demo"}
    pane.set_model("")
    assert pane.table.rowCount() == 0 and pane.charts["size"].bar_count() == 0


def test_measure_queues_a_report_job_that_fills_the_view(pane, qtbot, measured_builds, tmp_path, forge_home):
    from ui.jobs import JobsPane

    copy = unmeasured_copy(measured_builds["int4"], tmp_path / "int4-copy")
    pane.set_model(str(copy))
    assert pane.measure_button.isEnabled() and pane.measure_button.text() == "Measure (1)"
    assert pane.charts["generation"].bar_count() == 0
    with qtbot.waitSignal(pane.measure_requested) as requested:
        pane.measure_button.click()
    assert requested.args == [[str(copy)]]
    jobs = JobsPane(JobHistory(forge_home / "jobs.json"))
    qtbot.addWidget(jobs)
    with qtbot.waitSignal(jobs.job_finished, timeout=240_000) as finished:
        jobs.enqueue_report(requested.args[0], QUICK)
    assert finished.args[1] == "succeeded", jobs._history.records[-1].message
    pane.refresh()
    assert pane.rows[0].measured and pane.charts["generation"].bar_count() == 1
    assert not pane.measure_button.isEnabled()


def test_the_pane_imports_no_torch_or_onnxruntime_and_pyqtgraph_only_when_shown(measured_builds):
    code = (
        "import os, sys\n"
        "os.environ['QT_QPA_PLATFORM'] = 'offscreen'\n"
        "from PySide6.QtWidgets import QApplication\n"
        "app = QApplication([])\n"
        "import ui.main_window\n"
        "from ui.report import ReportPane\n"
        "pane = ReportPane(); pane.set_model(sys.argv[1])\n"
        "assert 'pyqtgraph' not in sys.modules and not pane.charts  # made on first show\n"
        "pane.show()\n"
        "assert pane.charts['generation'].bar_count() == 2\n"
        "print([m for m in ('torch', 'onnxruntime', 'onnxruntime_genai', 'transformers') if m in sys.modules])\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", code, str(measured_builds["fp32"])], capture_output=True, text=True, cwd=ROOT
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "[]"


def test_convert_and_quantize_panes_ask_for_a_report_when_ticked(qtbot, measured_builds, tmp_path):
    from app.checkpoints import inspect_checkpoint
    from app.paths import demo_checkpoint
    from ui.presets import PresetPane
    from ui.quantize import QuantizePane

    presets = PresetPane()
    qtbot.addWidget(presets)
    presets.set_checkpoint(inspect_checkpoint(demo_checkpoint()), "demo")
    presets.cards["int4"].checkbox.setChecked(True)
    presets.output_edit.setText(str(tmp_path / "converted"))
    for ticked, expected in ((False, None), (True, {})):
        presets.report_box.setChecked(ticked)
        with qtbot.waitSignal(presets.convert_requested) as convert:
            presets.convert_button.click()
        assert [request.report for request in convert.args[0]] == [expected]
    quantize = QuantizePane()
    qtbot.addWidget(quantize)
    quantize.set_model(str(measured_builds["fp32"]), "fp32", "onnx")
    quantize.set_algo("q4")
    quantize.output_edit.setText(str(tmp_path / "q4"))
    quantize.report_box.setChecked(True)
    with qtbot.waitSignal(quantize.quantize_requested) as requested:
        quantize.quantize_button.click()
    assert requested.args[0].report == {}
