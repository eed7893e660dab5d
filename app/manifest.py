"""forge.json: what every output folder says about how it was made."""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import os
import sys
from pathlib import Path
from typing import Any

from . import __version__

MANIFEST_NAME = "forge.json"
_VERSIONED = (
    "onnxruntime-genai",
    "onnxruntime-genai-directml",
    "onnxruntime-genai-cuda",
    "onnxruntime",
    "onnxruntime-directml",
    "onnxruntime-gpu",
    "torch",
    "nvidia-modelopt",
    "amd-quark",
    "transformers",
    "onnx",
)


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def package_versions() -> dict[str, str]:
    versions = {"onnx-forge": __version__, "python": sys.version.split()[0]}
    for name in _VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_records(folder: Path) -> list[dict[str, Any]]:
    return [
        {"path": path.relative_to(folder).as_posix(), "size": path.stat().st_size, "sha256": sha256(path)}
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != MANIFEST_NAME
    ]


def peak_memory_bytes() -> int:
    """This process's peak resident memory so far."""
    if sys.platform == "win32":
        import psutil

        return int(psutil.Process().memory_info().peak_wset)
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def source_record(given: str, path: Path, hub_id: str | None, revision: str | None) -> dict[str, Any]:
    if hub_id:
        return {"kind": "hub", "id": hub_id, "revision": revision, "path": str(path)}
    return {"kind": "demo" if given == "demo" else "folder", "path": str(path)}


def builder_command(source_path: str, options: Any, trust_remote_code: bool = False) -> list[str]:
    """The builder's own command for this build. hf_remote is always written: the builder trusts a checkpoint's
    code by default, so a replayed command without it would run code this build never ran."""
    flags = options.builder_flags()
    if "--extra_options" not in flags:
        flags.append("--extra_options")
    flags += [f"hf_remote={'true' if trust_remote_code else 'false'}", "hf_token=false"]
    return ["python", "-m", "onnxruntime_genai.models.builder", "-i", source_path, "-o", "OUT", *flags]


def build_manifest(
    files: list[dict[str, Any]],
    *,
    source: dict[str, Any],
    options: Any,
    checkpoint: Any,
    wall_seconds: float,
    check: dict[str, Any],
    trust_remote_code: bool = False,
) -> dict[str, Any]:
    """forge.json's record of a build whose files (file_records) are `files`."""
    return {
        "format": 1,
        "created": now(),
        "source": source,
        "checkpoint": {
            "architecture": checkpoint.architecture,
            "family": checkpoint.family,
            "parameters": checkpoint.parameters,
            "dtype": checkpoint.dtype,
            "size_bytes": checkpoint.size_bytes,
        },
        "preset": options.preset,
        "options": options.to_dict(),
        "builder_command": builder_command(source["path"], options, trust_remote_code),
        "versions": package_versions(),
        "wall_seconds": round(wall_seconds, 2),
        "peak_memory_bytes": peak_memory_bytes(),
        "host": {"platform": sys.platform, "cpus": os.cpu_count()},
        "check": check,
        "size_bytes": sum(record["size"] for record in files),
        "files": files,
    }


def write(folder: Path, record: dict[str, Any]) -> Path:
    path = folder / MANIFEST_NAME
    path.write_text(json.dumps(record, indent=2), encoding="utf-8")
    return path


def read(folder: Path) -> dict[str, Any] | None:
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
