"""The job history: every job the studio queued, ran or finished, kept across restarts (no Qt).

Records live in <data dir>/jobs.json, rewritten atomically on every change of state; each job's full
log is a plain text file in <data dir>/logs/<id>.log. A job that was running or still queued when the
studio last closed comes back as "interrupted": nothing runs by itself at start, and Retry starts it again.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..paths import data_dir

STATES = ("queued", "running", "succeeded", "failed", "cancelled", "out-of-memory", "crashed", "interrupted")
ACTIVE_STATES = frozenset({"queued", "running"})
FINISHED_STATES = frozenset(STATES) - ACTIVE_STATES
_FORMAT_VERSION = 1
_TAIL_BYTES = 4 * 1024**2


@dataclass
class JobRecord:
    id: str
    title: str
    model: str
    preset: str
    ep: str
    output: str
    plan: dict[str, Any]
    """ConvertPlan.to_dict(): what the worker runs, and what Retry runs again."""
    kind: str = "convert"
    state: str = "queued"
    message: str = ""
    progress: float = 0.0
    stage: str = ""
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    seconds: float = 0.0
    peak_memory_bytes: int = 0
    log_path: str = ""
    command_line: str = ""

    @property
    def is_finished(self) -> bool:
        return self.state in FINISHED_STATES

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRecord:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


def new_job_id() -> str:
    """Sortable by creation time, unique enough for one user's machine, safe as a file name."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def new_record(plan: dict[str, Any], logs_dir: Path) -> JobRecord:
    """A queued conversion job for a plan (ConvertPlan.to_dict())."""
    request = plan["request"]
    options = plan["options"]
    model = model_name(plan)
    job_id = new_job_id()
    return JobRecord(
        id=job_id,
        title=f"{model} · {options['preset']} ({options['execution_provider']})",
        model=model,
        preset=options["preset"],
        ep=options["execution_provider"],
        output=str(Path(request["output"]).expanduser().resolve()),
        plan=plan,
        log_path=str(logs_dir / f"{job_id}.log"),
        command_line=format_command(convert_command(plan)),
    )


def new_quantize_record(request: dict[str, Any], logs_dir: Path) -> JobRecord:
    """A queued quantization job for a QuantizeRequest.to_dict()."""
    job_id = new_job_id()
    model = Path(request["input"]).expanduser().name
    return JobRecord(
        id=job_id,
        title=f"{model} · {request['algo']}",
        model=model,
        preset=request["algo"],
        ep="cpu",
        output=str(Path(request["output"]).expanduser().resolve()),
        plan=request,
        kind="quantize",
        log_path=str(logs_dir / f"{job_id}.log"),
        command_line=format_command(quantize_command(request)),
    )


def quantize_command(request: dict[str, Any]) -> list[str]:
    """The `main.py quantize` arguments that run this request again from a terminal."""
    args = [
        "python",
        "main.py",
        "quantize",
        str(Path(request["input"]).expanduser().resolve()),
        "-o",
        str(Path(request["output"]).expanduser().resolve()),
        "--algo",
        request["algo"],
    ]
    for key, value in request.get("overrides", {}).items():
        args += ["--set", f"{key}={value}"]
    if request.get("overwrite"):
        args.append("--overwrite")
    if not request.get("evaluate", True):
        args.append("--no-eval")
    if request.get("report") is not None:
        args.append("--report")
    return args


def model_name(plan: dict[str, Any]) -> str:
    if plan.get("hub_id"):
        return plan["hub_id"]
    return Path(plan["request"]["source"]).expanduser().name or plan["request"]["source"]


