"""Compile the Windows installer from a built bundle, with the version read from pyproject.toml.

    python installer/build_installer.py build/dist/onnx-forge --flavor directml [--out build/installer]

A vc_redist.x64.exe placed in installer/ (it cannot be downloaded by this script) is packed in and run when the
PC's Visual C++ runtime is missing or old; without it the installer offers the download page instead.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def project_version(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """[project] version, as NSIS wants it: three numbers (the script appends a fourth for VIProductVersion)."""
    project = pyproject.read_text(encoding="utf-8").split("[project]", 1)[1].split("\n[", 1)[0]
    found = re.search(r'^version\s*=\s*"(\d+)\.(\d+)\.(\d+)[^"]*"', project, re.MULTILINE)
    if not found:
        raise SystemExit(f"error: no [project] version like 1.2.3 in {pyproject}")
    return ".".join(found.groups())


def makensis_command(dist: Path, out: Path, flavor: str, vc_redist: Path | None) -> list[str]:
    makensis = shutil.which("makensis")
    if makensis is None:
        raise SystemExit(
            "error: makensis is not installed (Windows: winget install NSIS.NSIS; Debian: apt-get install nsis)"
        )
    version = project_version()
    switch = "/" if sys.platform == "win32" else "-"  # makensis accepts both on Windows, only '-' elsewhere
    command = [
        makensis,
        f"{switch}V2",
        f"{switch}DVERSION={version}",
        f"{switch}DFLAVOR={flavor}",
        f"{switch}DDIST_DIR={dist.resolve()}",
        f"{switch}DOUTFILE={(out / f'ONNXForge-{version}-{flavor}-setup.exe').resolve()}",
    ]
    if vc_redist is not None:
        command.append(f"{switch}DVC_REDIST={vc_redist.resolve()}")
    return [*command, str(HERE / "onnx-forge.nsi")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dist", type=Path, help="the one-folder bundle (build/dist/onnx-forge)")
    parser.add_argument("--flavor", default="directml")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "installer")
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    redist = HERE / "vc_redist.x64.exe"
    command = makensis_command(args.dist, out, args.flavor, redist if redist.is_file() else None)
    print(" ".join(command))
    return subprocess.run(command).returncode


if __name__ == "__main__":
    sys.exit(main())
