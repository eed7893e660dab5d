"""The Windows installer script compiled for real by makensis (against a stand-in bundle: a Windows bundle cannot
be built here), and the build's environment and bundle checks."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "installer"))
import build_installer  # noqa: E402
import check_bundle  # noqa: E402
import check_env  # noqa: E402

SCRIPT = ROOT / "installer" / "onnx-forge.nsi"


def makensis() -> str:
    """makensis, installing Debian's nsis package when it is missing and this is root with apt."""
    if shutil.which("makensis") is None and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        for command in (["apt-get", "install", "-y", "-q", "nsis"], ["apt-get", "update", "-q"]):
            subprocess.run(command, capture_output=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-q", "nsis"], capture_output=True, timeout=600)
    found = shutil.which("makensis")
    if found is None:
        pytest.skip("makensis is not installed and could not be (needs root and apt-get: apt-get install nsis)")
    return found


@pytest.fixture(scope="module")
def standin(tmp_path_factory) -> Path:
    """The Windows bundle's shape: the two programs and _internal/, with tiny files."""
    dist = tmp_path_factory.mktemp("dist") / "onnx-forge"
    (dist / "_internal" / "onnxruntime" / "capi").mkdir(parents=True)
    for name in ("OnnxForge.exe", "onnx-forge.exe", "_internal/onnxruntime/capi/onnxruntime.dll"):
        (dist / name).write_bytes(b"MZ stand-in")
    return dist


def compile_script(standin: Path, out: Path, *defines: str) -> subprocess.CompletedProcess[str]:
    command = [makensis(), "-V4", "-WX", f"-DDIST_DIR={standin}", *defines, str(SCRIPT)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=out)


def test_installer_compiles_with_its_uninstaller(standin, tmp_path):
    version = build_installer.project_version()
    setup = tmp_path / "ONNXForge-test-installer.exe"
    done = compile_script(standin, tmp_path, f"-DVERSION={version}", f"-DOUTFILE={setup}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert setup.read_bytes()[:2] == b"MZ"
    log = done.stdout
    assert "WriteUninstaller" in log and 'Section: "Uninstall"' in log
    assert f"DisplayVersion={version}" in log
    assert 'File: "OnnxForge.exe"' in log and "onnxruntime.dll" in log
    assert 'Section: "Desktop shortcut"' in log


def test_installer_packs_the_vc_redistributable_when_given(standin, tmp_path):
    redist = tmp_path / "vc_redist.x64.exe"
    redist.write_bytes(b"MZ redist stand-in")
    done = compile_script(
        standin, tmp_path, "-DVERSION=0.1.0", f"-DOUTFILE={tmp_path / 'ONNXForge-test.exe'}", f"-DVC_REDIST={redist}"
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert 'File: "vc_redist.x64.exe"' in done.stdout


def test_installer_refuses_to_compile_without_a_version(standin, tmp_path):
    done = compile_script(standin, tmp_path, f"-DOUTFILE={tmp_path / 'ONNXForge-test.exe'}")
    assert done.returncode != 0
    assert "VERSION is not defined" in done.stdout + done.stderr


def test_uninstaller_removes_only_what_it_installed():
    uninstall = SCRIPT.read_text(encoding="utf-8").split('Section "Uninstall"', 1)[1]
    assert re.search(r'RMDir\s+"\$INSTDIR"', uninstall)  # non-recursive: fails when anything else is inside
    assert not re.search(r'RMDir\s+/r\s+"\$INSTDIR"\s*$', uninstall, re.MULTILINE)
    assert "LOCALAPPDATA" not in uninstall and "APPDATA" not in uninstall


def test_version_comes_from_pyproject():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert declared.startswith(build_installer.project_version())


def test_environment_check_wants_exactly_one_runtime_of_the_flavor():
    assert check_env.problems("cpu", check_env.installed()) == []  # this checkout's environment
    both = {"onnxruntime": "1.32.0", "onnxruntime-directml": "1.24.4", "onnxruntime-genai-directml": "0.14.1"}
    [wrong] = check_env.problems("directml", both)
    assert "['onnxruntime', 'onnxruntime-directml']" in wrong
    assert len(check_env.problems("directml", {})) == 2


def test_bundle_check_refuses_a_bundled_vc_runtime(standin, tmp_path):
    bundle = Path(shutil.copytree(standin, tmp_path / "bundle"))
    found = check_bundle.problems(bundle)
    assert not any("Visual C++" in problem for problem in found)
    assert any("onnxruntime_genai/models/builder.py" in problem for problem in found)
    (bundle / "_internal" / "msvcp140.dll").write_bytes(b"MZ")
    assert any("msvcp140.dll" in problem for problem in check_bundle.problems(bundle))


def test_windows_lock_holds_every_requirement_of_the_build():
    """A dependency added to pyproject.toml without re-running installer/lock.py fails here, not on a Windows PC."""
    pytest.importorskip("tomllib")  # Python 3.11+
    import lock

    def name(line: str) -> str:
        return re.sub(r"[-_.]+", "-", re.match(r"\s*([A-Za-z0-9_.-]+)", line).group(1).lower())

    text = (ROOT / "installer" / "requirements-directml.txt").read_text(encoding="utf-8")
    locked = dict(re.findall(r"^([a-z0-9][a-z0-9_.-]*)==(\S+)", text, re.MULTILINE))
    locked = {re.sub(r"[-_.]+", "-", key): value for key, value in locked.items()}
    wanted = lock.requirements("directml")
    assert [line for line in wanted if name(line) not in locked] == []
    pins = dict(re.findall(r"^\s*([A-Za-z0-9_.-]+)==([^;\s]+)", "\n".join(wanted), re.MULTILINE))
    assert {name(key): value for key, value in pins.items() if locked[name(key)] != value} == {}


def test_directml_flavor_is_the_generation_the_second_test_environment_runs():
    """The DirectML lock's onnxruntime-genai is the version scripts/genai-0.14.1.txt pins for the architecture
    matrix's second environment, so what the matrix says of that generation is what DirectML users get."""
    import lock

    genai = next(pin for pin in lock.FLAVORS["directml"] if pin.startswith("onnxruntime-genai"))
    pins = (ROOT / "scripts" / f"genai-{genai.split('==')[1]}.txt").read_text(encoding="utf-8")
    assert re.search(rf"^onnxruntime-genai=={re.escape(genai.split('==')[1])}\b", pins, re.MULTILINE)
