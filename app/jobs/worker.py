"""The worker child: `main.py worker JOB @SPEC_FILE` (or an inline SPEC_JSON) runs one heavy job and speaks the
job protocol. The spec file is deleted once read.

Its real stdout carries protocol lines only. The OS-level stdout is pointed at stderr, so whatever
C++ libraries print reaches the parent as free log text instead of corrupting the protocol.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from ..errors import ForgeError
from .protocol import CANCEL_LINE, Error, Log, Message, Progress, Result, encode

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_OUT_OF_MEMORY, EXIT_CANCELLED = 0, 1, 2, 3, 130


def _convert(spec: dict[str, Any], emit: Callable[[Message], None]) -> dict[str, Any]:
    from ..convert import ConvertPlan, run_conversion

    return run_conversion(ConvertPlan.from_dict(spec), emit)


def _convert_batch(spec: dict[str, Any], emit: Callable[[Message], None]) -> dict[str, Any]:
    from ..batch import run_batch

    return run_batch(spec, emit)


def _download(spec: dict[str, Any], emit: Callable[[Message], None]) -> dict[str, Any]:
    """Download a Hub repo's conversion files; the token comes from HF_TOKEN or the credential store, never argv."""
    from ..hub import download_checkpoint, hub_token

    reporter = _DownloadProgress(emit)
    result = download_checkpoint(spec["repo_id"], spec.get("revision"), token=hub_token(), on_progress=reporter)
    return {"path": str(result.path), "revision": result.revision_sha, "offline": result.offline}


class _DownloadProgress:
    """Byte counts as Progress messages, at most one per tenth of a percent (huggingface_hub reports per chunk)."""

    def __init__(self, emit: Callable[[Message], None]) -> None:
        self._emit = emit
        self._last = -1.0

    def __call__(self, done: int, total: int) -> None:
        percent = round(100.0 * done / total, 1) if total else 100.0
        if percent == self._last:
            return
        self._last = percent
        self._emit(Progress(percent, "downloading", f"{done / 1e6:.1f} of {total / 1e6:.1f} MB"))


def _quantize(spec: dict[str, Any], emit: Callable[[Message], None]) -> dict[str, Any]:
    from ..quantize import run_quantization

    return run_quantization(spec, emit)


def _measure(spec: dict[str, Any], emit: Callable[[Message], None]) -> dict[str, Any]:
    from ..report import MeasureSettings, measure

    folder = spec["folder"]
    return {"output": folder, "figures": measure(folder, MeasureSettings(**spec.get("settings", {})), emit)}


def _report(spec: dict[str, Any], emit: Callable[[Message], None]) -> dict[str, Any]:
    from ..report import measure_all

    return measure_all(spec, emit)


JOBS: dict[str, Callable[[dict[str, Any], Callable[[Message], None]], dict[str, Any]]] = {
    "convert": _convert,
    "convert-batch": _convert_batch,
    "download": _download,
    "quantize": _quantize,
    "measure": _measure,
    "report": _report,
}


class Channel:
    """The protocol stream: a private copy of stdout, line-buffered, safe to use from several threads."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def emit(self, message: Message) -> None:
        with self._lock:
            self._stream.write(encode(message))
            self._stream.flush()


def _open_channel() -> Channel:
    """Line-buffered and explicit: a frozen app ignores PYTHONUNBUFFERED. A windowed .exe has sys.stdout and
    sys.stderr set to None (main.py puts devnull there) but still gets the parent's pipes as fds 1 and 2."""
    if sys.stdout is not None:
        sys.stdout.flush()
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return Channel(os.fdopen(protocol_fd, "w", encoding="utf-8", buffering=1))


