"""`main.py serve`: library models behind an OpenAI-compatible HTTP API on this machine.

Endpoints: GET /v1/models, GET /v1/models/{id}, POST /v1/chat/completions, POST /v1/completions (JSON, or
server-sent events with "stream": true, ending in `data: [DONE]`). Models are named by their library id, never
by a path: a request can only pick among the folders the server was started with.

Safe by default: it listens on 127.0.0.1 and answers only requests whose Host is a loopback name; any other
address needs an API key (`Authorization: Bearer KEY`); no CORS unless origins are given; bodies over
max_body_bytes get 413, prompts beyond the context 400, more than max_pending requests per model 429 with
Retry-After.

The request log (`--log-format json`, read by the Serve tab) is one JSON object per line on stdout:
    {"type": "listening", "url": "http://127.0.0.1:8000/v1", "models": ["demo-int4"], "batching": "engine"}
    {"type": "request", "id": "chatcmpl-…", "model": "demo-int4", "endpoint": "/v1/chat/completions",
     "status": 200, "stream": true, "prompt_tokens": 12, "completion_tokens": 40, "first_token_ms": 8.1,
     "tokens_per_second": 310.5, "seconds": 0.14, "finish_reason": "length", "error": "", "disconnected": false}
    {"type": "stopped", "load": {"demo-int4": {"pending": 0, "running": 0}}}     (after Ctrl+C / SIGINT)
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import InputError
from .config import LOOPBACK, RequestRecord, ServeConfig

__all__ = ["RequestRecord", "ServeConfig", "Server", "check_config", "library_models"]

MIN_KEY_CHARS = 16


def check_config(config: ServeConfig) -> None:
    """Refuse, in one sentence, a server that would be open to the network without a key."""
    if not 0 <= config.port <= 65535:
        raise InputError(f"the port must be from 0 to 65535, not {config.port}.")
    if config.api_key is not None and (len(config.api_key) < MIN_KEY_CHARS or not config.api_key.isprintable()):
        raise InputError(f"the API key must be at least {MIN_KEY_CHARS} printable characters; use a longer one.")
    if config.host not in LOOPBACK and not _is_loopback_address(config.host) and config.api_key is None:
        raise InputError(
            f"listening on {config.host} lets other machines in: give an --api-key, or listen on 127.0.0.1."
        )
    if config.slots < 1 or config.max_pending < config.slots:
        raise InputError("slots must be at least 1 and max_pending at least slots.")


def _is_loopback_address(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def library_models(names: list[str], library: Any = None) -> dict[str, Path]:
    """Served id -> folder, for ONNX models of the library: named (by id or folder), or all of them.

    A folder named on the command line that is not in the library yet is added to it first, so what is served is
    always what the library lists.
    """
    from ..library import Library

    library = library if library is not None else Library()
    for name in names:
        if Path(name).expanduser().is_dir() and not _find_entry(library.entries(), name):
            library.add_folder(name)
    entries = [entry for entry in library.entries() if entry.kind == "onnx"]
    chosen = [_find_entry(entries, name) or _missing(name, entries) for name in names] if names else entries
    if not chosen:
        raise InputError("the library holds no ONNX Runtime GenAI model; convert one, or name a model folder.")
    served: dict[str, Path] = {}
    for entry in chosen:
        model_id, number = entry.name, 2
        while model_id in served and served[model_id] != Path(entry.path):
            model_id, number = f"{entry.name}-{number}", number + 1
        served[model_id] = Path(entry.path)
    return served


def _find_entry(entries: list[Any], name: str) -> Any:
    folder = Path(name).expanduser()
    resolved = folder.resolve() if folder.exists() else None
    for entry in entries:
        if entry.kind == "onnx" and (entry.name == name or (resolved is not None and Path(entry.path) == resolved)):
            return entry
    return None


def _missing(name: str, entries: list[Any]) -> Any:
    known = ", ".join(entry.name for entry in entries) or "none"
    raise InputError(f"{name} is not an ONNX model in the library (it has: {known}); name a model folder.")


class Server:
    """The models, loaded, and uvicorn serving them on a thread of its own (start/close) or this one (run)."""

    def __init__(
        self, folders: dict[str, Path], config: ServeConfig, on_record: Callable[[RequestRecord], None] | None = None
    ) -> None:
        import uvicorn

        from .server import ServedModel, create_app

        check_config(config)
        self.config = config
        self.models: dict[str, Any] = {}
        try:
            for model_id, folder in folders.items():
                self.models[model_id] = ServedModel(model_id, folder, config)
        except BaseException:
            self._close_models()
            raise
        app = create_app(self.models, config, on_record or (lambda record: None))
        self._uvicorn = uvicorn.Server(
            uvicorn.Config(
                app,
                host=config.host,
                port=config.port,
                log_level="warning",
                access_log=False,
                # Named, not "auto": what a frozen app must bundle is then known (uvicorn imports these by name).
                loop="asyncio",
                http="h11",
                ws="none",
                timeout_graceful_shutdown=2,
                lifespan="off",
            )
        )
        self._thread: threading.Thread | None = None

    @property
    def batching(self) -> str:
        return next(iter(self.models.values())).scheduler.kind if self.models else ""

    @property
    def port(self) -> int:
        servers = getattr(self._uvicorn, "servers", [])
        return servers[0].sockets[0].getsockname()[1] if servers else self.config.port

    @property
    def url(self) -> str:
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        return f"http://{host}:{self.port}/v1"

    def start(self, timeout: float = 30) -> Server:
        self._thread = threading.Thread(target=self._uvicorn.run, name="serve-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._uvicorn.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._close_models()
                raise InputError(f"could not listen on {self.config.host}:{self.config.port}; is the port in use?")
            time.sleep(0.02)
        return self

    def wait(self) -> None:
        """Until the server stops (close() from another thread); Ctrl+C raises KeyboardInterrupt here."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.5)

    def load(self) -> dict[str, dict[str, int]]:
        """Per model: requests admitted (running or waiting) and generators the schedulers still hold."""
        return {
            model_id: {"pending": model.pending, "running": model.running()} for model_id, model in self.models.items()
        }

    def close(self) -> None:
        self._uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._close_models()

    def _close_models(self) -> None:
        for model in self.models.values():
            model.close()
        self.models.clear()
