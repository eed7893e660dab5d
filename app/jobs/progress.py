"""Real progress for a builder run, derived from what the builder logs.

The builder prints no percentages. It does print "Reading embedding layer", "Reading layer N" for each
decoder layer, "Reading final norm", "Saving ONNX model", and the INT4 quantizer logs "start to
quantize <node>" for each MatMul; saving shows a tqdm bar. Those lines, weighed against the
config's layer count, move the percentage evenly through a build.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import sys
from collections.abc import Callable, Iterator

from .protocol import Log, Message, Progress, collapse_cr

# Percent at which each stage starts.
_LOADING, _LAYERS, _QUANTIZE, _SAVING, _FILES = 2, 15, 70, 82, 95
_LAYER = re.compile(r"^Reading layer (\d+)")
_QUANTIZED_NODE = re.compile(r"start to quantize /model/layers\.(\d+)/")
_TQDM = re.compile(r"(\d+)/(\d+) \[")


class BuilderProgress:
    def __init__(self, emit: Callable[[Message], None], num_layers: int) -> None:
        self._emit = emit
        self._layers = max(num_layers, 1)
        self._percent = 0.0
        self._stage = ""

    def stage(self, percent: float, stage: str, detail: str = "") -> None:
        # Never move backwards: a later stage's line can arrive before an earlier tqdm bar finishes.
        if percent < self._percent:
            return
        self._percent, self._stage = percent, stage
        self._emit(Progress(round(percent, 1), stage, detail))

    def download(self, done: int, total: int) -> None:
        self.stage(_LOADING * done / max(total, 1), "downloading", f"{done / 1e6:.0f} of {total / 1e6:.0f} MB")

    def line(self, text: str, stream: str) -> None:
        self._emit(Log(text, stream))
        self.update(text)

    def update(self, text: str) -> None:
        """Move the percentage for one line (or one tqdm refresh) of builder output."""
        if text.startswith("Extra options"):
            self.stage(_LOADING, "loading", "reading the checkpoint's weights")
        elif text.startswith("Reading embedding layer"):
            self.stage(_LAYERS, "layers", "embedding")
        elif match := _LAYER.match(text):
            layer = int(match.group(1))
            self.stage(
                _between(_LAYERS, _QUANTIZE, layer, self._layers), "layers", f"layer {layer + 1} of {self._layers}"
            )
        elif text.startswith(("Reading final norm", "Reading LM head")):
            self.stage(_QUANTIZE - 1, "layers", text.removeprefix("Reading ").strip())
        elif text.startswith("Saving ONNX model"):
            self.stage(_QUANTIZE, "saving", "writing the ONNX model")
        elif match := _QUANTIZED_NODE.search(text):
            layer = int(match.group(1))
            self.stage(
                _between(_QUANTIZE, _SAVING, layer, self._layers), "quantizing", f"layer {layer + 1} of {self._layers}"
            )
        elif text.startswith("Saving ") and (match := _TQDM.search(text)):
            done, total = int(match.group(1)), int(match.group(2))
            self.stage(_between(_SAVING, _FILES, done, max(total, 1)), "saving", f"tensor {done} of {total}")
        elif text.startswith(("Saving GenAI config", "Saving processing files")):
            self.stage(_FILES, "saving", "GenAI config and tokenizer")

    @contextlib.contextmanager
    def capture(self) -> Iterator[None]:
        """Route the builder's Python prints, tqdm bars and quantizer logging through this object."""
        stdout, stderr = sys.stdout, sys.stderr
        captured_out, captured_err = _LineStream(self, "builder"), _LineStream(self, "stderr")
        sys.stdout, sys.stderr = captured_out, captured_err
        # The quantizer logs every node at INFO: count its progress, keep those lines out of the log.
        quantizer = logging.getLogger("onnxruntime.quantization")
        handler = _ProgressHandler(self)
        saved = quantizer.level, quantizer.propagate
        quantizer.setLevel(logging.INFO)
        quantizer.propagate = False
        quantizer.addHandler(handler)
        try:
            yield
        finally:
            captured_out.finish()
            captured_err.finish()
            quantizer.removeHandler(handler)
            quantizer.level, quantizer.propagate = saved
            sys.stdout, sys.stderr = stdout, stderr


class _ProgressHandler(logging.Handler):
    def __init__(self, progress: BuilderProgress) -> None:
        super().__init__(logging.INFO)
        self._progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            self._progress.line(record.getMessage(), "builder")
        else:
            self._progress.update(record.getMessage())


def _between(start: float, end: float, done: int, total: int) -> float:
    return start + (end - start) * min(done, total) / total


class _LineStream(io.TextIOBase):
    """A text stream that hands complete lines to BuilderProgress and collapses "\\r" updates."""

    def __init__(self, progress: BuilderProgress, stream: str) -> None:
        self._progress = progress
        self._stream = stream
        self._pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            final = collapse_cr(line)
            if final.strip():
                self._progress.line(final, self._stream)
        if "\r" in self._pending:
            # A tqdm refresh: move the bar's percentage, keep only the latest text for the log.
            *refreshes, self._pending = self._pending.split("\r")
            for refresh in refreshes:
                self._progress.update(refresh)
        return len(text)

    def finish(self) -> None:
        """Hand over a last line that never got its newline."""
        if self._pending.strip():
            self._progress.line(collapse_cr(self._pending), self._stream)
        self._pending = ""
