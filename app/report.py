"""The report card: quality and speed of every variant of one source model, measured once and cached.

measure() runs eval and bench (and, where the source checkpoint is on disk, the drift against it) on one
GenAI folder and caches the figures with a fingerprint of the model's files: in the folder's forge.json when ONNX
Forge made it, else under the studio's data folder (we never write into a folder we did not create), keyed by
the folder's path and its genai_config.json. Figures whose files changed since are not shown.
rows() gathers the variants and their cached figures without loading anything; recommend() picks one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import manifest
from .errors import InputError, JobFailed
from .jobs.protocol import Log, Message, Progress
from .library import model_folders, model_kind
from .paths import data_dir, models_dir

REPORT_KEY = "report"
REPORT_FORMAT = 1
# The recommend rule, in words (README and the view show it): perplexity within this of the best counts as as good;
# generation speeds whose spread over the repeats overlaps the fastest's, or within this of it, count as as fast
# (a difference inside the noise of a shared machine ranks nothing), and so does a speed measured too few times to
# have a spread.
PERPLEXITY_TOLERANCE = 0.02
SPEED_TOLERANCE = 0.05
MIN_SPEED_RUNS = 3
RULE = (
    "Of the variants whose perplexity is within 2 % of the best, those whose generation speed is within the spread "
    "of the fastest (or within 5 % of it) count as equally fast; of these, the smallest on disk is recommended. "
    f"A speed from fewer than {MIN_SPEED_RUNS} runs has no spread and ranks nothing."
)

Emit = Callable[[Message], None]


@dataclass
class MeasureSettings:
    text: str | None = None
    """The eval text (default: the held-out text that matches the demo)."""
    max_tokens: int = 20000
    prompt_tokens: int = 128
    gen_tokens: int = 64
    repeats: int = 5
    against_source: bool = True
    """Also measure drift against the source checkpoint when it is on this disk (loads it in PyTorch)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Row:
    folder: str
    name: str
    kind: str
    """onnx, or checkpoint for the PyTorch source."""
    label: str
    """The preset, the quantization algorithm, or what the folder is."""
    size_bytes: int
    figures: dict[str, Any] | None = None
    stale: bool = False
    """Figures were measured, but the model's files changed since."""
    notes: list[str] = field(default_factory=list)

    def figure(self, *keys: str) -> Any:
        value: Any = self.figures
        for key in keys:
            if not isinstance(value, dict):
                return None
            value = value.get(key)
        return value

    @property
    def perplexity(self) -> float | None:
        return self.figure("perplexity", "perplexity")

    @property
    def generation_tps(self) -> float | None:
        return self.figure("speed", "generation_tokens_per_second")

    @property
    def generation_spread(self) -> tuple[float, float] | None:
        """(slowest, fastest) run of the bench's repeats; None when too few runs were timed to tell the noise."""
        runs = self.figure("speed", "generation_tokens_per_second_runs")
        if not isinstance(runs, list) or len(runs) < MIN_SPEED_RUNS:
            return None
        return min(runs), max(runs)

    @property
    def prompt_tps(self) -> float | None:
        return self.figure("speed", "prompt_tokens_per_second")

    @property
    def ttft_seconds(self) -> float | None:
        return self.figure("speed", "time_to_first_token_seconds")

    @property
    def peak_memory_bytes(self) -> int | None:
        return self.figure("speed", "peak_memory_bytes")

    @property
    def top1_agreement(self) -> float | None:
        return self.figure("drift", "top1_agreement")

    @property
    def mean_kl(self) -> float | None:
        return self.figure("drift", "mean_kl")

    @property
    def measured(self) -> bool:
        return self.perplexity is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "perplexity": self.perplexity,
            "generation_tokens_per_second": self.generation_tps,
            "prompt_tokens_per_second": self.prompt_tps,
            "time_to_first_token_seconds": self.ttft_seconds,
            "peak_memory_bytes": self.peak_memory_bytes,
            "top1_agreement": self.top1_agreement,
            "mean_kl": self.mean_kl,
        }


