"""The studio's library: the model folders the user added, converted outputs, and the Hugging Face cache.

Only the list of added folders is stored (library.json in the data folder); everything shown about a folder is
read again from disk at each listing, from JSON files and safetensors headers, never from the weights. A listing
never raises: a folder that cannot be read comes back as a "broken" entry carrying the sentence that says why.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import manifest
from .checkpoints import inspect_checkpoint, weight_files
from .errors import ForgeError, InputError, ModelLoadError
from .paths import data_dir, models_dir
from .staging import is_inside

CHECKPOINT_MARKER = "config.json"
ONNX_MARKER = "genai_config.json"
LIBRARY_VERSION = 1


@dataclass
class LibraryEntry:
    kind: str
    """checkpoint, onnx or broken."""
    path: str
    name: str
    origin: str
    """folder (added by the user), hf-cache, hub (downloaded from the Hub here) or converted."""
    info: dict[str, Any] = field(default_factory=dict)
    """CheckpointInfo.to_dict() for a checkpoint, onnx_summary() for an ONNX model, {"kind_hint": ...} if broken."""
    reason: str | None = None
    repo_id: str | None = None
    revision: str | None = None

    @property
    def broken(self) -> bool:
        return self.kind == "broken"

    @property
    def kind_hint(self) -> str | None:
        """What the folder is or was meant to be: checkpoint, onnx, or None when that cannot be told."""
        return self.kind if not self.broken else self.info.get("kind_hint")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Stored:
    path: str
    origin: str = "folder"
    repo_id: str | None = None
    revision: str | None = None


# --- one folder -------------------------------------------------------------------------------------------------------


def model_kind(folder: Path) -> str | None:
    """onnx for an ONNX Runtime GenAI folder, checkpoint for a Hugging Face checkpoint folder, else None."""
    if (folder / ONNX_MARKER).is_file():
        return "onnx"
    if (folder / CHECKPOINT_MARKER).is_file():
        return "checkpoint"
    return None


def model_folders(folder: Path) -> list[Path]:
    """The folder itself when it holds a model, otherwise the model folders one level down."""
    if model_kind(folder):
        return [folder]
    try:
        children = sorted(child for child in folder.iterdir() if child.is_dir() and not child.name.startswith("."))
    except OSError:
        return []
    return [child for child in children if model_kind(child)]


def inspect_folder(
    path: str | Path,
    origin: str = "folder",
    *,
    name: str | None = None,
    repo_id: str | None = None,
    revision: str | None = None,
) -> LibraryEntry:
    """What one model folder is, as a library entry; never raises."""
    folder = Path(path)
    common = {"path": str(folder), "name": name or folder.name, "origin": origin}
    common |= {"repo_id": repo_id, "revision": revision}
    kind = None
    try:
        kind = _existing_model_kind(folder)
        info = onnx_summary(folder) if kind == "onnx" else inspect_checkpoint(folder).to_dict()
    except ForgeError as error:
        return LibraryEntry("broken", info={"kind_hint": kind}, reason=str(error), **common)
    except Exception as error:  # noqa: BLE001 - one odd folder (unreadable file, odd config value) must not stop a listing
        reason = f"{folder} cannot be read ({type(error).__name__}: {error})."
        return LibraryEntry("broken", info={"kind_hint": kind}, reason=reason, **common)
    return LibraryEntry(kind, info=info, **common)


def _existing_model_kind(folder: Path) -> str:
    if not folder.exists():
        raise InputError(
            f"{folder} no longer exists; it was moved or deleted: remove it from the library or add it where it is now."
        )
    if not folder.is_dir():
        raise InputError(f"{folder} is a file; add the folder that holds config.json or genai_config.json.")
    kind = model_kind(folder)
    if kind is None:
        raise InputError(
            f"{folder} holds no checkpoint (config.json) or ONNX GenAI model (genai_config.json), "
            "neither itself nor one folder down; add the model's own folder."
        )
    return kind


def onnx_summary(folder: Path) -> dict[str, Any]:
    """What an ONNX GenAI folder holds: its forge.json record when ONNX Forge made it, else its genai_config.json."""
    model = _read_json_object(folder / ONNX_MARKER).get("model")
    model = model if isinstance(model, dict) else {}
    decoder = model.get("decoder") if isinstance(model.get("decoder"), dict) else {}
    filename = decoder.get("filename")
    if not filename or not (folder / str(filename)).is_file():
        missing = filename or "the decoder model its genai_config.json names"
        raise ModelLoadError(f"{folder} lacks {missing}; copy the whole model folder again or convert it again.")
    summary: dict[str, Any] = {
        "model_type": str(model.get("type", "unknown")),
        "provider": _provider(decoder),
        "context_length": int(model.get("context_length") or 0),
        "vocab_size": int(model.get("vocab_size") or 0),
        "size_bytes": _folder_size(folder),
        "onnx_files": sorted(path.name for path in folder.glob("*.onnx")),
        "made_by_forge": False,
    }
    record = _read_manifest(folder)
    if record is not None:
        summary |= _manifest_summary(record)
    return summary


def _manifest_summary(record: dict[str, Any]) -> dict[str, Any]:
    check = record.get("check") if isinstance(record.get("check"), dict) else {}
    options = record.get("options") if isinstance(record.get("options"), dict) else {}
    summary = {
        "made_by_forge": True,
        "preset": record.get("preset"),
        "options": options,
        "created": record.get("created"),
        "check": check.get("verdict"),
        "check_detail": check.get("error") or check.get("reason") or check.get("sample"),
        "source": record.get("source"),
        "checkpoint": record.get("checkpoint"),
        "algorithm": record.get("algorithm"),
        "quality": record.get("quality") if isinstance(record.get("quality"), dict) else None,
    }
    if options.get("execution_provider"):
        summary["provider"] = options["execution_provider"]
    if isinstance(record.get("size_bytes"), int):
        summary["size_bytes"] = record["size_bytes"]
    return summary


def _provider(decoder: dict[str, Any]) -> str:
    session = decoder.get("session_options") if isinstance(decoder.get("session_options"), dict) else {}
    names = [name for option in session.get("provider_options") or [] if isinstance(option, dict) for name in option]
    return ", ".join(names) or "cpu"


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        record = manifest.read(folder)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ModelLoadError(
            f"{folder / manifest.MANIFEST_NAME} is not valid JSON; the model may still load, but its record is lost."
        ) from None
    return record if isinstance(record, dict) else None


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelLoadError(f"{path} is not valid JSON ({error}); convert the model again.") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} does not hold a JSON object; convert the model again.")
    return data


def _folder_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


# --- the library ------------------------------------------------------------------------------------------------------


class Library:
    """The folders the user added, persisted as JSON; safe to use from a worker thread and the GUI thread."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else data_dir() / "library.json"
        self._lock = threading.Lock()
        self._folders: list[_Stored] = []
        self._hidden: set[str] = set()
        self._load()

    @property
    def folders(self) -> list[str]:
        with self._lock:
            return [stored.path for stored in self._folders]

    def add_folder(
        self, path: str | Path, *, origin: str = "folder", repo_id: str | None = None, revision: str | None = None
    ) -> list[LibraryEntry]:
        """Remember a model folder, or a folder of model folders; refuse, in one sentence, a folder with neither."""
        folder = Path(path).expanduser()
        if not folder.exists():
            raise InputError(f"{folder} does not exist; add a checkpoint or ONNX model folder.")
        folder = folder.resolve()
        found = model_folders(folder) if folder.is_dir() else []
        if not found:
            _existing_model_kind(folder)  # raises the sentence that says what is wrong with it
        stored = _Stored(str(folder), origin, repo_id, revision)
        with self._lock:
            self._folders = [item for item in self._folders if item.path != stored.path] + [stored]
            self._hidden -= {str(child) for child in found}
            self._save()
        return [self._inspect(stored, child) for child in found]

    def remove(self, path: str | Path) -> None:
        """Forget an added folder; an entry found inside one, converted or in the cache, is hidden instead."""
        key = str(Path(path).expanduser().resolve())
        with self._lock:
            kept = [item for item in self._folders if item.path != key]
            # A converted model is found by the models-folder scan too: forgetting the stored copy alone keeps it.
            if len(kept) == len(self._folders) or is_inside(Path(key), models_dir()):
                self._hidden.add(key)
            self._folders = kept
            self._save()

    def entries(self) -> list[LibraryEntry]:
        """The added folders, then converted outputs, each inspected again now."""
        with self._lock:
            stored = list(self._folders)
            hidden = set(self._hidden)
        found = [entry for item in stored for entry in self._entries_of(item)]
        found += self._converted()
        return _unique(entry for entry in found if entry.path not in hidden)

    def scan_hf_cache(self, cache_dir: str | Path | None = None) -> list[LibraryEntry]:
        """Model snapshots in the Hugging Face cache (HF_HUB_CACHE, or HF_HOME/hub) that hold weights or ONNX models."""
        with self._lock:
            hidden = set(self._hidden)
        return [entry for entry in _scan_hf_cache(cache_dir) if entry.path not in hidden]

    def all_entries(self) -> list[LibraryEntry]:
        """entries(), then the Hugging Face cache's snapshots that are not already among them."""
        return _unique([*self.entries(), *self.scan_hf_cache()])

    # --- internals ----------------------------------------------------------------------------------------------------

    def _entries_of(self, stored: _Stored) -> list[LibraryEntry]:
        folder = Path(stored.path)
        found = model_folders(folder) if folder.is_dir() else []
        return [self._inspect(stored, child) for child in found or [folder]]

    def _inspect(self, stored: _Stored, folder: Path) -> LibraryEntry:
        origin = "converted" if is_inside(folder, models_dir()) else stored.origin
        name = stored.repo_id if stored.repo_id and folder == Path(stored.path) else None
        return inspect_folder(folder, origin, name=name, repo_id=stored.repo_id, revision=stored.revision)

    def _converted(self) -> list[LibraryEntry]:
        root = models_dir()
        if not root.is_dir():
            return []
        children = sorted(child for child in root.iterdir() if child.is_dir() and not child.name.startswith("."))
        return [inspect_folder(folder, "converted") for child in children for folder in model_folders(child)]

    def _load(self) -> None:
        if not self.path.is_file():
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self._folders = [_Stored(**item) for item in data.get("folders", [])]
            self._hidden = {str(item) for item in data.get("hidden", [])}
        except (OSError, ValueError, TypeError, AttributeError):
            # Keep the unreadable file for the user instead of overwriting it with an empty library.
            os.replace(self.path, self.path.with_name(self.path.name + ".unreadable"))
            self._folders, self._hidden = [], set()

    def _save(self) -> None:
        data = {
            "version": LIBRARY_VERSION,
            "folders": [asdict(item) for item in self._folders],
            "hidden": sorted(self._hidden),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".library-", suffix=".json", dir=self.path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(data, stream, indent=2)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def _unique(entries: Any) -> list[LibraryEntry]:
    seen: set[str] = set()
    unique = []
    for entry in entries:
        if entry.path not in seen:
            seen.add(entry.path)
            unique.append(entry)
    return unique


# --- the Hugging Face cache -------------------------------------------------------------------------------------------


def _scan_hf_cache(cache_dir: str | Path | None) -> list[LibraryEntry]:
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    from .hub import hf_cache_dir

    try:
        report = scan_cache_dir(cache_dir if cache_dir is not None else hf_cache_dir())
    except (CacheNotFound, OSError, ValueError):
        return []
    entries = []
    for repo in sorted(report.repos, key=lambda repo: repo.repo_id.lower()):
        if repo.repo_type != "model":
            continue
        revisions = sorted(repo.revisions, key=lambda revision: revision.last_modified, reverse=True)
        for revision in revisions:
            label = repo.repo_id if len(revisions) == 1 else f"{repo.repo_id} @ {_revision_label(revision)}"
            entries += _snapshot_entries(Path(revision.snapshot_path), label, repo.repo_id, revision.commit_hash)
    return entries


def _snapshot_entries(snapshot: Path, label: str, repo_id: str, commit: str) -> list[LibraryEntry]:
    entries = []
    for folder in model_folders(snapshot):
        # Reading a repo's config.json (inspect, the Hub dialog) caches it alone: not a checkpoint one can convert.
        if model_kind(folder) == "checkpoint" and not any(weight_files(folder)):
            continue
        name = label if folder == snapshot else f"{label}/{folder.name}"
        entries.append(inspect_folder(folder, "hf-cache", name=name, repo_id=repo_id, revision=commit))
    return entries


def _revision_label(revision: Any) -> str:
    return ", ".join(sorted(revision.refs)) or revision.commit_hash[:7]
