"""Perplexity of an ONNX Runtime GenAI model over a text, from the model's own logits."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .chat import context_length, load_genai, load_model
from .errors import InputError
from .paths import resources_dir


def default_eval_text() -> Path:
    """Held-out stories from the demo's own generator: a meaningful perplexity for the demo model."""
    return resources_dir() / "text" / "demo_heldout.txt"


@dataclass
class Perplexity:
    perplexity: float
    mean_nll: float
    tokens: int
    windows: int
    text: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_text(path: Path) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text; give a plain text file.") from None
    except OSError as error:
        raise InputError(f"{path} cannot be read ({error.strerror}); give a plain text file.") from None
    if not text.strip():
        raise InputError(f"{path} is empty; give a text with at least a few sentences.")
    return text


def perplexity(
    model_dir: Path, text_path: Path | None = None, max_tokens: int = 20000, ep: str | None = "cpu"
) -> Perplexity:
    """Mean next-token negative log-likelihood over the text, one window per paragraph (line), each window
    cut to the model's context and prefixed with its BOS token, up to max_tokens scored tokens in all."""
    import numpy as np

    text_path = Path(text_path) if text_path else default_eval_text()
    lines = [line.strip() for line in read_text(text_path).splitlines() if line.strip()]
    og = load_genai()
    model, tokenizer = load_model(Path(model_dir), ep)
    window = min(context_length(model_dir), 2048)
    bos = _bos_token_id(model_dir)
    total_nll, scored, windows = 0.0, 0, 0
    for line in lines:
        tokens = ([bos] if bos is not None else []) + list(tokenizer.encode(line))
        tokens = tokens[: window - 1]  # the generator's max_length (len + 1) must stay within the context
        if len(tokens) < 2:
            continue
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=len(tokens) + 1, do_sample=False)
        generator = og.Generator(model, params)
        generator.append_tokens(tokens)
        logits = np.asarray(generator.get_output("logits"), dtype=np.float64)[0]
        if logits.shape[0] != len(tokens):
            raise InputError(
                f"{model_dir} returns logits for the last token only (pruned LM head); it cannot be scored."
            )
        log_probs = logits[:-1] - _logsumexp(logits[:-1])
        total_nll -= float(log_probs[np.arange(len(tokens) - 1), tokens[1:]].sum())
        scored += len(tokens) - 1
        windows += 1
        if scored >= max_tokens:
            break
    if not scored:
        raise InputError(f"{text_path} gave no text to score.")
    mean = total_nll / scored
    return Perplexity(math.exp(mean), mean, scored, windows, str(text_path))


def _logsumexp(logits: Any) -> Any:
    import numpy as np

    top = logits.max(axis=-1, keepdims=True)
    return top + np.log(np.exp(logits - top).sum(axis=-1, keepdims=True))


def _bos_token_id(model_dir: Path) -> int | None:
    from .chat import read_genai_config

    return read_genai_config(model_dir)["model"].get("bos_token_id")
