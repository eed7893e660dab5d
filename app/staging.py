"""Staging folders and the claim of an output: how a job's result reaches the user's disk without losing anything.

The contract:
- A job builds into `<output's parent>/.forge-staging-<name>-<random>/`, on the output's drive, so the final move
  is a rename. Its `owner.json` says who made it: {"pid", "started" (that process's start time), "job", "output",
  "created_parents"}; a copy in `<data dir>/staging/` lets any later run find it wherever it is.
- Any run of the studio or its command line calls `sweep()`: staging whose owner is dead (the pid is gone, or it
  now belongs to a process that started at another time) is removed, and an old output that a dead job had
  moved aside is put back first.
- The output is claimed, not overwritten: the plan records what the output was (`OutputState`) and `claim()`
  moves the new model into place only if the output is still exactly that; otherwise the new model is kept in a
  free folder beside it and the error says where.
- `--overwrite` replaces only a folder that is a model (`check_replaceable`) and the old one is deleted only once
  the new one is in place.

Only our own names are listed (iterdir and a prefix), never globbed: a user's folder may be called `out[1]`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import OutputError
from .paths import data_dir

STAGING_PREFIX = ".forge-staging-"
OWNER_FILE = "owner.json"
_PREVIOUS = "previous"
_MODEL_MARKERS = ("forge.json", "genai_config.json")
# What a model folder made by the builder or a quantizer holds; anything else is the user's and stops --overwrite.
_MODEL_FILE_SUFFIXES = (".onnx", ".data", ".json", ".txt", ".model", ".jinja", ".tiktoken", ".py")
_MAX_LISTED = 5000
_SPEC_PREFIX = "spec-"
_UNOWNED_GRACE_SECONDS = 600
_mine: set[Path] = set()
"""Staging folders this process made and has not removed yet."""


# --- who owns a staging folder -------------------------------------------------------------------------------


def process_start_time(pid: int) -> float | None:
    """When this process started (seconds since the epoch), or None if there is no such live process."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process.create_time()
    except psutil.Error:
        return None


def owner_alive(owner: dict[str, Any]) -> bool:
    try:
        started = process_start_time(int(owner["pid"]))
        return started is not None and abs(started - float(owner["started"])) < 1.0
    except (KeyError, TypeError, ValueError):
        return False


def _me() -> dict[str, Any]:
    return {"pid": os.getpid(), "started": process_start_time(os.getpid())}


def _markers() -> Path:
    return data_dir() / "staging"


def create(output: Path, job: str) -> Path:
    """A fresh staging folder beside `output`, owned by this process. Parents of the output that did not exist are
    made and recorded, so that a job that fails removes them again."""
    created_parents = [str(parent) for parent in reversed(output.parents) if not parent.exists()]
    output.parent.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{output.name[:40]}-", dir=output.parent))
    owner = {**_me(), "job": job, "output": str(output), "path": str(root), "created_parents": created_parents}
    try:
        (root / OWNER_FILE).write_text(json.dumps(owner))
    except OSError:
        shutil.rmtree(root, ignore_errors=True)  # a full disk: nothing could ever say whose this was
        _remove_parents(created_parents)
        raise
    _mine.add(root)
    marker = _markers() / f"{root.name}.json"
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps(owner))
    except OSError:
        pass  # the sweep beside the output still finds it
    return root


def _read_owner(root: Path) -> dict[str, Any] | None:
    try:
        owner = json.loads((root / OWNER_FILE).read_text())
    except (OSError, ValueError):
        legacy = root / "pid"  # written by earlier versions: a pid alone
        try:
            return {"pid": int(legacy.read_text()), "started": -1, "path": str(root)}
        except (OSError, ValueError):
            return None
    return owner if isinstance(owner, dict) else None


def remove(root: Path, success: bool, keep_marker: bool = False) -> None:
    """Remove a staging folder when its job is over. An old output moved aside is put back unless the job
    succeeded; on failure, the parent folders the job created are removed again where still empty. keep_marker
    leaves its record in the data dir for a later sweep (see remove_mine)."""
    owner = _read_owner(root) or {}
    output = Path(owner.get("output", ""))
    previous = root / _PREVIOUS
    if previous.is_dir() and owner.get("output") and not output.exists():
        previous.rename(output)  # the new model never reached its place: the old one goes back
        success = True  # the parents are in use again
    # Renamed first: a build still writing (a cancel removes staging from another thread) cannot refill it.
    doomed = root.with_name(f"{root.name}-removed")
    try:
        root.rename(doomed)
    except OSError:
        doomed = root
    shutil.rmtree(doomed, ignore_errors=True)
    if not keep_marker:
        (_markers() / f"{root.name}.json").unlink(missing_ok=True)
    _mine.discard(root)
    if not success:
        _remove_parents(owner.get("created_parents", []))


