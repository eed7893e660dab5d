"""Reading safetensors headers as untrusted input, and checking them against config.json.

A header is 8 bytes of little-endian length, then that many bytes of JSON: {name: {dtype, shape, data_offsets}}.
Everything in it may lie, so each field is checked before it is used, and nothing but a regular file is opened
(a FIFO named model.safetensors would block the read forever). The tensors are then checked against the config
by rule, for every checkpoint named the Llama way (`<prefix>embed_tokens`, `<prefix>layers.<i>.self_attn.*`),
which covers the Llama, Mistral, Qwen, Phi-3, Gemma and SmolLM3 families: the layer count, the embedding's
[vocab, hidden], and each attention and MLP projection with the shape the config implies.
"""

from __future__ import annotations

import json
import os
import re
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CheckpointError

# Bytes per element. safetensors itself refuses headers over 100 MB; so do we, before reading one.
DTYPE_BYTES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1, "C64": 8,
}  # fmt: skip
MAX_HEADER_BYTES = 100 * 2**20
INDEX_FILE = "model.safetensors.index.json"


@dataclass
class Tensor:
    dtype: str
    shape: list[int]
    file: str


@dataclass
class WeightScan:
    parameters: int = 0
    weight_bytes: int = 0
    dtypes: dict[str, int] = field(default_factory=dict)
    tensors: dict[str, Tensor] = field(default_factory=dict)


def regular_file(path: Path, what: str = "") -> os.stat_result:
    """stat() of a regular file (links followed), or the sentence saying what it is instead."""
    try:
        info = os.stat(path)
    except OSError as error:
        raise CheckpointError(
            f"{path} cannot be read ({error.strerror}); check the file and its permissions."
        ) from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file (a pipe, socket or device)"
        raise CheckpointError(f"{path} is {kind}{what}; replace it with the real file from the model's repository.")
    return info


def shard_files(folder: Path) -> list[Path]:
    """Every *.safetensors file plus every shard the index names; a shard the index names but lacks is refused."""
    files = {p.name: p for p in folder.glob("*.safetensors")}
    index = folder / INDEX_FILE
    if index.exists() or index.is_symlink():
        for name in _index_shards(index):
            if not (folder / name).exists():
                raise CheckpointError(
                    f"{INDEX_FILE} names the shard {name}, which is not in {folder}; download the missing shard."
                )
            files[name] = folder / name
    return sorted(files.values())


def _index_shards(index: Path) -> set[str]:
    regular_file(index)
    data = load_json_file(index, MAX_HEADER_BYTES)
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise CheckpointError(f"{index} has no weight_map of tensor names to shard files; download it again.")
    for name in weight_map.values():
        if Path(name).name != name or name in ("", ".", ".."):
            raise CheckpointError(f"{index} names the shard {name!r} outside its folder; download the index again.")
    return set(weight_map.values())


def load_json_file(path: Path, limit: int, fix: str = "download it again from the model's repository") -> Any:
    """The parsed JSON of a regular file no larger than `limit`, or the sentence naming the file."""
    if regular_file(path).st_size > limit:
        raise CheckpointError(f"{path} is larger than {limit // 2**20} MB, too large to be what it claims; {fix}.")
    try:
        return json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise CheckpointError(f"{path} is not valid JSON; {fix}.") from None


def scan_safetensors(files: list[Path]) -> WeightScan:
    """Every tensor of every file, each header field checked; a file shorter than its header promises is cut short."""
    scan = WeightScan()
    for file in files:
        size = regular_file(file).st_size
        for name, tensor in read_header(file, size).items():
            scan.tensors[name] = tensor
            count = _count(tensor.shape)
            scan.parameters += count
            scan.dtypes[tensor.dtype] = scan.dtypes.get(tensor.dtype, 0) + count
        scan.weight_bytes += size
    return scan


def read_header(file: Path, size: int) -> dict[str, Tensor]:
    bad = f"{file.name} is not a readable safetensors file"
    with file.open("rb") as handle:
        raw_size = handle.read(8)
        if len(raw_size) < 8:
            raise CheckpointError(f"{file.name} is cut short (no safetensors header); download it again.")
        (header_size,) = struct.unpack("<Q", raw_size)
        if header_size > MAX_HEADER_BYTES or 8 + header_size > size:
            raise CheckpointError(
                f"{bad}: its header claims {header_size:,} bytes and the file has {size:,}; download it again."
            )
        raw_header = handle.read(header_size)
    try:
        header = json.loads(raw_header)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise CheckpointError(f"{bad}: its header is not JSON; download it again.") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{bad}: its header is not a JSON object of tensors; download it again.")
    tensors = {}
    data_bytes = size - 8 - header_size
    for name, entry in header.items():
        if name != "__metadata__":
            tensors[name] = _tensor(file, name, entry, data_bytes)
    return tensors


def _tensor(file: Path, name: str, entry: Any, data_bytes: int) -> Tensor:
    bad = f"{file.name} is not a readable safetensors file: tensor {name[:80]!r}"
    if not isinstance(entry, dict):
        raise CheckpointError(f"{bad} is not described by an object; download the file again.")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in DTYPE_BYTES:
        raise CheckpointError(f"{bad} has the unknown dtype {str(dtype)[:40]!r}; download the file again.")
    if not isinstance(shape, list) or not all(_natural(dim) for dim in shape):
        raise CheckpointError(f"{bad} has the shape {str(shape)[:60]}, not a list of sizes; download the file again.")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_natural(o) for o in offsets):
        raise CheckpointError(f"{bad} has no valid data_offsets [begin, end]; download the file again.")
    begin, end = offsets
    expected = _count(shape) * DTYPE_BYTES[dtype]
    if end - begin != expected:
        raise CheckpointError(
            f"{bad} has the shape {shape} ({expected:,} bytes of {dtype}) but offsets spanning {end - begin:,} bytes; "
            "download the file again."
        )
    if end > data_bytes:
        raise CheckpointError(
            f"{file.name} is cut short (tensor {name[:80]!r} ends at byte {end:,} of {data_bytes:,} of data); "
            "the download did not finish, download it again."
        )
    return Tensor(dtype, shape, file.name)