def convert_command(plan: dict[str, Any]) -> list[str]:
    """The `main.py convert` arguments that run this plan again from a terminal.

    Paths are made absolute and the provider is the resolved one, so the command means the same thing from
    any folder and on any machine. Options naming a token are left out: a command gets copied and shared.
    """
    request = plan["request"]
    source = request["source"]
    if source != "demo" and plan.get("source_path"):
        source = plan["source_path"]
    args = [
        "python",
        "main.py",
        "convert",
        source,
        "-o",
        str(Path(request["output"]).expanduser().resolve()),
        "--preset",
        request["preset"],
        "--ep",
        plan["options"]["execution_provider"],
    ]
    for key, value in request.get("overrides", {}).items():
        if "token" not in key.lower():
            args += ["--set", f"{key}={value}"]
    if request.get("overwrite"):
        args.append("--overwrite")
    if request.get("trust_remote_code"):
        args.append("--trust-remote-code")
    if request.get("revision"):
        args += ["--revision", request["revision"]]
    if not request.get("check", True):
        args.append("--no-check")
    if request.get("report") is not None:
        args.append("--report")
    return args


def format_command(args: list[str]) -> str:
    """Quoted for the shell a user pastes into: cmd/PowerShell on Windows, a POSIX shell elsewhere."""
    return subprocess.list2cmdline(args) if sys.platform == "win32" else shlex.join(args)


def read_log_tail(path: str | Path, max_lines: int) -> list[str]:
    """The last lines of a job's log, reading at most a few MB from its end however long the log grew."""
    try:
        with open(path, "rb") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(0, size - _TAIL_BYTES))
            data = file.read()
    except OSError:
        return []
    lines = data.decode("utf-8", errors="replace").splitlines()
    if size > _TAIL_BYTES and lines:
        lines = lines[1:]  # the first line was cut where the read began
    return lines[-max_lines:] if max_lines > 0 else []


class JobHistory:
    """The list of jobs, in the order they were queued, saved to one JSON file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else data_dir() / "jobs.json"
        self.logs_dir = self.path.parent / "logs"
        self.records: list[JobRecord] = self._load()

    def _load(self) -> list[JobRecord]:
        try:
            payload = json.loads(self.path.read_text(encoding="utf-8"))
            records = [JobRecord.from_dict(item) for item in payload["jobs"]]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError):
            # Keep the unreadable file for a person to look at; the studio starts with an empty history.
            with contextlib.suppress(OSError):
                self.path.replace(self.path.with_name(self.path.name + ".unreadable"))
            return []
        for record in records:
            if record.state in ACTIVE_STATES:
                _mark_interrupted(record)
        return records

    def save(self) -> None:
        """Write the whole history to a temporary file beside it, then swap it in: never half a file.

        No fsync: the window saves from its GUI thread, and while a build writes gigabytes an fsync can wait for
        all of them; a history one change old after a power cut is the lesser harm.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"version": _FORMAT_VERSION, "jobs": [record.to_dict() for record in self.records]}
        handle, temp = tempfile.mkstemp(prefix=".jobs-", suffix=".json", dir=self.path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                json.dump(payload, file, ensure_ascii=False, indent=1)
            os.replace(temp, self.path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    def get(self, job_id: str) -> JobRecord | None:
        return next((record for record in self.records if record.id == job_id), None)

    def add(self, record: JobRecord) -> None:
        self.records.append(record)
        self.save()

    def update(self, job_id: str, **changes: Any) -> JobRecord:
        record = self.get(job_id)
        if record is None:
            raise KeyError(job_id)
        for key, value in changes.items():
            setattr(record, key, value)
        self.save()
        return record

    def remove(self, job_ids: set[str]) -> None:
        """Forget these jobs and delete their logs."""
        for record in self.records:
            if record.id in job_ids and record.log_path:
                Path(record.log_path).unlink(missing_ok=True)
        self.records = [record for record in self.records if record.id not in job_ids]
        self.save()


def _mark_interrupted(record: JobRecord) -> None:
    if record.state == "queued":
        record.message = "the studio closed before this job started; Retry runs it."
    else:
        record.message = "the studio closed while this job ran; Retry runs it again."
    record.state = "interrupted"
