"""Refuse to build from an environment that holds anything but exactly one onnxruntime and one onnxruntime-genai
distribution, of the flavor asked for: two overwrite each other's files ("Unknown provider type: dml").

    python installer/check_env.py --flavor directml
"""

from __future__ import annotations

import argparse
import re
import sys
from importlib import metadata

FLAVORS = {
    "directml": ("onnxruntime-directml", "onnxruntime-genai-directml"),
    "cuda": ("onnxruntime-gpu", "onnxruntime-genai-cuda"),
    "cpu": ("onnxruntime", "onnxruntime-genai"),
}


def installed() -> dict[str, str]:
    found = {}
    for dist in metadata.distributions():
        name = re.sub(r"[-_.]+", "-", (dist.metadata["Name"] or "").lower())
        if name.startswith(("onnxruntime", "ort-nightly")) and name != "onnxruntime-extensions":
            found[name] = dist.version
    return found


def problems(flavor: str, found: dict[str, str]) -> list[str]:
    runtime, genai = FLAVORS[flavor]
    runtimes = sorted(name for name in found if not name.startswith("onnxruntime-genai"))
    genais = sorted(name for name in found if name.startswith("onnxruntime-genai"))
    wrong = []
    if runtimes != [runtime]:
        wrong.append(
            f"onnxruntime distributions installed: {runtimes or 'none'}; the {flavor} flavor needs exactly "
            f"[{runtime!r}]"
        )
    if genais != [genai]:
        wrong.append(
            f"onnxruntime-genai distributions installed: {genais or 'none'}; the {flavor} flavor needs "
            f"exactly [{genai!r}]"
        )
    return wrong


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flavor", choices=sorted(FLAVORS), required=True)
    args = parser.parse_args()
    found = installed()
    wrong = problems(args.flavor, found)
    for line in wrong:
        print(
            f"error: {line}; build from a fresh environment made from installer/requirements-{args.flavor}.txt.",
            file=sys.stderr,
        )
    if not wrong:
        print(
            f"environment ok for the {args.flavor} flavor: " + ", ".join(f"{k}=={v}" for k, v in sorted(found.items()))
        )
    return 2 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
