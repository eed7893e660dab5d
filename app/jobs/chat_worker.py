"""The chat child: `main.py worker chat SPEC_JSON` loads a model once and then serves requests from stdin.

The window never loads onnxruntime-genai itself; each model it chats with lives in one of these children,
so switching models or closing the window frees the memory by ending the process.

SPEC: {"model": folder, "ep": provider or null, "device_id": int or null, "system": text, "settings": {...},
"check_template": bool}. Requests, one JSON object per line on stdin:

    {"op": "send", "text": "..."}      {"op": "regenerate"}      {"op": "stop"}      {"op": "clear"}
    {"op": "settings", "settings": {"temperature": 0.7, ...}}      {"op": "system", "text": "..."}      {"op": "quit"}
    {"op": "history", "turns": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}
      (the conversation so far, replacing this one's: side by side, the second model continues the first's)

A plain "cancel" line or the end of stdin (the parent is gone) ends the child at once. Answers are protocol
lines (app/jobs/protocol.py): ChatEvent loading/ready/failed/template/reply/refused/settings/cleared/history, and one
Piece per streamed piece of text.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..errors import ForgeError
from .protocol import CANCEL_LINE, ChatEvent, Piece

EXIT_OK, EXIT_INPUT, EXIT_CANCELLED = 0, 2, 130


class ChatServer:
    """Serves one ChatSession: requests are read on the main thread, a reply streams on a thread of its own."""

    def __init__(self, session: Any, emit: Callable[[Any], None]) -> None:
        self.session = session
        self.emit = emit
        # Cleared before the reply is announced: the parent may send the next request the moment it reads it.
        self._streaming = threading.Event()

    def busy(self) -> bool:
        return self._streaming.is_set()

    def handle(self, request: dict[str, Any]) -> bool:
        """Serve one request; False when the child should end."""
        op = request.get("op")
        if op == "quit":
            return False
        if op == "stop":
            self.session.stop()
            return True
        if self.busy():
            self.emit(ChatEvent("refused", {"op": op, "message": "a reply is still streaming; stop it first."}))
            return True
        try:
            self._serve(op, request)
        except ForgeError as error:
            self.emit(ChatEvent("refused", {"op": op, "message": str(error)}))
        return True

    def _serve(self, op: Any, request: dict[str, Any]) -> None:
        if op == "send":
            self._start(self.session.stream(str(request.get("text", ""))))
        elif op == "regenerate":
            self._start(self.session.regenerate())
        elif op == "clear":
            self.session.clear()
            self.emit(ChatEvent("cleared"))
        elif op == "history":
            self.session.set_history(request.get("turns"))
            self.emit(ChatEvent("history", {"turns": len(self.session.transcript.turns)}))
        elif op == "system":
            self.session.set_system(str(request.get("text", "")))
            self.emit(ChatEvent("system", {"text": self.session.transcript.system}))
        elif op == "settings":
            settings = self.session.set_settings(dict(request.get("settings", {})))
            self.emit(ChatEvent("settings", settings.to_dict()))
        else:
            raise ForgeError(f"unknown chat request '{op}'.")

    def _start(self, pieces: Iterator[str]) -> None:
        self._streaming.set()
        threading.Thread(target=self._stream, args=(pieces,), daemon=True).start()

    def _stream(self, pieces: Iterator[str]) -> None:
        try:
            for piece in pieces:
                self.emit(Piece(piece))
        except Exception as error:  # noqa: BLE001 - a failed reply is reported; the child keeps serving
            self._streaming.clear()
            self.emit(ChatEvent("refused", {"op": "send", "message": f"the reply failed: {error}"}))
            return
        self._streaming.clear()
        self.emit(ChatEvent("reply", self.session.last_reply().to_dict()))


def requests(read: Callable[[], bytes]) -> Iterator[dict[str, Any] | None]:
    """Requests from the byte source; None for a cancel line. Ends at end of input."""
    pending = b""
    while chunk := read():
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            text = line.decode("utf-8", errors="replace").strip()
            if text == CANCEL_LINE.strip():
                yield None
            elif text:
                try:
                    request = json.loads(text)
                except ValueError:
                    request = {"op": text}
                yield request if isinstance(request, dict) else {"op": str(request)}


def run_chat(spec: dict[str, Any], emit: Callable[[Any], None]) -> int:
    from ..chat import ChatSession, ProviderUnavailableError, check_template

    folder = Path(str(spec.get("model", "")))
    emit(ChatEvent("loading", {"model": str(folder), "ep": spec.get("ep"), "device_id": spec.get("device_id")}))
    try:
        session = ChatSession(folder, spec.get("ep"), spec.get("device_id"), str(spec.get("system", "")))
        if spec.get("settings"):
            session.set_settings(dict(spec["settings"]))
    except ForgeError as error:
        cpu_build = getattr(error, "cpu_build", None) if isinstance(error, ProviderUnavailableError) else None
        emit(ChatEvent("failed", {"message": str(error), "cpu_build": str(cpu_build) if cpu_build else None}))
        return EXIT_INPUT
    emit(
        ChatEvent(
            "ready",
            {
                "model": str(folder),
                "provider": session.provider,
                "context_length": session.context,
                "settings": session.settings.to_dict(),
            },
        )
    )
    if spec.get("check_template", True):
        verdict = threading.Thread(
            target=lambda: emit(ChatEvent("template", {"warning": check_template(session.tokenizer, folder)})),
            daemon=True,
        )
        verdict.start()
    server = ChatServer(session, emit)
    for request in requests(lambda: os.read(0, 65536)):
        if request is None:
            sys.stderr.flush()
            os._exit(EXIT_CANCELLED)
        if not server.handle(request):
            break
    session.stop()
    sys.stderr.flush()
    # Do not wait for a streaming reply or the template check: the parent asked us to go (or went away).
    os._exit(EXIT_OK)
