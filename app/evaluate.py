"""Perplexity of an ONNX Runtime GenAI model over a text, from the model's own logits, and its drift from the
PyTorch checkpoint it was made from (top-1 agreement, KL divergence) on the same tokens.

A window here is one paragraph (one non-empty line) of the text, encoded by the ONNX model's tokenizer, prefixed
with the model's BOS token and cut to its context length; it scores every token after its first. A text must give
at least MIN_SCORED_TOKENS scored tokens in all, or its perplexity would say nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .chat import context_length, load_genai, load_model
from .errors import InputError
from .paths import resources_dir

MIN_SCORED_TOKENS = 32
_MAX_WINDOW = 2048


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


@dataclass
class Drift:
    """How far the ONNX model's next-token distributions are from the PyTorch checkpoint's on the same tokens."""

    top1_agreement: float
    mean_kl: float
    """Mean over scored positions of KL(P_torch || P_onnx), in nats."""
    max_kl: float
    onnx_perplexity: float
    torch_perplexity: float
    tokens: int
    windows: int
    text: str
    source: str
    same_tokenization: bool
    tokenization_note: str

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


def text_lines(text_path: Path) -> list[str]:
    return [line.strip() for line in read_text(text_path).splitlines() if line.strip()]


def token_windows(
    lines: list[str], encode: Any, window: int, bos: int | None, max_tokens: int
) -> Iterator[tuple[str, list[int]]]:
    """(line, token ids) for each window that scores at least one token, up to max_tokens scored in all."""
    scored = 0
    for line in lines:
        # The generator's max_length (len + 1) must stay within the context.
        tokens = (([bos] if bos is not None else []) + list(encode(line)))[: window - 1]
        if len(tokens) < 2:
            continue
        yield line, tokens
        scored += len(tokens) - 1
        if scored >= max_tokens:
            return


def check_enough(scored: int, text_path: Path, min_tokens: int) -> None:
    if scored < min_tokens:
        raise InputError(
            f"{text_path} gives {scored} tokens to score, fewer than the {min_tokens} a perplexity needs "
            "(each line is one window and scores its tokens after the first); give a longer text."
        )


def perplexity(
    model_dir: Path,
    text_path: Path | None = None,
    max_tokens: int = 20000,
    ep: str | None = "cpu",
    min_tokens: int = MIN_SCORED_TOKENS,
    device_id: int | None = None,
) -> Perplexity:
    """Mean next-token negative log-likelihood over the text's windows (see the module's docstring); `device_id` is
    the GPU as the Hardware tab numbers it."""
    import numpy as np

    text_path = Path(text_path) if text_path else default_eval_text()
    lines = text_lines(text_path)
    og = load_genai()
    model, tokenizer = load_model(Path(model_dir), ep, device_id)
    window = min(context_length(model_dir), _MAX_WINDOW)
    total_nll, scored, windows = 0.0, 0, 0
    for _line, tokens in token_windows(lines, tokenizer.encode, window, _bos_token_id(model_dir), max_tokens):
        log_probs = log_softmax(onnx_logits(og, model, tokens, model_dir))[:-1]
        total_nll -= float(log_probs[np.arange(len(tokens) - 1), tokens[1:]].sum())
        scored += len(tokens) - 1
        windows += 1
    check_enough(scored, text_path, min_tokens)
    mean = total_nll / scored
    return Perplexity(math.exp(mean), mean, scored, windows, str(text_path))


def drift(
    model_dir: Path,
    source: Path,
    text_path: Path | None = None,
    max_tokens: int = 20000,
    min_tokens: int = MIN_SCORED_TOKENS,
    trust_remote_code: bool = False,
) -> Drift:
    """Run the PyTorch checkpoint (CPU, float32) and the ONNX model (CPU) over the same windows, encoded by the
    ONNX model's tokenizer, and compare their next-token distributions position by position. The checkpoint's
    own Python code (config.json's auto_map) runs only with trust_remote_code."""
    import numpy as np
    import torch

    model_dir, source = Path(model_dir), Path(source)
    text_path = Path(text_path) if text_path else default_eval_text()
    lines = text_lines(text_path)
    og = load_genai()
    model, tokenizer = load_model(model_dir, "cpu")
    window = min(context_length(model_dir), _MAX_WINDOW)
    bos = _bos_token_id(model_dir)
    skip = 1 if bos is not None else 0
    windows_to_score = list(token_windows(lines, tokenizer.encode, window, bos, max_tokens))
    check_enough(sum(len(tokens) - 1 for _line, tokens in windows_to_score), text_path, min_tokens)
    torch_model, hf_tokenizer = load_source(source, model_dir, trust_remote_code)
    agree, scored, windows, kl_sum, kl_max, nll_onnx, nll_torch, differing = 0, 0, 0, 0.0, 0.0, 0.0, 0.0, 0
    for line, tokens in windows_to_score:
        if hf_tokenizer is not None and hf_tokenizer.encode(line, add_special_tokens=False) != tokens[skip:]:
            differing += 1
        onnx_lp = log_softmax(onnx_logits(og, model, tokens, model_dir))[:-1]
        with torch.inference_mode():
            output = torch_model(torch.tensor([tokens], dtype=torch.long))
        torch_lp = log_softmax(output.logits[0].double().numpy())[:-1]
        if torch_lp.shape != onnx_lp.shape:
            raise InputError(
                f"{source} gives {torch_lp.shape[-1]} logits per token and {model_dir} {onnx_lp.shape[-1]}; "
                "compare a model with the checkpoint it was converted from."
            )
        targets = np.asarray(tokens[1:])
        positions = np.arange(len(targets))
        kl = (np.exp(torch_lp) * (torch_lp - onnx_lp)).sum(axis=-1)
        kl_sum += float(kl.sum())
        kl_max = max(kl_max, float(kl.max()))
        agree += int((torch_lp.argmax(axis=-1) == onnx_lp.argmax(axis=-1)).sum())
        nll_onnx -= float(onnx_lp[positions, targets].sum())
        nll_torch -= float(torch_lp[positions, targets].sum())
        scored += len(targets)
        windows += 1
    if hf_tokenizer is None:
        note = f"{source} has no tokenizer transformers can load; both models were given the ONNX model's ids."
    elif differing:
        note = (
            f"the checkpoint's tokenizer encodes {differing} of {windows} lines differently; both models were given "
            "the ONNX model's ids."
        )
    else:
        note = "the checkpoint's tokenizer gives the same ids on every line."
    return Drift(
        top1_agreement=agree / scored,
        mean_kl=max(kl_sum / scored, 0.0),
        max_kl=kl_max,
        onnx_perplexity=math.exp(nll_onnx / scored),
        torch_perplexity=math.exp(nll_torch / scored),
        tokens=scored,
        windows=windows,
        text=str(text_path),
        source=str(source),
        same_tokenization=hf_tokenizer is not None and differing == 0,
        tokenization_note=note,
    )


def needs_own_code(source: Path) -> bool:
    """Whether transformers can load this checkpoint only by running the checkpoint's own code: config.json has an
    auto_map and names a model type transformers does not know (a known type with an auto_map loads as the known
    type when trust_remote_code is False)."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    from .checkpoints import read_config

    config = read_config(Path(source))
    return "auto_map" in config and config.get("model_type") not in CONFIG_MAPPING


def load_source(source: Path, model_dir: Path, trust_remote_code: bool = False) -> tuple[Any, Any]:
    """(the checkpoint's PyTorch model in float32 on the CPU, its tokenizer or None); refuses in one sentence a
    source that is not a checkpoint, one whose vocabulary is not the ONNX model's, or one that only its own code
    can load when that code is not trusted. trust_remote_code is always passed: transformers would otherwise ask
    on stdin, and an answer there (a pipe, a parent's "y") would run the checkpoint's code."""
    from .chat import read_genai_config
    from .checkpoints import inspect_checkpoint

    info = inspect_checkpoint(source)  # raises the sentence saying why it is not a checkpoint
    onnx_vocab = int(read_genai_config(model_dir)["model"].get("vocab_size") or 0)
    if info.vocab_size and onnx_vocab and info.vocab_size != onnx_vocab:
        raise InputError(
            f"{source} has a vocabulary of {info.vocab_size} tokens and {model_dir} of {onnx_vocab}; "
            "compare a model with the checkpoint it was converted from."
        )
    if not trust_remote_code and needs_own_code(source):
        raise InputError(
            f"{source} can only be loaded by running its own Python code (auto_map in config.json), which runs only "
            "with --trust-remote-code; pass it if you trust this checkpoint."
        )
    from transformers import AutoTokenizer

    try:
        model = _torch_model(source, trust_remote_code)
    except Exception as error:  # noqa: BLE001 - whatever transformers (or trusted code) raises becomes one sentence
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise InputError(f"{source} could not be loaded in PyTorch ({first_line}); check the checkpoint.") from error
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source), trust_remote_code=trust_remote_code)
    except Exception:  # noqa: BLE001 - the ONNX model's ids are used either way; the note says so
        tokenizer = None
    return model, tokenizer


def _torch_model(source: Path, trust_remote_code: bool) -> Any:
    """The checkpoint in float32; a multimodal class (Mistral 3's) through the image-text auto class, whose forward
    takes token ids alone and gives the same logits as its decoder."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

    config = AutoConfig.from_pretrained(str(source), trust_remote_code=trust_remote_code)
    known = type(config) in AutoModelForCausalLM._model_mapping or "auto_map" in config.to_dict()
    loader = AutoModelForCausalLM if known else AutoModelForImageTextToText
    return loader.from_pretrained(str(source), dtype=torch.float32, trust_remote_code=trust_remote_code).eval()


def onnx_logits(og: Any, model: Any, tokens: list[int], model_dir: Path) -> Any:
    """The model's logits for every position of one window, as float64 [tokens, vocab]."""
    import numpy as np

    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(tokens) + 1, do_sample=False)
    generator = og.Generator(model, params)
    generator.append_tokens(tokens)
    logits = np.asarray(generator.get_output("logits"), dtype=np.float64)[0]
    if logits.shape[0] != len(tokens):
        raise InputError(f"{model_dir} returns logits for the last token only (pruned LM head); it cannot be scored.")
    return logits


def log_softmax(logits: Any) -> Any:
    import numpy as np

    top = logits.max(axis=-1, keepdims=True)
    return logits - top - np.log(np.exp(logits - top).sum(axis=-1, keepdims=True))


def _bos_token_id(model_dir: Path) -> int | None:
    from .chat import read_genai_config

    return read_genai_config(model_dir)["model"].get("bos_token_id")
