"""config.json and the tokenizer files of a checkpoint, read as untrusted input.

Every value the plan, the estimates or the builder uses is checked for its type and for a range no real model leaves,
so that an impossible value is refused in one sentence at planning: 10^9 layers once grew the builder to 21 GB before
the kernel killed it, and 0 layers made a model without layers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import CheckpointError
from .weights import Dims, load_json_file, regular_file

MAX_CONFIG_BYTES = 16 * 2**20
# Name (and its older spellings) -> the largest value a real model has, with room to spare.
_REQUIRED: dict[tuple[str, ...], int] = {
    ("num_hidden_layers", "n_layer", "num_layers"): 1024,
    ("hidden_size", "n_embd", "d_model"): 2**18,
    ("num_attention_heads", "n_head"): 4096,
    ("vocab_size",): 2**24,
}
_OPTIONAL: dict[str, int] = {
    "num_key_value_heads": 4096,
    "head_dim": 4096,
    "max_position_embeddings": 2**24,
    "intermediate_size": 2**21,
}
MAX_PARAMETERS = 2 * 10**12
# Tokenizer-side JSON files: name -> (byte limit, the JSON type the file holds).
TOKENIZER_JSON: dict[str, tuple[int, type]] = {
    "tokenizer.json": (512 * 2**20, dict),
    "tokenizer_config.json": (64 * 2**20, dict),
    "special_tokens_map.json": (MAX_CONFIG_BYTES, dict),
    "generation_config.json": (MAX_CONFIG_BYTES, dict),
    "added_tokens.json": (64 * 2**20, dict),
    "chat_template.json": (MAX_CONFIG_BYTES, dict),
    "vocab.json": (256 * 2**20, dict),
}
TOKENIZER_BINARY = ("tokenizer.model", "tiktoken.model", "chat_template.jinja", "merges.txt")


def text_config(config: dict[str, Any]) -> dict[str, Any]:
    """The decoder's settings: a multimodal config's `text_config`, else the config itself (also where that key is
    null or not an object)."""
    text = config.get("text_config")
    return text if isinstance(text, dict) else config


def check_config(config: dict[str, Any], path: Path) -> None:
    """Refuse, in one sentence naming the key, a config.json value of the wrong type or out of every real range."""
    for key in ("text_config", "quantization_config", "auto_map", "rope_parameters", "rope_scaling"):
        if config.get(key) is not None and not isinstance(config[key], dict):
            _refuse(path, key, config[key], "an object")
    architectures = config.get("architectures")
    if architectures is not None and (
        not isinstance(architectures, list) or not all(isinstance(a, str) and a for a in architectures)
    ):
        _refuse(path, "architectures", architectures, "a list of class names")
    for key in ("model_type", "torch_dtype", "dtype"):
        if config.get(key) is not None and not isinstance(config[key], str):
            _refuse(path, key, config[key], "a name")
    text = text_config(config)
    if text.get("tie_word_embeddings") is not None and not isinstance(text["tie_word_embeddings"], bool):
        _refuse(path, "tie_word_embeddings", text["tie_word_embeddings"], "true or false")
    for names, limit in _REQUIRED.items():
        present = [name for name in names if name in text]
        if not present:
            raise CheckpointError(f"{path} does not say {names[0]}; this checkpoint cannot be converted as it is.")
        _check_count(path, present[0], text[present[0]], limit)
    for name, limit in _OPTIONAL.items():
        value = text.get(name)
        if value is None and name in ("num_key_value_heads", "head_dim"):
            continue  # null means "derive it", as transformers does
        if name in text:
            values = value if name == "intermediate_size" and isinstance(value, list) and value else [value]
            for item in values:
                _check_count(path, name, item, limit)
    _check_attention(path, text)
    _check_size(path, config)


def _check_count(path: Path, key: str, value: Any, limit: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        _refuse(path, key, value, f"a whole number from 1 to {limit:,}")


def _refuse(path: Path, key: str, value: Any, expected: str) -> None:
    shown = json.dumps(value)[:40] if _jsonable(value) else type(value).__name__
    raise CheckpointError(
        f"{path} says {key} is {shown}, which must be {expected}; fix config.json or download it again."
    )


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


def _check_attention(path: Path, text: dict[str, Any]) -> None:
    hidden, heads = _get(text, 1), _get(text, 2)
    kv_heads = text.get("num_key_value_heads") or heads
    if heads % kv_heads:
        raise CheckpointError(
            f"{path} says {heads} attention heads and {kv_heads} key-value heads, and heads must be a multiple of "
            "key-value heads; fix config.json or download it again."
        )
    if text.get("head_dim") is None and hidden % heads:
        raise CheckpointError(
            f"{path} says hidden_size {hidden} with {heads} attention heads and no head_dim, but {hidden} is not "
            f"divisible by {heads}; fix config.json or download it again."
        )


def _get(text: dict[str, Any], which: int) -> int:
    names = list(_REQUIRED)[which]
    return next(text[name] for name in names if name in text)


def _check_size(path: Path, config: dict[str, Any]) -> None:
    from .checkpoints import estimate_parameters

    parameters = estimate_parameters(config)
    if parameters > MAX_PARAMETERS:
        raise CheckpointError(
            f"{path} describes a model of about {parameters:.2g} parameters, more than any real one; fix config.json "
            "or download it again."
        )


def config_dims(config: dict[str, Any]) -> Dims:
    """The sizes the tensors must have, from a config that passed check_config."""
    text = text_config(config)
    hidden, heads = _get(text, 1), _get(text, 2)
    inter = text.get("intermediate_size")
    tied = text.get("tie_word_embeddings", config.get("tie_word_embeddings"))
    return Dims(
        layers=_get(text, 0),
        hidden=hidden,
        vocab=_get(text, 3),
        heads=heads,
        kv_heads=text.get("num_key_value_heads") or heads,
        head_dim=text.get("head_dim") or hidden // heads,
        intermediate=inter if isinstance(inter, int) else None,
        tied=tied if isinstance(tied, bool) else None,
        quantized=config.get("quantization_config") is not None,
        plain_attention=not any(key in text for key in _UNEVEN_ATTENTION_KEYS),
    )


# Config keys of families whose attention layers differ from one another or from q/k/v of head_dim each.
_UNEVEN_ATTENTION_KEYS = ("per_layer_config", "global_head_dim", "linear_num_value_heads")


def check_tokenizer_files(folder: Path) -> None:
    """Refuse, naming the file, a tokenizer-side file that is not what its name says."""
    for name in TOKENIZER_BINARY:
        if _present(folder / name):
            regular_file(folder / name)
    for name, (limit, kind) in TOKENIZER_JSON.items():
        path = folder / name
        if not _present(path):
            continue
        data = load_json_file(path, limit, "copy it again from the model's repository")
        problem = _tokenizer_problem(name, data, kind)
        if problem:
            raise CheckpointError(f"{path} {problem}; copy it again from the model's repository.")


def _present(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _tokenizer_problem(name: str, data: Any, kind: type) -> str | None:
    if not isinstance(data, kind):
        return f"holds a JSON {type(data).__name__ if data is not None else 'null'}, not an object"
    if name == "tokenizer.json":
        if not isinstance(data.get("model"), dict):
            return 'has no tokenizer model (its "model" is not an object)'
        if not isinstance(data.get("added_tokens", []), list):
            return 'has "added_tokens" that is not a list'
    if name == "tokenizer_config.json":
        template = data.get("chat_template")
        if template is not None and not isinstance(template, (str, list)):
            return "has a chat_template that is neither text nor a list of templates"
    if name == "generation_config.json":
        for key in ("eos_token_id", "bos_token_id", "pad_token_id"):
            value = data.get(key)
            if value is not None and not _token_ids(value):
                return f"says {key} is {json.dumps(value)[:40]}, not a token id"
    if name == "vocab.json" and not all(isinstance(v, int) for v in data.values()):
        return "maps tokens to something other than ids"
    return None


def _token_ids(value: Any) -> bool:
    items = value if isinstance(value, list) else [value]
    return all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in items)
