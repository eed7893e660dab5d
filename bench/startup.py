"""Time to first window and the window's idle memory, from source and frozen, side by side.

    python bench/startup.py [--bundle build/dist/onnx-forge] [--runs 5]

Starts the window with FORGE_SMOKE_TEST=1 (ui/smoke.py: it closes itself after painting and idling 1.5 s), offscreen
unless --platform says otherwise, alternating source and frozen runs after one warm-up of each. Reports medians of
the seconds from spawn to the window's first paint (FORGE_SMOKE_T0 carries the spawn time), the window process's
resident memory when idle, and the frozen/source ratios. Targets: first window < 2 s, idle RSS < 250 MB,
torch never loaded. Frozen runs only when a bundle is given or found in build/dist/onnx-forge.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROGRAM_NAMES = ("OnnxForge.exe", "onnx-forge.exe", "onnx-forge")


def find_program(bundle: Path | None) -> Path | None:
    folder = bundle or ROOT / "build" / "dist" / "onnx-forge"
    if folder.is_file():
        return folder
    return next((folder / name for name in PROGRAM_NAMES if (folder / name).is_file()), None)


def one_run(command: list[str], platform: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="forge-startup-") as home:
        env = {**os.environ, "FORGE_SMOKE_TEST": "1", "QT_QPA_PLATFORM": platform, "FORGE_HOME": home}
        env["FORGE_SMOKE_T0"] = repr(time.time())
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    lines = [line for line in done.stdout.splitlines() if line.startswith("forge-smoke ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"error: {' '.join(command)} exited with {done.returncode} without a report")
    report = json.loads(lines[-1].removeprefix("forge-smoke "))
    if report["heavy_modules_loaded"]:
        raise SystemExit(f"error: the window loaded {report['heavy_modules_loaded']}")
    return {"first_window_s": report["first_window_s"], "idle_rss_mb": report["idle_rss_mb"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, help="the one-folder bundle or its program (default: build/dist)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--platform", default="offscreen", help="QT_QPA_PLATFORM for the runs (default offscreen)")
    args = parser.parse_args()
    commands = {"source": [sys.executable, str(ROOT / "main.py")]}
    program = find_program(args.bundle)
    if program is not None:
        commands["frozen"] = [str(program)]
    else:
        print("no bundle given or found in build/dist/onnx-forge: source only")
    for command in commands.values():
        one_run(command, args.platform)  # warm-up: file cache, Qt's font cache
    results: dict[str, list[dict[str, float]]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, command in commands.items():
            results[name].append(one_run(command, args.platform))
    medians = {
        name: {key: statistics.median(run[key] for run in runs) for key in runs[0]} for name, runs in results.items()
    }
    print(f"{'':8} {'first window (s)':>17} {'idle RSS (MB)':>14}   medians of {args.runs}")
    for name, values in medians.items():
        print(f"{name:8} {values['first_window_s']:17.2f} {values['idle_rss_mb']:14.1f}")
    if "frozen" in medians:
        ratios = {key: medians["frozen"][key] / medians["source"][key] for key in medians["source"]}
        print(f"{'ratio':8} {ratios['first_window_s']:17.2f} {ratios['idle_rss_mb']:14.2f}   frozen / source")
    print("targets: first window < 2 s, idle RSS < 250 MB, torch not loaded (checked on every run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
