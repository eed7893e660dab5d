"""Where the project's bundled resources live, in a source checkout and in a frozen app."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path


def project_root() -> Path:
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root:
        return Path(frozen_root)
    return Path(__file__).resolve().parent.parent


def resources_dir() -> Path:
    return project_root() / "resources"


def app_icon() -> Path:
    return resources_dir() / "icons" / "forge.svg"


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


def output_name(model: str, preset: str) -> str:
    """'<model>-<preset>' from a folder name or a hub id ('Qwen/Qwen3-0.6B' -> 'Qwen3-0.6B-int4'),
    with the characters Windows refuses in a folder name replaced."""
    base = model.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    safe = re.sub(r'[<>:"|?*\x00-\x1f]', "_", base).strip(" .") or "model"
    return f"{safe}-{preset}"


def default_output(model: str, preset: str, parent: Path | None = None) -> Path:
    """Where a conversion goes unless the user picks another folder: <parent or models_dir()>/<model>-<preset>."""
    return (parent or models_dir()) / output_name(model, preset)
