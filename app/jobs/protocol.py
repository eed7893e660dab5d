"""The job protocol: how a worker child talks to whoever started it (the CLI or the window).

The child writes one JSON object per line on its stdout. Every object has a "type":

    {"type": "log", "text": "Reading layer 3", "stream": "builder"}
    {"type": "progress", "percent": 42.5, "stage": "layers", "detail": "layer 3 of 8"}
    {"type": "result", "data": {...}}                      # once, on success
    {"type": "error", "message": "...", "kind": "InputError", "details": "traceback"}   # once, on failure

Anything else the child prints (stderr, C++ libraries writing to the console) is free text that the
parent shows as log lines. The parent cancels by writing "cancel\\n" on the child's stdin, then kills
the child's process tree if it has not exited shortly after.
"""

from __future__ import annotations

import codecs
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Union

CANCEL_LINE = "cancel\n"


@dataclass
class Log:
    text: str
    stream: str = "worker"
    type: str = "log"


@dataclass
class Progress:
    percent: float
    stage: str
    detail: str = ""
    type: str = "progress"


@dataclass
class Result:
    data: dict[str, Any] = field(default_factory=dict)
    type: str = "result"


@dataclass
class Error:
    message: str
    kind: str = "ForgeError"
    details: str = ""
    type: str = "error"


@dataclass
class Piece:
    """Chat worker: the next piece of the reply being streamed."""

    text: str
    type: str = "piece"


@dataclass
class ChatEvent:
    """Chat worker: loading, ready, failed, reply (with its figures), refused (a request that cannot be served),
    template (the template check's verdict), settings. data carries what each event needs."""

    event: str
    data: dict[str, Any] = field(default_factory=dict)
    type: str = "chat"


Message = Union[Log, Progress, Result, Error, Piece, ChatEvent]  # noqa: UP007 - a runtime alias, Python 3.10 included
_TYPES: dict[str, type] = {
    "log": Log,
    "progress": Progress,
    "result": Result,
    "error": Error,
    "piece": Piece,
    "chat": ChatEvent,
}


def encode(message: Message) -> str:
    return json.dumps(asdict(message), ensure_ascii=False) + "\n"


def decode(line: str) -> Message:
    """A protocol line becomes its message; any other text becomes a Log of the child's raw output."""
    stripped = line.strip()
    if stripped.startswith("{"):
        try:
            payload = json.loads(stripped)
        except json.JSONDecodeError:
            payload = None
        if isinstance(payload, dict) and payload.get("type") in _TYPES:
            cls = _TYPES[payload.pop("type")]
            try:
                return cls(**payload)
            except TypeError:
                pass
    return Log(text=line.rstrip("\r\n"), stream="stderr")


class LineAssembler:
    """Turns raw byte chunks into complete text lines.

    Decodes incrementally (a chunk may end inside a UTF-8 character) and collapses carriage-return
    updates (tqdm bars): of a line rewritten with "\\r", only the text after the last "\\r" is kept.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""

    def feed(self, chunk: bytes) -> list[str]:
        self._pending += self._decoder.decode(chunk)
        *complete, self._pending = self._pending.split("\n")
        return [line for line in (collapse_cr(raw) for raw in complete) if line]

    def flush(self) -> list[str]:
        tail = collapse_cr(self._pending + self._decoder.decode(b"", final=True))
        self._pending = ""
        return [tail] if tail else []


def collapse_cr(line: str) -> str:
    """Of a line rewritten in place with carriage returns, the text a terminal would show."""
    line = line.rstrip("\r")
    return line.rsplit("\r", 1)[-1]
