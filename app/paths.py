"""Where the project's bundled resources live, in a source checkout and in a frozen app."""

from __future__ import annotations

import os
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


def data_dir() -> Path:
    """Where the studio keeps its library, job history and logs (FORGE_HOME overrides, for tests)."""
    if os.environ.get("FORGE_HOME"):
        return Path(os.environ["FORGE_HOME"])
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "ONNX Forge"
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "onnx-forge"


def models_dir() -> Path:
    """The default parent of converted models: <data dir>/models/<model>-<preset>."""
    return data_dir() / "models"
