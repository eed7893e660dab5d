"""Command-line values, refused where argparse parses them: empty, huge, of the wrong type, not finite, repeated.

The parsers are tried in process with Hypothesis (any text either parses into the range or is refused in one short
sentence); a sample of each family goes through a real `main.py` child with the whole refusal contract.
"""

from __future__ import annotations

import argparse
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app import options
from tests.hostile.contract import assert_sentence, refused

# Each parser and what it may return: a whole number inside its range, or a finite number inside its range.
PARSERS = {
    "TOKENS_TO_SCORE": (options.TOKENS_TO_SCORE, lambda v: isinstance(v, int) and 32 <= v <= 100_000_000),
    "REPEATS": (options.REPEATS, lambda v: isinstance(v, int) and 1 <= v <= 1000),
    "GEN_TOKENS": (options.GEN_TOKENS, lambda v: isinstance(v, int) and 1 <= v <= 1_000_000),
    "SEED": (options.SEED, lambda v: isinstance(v, int) and 0 <= v <= options.INT32_MAX),
    "DEVICE_ID": (options.DEVICE_ID, lambda v: isinstance(v, int) and 0 <= v <= 1023),
    "TEMPERATURE": (options.TEMPERATURE, lambda v: math.isfinite(v) and 0 < v <= 100),
    "TOP_P": (options.TOP_P, lambda v: math.isfinite(v) and 0 < v <= 1),
}
ANY_TEXT = st.one_of(
    st.text(max_size=80),
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", " ", "nan", "inf", "-inf", "1e400", "0x10", "1_000", "٣", "9" * 5000, "1\n2", "\x00"]),
)


@pytest.mark.parametrize("name", PARSERS)
@given(text=ANY_TEXT)
def test_numbers_parse_into_their_range_or_are_one_sentence(name, text):
    parse, accepted = PARSERS[name]
    try:
        value = parse(text)
    except argparse.ArgumentTypeError as error:
        assert_sentence(str(error))
        assert len(str(error)) < 200
    else:
        assert accepted(value), value


@given(text=st.text(alphabet=st.sampled_from("ab,, "), max_size=30))
def test_preset_lists_have_no_empty_or_repeated_names(text):
    parse = options.comma_list("preset")
    try:
        items = parse(text)
    except argparse.ArgumentTypeError as error:
        assert_sentence(str(error))
    else:
        assert all(items) and len(set(items)) == len(items)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["eval", "m", "--max-tokens", "0"], "out of range"),
        (["eval", "m", "--max-tokens", "-5"], "out of range"),
        (["bench", "m", "--repeats", "0"], "out of range"),
        (["bench", "m", "--prompt-tokens", "0"], "out of range"),
        (["bench", "m", "--gen-tokens", "0"], "out of range"),
        (["bench", "m", "--gen-tokens", "many"], "is not a whole number"),
        (["chat", "m", "--sample", "--temperature", "nan"], "out of range"),
        (["chat", "m", "--top-p", "1.5"], "out of range"),
        (["chat", "m", "--seed", str(2**70)], "out of range"),
        (["chat", "m", "--seed", "9" * 5000], "is not a whole number"),
        (["convert", "demo", "-o", "", "--ep", "cpu"], "the output folder is empty"),
        (["convert", "demo", "-o", " ", "--preset", "int4,fp32", "--ep", "cpu"], "the output folder is empty"),
        (["convert", "demo", "-o", "x", "--preset", ","], "empty preset name"),
        (["convert", "demo", "-o", "x", "--preset", "int4,int4"], "twice"),
        (["convert", "demo", "-o", "x", "--preset", "int4", "--preset", "int4"], "twice"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_bad_values_on_the_command_line_are_refused_before_anything_runs(args, said, tmp_path):
    result = refused([*args[:1], *(str(tmp_path / a) if a in ("m", "x") else a for a in args[1:])], output=tmp_path)
    assert said in result.line
