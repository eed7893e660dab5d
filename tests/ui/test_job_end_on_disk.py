"""A job's final state says what is on disk: a model in place is a success, whatever was cancelled after it."""

from __future__ import annotations

import json

from app.convert import ConvertRequest, plan_conversion
from app.paths import demo_checkpoint
from ui.job_runner import JobRunner


def test_cancelling_while_the_report_measures_keeps_the_finished_model(qtbot, tmp_path):
    """What closing the window during the measuring step does: the runner is cancelled after the model is in place."""
    out = tmp_path / "demo-fp32"
    request = ConvertRequest(str(demo_checkpoint()), str(out), preset="fp32", ep="cpu", check=False, report={})
    plan = plan_conversion(request, {"cpu"})
    runner = JobRunner("convert", plan.to_dict(), tmp_path / "job.log")
    outcomes: list = []
    runner.finished.connect(outcomes.append)

    def on_progress(percent: float, stage: str, detail: str) -> None:
        if stage in ("measuring", "speed", "drift", "perplexity"):
            runner.cancel()

    runner.progress.connect(on_progress)
    with qtbot.waitSignal(runner.finished, timeout=300_000):
        runner.start()
    (outcome,) = outcomes
    assert outcome.status == "succeeded", outcome.message
    assert "was cancelled" in outcome.note and outcome.result["output"] == str(out.resolve())
    assert json.loads((out / "forge.json").read_text())["job_id"] == plan.request.job_id
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".forge-staging-")]
    assert any(line.startswith("note: ") for line in runner.history())
