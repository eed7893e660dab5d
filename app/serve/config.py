"""What a server is started with, and what its request log says about each request (no heavy imports)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
RETRY_AFTER_SECONDS = 1


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    cors_origins: list[str] = field(default_factory=list)
    max_body_bytes: int = 1024 * 1024
    slots: int = 8
    """Requests generating at once per model; more wait in its queue."""
    max_pending: int = 64
    """Requests running or waiting per model; one more is answered 429."""
    batching: str = "auto"
    ep: str | None = None
    device_id: int | None = None


@dataclass
class RequestRecord:
    """One line of the request log: what was asked, how it ended, and its figures."""

    id: str
    model: str
    endpoint: str
    status: int
    stream: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    first_token_ms: float = 0.0
    tokens_per_second: float = 0.0
    seconds: float = 0.0
    finish_reason: str = ""
    error: str = ""
    disconnected: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
