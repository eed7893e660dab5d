"""The HTTP side: FastAPI routes over the schedulers, OpenAI's JSON and server-sent events, the safety checks.

Every refusal is OpenAI's error object, {"error": {"message", "type", "param", "code"}}, with one sentence.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException

from ..chat import GenerationSettings, context_length, load_genai, load_model, read_genai_config, render_prompt
from .config import LOOPBACK, RETRY_AFTER_SECONDS, RequestRecord, ServeConfig
from .generation import Event, Job, Scheduler, engine_kind, first_line, make_scheduler
from .requests import Parsed, RequestError, parse_body, parse_chat, parse_completion

_POLL_SECONDS = 0.1


class ClosingStream(StreamingResponse):
    """A stream whose generator is closed however the response ends: on a disconnect Starlette cancels the send,
    and a generator left waiting at a `yield` would keep its request admitted until garbage collection."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.body_iterator.aclose()


class ServedModel:
    """A library model, loaded, with the scheduler that runs its requests."""

    def __init__(self, model_id: str, folder: Path, config: ServeConfig) -> None:
        self.id, self.folder = model_id, Path(folder)
        self.model, self.tokenizer = load_model(self.folder, config.ep, config.device_id, engine_overlay(config))
        self.context = context_length(self.folder)
        self.defaults = GenerationSettings.from_genai_config(read_genai_config(self.folder))
        self.scheduler: Scheduler = make_scheduler(
            self.model, self.tokenizer, self.context, config.slots, config.batching
        )
        self._guided: Scheduler | None = None
        self._slots = config.slots
        self.created = int(self.folder.stat().st_mtime)
        self.pending = 0
        self._lock = threading.Lock()
        self.max_pending = config.max_pending

    def admit(self) -> None:
        with self._lock:
            if self.pending >= self.max_pending:
                raise RequestError(
                    f"{self.id} already has {self.pending} requests running or waiting; retry in a moment.",
                    status=429,
                    kind="rate_limit_error",
                    code="rate_limit_exceeded",
                    headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                )
            self.pending += 1

    def release(self) -> None:
        with self._lock:
            self.pending -= 1

    def scheduler_for(self, job: Job) -> Scheduler:
        """What the Engine cannot run as asked (see EngineScheduler.accepts) runs in a fair queue beside it."""
        if self.scheduler.accepts(job):
            return self.scheduler
        with self._lock:
            if self._guided is None:
                self._guided = make_scheduler(self.model, self.tokenizer, self.context, self._slots, "queue")
            return self._guided

    def running(self) -> int:
        return self.scheduler.active + (self._guided.active if self._guided is not None else 0)

    def close(self) -> None:
        self.scheduler.close()
        if self._guided is not None:
            self._guided.close()


def engine_overlay(config: ServeConfig) -> dict[str, Any] | None:
    """The Engine batches 4 requests unless told otherwise: as many as the server runs at once."""
    if config.batching == "queue" or engine_kind(load_genai()) != "engine":
        return None
    return {"engine": {"static_batching": {"max_batch_size": config.slots}}}


def guidance_available() -> bool:
    return hasattr(load_genai().GeneratorParams, "set_guidance")


