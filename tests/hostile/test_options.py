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

WHOLE = {
    "TOKENS_TO_SCORE": (options.TOKENS_TO_SCORE, 32, 100_000_000),
    "REPEATS": (options.REPEATS, 1, 1000),
    "GEN_TOKENS": (options.GEN_TOKENS, 1, 1_000_000),
    "SEED": (options.SEED, 0, options.INT32_MAX),
    "DEVICE_ID": (options.DEVICE_ID, 0, 1023),
}
REAL = {
    "TEMPERATURE": (options.TEMPERATURE, 0, 100),
    "TOP_P": (options.TOP_P, 0, 1),
}
ANY_TEXT = st.one_of(
    st.text(max_size=80),
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", " ", "nan", "inf", "-inf", "1e400", "0x10", "1_000", "٣", "9" * 5000, "1\n2", "\x00"]),
)


@pytest.mark.parametrize("name", WHOLE)
@given(text=ANY_TEXT)
def test_whole_numbers_parse_into_their_range_or_are_one_sentence(name, text):
    parse, low, high = WHOLE[name]
    try:
        value = parse(text)
    except argparse.ArgumentTypeError as error:
        assert_sentence(str(error))
        assert len(str(error)) < 200
    else:
        assert isinstance(value, int) and low <= value <= high


@pytest.mark.parametrize("name", REAL)
@given(text=ANY_TEXT)
def test_real_numbers_are_finite_and_in_range_or_one_sentence(name, text):
    parse, low, high = REAL[name]
    try:
        value = parse(text)
    except argparse.ArgumentTypeError as error:
        assert_sentence(str(error))
        assert len(str(error)) < 200
    else:
        assert math.isfinite(value) and low < value <= high


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
        (["convert", "demo", "-o", "x", "--preset", ","], "empty preset name"),
        (["convert", "demo", "-o", "x", "--preset", "int4,int4"], "twice"),
        (["convert", "demo", "-o", "x", "--preset", "int4", "--preset", "int4"], "twice"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_bad_values_on_the_command_line_are_refused_before_anything_runs(args, said, tmp_path):
    result = refused([*args[:1], *(str(tmp_path / a) if a in ("m", "x") else a for a in args[1:])], output=tmp_path)
    assert said in result.line
