"""The frozen app, built for real with installer/onnx-forge.spec (the Windows build's spec) and smoke-tested:
the window opens and closes without loading torch, every module of app/ and ui/ imports inside the bundle, and the
demo is converted, chatted with and quantized through the frozen worker (slow: a PyInstaller build takes minutes).
The fast tests cover what a frozen, windowed program depends on from source: no script in the worker command,
no stdout/stderr objects at all, no stdout file descriptor, and workers kept off the Hub."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from app.jobs.worker import EXIT_INPUT
from tests.conftest import ROOT


def test_frozen_app_relaunches_itself_without_a_script(monkeypatch):
    from app.jobs.runner import app_command, worker_command

    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", r"C:\Program Files\ONNX Forge\OnnxForge.exe")
    assert app_command("hardware", "--json") == [sys.executable, "hardware", "--json"]
    assert worker_command("convert", {"a": 1})[:3] == [sys.executable, "worker", "convert"]


def test_workers_stay_off_the_hub_unless_the_job_may_need_it():
    from app.jobs.runner import worker_env

    assert worker_env("convert", {"source_path": "/models/x"}).get("HF_HUB_OFFLINE") == "1"
    assert worker_env("chat", {"model": "/models/x"}).get("HF_HUB_OFFLINE") == "1"
    online = [worker_env("download", {}), worker_env("convert", {"source_path": None}), worker_env("quantize", {})]
    assert [env.get("HF_HUB_OFFLINE") for env in online] == [os.environ.get("HF_HUB_OFFLINE")] * 3


def test_writers_work_when_a_windowed_exe_has_no_stdout_or_stderr():
    """print, tqdm and logging put up with None; the worker's flushes, the console's isatty() and faulthandler
    do not."""
    code = (
        "import sys\nsys.stdout = None\nsys.stderr = None\n"
        "import main\nmain.guard_streams()\n"
        "from tqdm import tqdm\nfor _ in tqdm(range(3)): print('x')\n"
        "sys.stdout.isatty()\nsys.stderr.flush()\nimport faulthandler\nfaulthandler.enable()\n"
        "import logging\nlogging.basicConfig()\nlogging.warning('still fine')\n"
        "sys.__stdout__.write('ok\\n')"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok\n"


def test_worker_without_a_stdout_runs_its_normal_path():
    """Started with no stdout at all, the worker still runs (here: refuses an unknown job with its input-error code)
    instead of crashing on sys.stdout being None; what it says goes nowhere, because nobody is listening."""
    code = (
        "import os, sys\nos.close(1)\nsys.stdout = None\n"
        "sys.argv = ['main.py', 'worker', 'no-such-job', '{}']\nimport main\nsys.exit(main.main())"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    code = process.wait(timeout=120)  # stdin stays open: the worker's "parent is gone" watch does not fire
    stderr = process.stderr.read()
    process.stdin.close()
    assert code == EXIT_INPUT, stderr
    assert "Traceback" not in stderr


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="Windows builds and smoke-tests with installer/build_windows.ps1")
def test_linux_bundle_builds_and_passes_the_smoke_test():
    if importlib.util.find_spec("PyInstaller") is None:
        pytest.skip("PyInstaller is not installed: scripts/setup.sh installs the package extra")
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", str(ROOT / "installer" / "build_linux.sh")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert "smoke test passed" in done.stdout
    assert "biggest parts:" in done.stdout
