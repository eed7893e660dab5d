"""An ONNX Runtime GenAI model folder, checked before anything loads it (quantize, eval, bench, chat, report).

What is read: genai_config.json (the fields the runtime and the studio need, with their types), the decoder's .onnx
file, the external-data files its graph declares (their sizes, compared with the offsets and lengths the graph
names; the graph is parsed without its weights), forge.json and the tokenizer files. Each problem is one sentence
naming the file; nothing is written. Without the `onnx` package the external-data sizes are not compared.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .checkpoint_config import MAX_CONFIG_BYTES, check_tokenizer_files
from .errors import CheckpointError, InputError
from .weights import load_json_file, regular_file

GENAI_CONFIG = "genai_config.json"
FORGE_RECORD = "forge.json"
_PROTOBUF_LIMIT = 2**31  # a single .onnx file cannot be larger; its weights then live in external data
_FIX = "convert the model again"


def check_model_folder(folder: Path, *, graph: bool = True) -> dict[str, Any]:
    """The folder's genai_config.json, after refusing in one sentence anything that would fail later.

    graph=False skips parsing the decoder's graph (its external-data sizes): for callers that must stay light."""
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise InputError(f"{folder} does not exist; give an ONNX Runtime GenAI model folder.")
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder; give the folder that holds genai_config.json and the model.")
    config = read_genai_config(folder)
    decoder = folder / config["model"]["decoder"]["filename"]
    _check_file(decoder, "the model file genai_config.json names")
    if graph:
        check_external_data(decoder)
    _check_record(folder)
    try:
        check_tokenizer_files(folder)
    except CheckpointError as error:
        raise InputError(str(error).replace("copy it again from the model's repository", _FIX)) from None
    return config


def read_genai_config(folder: Path) -> dict[str, Any]:
    path = folder / GENAI_CONFIG
    if not path.exists() and not path.is_symlink():
        raise InputError(f"{folder} has no {GENAI_CONFIG}, so it is not an ONNX Runtime GenAI model folder.")
    config = _json(path)
    if not isinstance(config, dict):
        raise InputError(f"{path} does not hold a JSON object; {_FIX}.")
    model = config.get("model")
    _need(path, "model", model, dict)
    _need(path, "model.type", model.get("type"), str)
    for key in ("context_length", "vocab_size"):
        value = model.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{path} has no valid model.{key} (a whole number of at least 1); {_FIX}.")
    decoder = model.get("decoder")
    _need(path, "model.decoder", decoder, dict)
    filename = decoder.get("filename")
    _need(path, "model.decoder.filename", filename, str)
    if not filename or Path(filename).is_absolute() or ".." in Path(filename).parts:
        raise InputError(f"{path} names the model file {filename!r} outside its folder; {_FIX}.")
    options = decoder.get("session_options", {})
    _need(path, "model.decoder.session_options", options, dict)
    providers = options.get("provider_options", [])
    if not isinstance(providers, list) or not all(isinstance(entry, dict) for entry in providers):
        raise InputError(f"{path} has provider_options that are not a list of objects; {_FIX}.")
    _need(path, "search", config.get("search", {}), dict)
    return config


def _need(path: Path, key: str, value: Any, kind: type) -> None:
    if not isinstance(value, kind):
        what = {dict: "an object", str: "a text"}[kind]
        raise InputError(f"{path} has no {key} ({what}); {_FIX}.")


def _json(path: Path) -> Any:
    try:
        return load_json_file(path, MAX_CONFIG_BYTES, _FIX)
    except CheckpointError as error:
        raise InputError(str(error)) from None


def _check_file(path: Path, what: str) -> int:
    if not path.exists() and not path.is_symlink():
        raise InputError(f"{path.name}, {what}, is missing from {path.parent}; {_FIX}.")
    try:
        return regular_file(path).st_size
    except CheckpointError as error:
        raise InputError(str(error)) from None


def _check_record(folder: Path) -> None:
    path = folder / FORGE_RECORD
    if (path.exists() or path.is_symlink()) and not isinstance(_json(path), dict):
        raise InputError(f"{path} does not hold a JSON object; delete it or {_FIX}.")


def check_external_data(model: Path) -> None:
    """Every external-data file the graph declares exists and is at least as long as the data it points at."""
    try:
        import onnx
    except ImportError:
        return
    if _check_file(model, "the model file") >= _PROTOBUF_LIMIT:
        raise InputError(f"{model} is larger than an ONNX file can be; {_FIX}.")
    try:
        proto = onnx.load(str(model), load_external_data=False)
    except Exception:  # noqa: BLE001 - protobuf raises its own DecodeError, or anything for a hostile file
        raise InputError(f"{model} is not a readable ONNX model; {_FIX}.") from None
    for location, needed in _external_extents(proto).items():
        data = model.parent / location
        if Path(location).is_absolute() or ".." in Path(location).parts:
            raise InputError(f"{model.name} points at weights {location!r} outside its folder; {_FIX}.")
        size = _check_file(data, f"the weights {model.name} needs")
        if size < needed:
            raise InputError(
                f"{data.name} is cut short ({size:,} of {needed:,} bytes); the copy did not finish, copy it again "
                f"or {_FIX}."
            )


def _external_extents(proto: Any) -> dict[str, int]:
    """External-data file -> the byte where its last tensor ends, over every initializer (subgraphs included)."""
    import onnx

    extents: dict[str, int] = {}
    for tensor in _initializers(proto.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        fields = {entry.key: entry.value for entry in tensor.external_data}
        location = fields.get("location", "")
        try:
            length = int(fields["length"]) if fields.get("length") else _tensor_bytes(tensor)
            end = int(fields.get("offset") or 0) + length
        except (ValueError, TypeError):
            raise InputError(f"the model's tensor {tensor.name[:80]!r} has unreadable external data; {_FIX}.") from None
        extents[location] = max(extents.get(location, 0), end)
    return extents


def _tensor_bytes(tensor: Any) -> int:
    import numpy as np
    import onnx

    count = int(np.prod(tensor.dims, dtype=object)) if tensor.dims else 1
    return count * np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize


def _initializers(graph: Any) -> list[Any]:
    found = list(graph.initializer)
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.g.node or attribute.g.initializer:
                found += _initializers(attribute.g)
            for sub in attribute.graphs:
                found += _initializers(sub)
    return found
