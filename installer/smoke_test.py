"""Smoke-test a frozen ONNX Forge the way a user meets it: the window opens and closes cleanly, and the demo is
converted, chatted with and quantized through the frozen job worker (the program re-launching itself).

    python installer/smoke_test.py build/dist/onnx-forge [--json]

Every step runs a bundled program with a fresh FORGE_HOME, offline, offscreen. The window and the conversion use
the program the user starts (Windows: the windowed OnnxForge.exe, so its worker is the one the window launches;
Linux: onnx-forge), chat and quantize the console one. Exit code 1 names the first step that failed, with the
end of its output: usually a module or file PyInstaller did not collect.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

STEP_TIMEOUT_S = 600
WINDOW_TARGET_S = 2.0
WINDOW_RSS_TARGET_MB = 250.0


class SmokeFailure(Exception):
    pass


@dataclass
class Programs:
    window: Path
    console: Path

    @classmethod
    def in_bundle(cls, bundle: Path) -> Programs:
        console = bundle / ("onnx-forge.exe" if sys.platform == "win32" else "onnx-forge")
        window = bundle / "OnnxForge.exe" if sys.platform == "win32" else console
        for program in (window, console):
            if not program.is_file():
                raise SmokeFailure(f"{program} is not in the bundle")
        return cls(window, console)


@dataclass
class Report:
    bundle: str
    window: dict[str, object] = field(default_factory=dict)
    steps_s: dict[str, float] = field(default_factory=dict)
    chat_reply: str = ""


def run(program: Path, args: list[str], env: dict[str, str], step: str, report: Report) -> str:
    started = time.monotonic()
    done = subprocess.run(
        [str(program), *args], env=env, capture_output=True, text=True, timeout=STEP_TIMEOUT_S, stdin=subprocess.DEVNULL
    )
    report.steps_s[step] = round(time.monotonic() - started, 2)
    if done.returncode != 0 or "Traceback" in done.stderr:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-25:])
        raise SmokeFailure(f"{step}: `{' '.join(args)}` exited with {done.returncode}:\n{tail}")
    return done.stdout


def check_window(program: Path, env: dict[str, str], report: Report) -> None:
    smoke_env = {**env, "FORGE_SMOKE_TEST": "1", "QT_QPA_PLATFORM": "offscreen", "FORGE_SMOKE_T0": repr(time.time())}
    output = run(program, [], smoke_env, "window", report)
    lines = [line for line in output.splitlines() if line.startswith("forge-smoke ")]
    if not lines:
        raise SmokeFailure(f"window: no forge-smoke line in its output:\n{output[-2000:]}")
    report.window = json.loads(lines[-1].removeprefix("forge-smoke "))
    if report.window["import_failures"]:
        raise SmokeFailure(f"window: modules that do not import in the bundle: {report.window['import_failures']}")
    if not (report.window["frozen"] and report.window["utf8_mode"] and report.window["unbuffered"]):
        raise SmokeFailure(f"window: not frozen with the spec's interpreter options (-u, -X utf8): {report.window}")
    if report.window["heavy_modules_loaded"]:
        raise SmokeFailure(f"window: the window's process loaded {report.window['heavy_modules_loaded']}")


def smoke(bundle: Path, work: Path, report: Report) -> None:
    programs = Programs.in_bundle(bundle)
    env = {**os.environ, "FORGE_HOME": str(work / "home"), "HF_HUB_OFFLINE": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPATH", None)  # nothing may come from a source checkout
    check_window(programs.window, env, report)
    model = work / "demo-fp32"
    run(programs.window, ["convert", "demo", "-o", str(model), "--preset", "fp32"], env, "convert", report)
    if not (model / "forge.json").is_file() or not list(model.glob("*.onnx")):
        raise SmokeFailure(f"convert: {model} has no forge.json or no .onnx model")
    reply = run(
        programs.console, ["chat", str(model), "--prompt", "Tom goes to the", "--max-length", "48"], env, "chat", report
    )
    report.chat_reply = reply.strip()[-200:]
    if not report.chat_reply:
        raise SmokeFailure("chat: no reply")
    quantized = work / "demo-rtn-dq"
    run(programs.console, ["quantize", str(model), "-o", str(quantized), "--algo", "rtn_dq"], env, "quantize", report)
    if not (quantized / "forge.json").is_file():
        raise SmokeFailure(f"quantize: {quantized} has no forge.json")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path, help="the one-folder bundle (build/dist/onnx-forge)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    report = Report(str(args.bundle))
    with tempfile.TemporaryDirectory(prefix="forge-smoke-") as work:
        try:
            smoke(args.bundle.resolve(), Path(work), report)
        except (SmokeFailure, subprocess.TimeoutExpired) as failure:
            print(f"smoke test FAILED: {failure}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps(asdict(report), indent=2))
        return 0
    window = report.window
    print(
        f"window: first paint {window['first_window_s']} s (target < {WINDOW_TARGET_S} s), idle RSS "
        f"{window['idle_rss_mb']} MB (target < {WINDOW_RSS_TARGET_MB:.0f} MB), torch not loaded, "
        f"{window['modules_imported']} modules of app/ and ui/ import"
    )
    print("steps: " + ", ".join(f"{step} {seconds} s" for step, seconds in report.steps_s.items()))
    print(f"chat reply: {report.chat_reply!r}")
    print("smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
