"""Running conversion jobs from a terminal: a progress bar on a TTY, plain lines otherwise."""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING

from .protocol import Log, Message, Progress
from .runner import Outcome, run_job

if TYPE_CHECKING:
    from ..convert import ConvertPlan

EXIT_CODES = {"succeeded": 0, "failed": 1, "crashed": 1, "did-not-start": 1, "out-of-memory": 3, "cancelled": 130}


class PlainView:
    """One line per log message and per whole-percent step: readable in CI logs and pipes."""

    def __init__(self) -> None:
        self._last = -1

    def __enter__(self) -> PlainView:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def show(self, message: Message) -> None:
        if isinstance(message, Log):
            print(f"  {message.text}", flush=True)
        elif isinstance(message, Progress) and int(message.percent) != self._last:
            self._last = int(message.percent)
            print(f"[{message.percent:5.1f}%] {message.stage}: {message.detail}", flush=True)


class BarView:
    """A rich progress bar with the job's log scrolling above it."""

    def __init__(self, title: str) -> None:
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
        )
        self._task = self._progress.add_task(title, total=100, detail="starting")

    def __enter__(self) -> BarView:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def show(self, message: Message) -> None:
        if isinstance(message, Log):
            self._progress.console.print(message.text, style="dim", markup=False, highlight=False)
        elif isinstance(message, Progress):
            self._progress.update(self._task, completed=message.percent, detail=f"{message.stage}: {message.detail}")


def run_in_terminal(job: str, spec: dict, title: str, warnings: list[str], report: bool = True) -> tuple[Outcome, int]:
    """Run one worker job with a view fitting the terminal (the runner sweeps its staging when it ends); report=False
    leaves saying how it ended to the caller (a batch says it per preset)."""
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    view = BarView(title) if sys.stdout.isatty() else PlainView()
    with view:
        outcome = run_job(job, spec, view.show)
    return outcome, _report(outcome) if report else 0


def convert_all(plans: list[ConvertPlan]) -> int:
    """Each group of plans app.batch.batches makes runs as one worker job: several presets of one checkpoint as a
    batch (one import, one weight load), anything else on its own."""
    from ..batch import batches

    rows: list[tuple[ConvertPlan, Outcome]] = []
    worst = 0
    for group in batches(plans):
        group_rows, code = convert_batch(group) if len(group) > 1 else convert_one(group[0])
        rows += group_rows
        worst = max(worst, code)
        if any(outcome.status == "cancelled" for _, outcome in group_rows):
            break
    if len(plans) > 1:
        print_summary(rows)
    return worst


def convert_one(plan: ConvertPlan) -> tuple[list[tuple[ConvertPlan, Outcome]], int]:
    options = plan.options
    title = f"{options.preset} ({options.precision}, {options.execution_provider})"
    outcome, code = run_in_terminal("convert", plan.to_dict(), title, plan.warnings)
    return [(plan, outcome)], code


def convert_batch(plans: list[ConvertPlan]) -> tuple[list[tuple[ConvertPlan, Outcome]], int]:
    """Several presets of one checkpoint in one worker job (app.batch); one line of outcome per preset."""
    from ..batch import BATCH_JOB, batch_spec, outcomes

    title = f"{len(plans)} presets ({', '.join(plan.options.preset for plan in plans)})"
    warnings = list(dict.fromkeys(warning for plan in plans for warning in plan.warnings))
    outcome, _ = run_in_terminal(BATCH_JOB, batch_spec(plans), title, warnings, report=False)
    rows = outcomes(plans, outcome)
    codes = [0]
    for plan, row in rows:
        print(f"{plan.options.preset}: ", end="")
        codes.append(_report(row))
    return rows, max(codes)


def _report(outcome: Outcome) -> int:
    if outcome.ok:
        print(f"done: {outcome.result['output']} ({outcome.seconds:.1f} s)")
        if outcome.note:
            print(f"note: {outcome.note}", file=sys.stderr)
        return 0
    print(f"error: {outcome.message}", file=sys.stderr)
    if outcome.error is not None and outcome.error.details:
        print(f"details: {save_details(outcome.error.details)}", file=sys.stderr)
    if outcome.status == "failed" and outcome.error is not None and outcome.error.kind != "InternalError":
        return 2  # the worker refused the input, like the CLI does before starting it
    return EXIT_CODES[outcome.status]


def save_details(details: str) -> str:
    """Where a failure's details (a traceback, the builder's output) were written: a user reads one sentence, and
    whoever looks into it finds the rest in the data folder's logs."""
    from ..paths import data_dir

    folder = data_dir() / "logs"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"failure-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        path.write_text(details, encoding="utf-8")
    except OSError:
        return "could not be saved"
    return str(path)


def print_summary(rows: list[tuple[ConvertPlan, Outcome]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Conversions")
    for column in ("preset", "provider", "state", "size", "time", "check", "output"):
        table.add_column(column)
    for plan, outcome in rows:
        manifest = (outcome.result or {}).get("manifest", {})
        size = f"{manifest['size_bytes'] / 1024**2:.1f} MB" if manifest else "-"
        table.add_row(
            plan.options.preset,
            plan.options.execution_provider,
            outcome.status,
            size,
            f"{outcome.seconds:.1f} s",
            manifest.get("check", {}).get("verdict", "-"),
            plan.request.output,
        )
    Console(width=max(120, Console().width)).print(table)
