"""Build tiny, real Hugging Face checkpoints (random weights) for tests.

Every checkpoint is a genuine ``transformers`` model of one of the supported architectures, saved the way the
Hub ships them: ``config.json``, ``model.safetensors``, ``generation_config.json`` and the tokenizer files
(``tokenizer.json``, ``tokenizer_config.json``, ``chat_template.jinja``). Everything is tiny (2 layers, hidden
size 64, 4 attention heads of 16 dims, 2 key/value heads, 256 positions) so building one takes well under a
second and converting it with the onnxruntime-genai model builder takes about as long.

The tokenizer is a byte-level BPE trained once per process on text generated in this module. Its special tokens
are padding, begin/end of text and the role markers of a role-marker chat template::

    <|begin_of_text|><|user|>
    Hello<|end|>
    <|assistant|>

Usage::

    from tests.checkpoint_factory import make_checkpoint

    checkpoint = make_checkpoint("llama", tmp_path / "llama")
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import (
    Gemma2Config,
    Gemma2ForCausalLM,
    GemmaConfig,
    GemmaForCausalLM,
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Phi3Config,
    Phi3ForCausalLM,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
    SmolLM3Config,
    SmolLM3ForCausalLM,
)
from transformers import models as _hf_models

# ---------------------------------------------------------------------------------------------------------------------
# Sizes
# ---------------------------------------------------------------------------------------------------------------------

NUM_ATTENTION_HEADS = 4
NUM_KEY_VALUE_HEADS = 2
MAX_POSITION_EMBEDDINGS = 256
SEED = 1234
DTYPES = ("float32", "float16", "bfloat16")

# ---------------------------------------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------------------------------------

PAD_TOKEN = "<|pad|>"
BOS_TOKEN = "<|begin_of_text|>"
EOS_TOKEN = "<|endoftext|>"
SYSTEM_TOKEN = "<|system|>"
USER_TOKEN = "<|user|>"
ASSISTANT_TOKEN = "<|assistant|>"
END_OF_TURN_TOKEN = "<|end|>"
ROLE_TOKENS = (SYSTEM_TOKEN, USER_TOKEN, ASSISTANT_TOKEN, END_OF_TURN_TOKEN)

# The order fixes the ids: pad=0, bos=1, eos=2, then the role markers (3..6).
SPECIAL_TOKENS: tuple[str, ...] = (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, *ROLE_TOKENS)
PAD_TOKEN_ID = SPECIAL_TOKENS.index(PAD_TOKEN)
BOS_TOKEN_ID = SPECIAL_TOKENS.index(BOS_TOKEN)
EOS_TOKEN_ID = SPECIAL_TOKENS.index(EOS_TOKEN)
END_OF_TURN_TOKEN_ID = SPECIAL_TOKENS.index(END_OF_TURN_TOKEN)

VOCAB_SIZE = 384
"""Vocabulary size of the trained tokenizer: the 256 byte symbols, the 7 special tokens and the BPE merges."""

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)
"""Role-marker chat template; every marker it writes is a special token of the tokenizer."""

_SUBJECTS = ("the model", "a tokenizer", "the builder", "my laptop", "our team", "the runtime", "this test", "a user")
_VERBS = ("converts", "loads", "writes", "reads", "quantizes", "checks", "builds", "runs", "saves", "prints")
_OBJECTS = (
    "the weights",
    "an ONNX graph",
    "the config file",
    "a chat prompt",
    "eight new tokens",
    "the cache folder",
    "int4 blocks",
    "a safetensors file",
)
_ENDINGS = (
    "quickly.",
    "on the CPU.",
    "without errors!",
    "again?",
    "in 2 seconds.",
    "for everyone.",
    "today.",
    "(twice).",
)


def training_corpus(num_lines: int = 400, seed: int = 0) -> list[str]:
    """Deterministic training text: English-like sentences, questions, numbers and a little Python."""
    rng = random.Random(seed)
    lines: list[str] = []
    for index in range(num_lines):
        kind = index % 4
        if kind == 0:
            words = (rng.choice(_SUBJECTS), rng.choice(_VERBS), rng.choice(_OBJECTS), rng.choice(_ENDINGS))
            lines.append(" ".join(words).capitalize())
        elif kind == 1:
            numbers = ", ".join(str(rng.randint(0, 9999)) for _ in range(rng.randint(2, 6)))
            lines.append(f"Numbers: {numbers}; total = {rng.randint(0, 99999)}")
        elif kind == 2:
            name = rng.choice(("size", "count", "layers", "heads", "value"))
            lines.append(f"def get_{name}(x: int) -> int:\n    return x * {rng.randint(2, 64)} + {rng.randint(0, 9)}")
        else:
            question = f"What does {rng.choice(_SUBJECTS)} do with {rng.choice(_OBJECTS)}?"
            answer = f"It {rng.choice(_VERBS)} it {rng.choice(_ENDINGS)}"
            lines.append(f"{question} {answer}")
    return lines


# Pre-tokenizer split of Qwen2/Qwen3 (and GPT-4 style tokenizers): words, single digits, punctuation runs, newlines.
PRETOKENIZE_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


@functools.cache
def trained_tokenizer_json() -> str:
    """Train the byte-level BPE tokenizer (once per process) and return it serialized as ``tokenizer.json`` text.

    The pipeline (NFC, regex split, byte level) is the one transformers' ``Qwen2Tokenizer`` hard-codes. AutoTokenizer
    in transformers 5 loads a ``qwen2`` checkpoint with that class whatever ``tokenizer_config.json`` says, keeping
    only the vocabulary and merges of ``tokenizer.json``; using the same pipeline everywhere makes every architecture
    tokenize alike.
    """
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(training_corpus(), trainer=trainer)
    if tokenizer.get_vocab_size() != VOCAB_SIZE:
        raise RuntimeError(f"Trained vocabulary has {tokenizer.get_vocab_size()} entries, expected {VOCAB_SIZE}")
    return tokenizer.to_str()


def make_tokenizer() -> PreTrainedTokenizerFast:
    """A fresh ``PreTrainedTokenizerFast`` around the trained tokenizer, with special tokens and chat template."""
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(trained_tokenizer_json()),
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        extra_special_tokens=list(ROLE_TOKENS),
        model_max_length=MAX_POSITION_EMBEDDINGS,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


# ---------------------------------------------------------------------------------------------------------------------
# Architectures
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    """The shape shared by every architecture; each architecture adds its own settings on top."""

    num_layers: int
    hidden_size: int

    @property
    def head_dim(self) -> int:
        return self.hidden_size // NUM_ATTENTION_HEADS

    def config_kwargs(self) -> dict[str, Any]:
        return {
            "vocab_size": VOCAB_SIZE,
            "hidden_size": self.hidden_size,
            "intermediate_size": 2 * self.hidden_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": NUM_ATTENTION_HEADS,
            "num_key_value_heads": NUM_KEY_VALUE_HEADS,
            "max_position_embeddings": MAX_POSITION_EMBEDDINGS,
            "bos_token_id": BOS_TOKEN_ID,
            "eos_token_id": EOS_TOKEN_ID,
            "pad_token_id": PAD_TOKEN_ID,
        }


def _rope(theta: float) -> dict[str, Any]:
    # transformers 5 keeps RoPE settings in `rope_parameters` (no top-level `rope_theta`). Builder 0.14.1 still finds
    # the theta: `config.rope_scaling` is now an alias of `rope_parameters`, and the builder reads
    # `rope_scaling["rope_theta"]` when the config has no `rope_theta` attribute.
    return {"rope_parameters": {"rope_type": "default", "rope_theta": theta}}


def _llama(sizes: Sizes) -> dict[str, Any]:
    return {"head_dim": sizes.head_dim, **_rope(500_000.0)}


def _mistral(sizes: Sizes) -> dict[str, Any]:
    # Recent Mistral checkpoints have no sliding window (MistralConfig's default is 4096).
    return {"head_dim": sizes.head_dim, "sliding_window": None, **_rope(1_000_000.0)}


def _qwen2(sizes: Sizes) -> dict[str, Any]:
    # Qwen2Config has no head_dim argument: it is always hidden_size // num_attention_heads.
    return _rope(1_000_000.0)


def _qwen3(sizes: Sizes) -> dict[str, Any]:
    # Qwen3Config's head_dim defaults to 128 whatever the hidden size, so it must be set.
    return {"head_dim": sizes.head_dim, **_rope(1_000_000.0)}


def _phi3(sizes: Sizes) -> dict[str, Any]:
    # The builder picks Phi3MiniLongRoPEModel whenever max_position_embeddings != original_max_position_embeddings
    # (Phi3Config's default for the latter is 4096), and that path needs LongRoPE short/long factors.
    return {"original_max_position_embeddings": MAX_POSITION_EMBEDDINGS, **_rope(10_000.0)}


def _gemma(sizes: Sizes) -> dict[str, Any]:
    # GemmaConfig's head_dim defaults to 256.
    return {"head_dim": sizes.head_dim, **_rope(10_000.0)}


def _gemma2(sizes: Sizes) -> dict[str, Any]:
    return {
        "head_dim": sizes.head_dim,
        "query_pre_attn_scalar": sizes.head_dim,
        # Builder 0.14.1 puts the sliding window on the odd layers, transformers on the even ones
        # (layer_types = sliding, full, ...). The two agree only while no sequence outgrows the window, so the window
        # spans the whole context here.
        "sliding_window": MAX_POSITION_EMBEDDINGS,
        **_rope(10_000.0),
    }


def _smollm3(sizes: Sizes) -> dict[str, Any]:
    # SmolLM3 skips RoPE on every `no_rope_layer_interval`-th layer (4 by default: layers 3, 7, ...). Builder 0.14.1
    # cannot convert a NoPE layer (KeyError: 'position_ids'), so a default 2-layer checkpoint has none; ask for
    # num_layers >= 4 to get one.
    return _rope(5_000_000.0)


@dataclass(frozen=True)
class Architecture:
    """How to build one architecture: its config and model classes and the settings specific to it.

    A multimodal class (``...ForConditionalGeneration``) gets the sizes and settings in its ``text_config``,
    beside the tiny vision (and audio) towers ``outer`` returns: real checkpoints of it are saved that way.
    """

    config_class: type[PretrainedConfig]
    model_class: type[PreTrainedModel]
    settings: Callable[[Sizes], dict[str, Any]]
    outer: Callable[[Sizes], dict[str, Any]] | None = None

    def make_config(self, sizes: Sizes, overrides: Mapping[str, Any]) -> PretrainedConfig:
        text = sizes.config_kwargs() | self.settings(sizes) | dict(overrides)
        if self.outer is None:
            config = self.config_class(**text)
        else:
            dtype = text.pop("dtype", None)
            config = self.config_class(text_config=text, **self.outer(sizes))
            # One answer to "tied?" at both levels, the decoder's, as in the real checkpoints' config.json.
            config.tie_word_embeddings = config.text_config.tie_word_embeddings
            config.dtype = dtype
        config.architectures = [self.model_class.__name__]
        return config


def _hf(module: str, name: str) -> Any:
    """A transformers class by module and name (the newer architectures are not all exported at the top)."""
    return getattr(getattr(_hf_models, module), name)


def _qwen3_5(sizes: Sizes) -> dict[str, Any]:
    # Qwen3.5 mixes Gated DeltaNet (linear attention) layers with full-attention ones (3:1 in the real models);
    # two layers here: one of each. Its full attention rotates a quarter of each head (partial RoPE, MRoPE sections).
    heads = NUM_ATTENTION_HEADS
    return {
        "head_dim": sizes.head_dim,
        "layer_types": ["linear_attention", "full_attention"] * (sizes.num_layers // 2)
        + ["linear_attention"] * (sizes.num_layers % 2),
        "linear_num_key_heads": heads // 2,
        "linear_num_value_heads": heads,
        "linear_key_head_dim": sizes.head_dim,
        "linear_value_head_dim": sizes.head_dim,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 10_000_000.0,
            "partial_rotary_factor": 0.25,
            "mrope_section": [1, 1, 0],
            "mrope_interleaved": True,
        },
    }


def _qwen3_5_moe(sizes: Sizes) -> dict[str, Any]:
    return _qwen3_5(sizes) | {
        "num_experts": 4,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": sizes.hidden_size,
        "shared_expert_intermediate_size": sizes.hidden_size,
    }


def _qwen3_5_vision(sizes: Sizes) -> dict[str, Any]:
    return {
        "vision_config": {
            "depth": 1,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": sizes.hidden_size,
            "num_position_embeddings": 16,
        }
    }


def _gemma4(sizes: Sizes) -> dict[str, Any]:
    # Gemma 4 alternates sliding-window and global layers, the global ones with twice the head size (transformers
    # keeps that in a per-layer head_dim) and proportional partial RoPE; real checkpoints also feed a per-layer input.
    return {
        "head_dim": sizes.head_dim,
        "global_head_dim": 2 * sizes.head_dim,
        "layer_types": ["sliding_attention"] * (sizes.num_layers - 1) + ["full_attention"],
        "sliding_window": MAX_POSITION_EMBEDDINGS,
        "vocab_size_per_layer_input": VOCAB_SIZE,
        "hidden_size_per_layer_input": 16,
        # The mixture-of-experts form (as in Gemma 4 26B-A4B): the one the 0.18 builder reads for this class.
        "enable_moe_block": True,
        "num_experts": 4,
        "top_k_experts": 2,
        "moe_intermediate_size": sizes.hidden_size,
    }


def _gemma4_vision(sizes: Sizes) -> dict[str, Any]:
    return {
        "vision_config": {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "head_dim": 16,
        },
        "audio_config": None,
    }


def _mistral3_vision(sizes: Sizes) -> dict[str, Any]:
    return {
        "vision_config": {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "head_dim": 16,
            "image_size": 32,
            "patch_size": 16,
        },
    }


def _moe(sizes: Sizes) -> dict[str, Any]:
    return {
        "head_dim": sizes.head_dim,
        "num_experts": 4,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": sizes.hidden_size,
        **_rope(1_000_000.0),
    }


def _gemma3(sizes: Sizes) -> dict[str, Any]:
    return _gemma2(sizes) | {
        "layer_types": ["sliding_attention", "full_attention"] * (sizes.num_layers // 2)
        + ["sliding_attention"] * (sizes.num_layers % 2)
    }


def _granite(sizes: Sizes) -> dict[str, Any]:
    return _rope(10_000.0)


def _plain(sizes: Sizes) -> dict[str, Any]:
    return {"head_dim": sizes.head_dim, **_rope(10_000.0)}


def _gpt_oss(sizes: Sizes) -> dict[str, Any]:
    # gpt-oss: every layer a mixture of experts, sliding and full attention alternating, attention sinks.
    return {
        "head_dim": sizes.head_dim,
        "num_local_experts": 4,
        "num_experts_per_tok": 2,
        "layer_types": ["sliding_attention", "full_attention"] * (sizes.num_layers // 2)
        + ["sliding_attention"] * (sizes.num_layers % 2),
        "sliding_window": MAX_POSITION_EMBEDDINGS,
        "rope_parameters": {  # YaRN, as in the real models
            "rope_type": "yarn",
            "rope_theta": 150_000.0,
            "factor": 32.0,
            "beta_fast": 32.0,
            "beta_slow": 1.0,
            "truncate": False,
            "original_max_position_embeddings": 4096,
        },
    }


def _granite_moe_hybrid(sizes: Sizes) -> dict[str, Any]:
    # Granite 4.0 micro: the hybrid class with attention in every layer and one always-on (shared) MLP, no experts.
    return {
        "layer_types": ["attention"] * sizes.num_layers,
        "num_local_experts": 0,
        "shared_intermediate_size": 2 * sizes.hidden_size,
        "position_embedding_type": "rope",
        **_rope(10_000.0),
    }


def granite_h_mamba_layers(num_layers: int) -> dict[str, Any]:
    """Config overrides for the Granite 4.0 H shape: Mamba-2 layers beside attention ones (9:1 in the real models)."""
    return {
        "layer_types": ["mamba", "attention"] * (num_layers // 2) + ["mamba"] * (num_layers % 2),
        "mamba_n_heads": 4,
        "mamba_d_head": 32,
        "mamba_n_groups": 1,
        "mamba_d_state": 16,
        "mamba_chunk_size": 16,
        "position_embedding_type": "nope",
    }


def _lfm2_moe(sizes: Sizes) -> dict[str, Any]:
    return _granite(sizes) | {
        "num_experts": 4,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": sizes.hidden_size,
        "num_dense_layers": 1,
        "layer_types": ["conv", "full_attention"] * (sizes.num_layers // 2) + ["conv"] * (sizes.num_layers % 2),
    }


ARCHITECTURES: dict[str, Architecture] = {
    "llama": Architecture(LlamaConfig, LlamaForCausalLM, _llama),
    "mistral": Architecture(MistralConfig, MistralForCausalLM, _mistral),
    "qwen2": Architecture(Qwen2Config, Qwen2ForCausalLM, _qwen2),
    "qwen3": Architecture(Qwen3Config, Qwen3ForCausalLM, _qwen3),
    "phi3": Architecture(Phi3Config, Phi3ForCausalLM, _phi3),
    "gemma": Architecture(GemmaConfig, GemmaForCausalLM, _gemma),
    "gemma2": Architecture(Gemma2Config, Gemma2ForCausalLM, _gemma2),
    "smollm3": Architecture(SmolLM3Config, SmolLM3ForCausalLM, _smollm3),
    "qwen3_5": Architecture(
        _hf("qwen3_5", "Qwen3_5Config"), _hf("qwen3_5", "Qwen3_5ForConditionalGeneration"), _qwen3_5, _qwen3_5_vision
    ),
    "qwen3_5_moe": Architecture(
        _hf("qwen3_5_moe", "Qwen3_5MoeConfig"),
        _hf("qwen3_5_moe", "Qwen3_5MoeForConditionalGeneration"),
        _qwen3_5_moe,
        _qwen3_5_vision,
    ),
    "gemma4": Architecture(
        _hf("gemma4", "Gemma4Config"), _hf("gemma4", "Gemma4ForConditionalGeneration"), _gemma4, _gemma4_vision
    ),
    "mistral3": Architecture(
        _hf("mistral3", "Mistral3Config"),
        _hf("mistral3", "Mistral3ForConditionalGeneration"),
        _mistral,
        _mistral3_vision,
    ),
    "gemma3": Architecture(_hf("gemma3", "Gemma3TextConfig"), _hf("gemma3", "Gemma3ForCausalLM"), _gemma3),
    "qwen3_moe": Architecture(_hf("qwen3_moe", "Qwen3MoeConfig"), _hf("qwen3_moe", "Qwen3MoeForCausalLM"), _moe),
    "granite": Architecture(_hf("granite", "GraniteConfig"), _hf("granite", "GraniteForCausalLM"), _granite),
    "olmo": Architecture(_hf("olmo", "OlmoConfig"), _hf("olmo", "OlmoForCausalLM"), _granite),
    "ernie4_5": Architecture(_hf("ernie4_5", "Ernie4_5Config"), _hf("ernie4_5", "Ernie4_5ForCausalLM"), _plain),
    "lfm2": Architecture(_hf("lfm2", "Lfm2Config"), _hf("lfm2", "Lfm2ForCausalLM"), _granite),
    "gpt_oss": Architecture(_hf("gpt_oss", "GptOssConfig"), _hf("gpt_oss", "GptOssForCausalLM"), _gpt_oss),
    "granitemoehybrid": Architecture(
        _hf("granitemoehybrid", "GraniteMoeHybridConfig"),
        _hf("granitemoehybrid", "GraniteMoeHybridForCausalLM"),
        _granite_moe_hybrid,
    ),
    "lfm2_moe": Architecture(_hf("lfm2_moe", "Lfm2MoeConfig"), _hf("lfm2_moe", "Lfm2MoeForCausalLM"), _lfm2_moe),
}
"""Architecture name -> how to build its config and model. Gemma, Gemma2 and SmolLM3 tie their embeddings by default."""


def make_checkpoint(
    arch: str,
    dest: Path,
    *,
    num_layers: int = 2,
    hidden_size: int = 64,
    dtype: str = "float32",
    tie_word_embeddings: bool | None = None,
    config_overrides: Mapping[str, Any] | None = None,
) -> Path:
    """Write a tiny random-weight checkpoint of ``arch`` into ``dest`` and return ``dest``.

    ``tie_word_embeddings=None`` keeps the architecture's default. ``config_overrides`` are extra config arguments
    applied last (e.g. ``{"sliding_window": 16}``). The weights depend only on the arguments: the seed is fixed.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    if dtype not in DTYPES:
        raise ValueError(f"Unsupported dtype {dtype!r}; supported: {', '.join(DTYPES)}")
    if hidden_size % NUM_ATTENTION_HEADS:
        raise ValueError(f"hidden_size must be a multiple of {NUM_ATTENTION_HEADS}, got {hidden_size}")

    overrides: dict[str, Any] = {"dtype": dtype}
    if tie_word_embeddings is not None:
        overrides["tie_word_embeddings"] = tie_word_embeddings
    overrides |= dict(config_overrides or {})
    architecture = ARCHITECTURES[arch]
    config = architecture.make_config(Sizes(num_layers, hidden_size), overrides)

    torch.manual_seed(SEED)
    model = architecture.model_class(config).to(getattr(torch, dtype)).eval()

    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest)
    GenerationConfig(
        bos_token_id=BOS_TOKEN_ID,
        eos_token_id=[EOS_TOKEN_ID, END_OF_TURN_TOKEN_ID],
        pad_token_id=PAD_TOKEN_ID,
        do_sample=False,
    ).save_pretrained(dest)
    make_tokenizer().save_pretrained(dest)
    return dest
