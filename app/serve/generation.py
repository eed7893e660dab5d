"""Generating for many requests of one model at once, on one thread that owns every onnxruntime-genai call.

Two schedulers with one contract (submit a Job, read its events, cancel it):
- EngineScheduler: onnxruntime-genai's own continuous batching (`og.Engine`, 0.18's API): every run advances
  all admitted requests in one batch.
- QueueScheduler: a fair queue of plain `og.Generator`s: up to `slots` run, one token each in turn, so no request
  waits for another to finish; the rest wait first come, first served.
The scheduler thread drops a cancelled request before its next token and deletes its generator.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy

from ..chat import load_genai
from ..errors import InputError

# What a job reports, in order: ("text", piece) any number of times, then one ("done", finish_reason) or
# ("error", sentence). finish_reason: "stop" (end of text or a stop string) or "length" (max tokens or context).
Event = tuple[str, str]


@dataclass(eq=False)  # a job is itself, never equal to another by value
class Job:
    """One request's generation; its figures are read once "done" has been sent."""

    tokens: list[int]
    max_new_tokens: int
    search: dict[str, Any]
    """set_search_options() keywords other than max_length (do_sample, temperature, top_p, random_seed...)."""
    send: Callable[[Event], None]
    """Called on the scheduler thread; the receiver hands events to its own thread (or event loop)."""
    stop: list[str] = field(default_factory=list)
    guidance: tuple[str, str] | None = None
    """(type, data) for GeneratorParams.set_guidance: ("json_schema", schema) or ("lark_grammar", grammar)."""
    new_tokens: int = 0
    reason: str = ""
    """How it ended: stop, length, cancelled or error."""
    submitted: float = field(default_factory=time.perf_counter)
    first_token: float = 0.0
    finished: float = 0.0
    cancelled: threading.Event = field(default_factory=threading.Event)
    _text: str = ""
    _sent: int = 0
    _ended: bool = False
    _hit: bool = False

    def cancel(self) -> None:
        self.cancelled.set()

    def params(self, og: Any, model: Any, context: int) -> Any:
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=min(context, len(self.tokens) + self.max_new_tokens), **self.search)
        if self.guidance is not None:
            params.set_guidance(*self.guidance)
        return params

    def take(self, piece: str) -> bool:
        """One more token's text; False once a stop string has been met (the text before it is sent)."""
        self.new_tokens += 1
        if self.new_tokens == 1:
            self.first_token = time.perf_counter()
        self._text += piece
        found = [self._text.find(stop, max(0, self._sent - len(stop))) for stop in self.stop]
        hit = min((at for at in found if at >= 0), default=-1)
        if hit >= 0:
            self._flush(hit)
            self._hit = True
            return False
        # Hold back what could still become a stop string, so a stream never shows part of one.
        hold = max((len(stop) - 1 for stop in self.stop), default=0)
        self._flush(max(self._sent, len(self._text) - hold))
        return True

    def end(self, reason: str) -> None:
        if self._ended:
            return
        self._ended = True
        self.reason = reason
        if not self._hit:
            self._flush(len(self._text))
        self.finished = time.perf_counter()
        self.send(("done", reason))

    def fail(self, sentence: str) -> None:
        if not self._ended:
            self._ended, self.reason = True, "error"
            self.finished = time.perf_counter()
            self.send(("error", sentence))

    def _flush(self, upto: int) -> None:
        if upto > self._sent:
            self.send(("text", self._text[self._sent : upto]))
            self._sent = upto


