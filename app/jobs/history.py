"""The job history: every job the studio queued, ran or finished, kept across restarts (no Qt).

Records live in <data dir>/jobs.json, rewritten atomically on every change of state; each job's full
log is a plain text file in <data dir>/logs/<id>.log. A job that was running or still queued when the
studio last closed comes back as "interrupted": nothing runs by itself at start, and Retry starts it again.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shlex
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
    """The command for default_shell(), as the log shows it; command_args is what it quotes."""
    command_args: list[str] = field(default_factory=list)

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
        **command_fields(convert_command(plan)),
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
        **command_fields(quantize_command(request)),
    )


def command_fields(args: list[str]) -> dict[str, Any]:
    """A record's command_args and command_line; no line (nothing to copy) for arguments no shell can carry."""
    try:
        return {"command_args": args, "command_line": format_command(args)}
    except ValueError:
        return {"command_args": args, "command_line": ""}


def quantize_command(request: dict[str, Any]) -> list[str]:
    """The `main.py quantize` arguments that run this request again from a terminal."""
    args = [
        *program_command("quantize"),
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
        *program_command("convert"),
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


SHELLS = ("powershell", "cmd", "posix")
"""The shells a command line can be copied for; `default_shell()` picks the one the user most likely has."""

# Bare words that mean themselves to every shell here (and to PowerShell's native-argument layer): no quoting needed.
_BARE = re.compile(r"(?:[A-Za-z_/\\][A-Za-z0-9_./\\:=+-]*|--?[A-Za-z][A-Za-z0-9-]*)")
# PowerShell ends a single-quoted string at any of these, so each is doubled inside one.
_PS_SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"
# cmd.exe expands %name% (and !name! with delayed expansion) even inside double quotes.
_CMD_EXPANDS = "%!"


def default_shell() -> str:
    """PowerShell on Windows (Windows 11's terminal opens it by default), a POSIX shell elsewhere."""
    return "powershell" if sys.platform == "win32" else "posix"


def program_command(*args: str) -> list[str]:
    """The installed program with `args`: a frozen app is its own executable; from source, Python and main.py."""
    from .runner import app_command

    return app_command(*args)


def format_command(args: list[str], shell: str | None = None) -> str:
    """`args` as one line that, pasted into `shell` ('powershell', 'cmd' or 'posix'; default_shell() when None),
    runs exactly these arguments and nothing else. ValueError when the shell cannot carry one of them."""
    shell = shell or default_shell()
    if any("\0" in arg for arg in args):
        raise ValueError("an argument holds a NUL character, which no command line can carry")
    if shell == "posix":
        return shlex.join(args)
    if shell == "cmd":
        return " ".join(quote_cmd(arg) for arg in args)
    if shell == "powershell":
        return _powershell_command(args)
    raise ValueError(f"unknown shell {shell!r}; use one of {', '.join(SHELLS)}")


def quote_cmd(arg: str) -> str:
    """One argument for cmd.exe, read back by the Microsoft C runtime's argument parser.

    The argument is double-quoted and an embedded quote is doubled (`""`, which the runtime reads as one quote
    inside a quoted argument), so cmd.exe's own quote state never leaves the argument's quotes: `& | < > ( ) ^`
    stay literal. `%` and `!` are expanded by cmd.exe even inside quotes, so the quotes are closed around each as
    `"^%"`: the caret keeps it literal and the runtime joins the pieces. Backslashes are doubled only where they
    come before a quote, as the runtime's rules ask. A line break cannot be carried: pasting it runs the line.
    """
    if "\n" in arg or "\r" in arg:
        raise ValueError("cmd.exe cannot take an argument with a line break; copy the command for PowerShell")
    if _BARE.fullmatch(arg):
        return arg
    parts, backslashes = ['"'], 0
    for char in arg:
        if char == "\\":
            backslashes += 1
            continue
        if char == '"':
            parts.append("\\" * (2 * backslashes) + '""')
        elif char in _CMD_EXPANDS:
            parts.append("\\" * (2 * backslashes) + f'"^{char}"')
        else:
            parts.append("\\" * backslashes + char)
        backslashes = 0
    parts.append("\\" * (2 * backslashes) + '"')
    return "".join(parts)


def quote_powershell(arg: str) -> str:
    """One argument as a PowerShell single-quoted string: nothing inside it is expanded (`$`, backticks, `;`, `&`,
    `|`, `%`); only the quote characters are special and each is doubled."""
    if _BARE.fullmatch(arg):
        return arg
    return "'" + "".join(char * 2 if char in _PS_SINGLE_QUOTES else char for char in arg) + "'"


def _powershell_command(args: list[str]) -> str:
    """PowerShell hands a native program a command line it writes itself, in two ways: 7.3 and later quote each
    argument properly; Windows PowerShell 5.1 ('Legacy') drops empty arguments and leaves embedded `"` and a final
    backslash unescaped. The two agree on every other argument. When one needs the difference, the command runs in
    a script block that asks for Legacy passing (a no-op on 5.1, local to the block on 7) and each argument is
    given already written for the C runtime's parser, which Legacy passes through untouched."""
    if not any(_legacy_differs(arg) for arg in args):
        program, *rest = [quote_powershell(arg) for arg in args]
        return " ".join([f"& {program}" if program.startswith("'") else program, *rest])
    program, *rest = args  # the program is found by PowerShell, not passed: it is never written for the runtime
    written = [program, *(arg if _BARE.fullmatch(arg) else _msvc_quote(arg) for arg in rest)]
    inner = " ".join(quote_powershell(arg) for arg in written)
    return "& { $PSNativeCommandArgumentPassing = 'Legacy'; & " + inner + " }"


def _legacy_differs(arg: str) -> bool:
    return arg == "" or '"' in arg or (arg.endswith("\\") and any(char.isspace() for char in arg))


def _msvc_quote(arg: str) -> str:
    """`arg` double-quoted for the Microsoft C runtime's parser: `\\"` for a quote, backslashes doubled before one."""
    parts, backslashes = ['"'], 0
    for char in arg:
        if char == "\\":
            backslashes += 1
            continue
        if char == '"':
            parts.append("\\" * (2 * backslashes + 1) + '"')
        else:
            parts.append("\\" * backslashes + char)
        backslashes = 0
    parts.append("\\" * (2 * backslashes) + '"')
    return "".join(parts)


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
