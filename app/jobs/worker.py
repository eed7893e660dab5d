"""The worker child: `main.py worker JOB SPEC_JSON` runs one heavy job and speaks the job protocol.

Its real stdout carries protocol lines only. The OS-level stdout is pointed at stderr, so whatever
C++ libraries print reaches the parent as free log text instead of corrupting the protocol.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any, TextIO

from ..errors import ForgeError
from .protocol import CANCEL_LINE, Error, Log, Message, Progress, Result, encode

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_OUT_OF_MEMORY, EXIT_CANCELLED = 0, 1, 2, 3, 130


def _convert(spec: dict[str, Any], emit: Callable[[Message], None]) -> dict[str, Any]:
    from ..convert import ConvertPlan, run_conversion

    return run_conversion(ConvertPlan.from_dict(spec), emit)


def _download(spec: dict[str, Any], emit: Callable[[Message], None]) -> dict[str, Any]:
    """Download a Hub repo's conversion files; the token comes from HF_TOKEN or the credential store, never argv."""
    from ..hub import download_checkpoint, get_token

    token = os.environ.get("HF_TOKEN") or get_token()
    reporter = _DownloadProgress(emit)
    result = download_checkpoint(spec["repo_id"], spec.get("revision"), token=token, on_progress=reporter)
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
            channel.emit(Log("cancel requested: stopping", "worker"))
            break
    sys.stderr.flush()
    os._exit(EXIT_CANCELLED)


def run(job: str, spec_json: str) -> int:
    try:
        channel = _open_channel()
    except OSError:
        return EXIT_FAILED  # started without a stdout: nobody is listening for the result
    if job == "chat":  # long-lived: it reads requests from stdin itself
        from .chat_worker import run_chat

        return run_chat(json.loads(spec_json), channel.emit)
    threading.Thread(target=_watch_stdin, args=(channel,), daemon=True).start()
    if job not in JOBS:
        channel.emit(Error(f"unknown job '{job}'", "InputError"))
        return EXIT_INPUT
    try:
        result = JOBS[job](json.loads(spec_json), channel.emit)
    except ForgeError as error:
        channel.emit(Error(str(error), type(error).__name__))
        return EXIT_INPUT
    except MemoryError:
        channel.emit(
            Error("the worker ran out of memory; pick a smaller preset or close other programs.", "OutOfMemory")
        )
        return EXIT_OUT_OF_MEMORY
    except Exception as error:  # noqa: BLE001 - every failure must reach the parent as one message
        channel.emit(Error(f"{type(error).__name__}: {error}", "InternalError", traceback.format_exc()))
        return EXIT_FAILED
    channel.emit(Result(result))
    return EXIT_OK