class Scheduler:
    """The thread that runs one model's jobs. submit() and cancel() are safe from any thread."""

    kind = ""

    def accepts(self, job: Job) -> bool:
        """Whether this scheduler can run the job as asked (every option honoured)."""
        return True

    def __init__(self, model: Any, tokenizer: Any, context: int, slots: int) -> None:
        self.og = load_genai()
        self.model, self.tokenizer, self.context, self.slots = model, tokenizer, context, slots
        self._waiting: deque[Job] = deque()
        self._wake = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"serve-{self.kind}", daemon=True)
        self._opened = threading.Event()
        self._open_error: Exception | None = None

    def start(self) -> Scheduler:
        """Start the thread; raises what opening the runtime on it raised (the Engine lives on its own thread)."""
        self._thread.start()
        self._opened.wait()
        if self._open_error is not None:
            self._thread.join()
            raise self._open_error
        return self

    def _open(self) -> None:
        """Runs first on the scheduler thread."""

    def submit(self, job: Job) -> None:
        with self._wake:
            self._waiting.append(job)
            self._wake.notify()

    def wake(self) -> None:
        """A job was cancelled: let an idle thread notice (a busy one sees it before its next token)."""
        with self._wake:
            self._wake.notify()

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout=10)

    @property
    def active(self) -> int:
        raise NotImplementedError

    def _next_waiting(self, block: bool) -> Job | None:
        with self._wake:
            while block and not self._waiting and not self._closed:
                self._wake.wait()
            while self._waiting:
                job = self._waiting.popleft()
                if not job.cancelled.is_set():
                    return job
                job.end("cancelled")
            return None

    def _run(self) -> None:
        try:
            self._open()
        except Exception as error:  # noqa: BLE001 - handed to start(), on the caller's thread
            self._open_error = error
            return
        finally:
            self._opened.set()
        while not self._closed:
            try:
                self._cycle()
            except Exception as error:  # noqa: BLE001 - one failed step ends its requests, not the server
                self._fail_all(f"generation failed: {first_line(error)}")
        self._fail_all("the server is shutting down.")

    def _cycle(self) -> None:
        raise NotImplementedError

    def _fail_all(self, sentence: str) -> None:
        raise NotImplementedError


class QueueScheduler(Scheduler):
    """Plain generators, `slots` at a time, one token each in turn."""

    kind = "queue"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._running: list[tuple[Job, Any, Any]] = []
        super().__init__(*args, **kwargs)

    @property
    def active(self) -> int:
        return len(self._running)

    def _cycle(self) -> None:
        while len(self._running) < self.slots:
            job = self._next_waiting(block=not self._running)
            if job is None:
                break
            self._start(job)
        for entry in list(self._running):
            self._advance(entry)

    def _start(self, job: Job) -> None:
        try:
            generator = self.og.Generator(self.model, job.params(self.og, self.model, self.context))
            generator.append_tokens(job.tokens)
        except Exception as error:  # noqa: BLE001 - a request the runtime refuses ends alone
            job.fail(first_line(error))
            return
        self._running.append((job, generator, self.tokenizer.create_stream()))

    def _advance(self, entry: tuple[Job, Any, Any]) -> None:
        job, generator, stream = entry
        if job.cancelled.is_set():
            self._drop(entry, "cancelled")
            return
        if generator.is_done():
            self._drop(entry, _length_or_stop(job, self.context))
            return
        generator.generate_next_token()
        token = int(generator.get_next_tokens()[0])
        if not job.take(stream.decode(token)):
            self._drop(entry, "stop")
        elif generator.is_done():
            self._drop(entry, _length_or_stop(job, self.context, token, self.tokenizer))

    def _drop(self, entry: tuple[Job, Any, Any], reason: str) -> None:
        self._running.remove(entry)
        entry[0].end(reason)

    def _fail_all(self, sentence: str) -> None:
        for job, _, _ in self._running:
            job.fail(sentence)
        self._running.clear()
        while (job := self._next_waiting(block=False)) is not None:
            job.fail(sentence)


