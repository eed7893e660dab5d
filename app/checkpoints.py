"""Inspecting a Hugging Face checkpoint folder without loading its weights.

Parameter count, dtype and completeness come from the safetensors headers (a few KB each); the
architecture's support comes from the installed builder (app.builder_info).
"""

from __future__ import annotations

import json
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .builder_defects import checkpoint_defect
from .builder_info import builder_info
from .errors import CheckpointError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tiktoken.model")
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_config(folder: Path) -> dict[str, Any]:
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{folder} has no config.json, so it is not a Hugging Face checkpoint folder.")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(
            f"{config_path} is not valid JSON ({error}); re-download the checkpoint or fix the file."
        ) from None
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


@dataclass
class WeightScan:
    parameters: int = 0
    weight_bytes: int = 0
    dtypes: dict[str, int] = field(default_factory=dict)


def scan_safetensors(files: list[Path]) -> WeightScan:
    """Sum tensor sizes from safetensors headers; a file shorter than its header promises is cut short."""
    scan = WeightScan()
    for file in files:
        header_size, header = _safetensors_header(file)
        end = 0
        for name, tensor in header.items():
            if name == "__metadata__":
                continue
            count = 1
            for dim in tensor["shape"]:
                count *= dim
            scan.parameters += count
            scan.dtypes[tensor["dtype"]] = scan.dtypes.get(tensor["dtype"], 0) + count
            end = max(end, tensor["data_offsets"][1])
        expected = 8 + header_size + end
        actual = file.stat().st_size
        if actual < expected:
            raise CheckpointError(
                f"{file.name} is cut short ({actual:,} of {expected:,} bytes); the download did not finish, "
                "download it again."
            )
        scan.weight_bytes += actual
    return scan


def _safetensors_header(file: Path) -> tuple[int, dict[str, Any]]:
    with file.open("rb") as handle:
        raw_size = handle.read(8)
        if len(raw_size) < 8:
            raise CheckpointError(f"{file.name} is cut short (no safetensors header); download it again.")
        (header_size,) = struct.unpack("<Q", raw_size)
        raw_header = handle.read(header_size)
    try:
        if len(raw_header) < header_size:
            raise ValueError("header cut short")
        return header_size, json.loads(raw_header)
    except (ValueError, UnicodeDecodeError):
        raise CheckpointError(f"{file.name} is not a readable safetensors file; download it again.") from None


def weight_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """(safetensors files, PyTorch .bin files) of a checkpoint."""
    safetensors = sorted(folder.glob("*.safetensors"))
    bins = sorted(p for p in folder.glob("*.bin") if p.name.startswith(("pytorch_model", "model")))
    return safetensors, bins


def estimate_parameters(config: dict[str, Any]) -> int:
    """Decoder-only parameter count from config sizes, for checkpoints whose weights we cannot scan."""
    text = config.get("text_config", config)
    hidden = int(text.get("hidden_size", 0))
    layers = int(text.get("num_hidden_layers", 0))
    vocab = int(text.get("vocab_size", 0))
    heads, kv_heads, head_dim = attention_shape(text)
    intermediate = int(text.get("intermediate_size", 4 * hidden))
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
    text = config.get("text_config", config)
    architectures = config.get("architectures") or []
    if not architectures:
        raise CheckpointError(f"{folder / 'config.json'} names no architecture; this checkpoint cannot be converted.")
    architecture = architectures[0]
    info = builder_info()
    safetensors, bins = weight_files(folder)
    if safetensors:
        scan = scan_safetensors(safetensors)
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
        builder_defect=checkpoint_defect(text, info.version) if supported else None,
        needs_remote_code="auto_map" in config,
        tied_embeddings=bool(text.get("tie_word_embeddings", config.get("tie_word_embeddings", False))),
        problems=_problems(folder, safetensors, bins),
        kv_hidden_size=_kv_hidden_size(text),
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
    if not info.builder_supported:
        supported = ", ".join(a for a in builder_info().architectures if a.endswith(("ForCausalLM", "Generation")))
        message = (
            f"the installed builder {info.builder_version} cannot convert {info.architecture}; it supports {supported}."
        )
        if info.needs_remote_code and not trust_remote_code:
            message = (
                message[:-1]
                + "; the checkpoint also ships its own Python code, which runs only with --trust-remote-code."
            )
        raise CheckpointError(message)
    if info.builder_defect:
        raise CheckpointError(info.builder_defect)
