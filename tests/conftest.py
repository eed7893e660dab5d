from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Tests never reach the network: a path that does not exist must not turn into a Hub lookup.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# The studio's data folder (library, history, staging markers, worker specs) is the tests' own, never the user's.
os.environ.setdefault("FORGE_HOME", tempfile.mkdtemp(prefix="forge-home-tests-"))


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    """make(arch, **kwargs) -> a tiny real checkpoint folder, built once per session per arguments."""
    from tests.checkpoint_factory import make_checkpoint

    root = tmp_path_factory.mktemp("checkpoints")
    made: dict[tuple, Path] = {}

    def make(arch: str, **kwargs) -> Path:
        key = (arch, json.dumps(kwargs, sort_keys=True))
        if key not in made:
            made[key] = make_checkpoint(arch, root / f"{arch}-{len(made)}", **kwargs)
        return made[key]

    return make


@pytest.fixture
def copy_of(tmp_path):
    def copy(folder: Path) -> Path:
        return Path(shutil.copytree(folder, tmp_path / f"copy-{folder.name}"))

    return copy


def run_main(*args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def mount_tmpfs(tmp_path):
    """mount(size) -> a fresh tmpfs of that size ("64k", "8m") under tmp_path: a real disk that fills up."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        point = tmp_path / f"tmpfs-{len(mounted)}"
        point.mkdir()
        if not sys.platform.startswith("linux") or os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root on Linux")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=True)


@pytest.fixture(scope="session")
def demo_int4(tmp_path_factory):
    """The demo converted to INT4 for the CPU, once per session (copy it before changing it)."""
    from app.convert import ConvertRequest, plan_conversion, run_conversion

    output = tmp_path_factory.mktemp("demo-build") / "demo-int4"
    request = ConvertRequest("demo", str(output), preset="int4", ep="cpu", check=False)
    run_conversion(plan_conversion(request, usable_eps={"cpu"}), lambda message: None)
    return output