class EngineScheduler(Scheduler):
    """onnxruntime-genai's Engine (the 0.18 API): every admitted request advances in one batch per run().

    Events name their request by a new Python object; hash() is the same for the same request, so it is the key.
    """

    kind = "engine"
    _EVENTS = 256

    def accepts(self, job: Job) -> bool:
        """Not a seed: 0.18's Engine takes one only when configured for dynamic batching, which CPU builds are not."""
        return "random_seed" not in job.search and (
            job.guidance is None or hasattr(self.og.TurnOptions, "set_guidance")
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._running: dict[int, tuple[Job, Any, Any]] = {}
        self._token = int(self.og.EngineEventFlags.TOKEN)
        reasons = self.og.FinishReason
        self._reasons = {
            int(reasons.EOS): "stop",
            int(reasons.STOP_STRING): "stop",
            int(reasons.MAX_GENERATED_TOKENS): "length",
            int(reasons.MAX_SESSION_TOKENS): "length",
            int(reasons.CANCELLED): "cancelled",
        }
        self._none, self._failed, self._eos = int(reasons.NONE), int(reasons.FAILED), int(reasons.EOS)

    @property
    def active(self) -> int:
        return len(self._running)

    def _open(self) -> None:
        self.engine = self.og.Engine(self.model)  # every Engine call must come from the thread that made it
        self._events = self.engine.create_event_buffer(self._EVENTS)

    def _cycle(self) -> None:
        while len(self._running) < self.slots:
            job = self._next_waiting(block=not self._running)
            if job is None:
                break
            self._start(job)
        for key, (job, _, _) in list(self._running.items()):
            if job.cancelled.is_set():
                self._finish(key, "cancelled")
        if not self._running:
            return
        self.engine.run(self._events)
        for event in self._events:
            key = hash(event.request)
            if key not in self._running:
                continue
            job, _, stream = self._running[key]
            if int(event.flags) & self._token and not job.take(stream.decode(int(event.token))):
                self._finish(key, "stop")
                continue
            reason = int(event.finish_reason)
            if reason == self._eos and not int(event.flags) & self._token:
                job.new_tokens += 1  # the end-of-text token, which the Engine does not hand out: counted as chat does
            if reason == self._failed:
                self._finish(key, "error", f"the runtime failed this request (code {event.error_code.name}).")
            elif reason != self._none:
                self._finish(key, self._reasons.get(reason, "stop"))

    def _start(self, job: Job) -> None:
        try:
            request = self.engine.create_request()
            options = self.og.TurnOptions(request)
            options.set_max_generated_tokens(min(job.max_new_tokens, self.context - len(job.tokens)))
            _turn_search(options, job.search)
            if job.guidance is not None:
                options.set_guidance(*job.guidance)
            request.begin_turn(numpy.asarray(job.tokens, dtype=numpy.int32), options)
        except Exception as error:  # noqa: BLE001 - a request the runtime refuses ends alone
            job.fail(first_line(error))
            return
        self._running[hash(request)] = (job, request, self.tokenizer.create_stream())

    def _finish(self, key: int, reason: str, sentence: str = "") -> None:
        job, request, _ = self._running.pop(key)
        with contextlib.suppress(Exception):
            request.close()
        if reason == "error":
            job.fail(sentence)
        else:
            job.end(reason)

    def _fail_all(self, sentence: str) -> None:
        for key in list(self._running):
            self._finish(key, "error", sentence)
        with contextlib.suppress(Exception):  # a failed run can leave the Engine unusable: start a fresh one
            self._open()
        while (job := self._next_waiting(block=False)) is not None:
            job.fail(sentence)


def _turn_search(options: Any, search: dict[str, Any]) -> None:
    """set_search_options() keywords as the Engine's per-turn options."""
    options.set_do_sample(bool(search.get("do_sample")))
    setters = {
        "temperature": options.set_temperature,
        "top_p": options.set_top_p,
        "top_k": options.set_top_k,
        "repetition_penalty": options.set_repetition_penalty,
        "random_seed": options.set_seed,
    }
    for name, setter in setters.items():
        if name in search:
            setter(search[name])


def engine_kind(og: Any) -> str:
    """'engine' where the installed onnxruntime-genai has the Engine API this module drives (0.18's), else 'queue'.

    0.14 has an Engine with another API (add_request/step); on CPU builds it stops with "Expected at least one
    request to be ready" once a request passes about 80 tokens, and its static-batching setting aborts the process:
    0.14 gets the fair queue.
    """
    engine = getattr(og, "Engine", None)
    return (
        "engine" if engine is not None and hasattr(engine, "create_request") and hasattr(og, "TurnOptions") else "queue"
    )


def make_scheduler(model: Any, tokenizer: Any, context: int, slots: int, batching: str = "auto") -> Scheduler:
    """The Engine where it runs (batching 'auto' or 'engine'), else the fair queue; 'engine' never falls back."""
    og = load_genai()
    if batching == "engine" and engine_kind(og) != "engine":
        raise InputError(
            f"onnxruntime-genai {og.__version__} has no Engine this server can drive (0.18 has); "
            "use --batching queue or auto."
        )
    if batching != "queue" and engine_kind(og) == "engine":
        try:
            return EngineScheduler(model, tokenizer, context, slots).start()
        except Exception as error:  # the Engine does not run on every provider: the fair queue always does
            if batching == "engine":
                raise InputError(f"onnxruntime-genai's Engine cannot run this model: {first_line(error)}") from error
    return QueueScheduler(model, tokenizer, context, slots).start()


def _length_or_stop(job: Job, context: int, token: int = -1, tokenizer: Any = None) -> str:
    """'length' when the reply ran to its token budget or the context, 'stop' when the model ended it."""
    if tokenizer is not None and token in set(_eos(tokenizer)):
        return "stop"
    at_budget = job.new_tokens >= job.max_new_tokens or len(job.tokens) + job.new_tokens >= context
    return "length" if at_budget else "stop"


def _eos(tokenizer: Any) -> list[int]:
    with contextlib.suppress(Exception):
        ids = tokenizer.eos_token_ids
        return [int(token) for token in (ids() if callable(ids) else ids)]
    return []


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
