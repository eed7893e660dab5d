"""What a terminal or a pipe may send the chat: bytes that are not UTF-8, on stdin and in --prompt."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from app.chat import valid_text
from tests.hostile.contract import ROOT


def chat(*args: bytes, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable.encode(), str(ROOT / "main.py").encode(), b"chat", *args],
        input=stdin,
        capture_output=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )


@pytest.mark.parametrize(
    "stdin", [b"hi \xff\xfe there\n", b"\xc3\n", b"\xed\xa0\x80 surrogate bytes\n", b"\x00\x01\x02\n"]
)
def test_bytes_that_are_not_utf8_on_the_chat_stdin_are_answered(stdin, demo_int4):
    result = chat(str(demo_int4).encode(), stdin=stdin)
    assert result.returncode == 0 and b"Traceback" not in result.stderr, result.stderr.decode(errors="replace")
    assert b"tokens" in result.stderr  # a reply's figures line: the turn was answered


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX argv carries raw bytes")
def test_a_prompt_argument_that_is_not_utf8_is_answered(demo_int4):
    result = chat(str(demo_int4).encode(), b"--prompt", b"a\xffb")
    assert result.returncode == 0 and b"Traceback" not in result.stderr, result.stderr.decode(errors="replace")


def test_valid_text_keeps_good_text_and_replaces_the_rest():
    assert valid_text("Grüße, 世界 🙂") == "Grüße, 世界 🙂"
    assert valid_text("a\udcffb") == "a\ufffdb"  # a byte Python kept as a lone surrogate
    assert valid_text("\ud800") == "\ufffd"  # a lone surrogate that stands for no byte