def _watch_stdin(channel: Channel) -> None:
    """Exit at once when asked to cancel, or when the parent is gone (its end of stdin closed)."""
    received = b""
    # os.read, not sys.stdin: a daemon thread blocked inside a buffered reader aborts interpreter shutdown.
    while chunk := os.read(0, 1024):
        received += chunk
        if CANCEL_LINE.encode() in received:
            with contextlib.suppress(OSError, ValueError):
                channel.emit(Log("cancel requested: stopping", "worker"))
            break
    from ..staging import remove_mine

    try:
        remove_mine()  # the parent sweeps too, but it may be gone (killed): then nobody else would
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()  # a pipe to a parent that is gone
    finally:
        os._exit(EXIT_CANCELLED)


def read_spec(argument: str) -> dict[str, Any]:
    """The job spec: `@path` names a file the parent wrote (deleted here once read), anything else is JSON."""
    if argument.startswith("@"):
        path = Path(argument[1:])
        try:
            text = path.read_text(encoding="utf-8")
        finally:
            path.unlink(missing_ok=True)
    else:
        text = argument
    spec = json.loads(text)
    if not isinstance(spec, dict):
        raise ValueError("the job spec is not a JSON object")
    return spec


def run(job: str, spec_argument: str) -> int:
    try:
        channel = _open_channel()
    except OSError:
        return EXIT_FAILED  # started without a stdout: nobody is listening for the result
    try:
        spec = read_spec(spec_argument)
    except (OSError, ValueError) as error:
        channel.emit(Error(f"the job's spec cannot be read ({error}); start the job again.", "InputError"))
        return EXIT_INPUT
    if job == "chat":  # long-lived: it reads requests from stdin itself
        from .chat_worker import run_chat

        return run_chat(spec, channel.emit)
    threading.Thread(target=_watch_stdin, args=(channel,), daemon=True).start()
    if job not in JOBS:
        channel.emit(Error(f"unknown job '{job}'", "InputError"))
        return EXIT_INPUT
    try:
        result = JOBS[job](spec, channel.emit)
    except ForgeError as error:
        channel.emit(Error(str(error), type(error).__name__))
        return EXIT_INPUT
    except MemoryError:
        channel.emit(
            Error("the worker ran out of memory; pick a smaller preset or close other programs.", "OutOfMemory")
        )
        return EXIT_OUT_OF_MEMORY
    except OSError as error:
        channel.emit(Error(os_error_sentence(error, spec), "OSError", traceback.format_exc()))
        return EXIT_FAILED
    except Exception as error:  # noqa: BLE001 - every failure must reach the parent as one message
        channel.emit(Error(internal_error_sentence(error), "InternalError", traceback.format_exc()))
        return EXIT_FAILED
    channel.emit(Result(result))
    return EXIT_OK


def os_error_sentence(error: OSError, spec: dict[str, Any]) -> str:
    """One sentence for a failure of the disk or the file system, saying what to do."""
    name = error.filename or "a file"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        from ..convert import disk_needed, existing_ancestor, free_disk_bytes, human_size

        try:
            drive = existing_ancestor(Path(spec.get("request", spec)["output"]).expanduser())
            room = f" ({human_size(free_disk_bytes(drive))} free on {drive} now"
            needed = spec.get("output_bytes")
            room += f"; this build needs about {human_size(disk_needed(needed))})" if needed else ")"
        except (KeyError, TypeError, ValueError, OSError):
            room = ""
        return (
            f"the disk ran out of space while writing {name}{room}; "
            "free some space or choose an output folder on another drive, then start the job again."
        )
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"permission denied for {name}; choose a folder you can write to, then start the job again."
    if isinstance(error, FileNotFoundError):
        return f"{name} is missing (it was moved or deleted while the job ran); put it back and start again."
    return f"a file operation failed on {name} ({error.strerror or error}); check the disk and start again."


def internal_error_sentence(error: Exception) -> str:
    """A failure nobody anticipated: what it was, in one line, and where the details are."""
    first_line = str(error).strip().splitlines()[0][:300] if str(error).strip() else "no message"
    return f"the job failed unexpectedly ({type(error).__name__}: {first_line}); the log has the details."
