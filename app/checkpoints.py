"""Inspecting a Hugging Face checkpoint folder without loading its weights.

Parameter count, dtype and completeness come from the safetensors headers (a few KB each); the
architecture's support comes from the installed builder (app.builder_info).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .builder_defects import checkpoint_defect, unsupported_architecture
from .builder_info import builder_info
from .checkpoint_config import MAX_CONFIG_BYTES, check_config, check_tokenizer_files, config_dims, text_config
from .errors import CheckpointError
from .repairs import repairs_for
from .weights import check_tensors, load_json_file, scan_safetensors, shard_files

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tiktoken.model")
_DTYPE_NAMES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64", "I32": "int32", "U8": "uint8"}


@dataclass
class CheckpointInfo:
    path: str
    architecture: str
    family: str
    parameters: int
    parameters_source: str
    """'safetensors' (exact, from the weight headers) or 'config' (estimated from sizes in config.json)."""
    dtype: str
    size_bytes: int
    weight_bytes: int
    num_layers: int
    hidden_size: int
    vocab_size: int
    context_length: int
    tokenizer: bool
    chat_template: bool
    quantization: str | None
    builder_supported: bool
    builder_version: str
    builder_defect: str | None
    needs_remote_code: bool
    tied_embeddings: bool
    problems: list[str] = field(default_factory=list)
    kv_hidden_size: int = 0
    """Key-value heads x head size: one layer's K (or V) cache width per token; 0 where config.json does not say."""
    builder_repairs: list[str] = field(default_factory=list)
    """Ids of the repairs (app.repairs) the installed builder needs for this checkpoint: 'converts with a repair'."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_config(folder: Path) -> dict[str, Any]:
    config_path = folder / "config.json"
    if not config_path.exists() and not config_path.is_symlink():
        raise CheckpointError(f"{folder} has no config.json, so it is not a Hugging Face checkpoint folder.")
    config = load_json_file(config_path, MAX_CONFIG_BYTES, "re-download the checkpoint or fix the file")
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_path} does not hold a JSON object; re-download the checkpoint.")
    return config


def check_folder(path: Path) -> Path:
    if not path.exists():
        raise CheckpointError(f"{path} does not exist; give the path of a checkpoint folder.")
    if not path.is_dir():
        raise CheckpointError(f"{path} is a file; give the folder that holds config.json and the weights.")
    if not any(path.iterdir()):
        raise CheckpointError(f"{path} is empty; download or copy the checkpoint into it first.")
    return path.resolve()


def weight_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """(safetensors files, PyTorch .bin files) of a checkpoint."""
    safetensors = sorted(folder.glob("*.safetensors"))
    bins = sorted(p for p in folder.glob("*.bin") if p.name.startswith(("pytorch_model", "model")))
    return safetensors, bins


def estimate_parameters(config: dict[str, Any]) -> int:
    """Decoder-only parameter count from config sizes, for checkpoints whose weights we cannot scan."""
    text = text_config(config)
    hidden = int(text.get("hidden_size", 0))
    layers = int(text.get("num_hidden_layers", 0))
    vocab = int(text.get("vocab_size", 0))
    heads, kv_heads, head_dim = attention_shape(text)
    intermediate = text.get("intermediate_size") or 4 * hidden
    intermediate = max(intermediate) if isinstance(intermediate, list) else int(intermediate)
    attention = hidden * head_dim * (2 * heads + 2 * kv_heads)
    mlp = 3 * hidden * intermediate
    embeddings = vocab * hidden * (1 if text.get("tie_word_embeddings", False) else 2)
    return embeddings + layers * (attention + mlp + 2 * hidden) + hidden


def attention_shape(text_config: dict[str, Any]) -> tuple[int, int, int]:
    """(attention heads, key-value heads, head size) from a decoder's config."""
    heads = int(text_config.get("num_attention_heads", 1) or 1)
    kv_heads = int(text_config.get("num_key_value_heads", heads) or heads)
    head_dim = int(text_config.get("head_dim") or int(text_config.get("hidden_size", 0)) // heads)
    return heads, kv_heads, head_dim


def inspect_checkpoint(path: Path) -> CheckpointInfo:
    folder = check_folder(Path(path))
    config = read_config(folder)
    architectures = config.get("architectures") or []
    if not architectures:
        raise CheckpointError(f"{folder / 'config.json'} names no architecture; this checkpoint cannot be converted.")
    check_config(config, folder / "config.json")
    check_tokenizer_files(folder)
    text = text_config(config)
    architecture = architectures[0]
    info = builder_info()
    _, bins = weight_files(folder)
    safetensors = shard_files(folder)
    if safetensors:
        scan = scan_safetensors(safetensors)
        check_tensors(scan.tensors, config_dims(config), str(folder / "config.json"))
        parameters, parameters_source = scan.parameters, "safetensors"
        dominant = max(scan.dtypes, key=scan.dtypes.get) if scan.dtypes else "F32"
        dtype = _DTYPE_NAMES.get(dominant, dominant.lower())
        weight_bytes = scan.weight_bytes
    else:
        parameters, parameters_source = estimate_parameters(config), "config"
        dtype = str(config.get("torch_dtype") or config.get("dtype") or text.get("dtype") or "float32")
        weight_bytes = sum(p.stat().st_size for p in bins)
    quantization = config.get("quantization_config")
    supported = info.supports_architecture(architecture)
    return CheckpointInfo(
        path=str(folder),
        architecture=architecture,
        family=str(config.get("model_type", "unknown")),
        parameters=parameters,
        parameters_source=parameters_source,
        dtype=dtype,
        size_bytes=sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()),
        weight_bytes=weight_bytes,
        num_layers=int(text.get("num_hidden_layers", 0)),
        hidden_size=int(text.get("hidden_size", 0)),
        vocab_size=int(text.get("vocab_size", 0)),
        context_length=int(text.get("max_position_embeddings", 0)),
        tokenizer=any((folder / name).is_file() for name in TOKENIZER_FILES),
        chat_template=_has_chat_template(folder),
        quantization=quantization.get("quant_method", "unknown") if isinstance(quantization, dict) else None,
        builder_supported=supported,
        builder_version=info.version,
        builder_defect=checkpoint_defect(config, info)
        if supported
        else unsupported_architecture(architecture, config, info),
        needs_remote_code="auto_map" in config,
        tied_embeddings=bool(text.get("tie_word_embeddings", config.get("tie_word_embeddings", False))),
        problems=_problems(folder, safetensors, bins),
        kv_hidden_size=_kv_hidden_size(text),
        builder_repairs=[repair.id for repair in repairs_for(config, info.version)] if supported else [],
    )