def create_app(models: dict[str, ServedModel], config: ServeConfig, on_record: Callable[[RequestRecord], None]) -> Any:
    app = FastAPI(title="ONNX Forge", docs_url=None, redoc_url=None, openapi_url=None)
    guided = guidance_available()
    check_host = config.host in LOOPBACK

    if config.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=config.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )

    @app.exception_handler(RequestError)
    async def refused(request: Request, error: RequestError) -> JSONResponse:
        if not getattr(error, "logged", False):
            record = RequestRecord("", "", request.url.path, error.status)
            record.error = str(error)
            with contextlib.suppress(Exception):
                on_record(record)
        return JSONResponse(error.body(), status_code=error.status, headers=error.headers)

    @app.exception_handler(Exception)
    async def crashed(request: Request, error: Exception) -> JSONResponse:
        sentence = f"the server failed on this request ({type(error).__name__}: {first_line(error)}); see its log."
        return JSONResponse(RequestError(sentence, status=500, kind="server_error").body(), 500)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        sentence = f"there is no {request.method} {request.url.path} here; the API is under /v1."
        code = "not_found" if error.status_code == 404 else "method_not_allowed"
        return JSONResponse(RequestError(sentence, status=error.status_code, code=code).body(), error.status_code)

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Any:
        try:
            _check_host(request, check_host)
            _check_key(request, config.api_key)
        except RequestError as error:
            return JSONResponse(error.body(), status_code=error.status, headers=error.headers)
        return await call_next(request)

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [_model_card(model) for model in models.values()]}

    @app.get("/v1/models/{model_id:path}")
    async def one_model(model_id: str) -> dict[str, Any]:
        return _model_card(_find(models, model_id))

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        body = await _read_body(request, config.max_body_bytes)
        model = _find(models, body.get("model"))
        parsed = parse_chat(body, model.defaults, guided)
        prompt = _render(model, parsed.messages)
        return await _serve(request, model, parsed, prompt, "chat.completion", on_record, ClosingStream)

    @app.post("/v1/completions")
    async def complete(request: Request) -> Any:
        body = await _read_body(request, config.max_body_bytes)
        model = _find(models, body.get("model"))
        parsed = parse_completion(body, model.defaults)
        return await _serve(request, model, parsed, parsed.prompt, "text_completion", on_record, ClosingStream)

    return app


def _render(model: ServedModel, messages: list[dict[str, Any]]) -> str:
    """The prompt through the model's own template; a template that refuses the messages is the client's 400."""
    try:
        return render_prompt(model.tokenizer, model.folder, messages)
    except Exception as error:  # noqa: BLE001 - the template's own words, whatever it raised
        reason = first_line(error).split(" at row ", 1)[0].rstrip(" .:")
        raise RequestError(
            f"{model.id}'s chat template refused these messages ({reason}); change the roles or content.",
            param="messages",
        ) from None


