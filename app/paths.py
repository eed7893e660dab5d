"""Where the project's bundled resources live, in a source checkout and in a frozen app."""

from __future__ import annotations

import sys
from pathlib import Path


def project_root() -> Path:
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root:
        return Path(frozen_root)
    return Path(__file__).resolve().parent.parent


def resources_dir() -> Path:
    return project_root() / "resources"


def demo_checkpoint() -> Path:
    return resources_dir() / "demo"
