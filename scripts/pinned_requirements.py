"""Print the project's requirements (pyproject.toml, with extras) with some pins replaced.

pip constraints cannot loosen an `==` pin, so a second runtime generation is installed from this list
(`pip install -r`) followed by `pip install --no-deps -e .`. Usage:

    python scripts/pinned_requirements.py scripts/genai-0.14.1.txt test,quantize > requirements.txt

The pin file holds one requirement a line; each replaces every requirement of the same distribution
(markers included), so the file decides the versions for that environment alone.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent


def distribution(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise SystemExit(f"error: cannot read the requirement {requirement!r}.")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def read_pins(pin_file: Path) -> list[str]:
    """The requirement lines; `override ...` lines are installed afterwards with --no-deps (scripts/setup.sh)."""
    lines = (line.split("#", 1)[0].strip() for line in pin_file.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("override ")]


def pinned(pin_file: Path, extras: list[str]) -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = list(project["dependencies"])
    for extra in extras:
        wanted += project["optional-dependencies"][extra]
    pins = read_pins(pin_file)
    replaced = {distribution(pin) for pin in pins}
    return [*pins, *(requirement for requirement in wanted if distribution(requirement) not in replaced)]


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print("usage: pinned_requirements.py PIN_FILE [EXTRA,EXTRA]", file=sys.stderr)
        return 2
    extras = [extra for extra in (argv[1] if len(argv) == 2 else "").split(",") if extra]
    print("\n".join(pinned(Path(argv[0]), extras)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
