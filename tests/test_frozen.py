"""The frozen app, built for real with installer/onnx-forge.spec (the Windows build's spec) and smoke-tested:
the window opens and closes without loading torch, every module of app/ and ui/ imports inside the bundle, and the
demo is converted, chatted with and quantized through the frozen worker. Minutes: a PyInstaller build."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


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
