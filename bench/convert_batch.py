"""What does a batch of presets cost against separate builder runs? Run: python bench/convert_batch.py

For the demo and a random Llama shaped like SmolLM-135M (bench/convert_overhead.py's, tied embeddings, a 49,152-token
vocabulary), alternating: the bare builder command (the one forge.json records) once per preset, summed, against one
`main.py convert SRC --preset fp32,int4,uint4,int4-int8 --ep cpu` (the full path: plan, one worker, builds, checks,
hashes, manifests, claims). Prints the median of the per-round ratios batch / sum of the separate runs (target of
issue 14, goal 2: <= 0.6), each side's median wall time and peak memory (the whole process tree, sampled every
50 ms), then one more batch run through the worker alone with the time and peak of every stage.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from convert_overhead import make_135m_checkpoint, run_measured  # noqa: E402

TARGET = 0.6


def bare_commands(source: Path, presets: list[str], work: Path) -> list[tuple[list[str], Path]]:
    from app.manifest import builder_command
    from app.presets import resolve

    commands = []
    for preset in presets:
        recorded = builder_command(str(source), resolve(preset, "cpu"))
        output_at = recorded.index("OUT")
        out = work / "bare" / preset
        command = [
            sys.executable,
            *recorded[1:output_at],
            str(out),
            "-c",
            str(work / "cache"),
            *recorded[output_at + 1 :],
        ]
        commands.append((command, out))
    return commands


def run_batch_command(source: Path, presets: list[str], out: Path) -> tuple[float, int, list[str]]:
    """(wall seconds, peak bytes, presets whose output is not in place) of the user's batch command."""
    command = [sys.executable, str(ROOT / "main.py"), "convert", str(source), "-o", str(out)]
    command += ["--preset", ",".join(presets), "--ep", "cpu", "--overwrite"]
    seconds, peak = run_measured(command, allow_failure=True)
    missing = [preset for preset in presets if not (out / preset / "forge.json").is_file()]
    return seconds, peak, missing


def bench(name: str, source: Path, presets: list[str], runs: int, work: Path) -> None:
    separate: list[float] = []
    separate_peaks: list[int] = []
    batch: list[float] = []
    batch_peaks: list[int] = []
    failed: set[str] = set()
    for _ in range(runs):
        total, peak = 0.0, 0
        for command, out in bare_commands(source, presets, work):
            shutil.rmtree(out, ignore_errors=True)
            seconds, used = run_measured(command)
            total, peak = total + seconds, max(peak, used)
        separate.append(total)
        separate_peaks.append(peak)
        shutil.rmtree(work / "batch", ignore_errors=True)
        seconds, used, missing = run_batch_command(source, presets, work / "batch")
        batch.append(seconds)
        batch_peaks.append(used)
        failed.update(missing)
    ratios = [b / s for b, s in zip(batch, separate, strict=True)]
    ratio = statistics.median(ratios)
    verdict = "meets" if ratio <= TARGET else f"misses by {ratio / TARGET - 1:.0%}"
    rounds = ", ".join(f"{r:.3f}" for r in ratios)
    print(
        f"{name:<18} {','.join(presets)}: separate {statistics.median(separate):6.2f} s"
        f"   batch {statistics.median(batch):6.2f} s   ratio {ratio:.3f} (rounds {rounds};"
        f" target <= {TARGET}: {verdict})   peak: separate (largest run) "
        f"{statistics.median(separate_peaks) / 2**20:,.0f} MB, batch {statistics.median(batch_peaks) / 2**20:,.0f} MB",
        flush=True,
    )
    if failed:
        print(f"{'':<18} not in place after the batch: {', '.join(sorted(failed))} (see the breakdown's log)")


def breakdown(name: str, source: Path, presets: list[str], work: Path) -> None:
    """One batch through the worker job alone, every stage's time and the tree's peak memory during it."""
    from app.batch import BATCH_JOB, batch_spec
    from app.convert import ConvertRequest, plan_conversion
    from app.jobs.protocol import Log, Progress
    from app.jobs.runner import JobProcess

    out = work / "breakdown"
    shutil.rmtree(out, ignore_errors=True)
    plans = [plan_conversion(ConvertRequest(str(source), str(out / p), preset=p, ep="cpu"), {"cpu"}) for p in presets]
    lock = threading.Lock()
    stages: list[list] = []  # [label, start, peak]
    failures: list[str] = []
    started = time.perf_counter()
    current = ["worker start, imports of the app", started, 0]
    stages.append(current)

    def enter(label: str) -> None:
        nonlocal current
        with lock:
            if label != current[0]:
                current = [label, time.perf_counter(), 0]
                stages.append(current)

    def on_message(message) -> None:
        if isinstance(message, Progress):
            preset, _, _ = message.detail.partition(" (")
            enter(f"{preset}: {message.stage}")
        elif isinstance(message, Log) and message.stream == "batch" and message.text.startswith("batch of"):
            enter("importing torch, onnxruntime, the builder")
        elif isinstance(message, Log) and message.stream == "batch" and " failed: " in message.text:
            failures.append(message.text)

    process = JobProcess(BATCH_JOB, batch_spec(plans), on_message)
    process.start()
    root = psutil.Process(process.pid)
    while process._process.poll() is None:  # noqa: SLF001 - the bench samples the tree while the job runs
        try:
            rss = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
        except psutil.Error:
            rss = 0
        with lock:
            current[2] = max(current[2], rss)
        time.sleep(0.05)
    outcome = process.wait()
    ended = time.perf_counter()
    print(f"\n{name}: one batch through the worker, {ended - started:.2f} s, {outcome.status}")
    for (label, start, peak), after in zip(stages, [*stages[1:], [None, ended, 0]], strict=True):
        sampled = f"{peak / 2**20:7,.0f} MB" if peak else "(too short to sample)"
        print(f"  {label:<44} {after[1] - start:6.2f} s   peak {sampled}")
    for failure in failures:
        print(f"  {failure[:300]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="alternating rounds per checkpoint (default 3)")
    parser.add_argument("--presets", default="fp32,int4,uint4,int4-int8")
    parser.add_argument("--skip-135m", action="store_true", help="only the demo checkpoint")
    parser.add_argument("--work", type=Path, help="keep the 135M checkpoint here between runs (default: a temp dir)")
    parser.add_argument("--no-breakdown", action="store_true")
    args = parser.parse_args()
    from app.paths import demo_checkpoint

    presets = args.presets.split(",")
    print(f"load average {', '.join(f'{x:.1f}' for x in psutil.getloadavg())} on {psutil.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory(prefix="forge-batch-bench-") as tmp:
        work = Path(tmp)
        keep = args.work or work
        sources = [("demo", demo_checkpoint())]
        if not args.skip_135m:
            sources.append(("random llama 135M", make_135m_checkpoint(keep / "llama-135m")))
        for name, source in sources:
            bench(name, source, presets, args.runs, work)
        if not args.no_breakdown:
            for name, source in sources:
                breakdown(name, source, presets, work)


if __name__ == "__main__":
    main()
