"""Write installer/requirements-<flavor>.txt: every package of the Windows build, pinned with hashes, resolved for
Windows x64 and Python 3.11 (uv resolves for another platform correctly; pip would judge the platform markers of
dependencies by the machine it runs on).

    pip install uv && python installer/lock.py directml

The project's own dependencies and its gui, quantize and package extras, with the onnxruntime pair of the flavor.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import tomllib

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# One line per flavor: the onnxruntime and onnxruntime-genai distributions it is built from.
FLAVORS = {
    # onnxruntime-genai-directml 0.14.1 needs onnxruntime-directml>=1.26, which PyPI does not have (1.24.4 is its
    # newest): 0.12.2 is the newest onnxruntime-genai-directml that resolves.
    "directml": ["onnxruntime-directml==1.24.4", "onnxruntime-genai-directml==0.12.2"],
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
    command = [uv, "pip", "compile", "-", "--python-platform", "x86_64-pc-windows-msvc", "--python-version", "3.11"]
    command += ["--generate-hashes", "--no-header", "--index-url", "https://pypi.org/simple", "-o", str(out)]
    done = subprocess.run(command, input="\n".join(requirements(args.flavor)) + "\n", text=True)
    if done.returncode == 0:
        body = out.read_text(encoding="utf-8")
        out.write_text(
            f"# {args.flavor} flavor, Windows x64, Python 3.11: written by installer/lock.py\n{body}", "utf-8"
        )
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
