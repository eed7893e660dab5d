"""Checks for command-line values, made where argparse parses them (its `type=` functions).

A value that would abort the runtime in C++ (a NaN temperature, zero tokens to generate), overflow its integers
(a seed of 2**70) or mean nothing (zero repeats, an empty preset list) is refused with one sentence before any
model is loaded. Limits that depend on the model (its context length) are checked once it is known.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

INT32_MAX = 2**31 - 1
"""onnxruntime-genai keeps lengths, top-k and seeds in 32-bit integers."""


def shown(text: str, limit: int = 60) -> str:
    """A value as a refusal quotes it: on one line and short, whatever was typed or pasted."""
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[:limit] + "…")


def whole_number(low: int, high: int, what: str = "a whole number") -> Callable[[str], int]:
    bounds = f"from {low:,} to {high:,}"

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{shown(text)} is not {what}; give one {bounds}.") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{shown(text)} is out of range; give {what} {bounds}.")
        return value

    return parse


def number(low: float, high: float, *, low_open: bool = False) -> Callable[[str], float]:
    """A finite float in [low, high], or (low, high] with low_open."""
    bounds = f"{'above' if low_open else 'from'} {low:g} {'and up to' if low_open else 'to'} {high:g}"

    def parse(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{shown(text)} is not a number; give one {bounds}.") from None
        inside = (low < value if low_open else low <= value) and value <= high
        if not math.isfinite(value) or not inside:
            raise argparse.ArgumentTypeError(f"{shown(text)} is out of range; give a number {bounds}.")
        return value

    return parse


def comma_list(what: str) -> Callable[[str], list[str]]:
    """Names separated by commas: none empty, none twice."""

    def parse(text: str) -> list[str]:
        items = [item.strip() for item in text.split(",")]
        if not all(items):
            raise argparse.ArgumentTypeError(
                f"{shown(text)} has an empty {what} name; separate names with single commas, e.g. int4,fp16."
            )
        repeated = next((item for index, item in enumerate(items) if item in items[:index]), None)
        if repeated:
            raise argparse.ArgumentTypeError(f"{shown(text)} names {what} {shown(repeated)} twice; give each once.")
        return items

    return parse


def no_repeats(lists: list[list[str]], option: str) -> list[str]:
    """The items of several occurrences of a repeatable list option, refused when one is named twice."""
    from .errors import InputError

    items: list[str] = []
    for item in (item for given in lists for item in given):
        if item in items:
            raise InputError(f"{option} names {item} twice; give each once.")
        items.append(item)
    return items


# The bounds of each option, in one place.
TOKENS_TO_SCORE = whole_number(32, 100_000_000)
"""eval/report --max-tokens: a perplexity needs at least 32 scored tokens (evaluate.MIN_SCORED_TOKENS)."""
PROMPT_TOKENS = whole_number(1, 1_000_000)
GEN_TOKENS = whole_number(1, 1_000_000)
REPEATS = whole_number(1, 1000)
MAX_LENGTH = whole_number(1, INT32_MAX)
TOP_K = whole_number(0, INT32_MAX)
SEED = whole_number(0, INT32_MAX)
DEVICE_ID = whole_number(0, 1023)
TEMPERATURE = number(0, 100, low_open=True)
TOP_P = number(0, 1, low_open=True)
REPETITION_PENALTY = number(0, 100, low_open=True)
