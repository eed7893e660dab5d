"""Speed of a converted model, measured as onnxruntime-genai's own benchmark script does: a warm-up run,
then repeats of a fixed prompt length and generation length, reporting medians."""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .chat import context_length, load_genai, load_model
from .errors import InputError


@dataclass
class Speed:
    prompt_tokens: int
    generated_tokens: int
    repeats: int
    prompt_tokens_per_second: float
    generation_tokens_per_second: float
    time_to_first_token_seconds: float
    peak_memory_bytes: int
    ep: str
    generation_tokens_per_second_runs: list[float] = field(default_factory=list)
    """Each repeat's own speed: its spread says which differences between two models are only noise."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def benchmark(
    model_dir: Path,
    prompt_tokens: int = 128,
    gen_tokens: int = 64,
    repeats: int = 5,
    ep: str | None = None,
    device_id: int | None = None,
) -> Speed:
    """`device_id`: the GPU as the Hardware tab numbers it (app.chat.load_model)."""
    og = load_genai()
    sampler = PeakMemory()
    with sampler:
        return _measure(og, sampler, Path(model_dir), prompt_tokens, gen_tokens, repeats, ep, device_id)


def _measure(
    og: Any,
    sampler: PeakMemory,
    model_dir: Path,
    prompt_tokens: int,
    gen_tokens: int,
    repeats: int,
    ep: str | None,
    device_id: int | None = None,
) -> Speed:
    model, tokenizer = load_model(model_dir, ep, device_id)
    if prompt_tokens + gen_tokens > context_length(model_dir):
        raise InputError(
            f"{prompt_tokens} prompt + {gen_tokens} generated tokens exceed the model's context of "
            f"{context_length(model_dir)}; ask for fewer."
        )
    # Any token ids do for timing; use the tokenizer's own so the ids are valid for this vocabulary.
    seed = list(tokenizer.encode("Tom goes to the park. He sees a big dog. ")) or [0]
    prompt = (seed * (prompt_tokens // len(seed) + 1))[:prompt_tokens]
    runs = [_one_run(og, model, prompt, gen_tokens) for _ in range(repeats + 1)][1:]  # the first one warms up
    first_tokens = [first for first, _ in runs]
    per_token = [rest / max(gen_tokens - 1, 1) for _, rest in runs]
    return Speed(
        prompt_tokens=prompt_tokens,
        generated_tokens=gen_tokens,
        repeats=repeats,
        prompt_tokens_per_second=prompt_tokens / statistics.median(first_tokens),
        generation_tokens_per_second=1 / statistics.median(per_token),
        time_to_first_token_seconds=statistics.median(first_tokens),
        peak_memory_bytes=sampler.peak,
        ep=ep or "as built",
        generation_tokens_per_second_runs=[round(1 / seconds, 2) for seconds in per_token if seconds > 0],
    )


class PeakMemory:
    """This process's resident memory, sampled every 10 ms while the model loads and runs (as onnxruntime-genai's
    benchmark script does). Not the OS's peak counter: on Linux a child started from a big worker inherits that
    worker's peak through exec."""

    def __init__(self, interval: float = 0.01) -> None:
        import psutil

        self._process = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.peak = 0

    def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, self._process.memory_info().rss)
            if self._stop.wait(self._interval):
                return

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


def _one_run(og: Any, model: Any, prompt: list[int], gen_tokens: int) -> tuple[float, float]:
    """(seconds to the first new token, seconds for the rest)."""
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(prompt) + gen_tokens, min_length=len(prompt) + gen_tokens, do_sample=False)
    generator = og.Generator(model, params)
    started = time.perf_counter()
    generator.append_tokens(prompt)
    generator.generate_next_token()
    first = time.perf_counter() - started
    while not generator.is_done():
        generator.generate_next_token()
    return first, time.perf_counter() - started - first
