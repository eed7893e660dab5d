"""End-to-end checks of the tiny checkpoints: HF checkpoint -> model builder (in process) -> onnxruntime-genai."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime  # noqa: F401  # must be imported before onnxruntime_genai
import onnxruntime_genai as og
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from app.builder_info import builder_info
from app.presets import BuildOptions
from app.repairs import build_with_repairs
from tests.checkpoint_factory import (
    ARCHITECTURES,
    ASSISTANT_TOKEN,
    BOS_TOKEN,
    ROLE_TOKENS,
    SPECIAL_TOKENS,
    VOCAB_SIZE,
    make_checkpoint,
    make_tokenizer,
)

PRECISIONS = ("fp32", "int4")
NEW_TOKENS = 8
MESSAGES = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "Convert the model to ONNX, please!"},
    {"role": "assistant", "content": "Done."},
    {"role": "user", "content": "Quantize it to int4 too (café, 中文)."},
]

Builder = Callable[[str, str], tuple[Path, Path]]


# The architectures the factory started with; those added for the architecture matrix (multimodal classes, MoE,
# hybrid attention) are built, run and compared with PyTorch in tests/test_architecture_matrix.py.
SEEDED = ("llama", "mistral", "qwen2", "qwen3", "phi3", "gemma", "gemma2", "smollm3")
assert set(SEEDED) <= set(ARCHITECTURES)


def build_onnx(checkpoint: Path, output_dir: Path, precision: str, cache_dir: Path) -> Path:
    # As the studio calls the builder (repairs included: 0.18's reduced sliding-window cache cannot generate fewer
    # tokens than the window); the bare builder's defects are tests/test_repairs.py's subject.
    build_with_repairs(checkpoint, output_dir, cache_dir, BuildOptions(precision, precision, "cpu"), False)
    return output_dir


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Builder:
    """Build (once per module) the checkpoint of an architecture and its ONNX model at a precision."""
    root = tmp_path_factory.mktemp("built")
    checkpoints: dict[str, Path] = {}
    outputs: dict[tuple[str, str], Path] = {}

    def get(arch: str, precision: str) -> tuple[Path, Path]:
        if arch not in checkpoints:
            checkpoints[arch] = make_checkpoint(arch, root / arch / "hf")
        if (arch, precision) not in outputs:
            output_dir = root / arch / precision
            outputs[arch, precision] = build_onnx(checkpoints[arch], output_dir, precision, root / "cache")
        return checkpoints[arch], outputs[arch, precision]

    return get


def greedy_generate(model_dir: Path, messages: list[dict[str, str]]) -> tuple[list[int], list[int]]:
    """Greedy generation of NEW_TOKENS tokens with onnxruntime-genai; returns (prompt ids, new ids)."""
    model = og.Model(str(model_dir))
    tokenizer = og.Tokenizer(model)
    prompt = tokenizer.apply_chat_template(json.dumps(messages), add_generation_prompt=True)
    prompt_ids = [int(token) for token in tokenizer.encode(prompt)]

    params = og.GeneratorParams(model)
    # min_length keeps an end-of-sequence token that a random model may pick from ending generation early.
    total = len(prompt_ids) + NEW_TOKENS
    params.set_search_options(max_length=total, min_length=total, do_sample=False)
    generator = og.Generator(model, params)
    generator.append_tokens(prompt_ids)
    while not generator.is_done():
        generator.generate_next_token()
    sequence = [int(token) for token in generator.get_sequence(0)]
    return prompt_ids, sequence[len(prompt_ids) :]


def prompt_logits(model_dir: Path, prompt_ids: list[int]) -> np.ndarray:
    """onnxruntime-genai logits for every prompt position, shape (len(prompt_ids), vocab)."""
    model = og.Model(str(model_dir))
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(prompt_ids) + 1, do_sample=False)
    generator = og.Generator(model, params)
    generator.append_tokens(prompt_ids)
    return np.asarray(generator.get_output("logits"))[0]


def transformers_logits(checkpoint: Path, prompt_ids: list[int]) -> np.ndarray:
    model = AutoModelForCausalLM.from_pretrained(checkpoint).eval()
    with torch.no_grad():
        return model(torch.tensor([prompt_ids])).logits[0].float().numpy()


# ---------------------------------------------------------------------------------------------------------------------
# The factory on its own
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", SEEDED)
def test_checkpoint_files_and_config(arch: str, tmp_path: Path) -> None:
    checkpoint = make_checkpoint(arch, tmp_path / arch)

    names = {path.name for path in checkpoint.iterdir()}
    expected = {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "tokenizer_config.json"}
    assert expected <= names
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["architectures"] == [ARCHITECTURES[arch].model_class.__name__]
    assert config["hidden_size"] == 64
    assert config["num_hidden_layers"] == 2
    assert config["vocab_size"] == VOCAB_SIZE

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    assert len(tokenizer) == VOCAB_SIZE
    text = "Hello,  world!\n\nThe builder converts 12345 weights (café, 中文) <|user|>x<|end|>"
    assert tokenizer(text)["input_ids"] == make_tokenizer()(text)["input_ids"]
    assert tokenizer.bos_token == BOS_TOKEN
    assert tokenizer.eos_token is not None and tokenizer.pad_token is not None
    for marker in ROLE_TOKENS:
        assert marker in tokenizer.all_special_tokens
        assert tokenizer.tokenize(f"a{marker}b") == ["a", marker, "b"]


def test_checkpoints_are_deterministic(tmp_path: Path) -> None:
    first = make_checkpoint("qwen3", tmp_path / "first")
    second = make_checkpoint("qwen3", tmp_path / "second")
    for name in ("model.safetensors", "tokenizer.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes()


@pytest.mark.parametrize(("arch", "tie"), [("llama", True), ("gemma", False)])
def test_tie_word_embeddings_override(arch: str, tie: bool, tmp_path: Path) -> None:
    checkpoint = make_checkpoint(arch, tmp_path / "hf", tie_word_embeddings=tie, dtype="bfloat16")
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["tie_word_embeddings"] is tie
    assert config["dtype"] == "bfloat16"

    output_dir = build_onnx(checkpoint, tmp_path / "onnx", "fp32", tmp_path / "cache")
    _, new_ids = greedy_generate(output_dir, MESSAGES)
    assert len(new_ids) == NEW_TOKENS


# ---------------------------------------------------------------------------------------------------------------------
# Checkpoint -> builder -> onnxruntime-genai
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("arch", SEEDED)
def test_build_and_generate(arch: str, precision: str, built: Builder) -> None:
    _, output_dir = built(arch, precision)
    assert (output_dir / "model.onnx").is_file()
    assert (output_dir / "genai_config.json").is_file()

    prompt_ids, new_ids = greedy_generate(output_dir, MESSAGES)

    assert len(new_ids) == NEW_TOKENS
    assert all(0 <= token < VOCAB_SIZE for token in new_ids)
    assert prompt_ids[0] == SPECIAL_TOKENS.index(BOS_TOKEN)


@pytest.mark.parametrize("arch", SEEDED)
def test_chat_template_matches_transformers(arch: str, built: Builder) -> None:
    checkpoint, output_dir = built(arch, "fp32")
    og_tokenizer = og.Tokenizer(og.Model(str(output_dir)))
    hf_tokenizer = AutoTokenizer.from_pretrained(checkpoint)

    for add_generation_prompt in (True, False):
        og_prompt = og_tokenizer.apply_chat_template(json.dumps(MESSAGES), add_generation_prompt=add_generation_prompt)
        hf_prompt = hf_tokenizer.apply_chat_template(
            MESSAGES, tokenize=False, add_generation_prompt=add_generation_prompt
        )
        assert og_prompt == hf_prompt
        og_ids = [int(token) for token in og_tokenizer.encode(og_prompt)]
        assert og_ids == hf_tokenizer(hf_prompt, add_special_tokens=False)["input_ids"]
    assert og_prompt.startswith(BOS_TOKEN)
    assert hf_tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True).endswith(
        f"{ASSISTANT_TOKEN}\n"
    )


@pytest.mark.parametrize("arch", SEEDED)
def test_fp32_logits_match_transformers(arch: str, built: Builder) -> None:
    checkpoint, output_dir = built(arch, "fp32")
    prompt_ids, _ = greedy_generate(output_dir, MESSAGES)

    expected = transformers_logits(checkpoint, prompt_ids)
    actual = prompt_logits(output_dir, prompt_ids)

    np.testing.assert_allclose(actual, expected, atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------------------------------------------------------------
# Known defects of onnxruntime-genai builder 0.14.1 (strict: these start failing once the builder is fixed)
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.xfail(
    builder_info().version.startswith("0.14."),  # 0.18 slides the window on the even layers, as transformers does
    strict=True,
    raises=AssertionError,
    reason="builder 0.14.1 slides the window on Gemma2's odd layers, transformers on even",
)
def test_gemma2_sliding_window_shorter_than_prompt(tmp_path: Path) -> None:
    checkpoint = make_checkpoint("gemma2", tmp_path / "hf", config_overrides={"sliding_window": 16})
    output_dir = build_onnx(checkpoint, tmp_path / "onnx", "fp32", tmp_path / "cache")
    prompt_ids, _ = greedy_generate(output_dir, MESSAGES)
    assert len(prompt_ids) > 16

    np.testing.assert_allclose(
        prompt_logits(output_dir, prompt_ids), transformers_logits(checkpoint, prompt_ids), atol=1e-4, rtol=1e-4
    )