def _remove_parents(created_parents: list[str]) -> None:
    """The folders a job made for its output, deepest first, as long as they are still empty."""
    for parent in reversed(created_parents):
        try:
            Path(parent).rmdir()
        except OSError:
            break  # not empty (something else put files there) or already gone


def remove_mine() -> None:
    """What a worker does as it exits on a cancel: remove its own staging (an old output moved aside goes back).
    The build may still be running on the main thread, and its next makedirs brings the folder back without its
    owner.json (seen cancelling a batch between two presets): the markers stay, so the parent's sweep, once this
    process is gone, removes such a folder by its marker, or the marker alone."""
    for root in list(_mine):
        remove(root, success=False, keep_marker=True)


def _age_seconds(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


def sweep(*beside: Path) -> list[Path]:
    """Remove staging folders whose owner is dead: those recorded in the data dir, and those next to each
    folder in `beside` (an output about to be planned). Returns what was removed."""
    candidates: list[Path] = []
    marked: dict[Path, dict[str, Any]] = {}
    markers = _markers()
    if markers.is_dir():
        for marker in markers.iterdir():
            try:
                recorded = json.loads(marker.read_text())
                candidates.append(Path(recorded["path"]))
                marked[candidates[-1]] = recorded
            except (OSError, ValueError, KeyError, TypeError):
                marker.unlink(missing_ok=True)
                continue
            if not candidates[-1].exists():
                marker.unlink(missing_ok=True)
    for output in beside:
        try:
            candidates += [p for p in output.parent.iterdir() if p.name.startswith(STAGING_PREFIX) and p.is_dir()]
        except OSError:
            continue
    removed = []
    for root in dict.fromkeys(candidates):
        if not root.name.startswith(STAGING_PREFIX):
            continue  # a marker that points elsewhere was not written by us
        owner = _read_owner(root) or marked.get(root)  # a folder rebuilt under a cancelled job lost its owner.json
        if owner is None and _age_seconds(root) > _UNOWNED_GRACE_SECONDS:
            owner = {}  # its owner.json never got written or was removed under a writer: nobody will claim it
        if owner is None or owner_alive(owner):
            continue  # just being made, or its job is still running
        remove(root, success=False)
        removed.append(root)
    _sweep_specs()
    return removed


# --- worker specs --------------------------------------------------------------------------------------------


def write_spec(spec: dict[str, Any]) -> Path:
    """A worker's job spec as a private file: a spec can be larger than the system's argument limit."""
    folder = data_dir() / "specs"
    folder.mkdir(parents=True, exist_ok=True)
    me = _me()
    handle, name = tempfile.mkstemp(prefix=f"{_SPEC_PREFIX}{me['pid']}-{me['started']}-", suffix=".json", dir=folder)
    with os.fdopen(handle, "w", encoding="utf-8") as file:
        json.dump(spec, file)
    return Path(name)


def _sweep_specs() -> None:
    """Spec files of parents that are gone (a job queued in a window that was closed before it started)."""
    folder = data_dir() / "specs"
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        try:
            _, pid, started, _ = path.name.split("-", 3)
            alive = owner_alive({"pid": pid, "started": started})
        except ValueError:
            alive = False
        if not alive:
            path.unlink(missing_ok=True)


# --- what the output is, and claiming it --------------------------------------------------------------------


@dataclass(frozen=True)
class OutputState:
    """What an output path held when the plan looked: nothing, an empty folder, or these files."""

    kind: str
    """absent, file, empty or folder."""
    listing: list[list[Any]] = field(default_factory=list)
    """[relative path, size, mtime_ns] of every file, sorted; only for a folder."""

    @classmethod
    def of(cls, output: Path) -> OutputState:
        if not output.exists() and not output.is_symlink():
            return cls("absent")
        if not output.is_dir():
            return cls("file")
        listing = []
        for folder, _, files in os.walk(output):
            for name in files:
                path = Path(folder, name)
                stat = path.lstat()
                listing.append([path.relative_to(output).as_posix(), stat.st_size, stat.st_mtime_ns])
                if len(listing) > _MAX_LISTED:
                    return cls("folder", [["<more files than a model has>", 0, 0]])
        if not listing and not any(output.iterdir()):
            return cls("empty")
        return cls("folder", sorted(listing))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OutputState:
        return cls(data["kind"], [list(item) for item in data.get("listing", [])])


def check_replaceable(output: Path, source: Path | None) -> None:
    """--overwrite replaces only a model folder that holds nothing of the user's: a marker file (forge.json or
    genai_config.json), no sub-folders, only model files (those forge.json lists, when it is there), and neither
    the source, a Hugging Face cache nor the studio's own data."""
    caches = _hub_caches()
    for what, path in [("the source checkpoint", source), ("the studio's data folder", data_dir()), *caches]:
        if path is not None and is_inside(path, output):
            raise OutputError(f"{output} holds {what} ({path}), so it is not replaced; choose another output folder.")
    for what, path in [("the source checkpoint", source), *caches]:
        if path is not None and is_inside(output, path):
            raise OutputError(f"{output} is inside {what} ({path}), so it is not replaced; choose another folder.")
    entries = list(output.iterdir())
    if not any((output / marker).is_file() for marker in _MODEL_MARKERS):
        raise OutputError(
            f"{output} is not a converted model (it has no forge.json or genai_config.json), so it is not replaced; "
            "choose a new or empty folder."
        )
    folders = [entry.name for entry in entries if entry.is_dir()]
    if folders:
        raise OutputError(
            f"{output} holds folders that are not part of a model ({', '.join(sorted(folders)[:3])}), so it is not "
            "replaced; move them out or choose another output folder."
        )
    listed = _manifest_files(output)
    foreign = [
        entry.name
        for entry in entries
        if entry.name not in _MODEL_MARKERS
        and (entry.name not in listed if listed is not None else not entry.name.endswith(_MODEL_FILE_SUFFIXES))
    ]
    if foreign:
        raise OutputError(
            f"{output} holds files that are not part of the model ({', '.join(sorted(foreign)[:3])}), so it is not "
            "replaced; move them out or choose another output folder."
        )


def _manifest_files(output: Path) -> set[str] | None:
    try:
        record = json.loads((output / "forge.json").read_text(encoding="utf-8"))
        return {item["path"] for item in record["files"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _hub_caches() -> list[tuple[str, Path]]:
    from huggingface_hub import constants

    return [
        ("the Hugging Face cache", Path(constants.HF_HUB_CACHE)),
        ("the Hugging Face home", Path(constants.HF_HOME)),
    ]


def is_inside(child: Path, parent: Path) -> bool:
    """Whether child is parent or below it, links resolved; False where either cannot be resolved."""
    try:
        child.expanduser().resolve().relative_to(parent.expanduser().resolve())
        return True
    except (ValueError, OSError, RuntimeError):
        return False


def claim(built: Path, output: Path, expected: OutputState, root: Path) -> None:
    """Move `built` into `output` if the output is still what the plan saw. The old model (an overwrite) goes into
    the staging root and is deleted with it, after the new one is in place."""
    if OutputState.of(output) != expected:
        raise OutputError(f"{output} changed while the job ran, so it was left as it is; {_keep_beside(built, output)}")
    previous = root / _PREVIOUS
    try:
        if expected.kind == "empty":
            output.rmdir()  # fails if a file appeared since the check above
        elif expected.kind == "folder":
            output.rename(previous)
            if OutputState.of(previous).listing != expected.listing:
                previous.rename(output)
                raise OSError("the output changed while it was being replaced")
        built.rename(output)
    except OSError:
        if previous.exists() and not output.exists():
            previous.rename(output)
        raise OutputError(
            f"{output} could not be replaced (it changed or is in use), so it was left as it is; "
            f"{_keep_beside(built, output)}"
        ) from None


def _keep_beside(built: Path, output: Path) -> str:
    for number in range(1, 1000):
        keep = output.with_name(f"{output.name}.new" + (f"-{number}" if number > 1 else ""))
        if not keep.exists():
            try:
                built.rename(keep)
            except OSError:
                continue
            return f"the new model is kept in {keep}: compare the two and keep the one you want."
    return "the new model could not be kept beside it."


def placed(output: str | Path, job_id: str) -> dict[str, Any] | None:
    """The forge.json of `output` if this job put it there (its job id), else None: what is on disk decides how a
    job ended, not whether a cancel arrived after the model was in place."""
    try:
        record = json.loads((Path(output) / "forge.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and job_id and record.get("job_id") == job_id else None