def _kv_hidden_size(text_config: dict[str, Any]) -> int:
    _, kv_heads, head_dim = attention_shape(text_config)
    return kv_heads * head_dim


def _has_chat_template(folder: Path) -> bool:
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    tokenizer_config = folder / "tokenizer_config.json"
    if not tokenizer_config.is_file():
        return False
    try:
        return bool(json.loads(tokenizer_config.read_text(encoding="utf-8")).get("chat_template"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def _problems(folder: Path, safetensors: list[Path], bins: list[Path]) -> list[str]:
    problems = []
    if not safetensors and not bins:
        problems.append("no weight files (*.safetensors or pytorch_model*.bin)")
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        problems.append("no tokenizer (tokenizer.json or tokenizer.model)")
    return problems


def _families(architectures: tuple[str, ...]) -> str:
    """'ChatGLM, Ernie4_5, Gemma, ...': the model classes without their ForCausalLM-style suffix (a sentence that
    lists forty class names runs past a thousand characters)."""
    suffixes = ("ForCausalLM", "ForConditionalGeneration", "Model")
    names = {next((a.removesuffix(s) for s in suffixes if a.endswith(s)), a) for a in architectures}
    return ", ".join(sorted(names, key=str.lower))


def check_convertible(info: CheckpointInfo, trust_remote_code: bool = False) -> None:
    """Refuse, in one sentence, a checkpoint the builder cannot convert."""
    folder = info.path
    if "no weight files" in " ".join(info.problems):
        raise CheckpointError(f"{folder} has no weight files (*.safetensors or pytorch_model*.bin); download them too.")
    if not info.tokenizer:
        raise CheckpointError(
            f"{folder} has no tokenizer (tokenizer.json or tokenizer.model); copy the tokenizer files "
            "from the model's repository into it."
        )
    if not info.builder_supported and info.builder_defect:
        raise CheckpointError(info.builder_defect)
    if not info.builder_supported:
        message = (
            f"the installed builder {info.builder_version} cannot convert {info.architecture}; it converts "
            f"{_families(builder_info().architectures)}."
        )
        if info.needs_remote_code and not trust_remote_code:
            message = (
                message[:-1]
                + "; the checkpoint also ships its own Python code, which runs only with --trust-remote-code."
            )
        raise CheckpointError(message)
    if info.builder_defect:
        raise CheckpointError(info.builder_defect)
