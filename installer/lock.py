"""Write installer/requirements-<flavor>.txt: every package of the Windows build, pinned with hashes, resolved for
Windows x64 and Python 3.11 (uv resolves for another platform correctly; pip would judge the platform markers of
dependencies by the machine it runs on).

    pip install uv && python installer/lock.py directml

The project's own dependencies and its gui, quantize and package extras, with the onnxruntime pair of the flavor.
The pair is forced with an override, because onnxruntime-genai-directml 0.14.1 declares onnxruntime-directml>=1.26,
which PyPI does not have (1.24.4 is its newest), while it runs on 1.24.4 (checked here with the same versions of
the CPU pair: conversion, its check and chat). So the lock is complete and is installed with `pip install
--no-deps --require-hashes -r`, which does not re-resolve that declaration.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import tomllib

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# One line per flavor: the onnxruntime and onnxruntime-genai distributions it is built from. A CUDA flavor is
#   "cuda": ("onnxruntime-gpu==1.24.4", "onnxruntime-genai-cuda==0.14.1"),
FLAVORS = {
    "directml": ("onnxruntime-directml==1.24.4", "onnxruntime-genai-directml==0.14.1"),
}
EXTRAS = ("gui", "quantize", "package")


def requirements(flavor: str) -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = [*project["dependencies"], *(line for extra in EXTRAS for line in project["optional-dependencies"][extra])]
    kept = [line for line in wanted if not re.match(r"onnxruntime", line.strip(), re.IGNORECASE)]
    return [*FLAVORS[flavor], *kept]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("flavor", choices=sorted(FLAVORS))
    args = parser.parse_args()
    uv = shutil.which("uv")
    if uv is None:
        raise SystemExit("error: uv is not installed; pip install uv")
    out = HERE / f"requirements-{args.flavor}.txt"
    with tempfile.TemporaryDirectory() as work:
        overrides = Path(work) / "overrides.txt"
        overrides.write_text(FLAVORS[args.flavor][0] + "\n", encoding="utf-8")
        command = [uv, "pip", "compile", "-", "--python-platform", "x86_64-pc-windows-msvc", "--python-version", "3.11"]
        command += ["--generate-hashes", "--no-header", "--index-url", "https://pypi.org/simple"]
        command += ["--override", str(overrides), "-o", str(out)]
        done = subprocess.run(command, input="\n".join(requirements(args.flavor)) + "\n", text=True)
    if done.returncode == 0:
        header = (
            f"# {args.flavor} flavor, Windows x64, Python 3.11: written by installer/lock.py.\n"
            "# Install with: pip install --no-deps --require-hashes -r <this file>\n"
        )
        out.write_text(header + out.read_text(encoding="utf-8"), encoding="utf-8")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