def _natural(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _count(shape: list[int]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count


@dataclass(frozen=True)
class Dims:
    """What config.json says the tensors must be."""

    layers: int
    hidden: int
    vocab: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int | None
    tied: bool | None
    quantized: bool
    plain_attention: bool = True
    """Every attention layer has the config's head size and plain q/k/v; False where layers differ (Gemma 4's global
    layers, Qwen3.5's gated attention beside linear attention), whose attention shapes are then not checked."""


_EMBEDDING = re.compile(r"^(?P<prefix>(?:.*\.)?)embed_tokens\.weight$")


def check_tensors(tensors: dict[str, Tensor], dims: Dims, config_name: str) -> None:
    """Refuse, in one sentence, tensors that disagree with the config (Llama-style names only; others pass)."""
    embedding = [m for m in map(_EMBEDDING.match, tensors) if m and "vision" not in m["prefix"]]
    if not embedding:
        return
    prefix = embedding[0]["prefix"]
    layers = _layer_indices(tensors, prefix)
    if not layers:
        return
    mismatch = f"the weights disagree with {config_name}"
    if sorted(layers) != list(range(dims.layers)):
        found = f"layers {min(layers)}..{max(layers)} ({len(layers)} in all)"
        raise CheckpointError(
            f"{mismatch}: it says {dims.layers} layer{'s' if dims.layers != 1 else ''}, the weights hold {found}; "
            "use the config and weights of one model."
        )
    expect: dict[str, list[int] | None] = {f"{prefix}embed_tokens.weight": [dims.vocab, dims.hidden]}
    if f"{prefix}norm.weight" in tensors:  # OLMo's norms have no weights; LFM2 calls its final one embedding_norm
        expect[f"{prefix}norm.weight"] = [dims.hidden]
    lm_head = _lm_head_name(tensors, prefix)
    if lm_head in tensors or dims.tied is False:
        expect[lm_head] = [dims.vocab, dims.hidden]
    for index in range(dims.layers):
        expect |= _layer_shapes(tensors, f"{prefix}layers.{index}.", dims)
    for name, shape in expect.items():
        tensor = tensors.get(name)
        if tensor is None:
            raise CheckpointError(f"{mismatch}: the tensor {name} is missing; download the complete checkpoint.")
        if shape is not None and tensor.shape != shape:
            raise CheckpointError(
                f"{mismatch}: {name} is {tensor.shape}, the config implies {shape}; use the config and weights of "
                "one model."
            )


def _lm_head_name(tensors: dict[str, Tensor], prefix: str) -> str:
    """lm_head.weight, or beside the decoder in a multimodal checkpoint (language_model.lm_head.weight)."""
    beside = prefix.removesuffix("model.") + "lm_head.weight"
    return beside if beside in tensors else "lm_head.weight"


def _layer_indices(tensors: dict[str, Tensor], prefix: str) -> set[int]:
    pattern = re.compile(re.escape(prefix) + r"layers\.(\d+)\.")
    return {int(m[1]) for m in map(pattern.match, tensors) if m}


def _presence_only(*_value: int) -> None:
    return None


def _layer_shapes(tensors: dict[str, Tensor], layer: str, dims: Dims) -> dict[str, list[int] | None]:
    """Name -> shape each layer must have; None where only presence is checked (quantized weights change shapes)."""
    h, q, kv = dims.hidden, dims.heads * dims.head_dim, dims.kv_heads * dims.head_dim

    def shape(*value: int) -> list[int] | None:
        return None if dims.quantized else list(value)

    attn, mlp = f"{layer}self_attn.", f"{layer}mlp."
    expect: dict[str, list[int] | None] = {}
    if f"{layer}input_layernorm.weight" in tensors:
        expect[f"{layer}input_layernorm.weight"] = [h]
    if not dims.plain_attention:
        shape = _presence_only
    # A layer without attention (linear attention, a convolution) holds no self_attn projection at all.
    if any(name.startswith(attn) and name.endswith("_proj.weight") for name in tensors):
        output = f"{attn}out_proj.weight" if f"{attn}out_proj.weight" in tensors else f"{attn}o_proj.weight"
        expect[output] = shape(h, q)
        if f"{attn}qkv_proj.weight" in tensors:
            expect[f"{attn}qkv_proj.weight"] = shape(q + 2 * kv, h)
        else:
            for part, rows in (("q", q), ("k", kv), ("v", kv)):
                expect[f"{attn}{part}_proj.weight"] = shape(rows, h)
    if any(name.startswith(f"{mlp}experts.") for name in tensors):
        return expect  # a mixture of experts: sizes per expert vary by family
    if not any(name.startswith(mlp) for name in tensors):
        return expect  # the feed-forward has another name (LFM2's feed_forward.w1..w3)
    inter = dims.intermediate
    expect[f"{mlp}down_proj.weight"] = shape(h, inter) if inter else None
    if f"{mlp}gate_up_proj.weight" in tensors:
        expect[f"{mlp}gate_up_proj.weight"] = shape(2 * inter, h) if inter else None
    elif f"{mlp}gate_proj.weight" in tensors or f"{mlp}up_proj.weight" in tensors:
        for part in ("gate", "up"):
            expect[f"{mlp}{part}_proj.weight"] = shape(inter, h) if inter else None
    return expect