def _check_host(request: Any, check: bool) -> None:
    """Bound to loopback, only loopback names are served: a web page cannot reach the API by DNS rebinding."""
    if not check:
        return
    host = request.headers.get("host", "")
    name = host[1 : host.find("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
    if name not in LOOPBACK:
        raise RequestError(f"the Host {host!r} is not this machine's loopback address; use 127.0.0.1.", status=421)


def _check_key(request: Any, key: str | None) -> None:
    if key is None:
        return
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {key}".encode()):
        raise RequestError(
            "the API key is missing or wrong; send it as 'Authorization: Bearer KEY'.",
            status=401,
            kind="authentication_error",
            code="invalid_api_key",
        )


async def _read_body(request: Any, limit: int) -> dict[str, Any]:
    if not request.headers.get("content-type", "").lower().startswith("application/json"):
        raise RequestError("send the request body as JSON with 'Content-Type: application/json'.", status=415)
    declared = request.headers.get("content-length")
    too_big = RequestError(f"the request body is over {limit} bytes; send a shorter one.", status=413, code="too_large")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return parse_body(b"".join(chunks))


def _find(models: dict[str, ServedModel], name: Any) -> ServedModel:
    if not isinstance(name, str) or not name:
        raise RequestError("model is missing; name one of GET /v1/models.", param="model")
    model = models.get(name)
    if model is None:
        shown = name if len(name) <= 80 else name[:80] + "..."
        raise RequestError(
            f"the model {shown!r} is not served here; use one of {', '.join(models)}.",
            status=404,
            param="model",
            code="model_not_found",
        )
    return model


def _model_card(model: ServedModel) -> dict[str, Any]:
    return {"id": model.id, "object": "model", "created": model.created, "owned_by": "onnx-forge"}


def _budget(model: ServedModel, parsed: Parsed, prompt_tokens: int) -> int:
    if prompt_tokens >= model.context:
        raise RequestError(
            f"the prompt is {prompt_tokens} tokens and {model.id} reads at most {model.context} tokens in all; "
            "shorten the messages.",
            param="messages",
            code="context_length_exceeded",
        )
    room = model.context - prompt_tokens
    if parsed.max_tokens is not None and parsed.max_tokens > room:
        raise RequestError(
            f"{model.id} reads at most {model.context} tokens in all; the prompt takes {prompt_tokens}, which leaves "
            f"{room} for the reply, not the {parsed.max_tokens} asked: lower max_tokens or shorten the prompt.",
            param="max_tokens",
            code="context_length_exceeded",
        )
    return parsed.max_tokens or room


class _Receiver:
    """Events from the scheduler thread, delivered into the request's event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[Event] = asyncio.Queue()

    def send(self, event: Event) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: the server is gone, and so is the client
            self.loop.call_soon_threadsafe(self.queue.put_nowait, event)


async def _serve(
    request: Any,
    model: ServedModel,
    parsed: Parsed,
    prompt: str,
    kind: str,
    on_record: Callable[[RequestRecord], None],
    streaming: Any,
) -> Any:
    tokens = model.tokenizer.encode(prompt)
    budget = _budget(model, parsed, len(tokens))
    receiver = _Receiver()
    job = Job(tokens, budget, parsed.search, receiver.send, stop=parsed.stop, guidance=parsed.guidance)
    record = RequestRecord(
        id=("chatcmpl-" if kind == "chat.completion" else "cmpl-") + secrets.token_hex(12),
        model=model.id,
        endpoint=request.url.path,
        status=200,
        stream=parsed.stream,
        prompt_tokens=len(tokens),
    )
    model.admit()
    scheduler = model.scheduler_for(job)
    scheduler.submit(job)
    reply = _Reply(record, kind, parsed, int(time.time()))
    if parsed.stream:
        return streaming(
            _stream(request, model, job, receiver, reply, on_record),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    try:
        text, reason = await _collect(request, model, job, receiver)
    except RequestError as error:
        record.status, record.error = error.status, str(error)
        error.logged = True  # type: ignore[attr-defined]
        raise
    finally:
        _finish(model, job, record, on_record)
    record.finish_reason = reason
    return reply.whole(text, reason)


async def _collect(request: Any, model: ServedModel, job: Job, receiver: _Receiver) -> tuple[str, str]:
    pieces = []
    while True:
        try:
            what, value = await asyncio.wait_for(receiver.queue.get(), _POLL_SECONDS)
        except asyncio.TimeoutError:
            if await request.is_disconnected():
                job.cancel()
                model.scheduler_for(job).wake()
                raise RequestError("the client went away.", status=499) from None
            continue
        if what == "text":
            pieces.append(value)
        elif what == "done":
            return "".join(pieces), value
        else:
            status = 400 if job.new_tokens == 0 else 500
            raise RequestError(f"{model.id} could not generate: {value.rstrip('.')}.", status=status)


async def _stream(
    request: Any,
    model: ServedModel,
    job: Job,
    receiver: _Receiver,
    reply: _Reply,
    on_record: Callable[[RequestRecord], None],
) -> AsyncIterator[str]:
    record = reply.record
    ended = False
    try:
        yield reply.first_chunk()
        pieces: list[str] = []
        while True:
            events = [await receiver.queue.get()]
            while not receiver.queue.empty():  # tokens that came while the last chunk went out travel as one
                events.append(receiver.queue.get_nowait())
            text = "".join(value for what, value in events if what == "text")
            if text:
                pieces.append(text)
                chunk = reply.piece(text)
                if chunk:
                    yield chunk
            what, value = events[-1]
            if what == "text":
                continue
            if what == "done":
                record.finish_reason, record.completion_tokens = value, job.new_tokens
                yield reply.last_chunks("".join(pieces), value)
                ended = True
                return
            else:
                record.status, record.error = 500, value
                yield _sse(RequestError(f"{model.id} could not generate: {value.rstrip('.')}.", status=500).body())
                ended = True
                return
    finally:
        if not ended:
            record.disconnected = True
            job.cancel()
            model.scheduler_for(job).wake()
        _finish(model, job, record, on_record)


def _finish(model: ServedModel, job: Job, record: RequestRecord, on_record: Callable[[RequestRecord], None]) -> None:
    model.release()
    record.completion_tokens = job.new_tokens
    record.finish_reason = record.finish_reason or job.reason
    end = job.finished or time.perf_counter()
    record.seconds = round(end - job.submitted, 4)
    if job.new_tokens:
        record.first_token_ms = round((job.first_token - job.submitted) * 1000, 2)
    if job.new_tokens > 1 and end > job.first_token:
        record.tokens_per_second = round((job.new_tokens - 1) / (end - job.first_token), 2)
    with contextlib.suppress(Exception):  # a broken log reader must not break the reply
        on_record(record)


def _sse(payload: dict[str, Any] | str) -> str:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)}\n\n"


class _Reply:
    """OpenAI's response objects for one request, whole or as stream chunks."""

    def __init__(self, record: RequestRecord, kind: str, parsed: Parsed, created: int) -> None:
        self.record, self.kind, self.parsed, self.created = record, kind, parsed, created
        self.chat = kind == "chat.completion"

    def _head(self, kind: str) -> dict[str, Any]:
        return {"id": self.record.id, "object": kind, "created": self.created, "model": self.record.model}

    def usage(self) -> dict[str, int]:
        prompt, completion = self.record.prompt_tokens, self.record.completion_tokens
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def whole(self, text: str, reason: str) -> dict[str, Any]:
        if not self.chat:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": reason}
            return {**self._head("text_completion"), "choices": [choice], "usage": self.usage()}
        message, reason = self._message(text, reason)
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": reason}
        return {**self._head("chat.completion"), "choices": [choice], "usage": self.usage()}

    def _message(self, text: str, reason: str) -> tuple[dict[str, Any], str]:
        call = _tool_call(text, self.parsed.tool_names) if reason == "stop" else None
        if call is None:
            return {"role": "assistant", "content": text}, reason
        return {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"

    def _chunk(self, delta: dict[str, Any] | None, text: str | None, reason: str | None) -> str:
        if self.chat:
            choice = {"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": reason}
            return _sse({**self._head("chat.completion.chunk"), "choices": [choice]})
        choice = {"index": 0, "text": text or "", "logprobs": None, "finish_reason": reason}
        return _sse({**self._head("text_completion"), "choices": [choice]})

    def first_chunk(self) -> str:
        return self._chunk({"role": "assistant", "content": ""}, "", None) if self.chat else ""

    def piece(self, text: str) -> str:
        if self.parsed.tool_names:
            return ""  # a tool call goes out whole, once its arguments are complete
        return self._chunk({"content": text}, text, None)

    def last_chunks(self, text: str, reason: str) -> str:
        out = ""
        if self.chat and self.parsed.tool_names:
            message, reason = self._message(text, reason)
            if "tool_calls" in message:
                calls = [{"index": 0, **call} for call in message["tool_calls"]]
                out += self._chunk({"tool_calls": calls}, None, None)
            else:
                out += self._chunk({"content": text}, None, None)
        out += self._chunk({}, "", reason)
        if self.parsed.include_usage:
            out += _sse(
                {**self._head(f"{self.kind}.chunk" if self.chat else self.kind), "choices": [], "usage": self.usage()}
            )
        return out + _sse("[DONE]")


def _tool_call(text: str, names: list[str]) -> dict[str, Any] | None:
    if not names:
        return None
    try:
        call = json.loads(text)
    except ValueError:
        return None
    if not isinstance(call, dict) or call.get("name") not in names:
        return None
    arguments = json.dumps(call.get("arguments", {}), ensure_ascii=False)
    return {
        "id": "call_" + secrets.token_hex(8),
        "type": "function",
        "function": {"name": call["name"], "arguments": arguments},
    }