# --- the cache --------------------------------------------------------------------------------------------------------


def fingerprint(folder: Path, previous: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Size, mtime and sha256 of every file but forge.json; a file whose size and mtime match `previous` keeps its
    recorded sha256 unread (as git's index does), so checking a multi-GB model stays instant."""
    previous = previous or {}
    prints = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name == manifest.MANIFEST_NAME:
            continue
        name, stat = path.relative_to(folder).as_posix(), path.stat()
        known = previous.get(name) or {}
        same = known.get("size") == stat.st_size and known.get("mtime_ns") == stat.st_mtime_ns
        digest = known["sha256"] if same and known.get("sha256") else manifest.sha256(path)
        prints[name] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
    return prints


def files_unchanged(folder: Path, recorded: dict[str, Any]) -> bool:
    current = fingerprint(folder, recorded)
    return {name: item["sha256"] for name, item in current.items()} == {
        name: item.get("sha256") for name, item in recorded.items()
    }


def foreign_cache_path(folder: Path) -> Path:
    """Where figures of a folder ONNX Forge did not make are kept: keyed by its path and its genai_config.json."""
    folder = Path(folder).resolve()
    config = folder / "genai_config.json"
    config_digest = manifest.sha256(config) if config.is_file() else ""
    key = hashlib.sha256(f"{folder}\n{config_digest}".encode()).hexdigest()[:24]
    return data_dir() / "reports" / f"{key}.json"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically: a crash while writing leaves the old file, never half a forge.json."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=2)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def store(folder: Path, figures: dict[str, Any]) -> Path:
    """Cache figures: in forge.json for a folder ONNX Forge made, else under the data folder."""
    folder = Path(folder)
    record = _read_json(folder / manifest.MANIFEST_NAME)
    if record is not None:
        record[REPORT_KEY] = figures
        _write_json(folder / manifest.MANIFEST_NAME, record)
        return folder / manifest.MANIFEST_NAME
    path = foreign_cache_path(folder)
    _write_json(path, {"folder": str(Path(folder).resolve()), REPORT_KEY: figures})
    return path


def cached(folder: Path) -> tuple[dict[str, Any] | None, bool]:
    """(figures still valid, stale): stale when figures were measured but the model's files changed since."""
    folder = Path(folder)
    record = _read_json(folder / manifest.MANIFEST_NAME)
    if record is None:
        record = _read_json(foreign_cache_path(folder))
    figures = (record or {}).get(REPORT_KEY)
    if not isinstance(figures, dict) or figures.get("format") != REPORT_FORMAT:
        return None, False
    if not files_unchanged(folder, figures.get("files") or {}):
        return None, True
    return figures, False


# --- measuring (in a worker) ------------------------------------------------------------------------------------------


def measure(folder: Path, settings: MeasureSettings | None = None, emit: Emit | None = None) -> dict[str, Any]:
    """Bench, then perplexity (from the drift run when the source checkpoint is at hand), cached for the folder.

    The bench runs first, in a process that has loaded nothing else, so its peak memory is the model's own.
    """
    from .benchmark import benchmark
    from .chat import can_run_here, model_provider
    from .evaluate import default_eval_text, drift, needs_own_code, perplexity

    settings = settings or MeasureSettings()
    folder = Path(folder).expanduser().resolve()
    if model_kind(folder) != "onnx":
        raise InputError(f"{folder} is not an ONNX Runtime GenAI folder (no genai_config.json); convert it first.")
    say = emit or (lambda message: None)
    text = Path(settings.text) if settings.text else default_eval_text()
    before = fingerprint(folder)
    provider = model_provider(folder)
    runnable, why = can_run_here(provider)
    ep = provider if runnable else "cpu"
    if not runnable:
        say(Log(f"{provider} does not run here ({why}); speed is measured on the CPU", "report"))
    say(Progress(5, "speed", f"{settings.repeats} runs of {settings.prompt_tokens}+{settings.gen_tokens} tokens"))
    speed = benchmark(folder, settings.prompt_tokens, settings.gen_tokens, settings.repeats, ep).to_dict()
    source = source_checkpoint(folder) if settings.against_source else None
    if source is not None and needs_own_code(source):
        # The report never runs a checkpoint's own code, whatever the conversion was allowed: `eval --against
        # --trust-remote-code` measures this drift when the user asks for it by name.
        say(
            Log(
                f"drift not measured: {source} loads only through its own Python code, which a report never runs",
                "report",
            )
        )
        source = None
    if source is not None and not _drift_fits(source, folder):
        say(Log(f"drift not measured: {source} in float32 beside this model needs more memory than is free", "report"))
        source = None
    found_drift = None
    if source is not None:
        say(Progress(40, "drift", f"against {source} in PyTorch"))
        found_drift = drift(folder, source, text, settings.max_tokens).to_dict()
        quality = {
            "perplexity": found_drift["onnx_perplexity"],
            "tokens": found_drift["tokens"],
            "windows": found_drift["windows"],
            "text": found_drift["text"],
        }
    else:
        say(Progress(40, "perplexity", str(text)))
        quality = perplexity(folder, text, settings.max_tokens).to_dict()
    figures = {
        "format": REPORT_FORMAT,
        "measured": manifest.now(),
        "text": str(text),
        "text_sha256": manifest.sha256(text),
        "settings": settings.to_dict(),
        "perplexity": quality,
        "speed": speed,
        "drift": found_drift,
        "versions": manifest.package_versions(),
        "files": before,
    }
    where = store(folder, figures)
    say(Progress(100, "done", f"cached in {where}"))
    return figures


def _drift_fits(source: Path, folder: Path) -> bool:
    """Whether the checkpoint in float32 (4 bytes a parameter) and the ONNX model fit in the memory free now."""
    import psutil

    from .checkpoints import inspect_checkpoint

    needed = inspect_checkpoint(source).parameters * 4 + _size(folder)
    return needed < psutil.virtual_memory().available


def measure_in_child(folder: Path, settings: MeasureSettings, emit: Emit, low: float, high: float) -> dict[str, Any]:
    """measure() in a fresh worker (so its peak memory is its own), its progress mapped into [low, high]."""
    from .jobs.runner import run_job

    def relay(message: Message) -> None:
        if isinstance(message, Progress):
            emit(Progress(low + (high - low) * message.percent / 100, message.stage, message.detail))
        elif isinstance(message, Log):
            emit(message)

    outcome = run_job("measure", {"folder": str(folder), "settings": settings.to_dict()}, relay)
    if not outcome.ok:
        raise JobFailed(f"measuring {folder} {outcome.status}: {outcome.message}")
    return outcome.result["figures"]


def measure_after(output: Path, settings: dict[str, Any], emit: Emit) -> dict[str, Any]:
    """The optional last step of a conversion or quantization whose output is in place: measure it in a child.
    A failure here leaves the output as it is and is reported in the result, not as a failed job."""
    if model_kind(Path(output)) != "onnx":
        emit(Log("not an ONNX Runtime GenAI folder, so there is no report card to fill", "report"))
        return {"error": "not a GenAI folder"}
    emit(Progress(98, "measuring", "quality and speed for the report card"))
    try:
        figures = measure_in_child(Path(output), MeasureSettings(**settings), emit, 98, 99.9)
    except JobFailed as error:
        emit(Log(f"the output is in place, but measuring it failed: {error}", "report"))
        return {"error": str(error)}
    return {"perplexity": figures["perplexity"]["perplexity"], "speed": figures["speed"], "drift": figures["drift"]}


def measure_all(spec: dict[str, Any], emit: Emit) -> dict[str, Any]:
    """The `report` worker job: measure each folder in turn, each in its own child; one failure does not stop
    the others, and the job fails at the end naming them."""
    folders = [str(Path(folder).expanduser().resolve()) for folder in spec["folders"]]
    settings = MeasureSettings(**spec.get("settings", {}))
    measured, failed = {}, {}
    for index, folder in enumerate(folders):
        low, high = 100 * index / len(folders), 100 * (index + 1) / len(folders)
        emit(Log(f"measuring {folder} ({index + 1} of {len(folders)})", "report"))
        try:
            measured[folder] = measure_in_child(Path(folder), settings, emit, low, high)
        except JobFailed as error:
            failed[folder] = str(error)
            emit(Log(f"failed: {error}", "report"))
    if failed:
        raise JobFailed(f"{len(failed)} of {len(folders)} models could not be measured: {next(iter(failed.values()))}")
    return {"output": folders[0] if folders else "", "measured": measured}


# --- variants and rows (no heavy imports: the window calls these) -----------------------------------------------------


def _source_path(folder: Path) -> Path | None:
    record = _read_json(folder / manifest.MANIFEST_NAME)
    source = (record or {}).get("source")
    if isinstance(source, dict) and source.get("path"):
        return Path(source["path"])
    return None


def root_source(folder: Path) -> Path | None:
    """The checkpoint at the start of a folder's chain of forge.json sources (a quantization names its input,
    a conversion its checkpoint); None for a folder ONNX Forge did not make."""
    current, seen = Path(folder).resolve(), set()
    source = _source_path(current)
    while source is not None and source not in seen and len(seen) < 16:
        seen.add(source)
        current = source.resolve()
        if model_kind(current) != "onnx":
            return current
        source = _source_path(current) or None
    return current if seen else None


def source_checkpoint(folder: Path) -> Path | None:
    """The source checkpoint when it is still on this disk."""
    root = root_source(folder)
    return root if root is not None and model_kind(root) == "checkpoint" else None


def candidate_folders(folder: Path) -> list[Path]:
    """Where variants of a folder are looked for: its siblings, the library's folders and the converted models."""
    from .library import Library

    roots = [Path(folder).resolve().parent, *map(Path, Library().folders)]
    if models_dir().is_dir():
        roots += [child for child in models_dir().iterdir() if child.is_dir()]
    return [found for root in roots for found in model_folders(root)]


def variants(folder: Path, candidates: Iterable[Path] | None = None) -> list[Path]:
    """The folder and every GenAI folder made from the same source checkpoint, the folder first."""
    folder = Path(folder).resolve()
    root = root_source(folder)
    found = [folder]
    if root is None:
        return found
    for candidate in candidate_folders(folder) if candidates is None else candidates:
        candidate = Path(candidate).resolve()
        if candidate not in found and model_kind(candidate) == "onnx" and root_source(candidate) == root:
            found.append(candidate)
    return found


def _label(folder: Path) -> str:
    record = _read_json(folder / manifest.MANIFEST_NAME) or {}
    if record.get("kind") == "quantization":
        return str(record.get("algorithm", "quantized"))
    if record.get("preset"):
        provider = (record.get("options") or {}).get("execution_provider")
        return f"{record['preset']} ({provider})" if provider else str(record["preset"])
    return "GenAI model"


def _size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file() and path.name != "forge.json")


def rows(folder: Path, candidates: Iterable[Path] | None = None) -> list[Row]:
    """One row per variant with its cached figures, then the source checkpoint (its perplexity from PyTorch,
    where a drift was measured); reads files only, loads no model. For a checkpoint: the rows of its variants
    (none when it has not been converted yet)."""
    if model_kind(Path(folder)) == "checkpoint":
        checkpoint = Path(folder).resolve()
        pool = candidate_folders(checkpoint) if candidates is None else [Path(c) for c in candidates]
        made = next((c for c in pool if model_kind(c) == "onnx" and root_source(c) == checkpoint), None)
        return rows(made, pool) if made is not None else []
    found = []
    for variant in variants(folder, candidates):
        figures, stale = cached(variant)
        notes = ["measured, but the model's files changed since"] if stale else []
        found.append(Row(str(variant), variant.name, "onnx", _label(variant), _size(variant), figures, stale, notes))
    source = source_checkpoint(Path(folder))
    if source is not None:
        found.append(_checkpoint_row(source, found))
    return found


def new_report_job(folders: list[str], logs_dir: Path, settings: MeasureSettings | None = None) -> Any:
    """A queued `report` job (app.jobs.history.JobRecord) measuring these folders, and its command line."""
    from .jobs.history import JobRecord, command_fields, new_job_id, program_command

    job_id = new_job_id()
    names = ", ".join(Path(folder).name for folder in folders)
    return JobRecord(
        id=job_id,
        title=f"report card · {names}",
        model=names,
        preset="report",
        ep="cpu",
        output=folders[0],
        plan={"folders": folders, "settings": (settings or MeasureSettings()).to_dict()},
        kind="report",
        log_path=str(logs_dir / f"{job_id}.log"),
        **command_fields(program_command("report", *folders)),
    )


def _checkpoint_row(source: Path, onnx_rows: list[Row]) -> Row:
    measured = next((row for row in onnx_rows if row.figure("drift", "torch_perplexity") is not None), None)
    figures = None
    if measured is not None:
        drift = measured.figures["drift"]
        figures = {
            "perplexity": {"perplexity": drift["torch_perplexity"], "tokens": drift["tokens"], "text": drift["text"]},
            "measured": measured.figures.get("measured"),
        }
    return Row(str(source), source.name, "checkpoint", "PyTorch source", _size(source), figures)


def recommend(candidates: list[Row]) -> tuple[Row, str] | None:
    """The row RULE picks among the measured GenAI variants, with the reason in words; None if none is measured."""
    measured = [row for row in candidates if row.kind == "onnx" and row.measured and row.generation_tps]
    if not measured:
        return None
    best = min(row.perplexity for row in measured)
    good = [row for row in measured if row.perplexity <= best * (1 + PERPLEXITY_TOLERANCE)]
    fastest = max(good, key=lambda row: row.generation_tps)
    quick = [row for row in good if as_fast(row, fastest)]
    choice = min(quick, key=lambda row: (row.size_bytes, -row.generation_tps))
    reason = f"perplexity {choice.perplexity:.3f} is within 2 % of the best ({best:.3f}), " + _speed_words(
        choice, fastest
    )
    others = len(quick) - 1
    reason += f", and it is the smallest of the {others + 1} that are." if others else ", and no other variant is both."
    return choice, reason


def as_fast(row: Row, fastest: Row) -> bool:
    """Whether row's generation speed cannot be told from the fastest one's: within SPEED_TOLERANCE, inside its
    spread, or either measured too few times to have one."""
    if row.generation_tps >= fastest.generation_tps * (1 - SPEED_TOLERANCE):
        return True
    mine, theirs = row.generation_spread, fastest.generation_spread
    return mine is None or theirs is None or mine[1] >= theirs[0]


def _speed_words(choice: Row, fastest: Row) -> str:
    spread = choice.generation_spread
    speed = f"{choice.generation_tps:,.0f} tok/s" + (f" ({spread[0]:,.0f}–{spread[1]:,.0f})" if spread else "")
    if choice is fastest:
        return f"{speed} is the fastest"
    if spread is None or fastest.generation_spread is None:
        return f"{speed} was timed too few times to rank against the fastest ({fastest.generation_tps:,.0f})"
    return f"{speed} cannot be told from the fastest ({fastest.generation_tps:,.0f}) on this machine"
