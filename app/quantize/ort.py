"""ONNX Runtime's own quantizers on any ONNX model (seed 004), and the named-variant export (seed 000's FAQ).

Algorithms: fp16, q8 (dynamic), s8s8 / s8u8 / u8u8 (static QDQ, named weights first, then activations, as seed 004
does), q4 (MatMulNBits), q4f16 (q4, then float16), bnb4 (MatMulBnb4, NF4 or FP4) and `variants`, several of
them into one folder under the file names people already use. Every output is saved with external data
(`<file>.data` beside `<file>`), checked in an onnxruntime session against its input, and for a GenAI folder it
is a runnable GenAI folder: onnxruntime-genai 0.14.1 generates with every one of these variants on the CPU
(it reads the KV-cache and logits types from the model, so genai_config needs no change).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError, ModelLoadError, OutputError
from ..jobs.protocol import Log, Progress
from . import Emit, QuantOption, copy_genai_folder, find_onnx_model, is_quantized
from . import calibration as calib

STATIC = ("s8s8", "s8u8", "u8u8")
# (weight type, activation type) of each static algorithm: seed 004 names the weights first.
STATIC_TYPES = {"s8s8": ("int8", "int8"), "s8u8": ("int8", "uint8"), "u8u8": ("uint8", "uint8")}
# Operators whose integer kernels want uint8 weights (ConvInteger has no int8 weights on the CPU): q8's "auto" rule,
# the one seed 004 and transformers.js use.
UINT8_OPS = ("Conv", "GroupQueryAttention", "MultiHeadAttention")


@dataclass(frozen=True)
class Variant:
    name: str
    suffix: str
    algo: str
    weight_type: str = "auto"
    what: str = ""


# The variant naming table. Files are <stem><suffix>.onnx, so a GenAI folder's model.onnx gives exactly the names
# below, and decoder_model_merged.onnx gives decoder_model_merged_q4.onnx and so on. These names come from the tools
# that publish such files (transformers.js / Optimum exports); seed 000's FAQ maps them onto builder INT4 presets
# (model_int8 -> "INT4 + INT8 activations", model_uint8 -> "UINT4", model_bnb4 -> "INT4"), which is not what those
# files hold: int8 / uint8 are 8-bit dynamic weight quantization, bnb4 is bitsandbytes' NF4/FP4.
#   model.onnx            the input, copied unchanged
#   model_fp16.onnx       fp16: float16 weights and compute
#   model_quantized.onnx  q8: dynamic 8-bit, weight type by UINT8_OPS ("q8" is accepted for it)
#   model_int8.onnx       q8 with int8 weights
#   model_uint8.onnx      q8 with uint8 weights
#   model_q4.onnx         q4: 4-bit MatMulNBits
#   model_q4f16.onnx      q4f16: q4, then float16
#   model_bnb4.onnx       bnb4: 4-bit MatMulBnb4 (NF4 by default)
VARIANTS = (
    Variant("fp16", "_fp16", "fp16", what="float16 weights and compute"),
    Variant("quantized", "_quantized", "q8", "auto", "dynamic 8-bit, uint8 weights where Conv/GQA/MHA, else int8"),
    Variant("int8", "_int8", "q8", "int8", "dynamic 8-bit, int8 weights"),
    Variant("uint8", "_uint8", "q8", "uint8", "dynamic 8-bit, uint8 weights"),
    Variant("q4", "_q4", "q4", what="4-bit weights (MatMulNBits)"),
    Variant("q4f16", "_q4f16", "q4f16", what="4-bit weights, float16 elsewhere"),
    Variant("bnb4", "_bnb4", "bnb4", what="4-bit NF4/FP4 weights (MatMulBnb4)"),
)
VARIANT_ALIASES = {"q8": "quantized"}
_BY_NAME = {variant.name: variant for variant in VARIANTS}
_FOUR_BIT = ("q4", "q4f16", "bnb4")
_FP16_ALGOS = ("fp16", "q4f16", "variants")

OPTIONS: list[QuantOption] = [
    QuantOption(
        "variants",
        "list",
        [variant.name for variant in VARIANTS],
        "variants to write beside the original: " + ", ".join(v.name for v in VARIANTS) + " (q8 = quantized)",
        algorithms=("variants",),
    ),
    QuantOption(
        "keep_io_types",
        "choice",
        "auto",
        "float32 inputs/outputs: auto = GenAI models keep logits in float32 and move the KV cache to float16 "
        "(like the builder's fp16 builds), other models keep every float input and output in float32",
        choices=("auto", "true", "false"),
        algorithms=_FP16_ALGOS,
    ),
    QuantOption(
        "op_block_list", "list", [], "operator types kept in float32, besides onnxruntime's own list", (), _FP16_ALGOS
    ),
    QuantOption(
        "weight_type",
        "choice",
        "auto",
        "8-bit weight type; auto = uint8 when the model has Conv, GroupQueryAttention or MultiHeadAttention",
        choices=("auto", "int8", "uint8"),
        algorithms=("q8",),
    ),
    QuantOption(
        "op_types",
        "list",
        [],
        "operator types to quantize; empty = every type onnxruntime can (static: MatMul and Gather for GenAI models)",
        algorithms=("q8", *STATIC),
    ),
    QuantOption("per_channel", "bool", False, "one scale per output channel of each weight", (), ("q8", *STATIC)),
    QuantOption("exclude_nodes", "list", [], "node names to leave as they are (e.g. /lm_head/MatMul)"),
    QuantOption(
        "calibration_text",
        "text",
        "",
        "UTF-8 text, one sample per paragraph (GenAI folders; default: the bundled calibration text)",
        algorithms=STATIC,
    ),
    QuantOption("calibration_size", "int", 32, "calibration samples", algorithms=STATIC),
    QuantOption("calibration_length", "int", 128, "tokens per calibration sample, at most", algorithms=STATIC),
    QuantOption(
        "calibration_method",
        "choice",
        "minmax",
        "how activation ranges are taken from calibration",
        choices=("minmax", "entropy", "percentile"),
        algorithms=STATIC,
    ),
    QuantOption("seed", "int", 0, "seed of the random calibration inputs of non-GenAI models", algorithms=STATIC),
    QuantOption(
        "block_size",
        "int",
        32,
        "weights per 4-bit block (at most the smallest MatMul input size)",
        choices=("16", "32", "64", "128", "256"),
        algorithms=(*_FOUR_BIT, "variants"),
    ),
    QuantOption("symmetric", "bool", True, "4-bit weights without zero points", (), ("q4", "q4f16", "variants")),
    QuantOption(
        "accuracy_level",
        "int",
        4,
        "MatMulNBits compute type: 0 unset, 1 fp32, 2 fp16, 3 bf16, 4 int8 activations (fastest on CPU)",
        choices=("0", "1", "2", "3", "4"),
        algorithms=("q4", "q4f16", "variants"),
    ),
    QuantOption("bnb4_type", "choice", "nf4", "4-bit data type of bnb4", ("nf4", "fp4"), ("bnb4", "variants")),
    QuantOption(
        "evaluate_variants",
        "bool",
        True,
        "load every variant of a GenAI folder in onnxruntime-genai and measure its perplexity",
        algorithms=("variants",),
    ),
]

DEFAULTS = {option.name: option.default for option in OPTIONS}
_FLOAT_TYPES = {1: "float32", 10: "float16", 16: "bfloat16"}


@dataclass
class Source:
    """The model to quantize and what surrounds it."""

    model: Path
    genai: dict[str, Any] | None
    float_type: str
    data_files: set[str]
    copy_sidecar: bool

    @property
    def folder(self) -> Path:
        return self.model.parent


def read_source(input_path: Path) -> Source:
    import onnx

    model = find_onnx_model(input_path)
    if is_quantized(model):
        raise InputError(f"{model} is already quantized; quantize its FP16 or FP32 build instead.")
    config_path = model.parent / "genai_config.json"
    genai = None
    if config_path.is_file():
        config = json.loads(config_path.read_text(encoding="utf-8"))
        if config.get("model", {}).get("decoder", {}).get("filename") == model.name:
            genai = config
    skeleton = onnx.load(str(model), load_external_data=False)
    counts: dict[str, int] = {}
    for tensor in skeleton.graph.initializer:
        if tensor.data_type in _FLOAT_TYPES:
            size = 1
            for dim in tensor.dims:
                size *= dim
            counts[_FLOAT_TYPES[tensor.data_type]] = counts.get(_FLOAT_TYPES[tensor.data_type], 0) + size
    float_type = max(counts, key=counts.__getitem__) if counts else "float32"
    return Source(model, genai, float_type, external_data_files(skeleton), input_path.is_dir() or genai is not None)


def external_data_files(model: Any) -> set[str]:
    return {
        entry.value for tensor in model.graph.initializer for entry in tensor.external_data if entry.key == "location"
    }


def check(input_path: Path, algo: str, options: dict[str, Any]) -> None:
    """Every check of run() that needs no onnxruntime, for planning: raises InputError."""
    check_options(read_source(input_path), algo, {**DEFAULTS, **options})


def check_options(source: Source, algo: str, options: dict[str, Any]) -> None:
    """Refuse in one sentence what cannot work, before any work."""
    import onnx

    algos = [algo] if algo != "variants" else [_BY_NAME[name].algo for name in variant_names(options["variants"])]
    if source.float_type == "bfloat16":
        raise InputError(
            f"{source.model} holds bfloat16 weights, which onnxruntime's quantizers cannot read; "
            "convert the checkpoint with the fp32 preset and quantize that."
        )
    if source.float_type != "float32":
        needs_fp32 = sorted({a for a in algos if a in ("fp16", "q8", *STATIC)})
        if needs_fp32:
            raise InputError(
                f"{source.model} holds {source.float_type} weights; {', '.join(needs_fp32)} need a float32 model "
                "(convert the checkpoint with the fp32 preset), only q4, q4f16 and bnb4 take it as it is."
            )
    graph = onnx.load(str(source.model), load_external_data=False).graph
    missing = sorted(set(options.get("exclude_nodes") or []) - {node.name for node in graph.node})
    if missing:
        example = next((node.name for node in graph.node if node.op_type == "MatMul"), "")
        raise InputError(
            f"{source.model.name} has no node named {', '.join(missing)}"
            + (f"; node names look like {example}." if example else ".")
        )
    if any(a in _FOUR_BIT for a in algos):
        check_block_size(source, graph, options)
    if algo in STATIC:
        if options["calibration_size"] < 1 or options["calibration_length"] < 2:
            raise InputError("calibration_size must be at least 1 and calibration_length at least 2.")
        if source.genai is None and options["calibration_text"]:
            raise InputError(
                f"{source.model.name} has no genai_config.json beside it, so there is no tokenizer to read "
                "calibration_text with; leave it out to calibrate on seeded random inputs."
            )
        if source.genai is not None:
            calibration_samples(source, options)


def variant_names(requested: list[str]) -> list[str]:
    names: list[str] = []
    for raw in requested:
        name = VARIANT_ALIASES.get(raw.lower(), raw.lower())
        if name not in _BY_NAME:
            raise InputError(f"'{raw}' is not a variant; choose from {', '.join(_BY_NAME)} (q8 = quantized).")
        if name not in names:
            names.append(name)
    if not names:
        raise InputError(f"give at least one variant: {', '.join(_BY_NAME)}.")
    return names


def check_block_size(source: Source, graph: Any, options: dict[str, Any]) -> None:
    weights = {tensor.name: list(tensor.dims) for tensor in graph.initializer}
    excluded = set(options.get("exclude_nodes") or [])
    sizes = [
        weights[node.input[1]][0]
        for node in graph.node
        if node.op_type == "MatMul"
        and node.name not in excluded
        and len(node.input) > 1
        and len(weights.get(node.input[1], [])) == 2
    ]
    if not sizes:
        raise InputError(f"{source.model.name} has no MatMul with constant 2-D weights, so 4-bit has nothing to do.")
    hidden = (source.genai or {}).get("model", {}).get("decoder", {}).get("hidden_size") or min(sizes)
    limit = min(hidden, *sizes)
    if options["block_size"] > limit:
        raise InputError(
            f"block_size {options['block_size']} is larger than the model's hidden size ({limit}); "
            f"pick {max(16, 1 << (limit.bit_length() - 1))} or less."
        )


# --- calibration -----------------------------------------------------------------------------------------------


def calibration_samples(source: Source, options: dict[str, Any]) -> list[list[int]]:
    """calibration_size windows of exactly calibration_length tokens (BOS first) spread over the calibration text,
    the same samples ModelOpt calibrates on: the histogram calibrators (entropy, percentile) stack their batches,
    so every sample has one shape."""
    path = Path(options.get("calibration_text") or calib.bundled_text()).expanduser()
    text = calib.read_calibration_file(path)
    bos = (source.genai or {}).get("model", {}).get("bos_token_id")
    samples = calib.make_samples(
        text,
        calib.load_encoder(source.folder),
        options.get("calibration_size", 32),
        options.get("calibration_length", 128),
        bos if isinstance(bos, int) else None,
    )
    return samples.tokens


def graph_inputs(model_path: Path) -> list[Any]:
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    initializers = {tensor.name for tensor in graph.initializer}
    return [value for value in graph.input if value.name not in initializers]


def genai_inputs(source: Source) -> calib.ModelInputs:
    """The decoder's real inputs (ids, mask, positions, an empty KV cache of the graph's dtype and head shape)."""
    import onnx

    return calib.read_model_inputs(onnx.load(str(source.model), load_external_data=False).graph, source.genai)


def cache_patterns(config: dict[str, Any]) -> list[re.Pattern[str]]:
    """The KV-cache input and output names genai_config declares (past_key_values.%d.key, present.%d.value, ...)."""
    decoder = config["model"]["decoder"]
    names = {**decoder.get("inputs", {}), **decoder.get("outputs", {})}
    keys = ("past_key_names", "past_value_names", "present_key_names", "present_value_names")
    patterns = [names[key] for key in keys if names.get(key)] or ["past_key_values.%d.key", "past_key_values.%d.value"]
    return [re.compile(re.escape(pattern).replace("%d", r"\d+")) for pattern in patterns]


def random_feed(inputs: list[Any], rng: Any) -> dict[str, Any]:
    """Seeded random values in the graph's declared shapes; unknown dimensions become 1."""
    import numpy as np
    from onnx.helper import tensor_dtype_to_np_dtype

    feed = {}
    for value in inputs:
        elem = value.type.tensor_type.elem_type
        if not value.type.HasField("tensor_type") or elem in (0, 8):
            raise InputError(f"input '{value.name}' is not a numeric tensor; random calibration cannot fill it.")
        dtype = np.dtype(tensor_dtype_to_np_dtype(elem))
        shape = [dim.dim_value if dim.dim_value > 0 else 1 for dim in value.type.tensor_type.shape.dim]
        if dtype.kind == "f":
            feed[value.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind == "b":
            feed[value.name] = rng.random(shape) < 0.5
        else:
            feed[value.name] = rng.integers(0, 10, size=shape).astype(dtype)
    return feed


class Feeds:
    """An onnxruntime CalibrationDataReader over prepared feeds; reports each sample it hands out as progress."""

    def __init__(self, feeds: list[dict[str, Any]], emit: Emit | None = None) -> None:
        self.feeds = feeds
        self._emit = emit
        self._next = enumerate(feeds, 1)

    def get_next(self) -> dict[str, Any] | None:
        number, feed = next(self._next, (0, None))
        if self._emit and feed is not None:
            percent = round(10 + 75 * number / len(self.feeds), 1)
            self._emit(Progress(percent, "calibrating", f"sample {number} of {len(self.feeds)}"))
        return feed

    def rewind(self) -> None:
        self._next = enumerate(self.feeds, 1)

    def __len__(self) -> int:
        return len(self.feeds)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.feeds)


def calibration_feeds(source: Source, options: dict[str, Any], emit: Emit) -> tuple[Feeds, dict[str, Any]]:
    import numpy as np

    if source.genai is not None:
        samples = calibration_samples(source, options)
        text = options["calibration_text"] or "the bundled calibration text"
        emit(Log(f"calibrating on {len(samples)} windows of {len(samples[0])} tokens of {text}"))
        info = {"data": str(text), "samples": len(samples), "tokens": sum(map(len, samples))}
        inputs = genai_inputs(source)
        return Feeds([inputs.feeds(tokens) for tokens in samples], emit), info
    rng = np.random.default_rng(options["seed"])
    feeds = [random_feed(graph_inputs(source.model), rng) for _ in range(options["calibration_size"])]
    emit(
        Log(
            f"no genai_config.json: calibrating on {len(feeds)} seeded random inputs (seed {options['seed']}) in the "
            "graph's declared shapes, unknown dimensions set to 1; ranges from random data fit real data only roughly"
        )
    )
    return Feeds(feeds, emit), {"data": "random", "samples": len(feeds), "seed": options["seed"]}


# --- the quantizers --------------------------------------------------------------------------------------------


def load_model(path: Path, infer_shapes: bool = False) -> Any:
    """The model with its weights; shape inference runs on the weightless graph, so it works above 2 GB too."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    if infer_shapes:
        with contextlib.suppress(Exception):  # inference is a help for the fp16 converter, not a requirement
            model = onnx.shape_inference.infer_shapes(model)
    onnx.load_external_data_for_model(model, str(path.parent))
    return model


def save_model(model: Any, path: Path) -> None:
    """One model file plus <name>.data, never into an existing file (onnx appends to an existing data file)."""
    import onnx

    refuse_existing(path)
    onnx.save_model(
        model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=path.name + ".data"
    )


def refuse_existing(path: Path) -> None:
    for target in (path, path.with_name(path.name + ".data")):
        if target.exists():
            raise OutputError(f"{target} already exists; refusing to write into it.")


def to_fp16(model: Any, source: Source, options: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    keep: bool | list[str] = options["keep_io_types"] != "false"
    if options["keep_io_types"] == "auto" and source.genai is not None:
        cache = cache_patterns(source.genai)
        values = [*model.graph.input, *model.graph.output]
        floats = [value.name for value in values if value.type.tensor_type.elem_type == 1]
        keep = [name for name in floats if not any(pattern.fullmatch(name) for pattern in cache)]
    converted = convert_float_to_float16(
        model,
        keep_io_types=keep,
        disable_shape_infer=True,
        op_block_list=sorted({*DEFAULT_OP_BLOCK_LIST, *options["op_block_list"]}),
        node_block_list=options["exclude_nodes"] or None,
    )
    kept = "every float input and output" if keep is True else ", ".join(keep) if keep else "none"
    return converted, {"float32_io": kept}


def to_q4(model: Any, options: dict[str, Any]) -> Any:
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizer = MatMulNBitsQuantizer(
        model,
        bits=4,
        block_size=options["block_size"],
        is_symmetric=options["symmetric"],
        accuracy_level=options["accuracy_level"] or None,
        nodes_to_exclude=options["exclude_nodes"],
    )
    quantizer.process()
    return quantizer.model.model


def to_bnb4(model: Any, options: dict[str, Any]) -> Any:
    from onnxruntime.quantization.matmul_bnb4_quantizer import MatMulBnb4Quantizer

    kind = MatMulBnb4Quantizer.NF4 if options["bnb4_type"] == "nf4" else MatMulBnb4Quantizer.FP4
    quantizer = MatMulBnb4Quantizer(model, kind, options["block_size"], nodes_to_exclude=options["exclude_nodes"])
    quantizer.process()
    return quantizer.model.model


def q8_weight_type(model_path: Path, requested: str) -> tuple[str, str]:
    import onnx

    if requested != "auto":
        return requested, "as asked"
    ops = {node.op_type for node in onnx.load(str(model_path), load_external_data=False).graph.node}
    found = sorted(ops & set(UINT8_OPS))
    if found:
        return "uint8", f"the model has {', '.join(found)}"
    return "int8", f"the model has none of {', '.join(UINT8_OPS)}"


def make(
    algo: str, source: Source, options: dict[str, Any], target: Path, emit: Emit, weight_type: str = "auto"
) -> dict[str, Any]:
    """Write one variant of the source to target; returns what was decided on the way."""
    options = {**DEFAULTS, **options}  # the variants export passes only its own options
    refuse_existing(target)
    if algo == "q8":
        details = make_q8(source, options, target, emit, weight_type)
    elif algo in STATIC:
        details = make_static(algo, source, options, target, emit)
    else:
        details = make_weights(algo, source, options, target)
    data = target.with_name(target.name + ".data")
    if data.is_file():  # onnx writes external data owner-only (0600); give it the model file's permissions
        data.chmod(target.stat().st_mode & 0o777)
    return details


def make_weights(algo: str, source: Source, options: dict[str, Any], target: Path) -> dict[str, Any]:
    details: dict[str, Any] = {}
    model = load_model(source.model, infer_shapes=algo in ("fp16", "q4f16"))
    if algo in ("q4", "q4f16"):
        model = to_q4(model, options)
        details = {"block_size": options["block_size"], "symmetric": options["symmetric"]}
    if algo == "bnb4":
        model = to_bnb4(model, options)
        details = {"type": options["bnb4_type"], "block_size": options["block_size"]}
    if algo in ("fp16", "q4f16"):
        # q4 first: the 4-bit scales come from the exact float32 weights, and the float16 converter then turns
        # MatMulNBits' scales and compute to float16 (it has float16 kernels on CPU and GPU).
        model, converted = to_fp16(model, source, options)
        details.update(converted)
    save_model(model, target)
    return details


def make_q8(source: Source, options: dict[str, Any], target: Path, emit: Emit, weight_type: str) -> dict[str, Any]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    chosen, why = q8_weight_type(source.model, weight_type if weight_type != "auto" else options["weight_type"])
    emit(Log(f"dynamic 8-bit quantization with {chosen} weights ({why})"))
    quantize_dynamic(
        source.model,
        target,
        op_types_to_quantize=options["op_types"] or None,
        per_channel=options["per_channel"],
        weight_type=QuantType.QUInt8 if chosen == "uint8" else QuantType.QInt8,
        nodes_to_exclude=options["exclude_nodes"],
        use_external_data_format=True,  # saves <target>.data, the same naming as save_model
    )
    return {"weight_type": chosen, "why": why}


def make_static(algo: str, source: Source, options: dict[str, Any], target: Path, emit: Emit) -> dict[str, Any]:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    types = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    weights, activations = STATIC_TYPES[algo]
    feeds, calibration = calibration_feeds(source, options, emit)
    # LLMs: the weights' matrix products and the embedding; QDQ around norms, SiLU and residuals costs accuracy.
    op_types = options["op_types"] or (["MatMul", "Gather"] if source.genai is not None else None)
    quantize_static(
        source.model,
        target,
        feeds,
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=op_types,
        per_channel=options["per_channel"],
        activation_type=types[activations],
        weight_type=types[weights],
        nodes_to_exclude=options["exclude_nodes"],
        use_external_data_format=True,
        calibrate_method=methods[options["calibration_method"]],
    )
    return {"calibration": calibration, "weights": weights, "activations": activations, "op_types": op_types or "all"}


# --- checks ----------------------------------------------------------------------------------------------------


def check_feed(source: Source, options: dict[str, Any]) -> dict[str, Any]:
    """The inputs every output is run with: a real paragraph for GenAI models, seeded random values otherwise."""
    import numpy as np

    if source.genai is not None:
        try:
            tokens = calibration_samples(source, {**options, "calibration_size": 1, "calibration_length": 64})[0]
        except InputError:  # a text or tokenizer that gives no window: any token ids check that the model runs
            tokens = list(range(1, 17))
        return genai_inputs(source).feeds(tokens)
    return random_feed(graph_inputs(source.model), np.random.default_rng(options.get("seed", 0)))


def run_session(path: Path, feed: dict[str, Any]) -> Any:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    types = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64"}
    ready = {}
    for value in session.get_inputs():
        array = feed[value.name]
        ready[value.name] = array.astype(types[value.type]) if value.type in types else array
    return session.run([session.get_outputs()[0].name], ready)[0]


def compare(reference: Any, candidate: Path, feed: dict[str, Any]) -> dict[str, Any]:
    """Does the file run in onnxruntime on the CPU, and how far is its first output from the input model's?"""
    import numpy as np

    try:
        output = run_session(candidate, feed).astype(np.float64)
    except Exception as error:  # noqa: BLE001 - the failure is the finding
        return {"runs_in_onnxruntime": False, "error": str(error).splitlines()[0][:300]}
    result: dict[str, Any] = {"runs_in_onnxruntime": True}
    if output.shape == reference.shape:
        result["relative_error"] = round(
            float(np.linalg.norm(output - reference) / max(np.linalg.norm(reference), 1e-12)), 5
        )
        if reference.ndim >= 2 and reference.shape[-1] > 1:
            agree = output.argmax(-1) == reference.argmax(-1)
            result["top1_agreement"] = round(float(agree.mean()), 4)
    return result


def genai_check(folder: Path, model_name: str, work_dir: Path) -> dict[str, Any]:
    """Load one model of the folder in onnxruntime-genai (a view whose genai_config points at it) and score it."""
    import onnx

    from ..evaluate import perplexity

    view = work_dir / f"genai-{model_name}"
    view.mkdir(parents=True)
    names = {model_name, *external_data_files(onnx.load(str(folder / model_name), load_external_data=False))}
    for path in folder.iterdir():
        if path.is_file() and ".onnx" not in path.name and path.name != "genai_config.json":
            shutil.copy2(path, view / path.name)
    for name in names:
        link(folder / name, view / name)
    config = json.loads((folder / "genai_config.json").read_text(encoding="utf-8"))
    config["model"]["decoder"]["filename"] = model_name
    (view / "genai_config.json").write_text(json.dumps(config, indent=4), encoding="utf-8")
    try:
        return {"runs_in_genai": True, "perplexity": round(perplexity(view).perplexity, 4)}
    except Exception as error:  # noqa: BLE001 - the failure is the finding
        return {"runs_in_genai": False, "error": str(error).splitlines()[0][:300]}
    finally:
        shutil.rmtree(view, ignore_errors=True)


def link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


# --- the job ---------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def quiet_and_contained(work_dir: Path) -> Iterator[None]:
    """onnxruntime's quantizers write full-size temporary models (kept in the job's staging area, not the system
    temp folder) and log every tensor at INFO on the root logger (matmul_nbits_quantizer calls basicConfig)."""
    temp = work_dir / "tmp"
    temp.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    saved_temp, saved_level = tempfile.tempdir, root.level
    tempfile.tempdir = str(temp)
    root.setLevel(logging.WARNING)
    root.addFilter(_no_preprocessing_hint)
    try:
        yield
    finally:
        tempfile.tempdir = saved_temp
        root.setLevel(saved_level)
        root.removeFilter(_no_preprocessing_hint)


def _no_preprocessing_hint(record: logging.LogRecord) -> bool:
    """quantize_dynamic/static advise shape-inference pre-processing on every run; GenAI graphs are already
    optimized by the builder and their contrib operators defeat that pre-processing, so the hint is noise."""
    return "pre-processing" not in record.getMessage()


def sidecar_skip(folder: Path) -> set[str]:
    """Other models, their weights and the input's own manifest stay behind when a folder is copied."""
    return {path.name for path in folder.iterdir() if ".onnx" in path.name or path.name == "forge.json"}


def file_bytes(folder: Path, model_name: str) -> int:
    import onnx

    names = {model_name, *external_data_files(onnx.load(str(folder / model_name), load_external_data=False))}
    return sum((folder / name).stat().st_size for name in names)


def run(
    input_path: Path, output_dir: Path, algo: str, options: dict[str, Any], emit: Emit, work_dir: Path
) -> dict[str, Any]:
    emit(Progress(5, "reading", str(input_path)))
    source = read_source(input_path)
    check_options(source, algo, options)
    output_dir.mkdir(parents=True, exist_ok=True)
    if source.copy_sidecar:
        copy_genai_folder(source.folder, output_dir, skip=sidecar_skip(source.folder))
    feed = check_feed(source, options)
    reference = run_session(source.model, feed)
    with quiet_and_contained(work_dir):
        if algo == "variants":
            return export_variants(source, output_dir, options, emit, work_dir, feed, reference)
        emit(Progress(10, algo, f"quantizing {source.model.name}"))
        started = time.perf_counter()
        details = make(algo, source, options, output_dir / source.model.name, emit)
        details["seconds"] = round(time.perf_counter() - started, 2)
        emit(Progress(90, "checking", "running the result in onnxruntime against the input"))
        details["check"] = compare(reference, output_dir / source.model.name, feed)
    if not details["check"]["runs_in_onnxruntime"]:
        raise ModelLoadError(f"the {algo} model does not run in onnxruntime: {details['check']['error']}")
    emit(Log(f"{algo}: {describe(details['check'])}"))
    return {"model": source.model.name, "genai": source.genai is not None, **details}


def export_variants(
    source: Source, output: Path, options: dict[str, Any], emit: Emit, work_dir: Path, feed: Any, reference: Any
) -> dict[str, Any]:
    names = variant_names(options["variants"])
    stem = source.model.stem
    for name in [source.model.name, *sorted(source.data_files)]:
        copy = output / name
        if copy.exists():
            raise OutputError(f"{copy} already exists; refusing to write into it.")
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source.folder / name, copy)
    evaluate = options["evaluate_variants"] and source.genai is not None
    rows = [{"variant": "original", "file": source.model.name, "bytes": file_bytes(output, source.model.name)}]
    if evaluate:
        emit(Progress(8, "checking", f"perplexity of {source.model.name}"))
        rows[0].update(genai_check(output, source.model.name, work_dir))
    share = 80 / len(names)
    for index, name in enumerate(names):
        variant = _BY_NAME[name]
        file_name = f"{stem}{variant.suffix}.onnx"
        emit(Progress(10 + index * share, name, f"writing {file_name} ({variant.what})"))
        started = time.perf_counter()
        details = make(variant.algo, source, options, output / file_name, emit, variant.weight_type)
        row = {"variant": name, "file": file_name, "algorithm": variant.algo, **details}
        row["seconds"] = round(time.perf_counter() - started, 2)
        row["bytes"] = file_bytes(output, file_name)
        emit(Progress(10 + (index + 0.7) * share, name, f"checking {file_name}"))
        row["check"] = compare(reference, output / file_name, feed)
        if evaluate:
            row.update(genai_check(output, file_name, work_dir))
        if not row["check"]["runs_in_onnxruntime"]:
            emit(Log(f"warning: {file_name} does not run in onnxruntime on this CPU: {row['check']['error']}"))
        emit(Log(f"{file_name}: {megabytes(row['bytes'])}, {describe({**row['check'], **row})}"))
        rows.append(row)
    emit(Progress(95, "checking", f"{len(names)} variants written"))
    return {"stem": stem, "genai": source.genai is not None, "variants": rows}


def megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.1f} kB"


def describe(check: dict[str, Any]) -> str:
    if not check.get("runs_in_onnxruntime", True):
        return "does not run in onnxruntime"
    parts = []
    if "relative_error" in check:
        parts.append(f"output {check['relative_error']:.2%} from the input's")
    if "top1_agreement" in check:
        parts.append(f"top-1 agreement {check['top1_agreement']:.0%}")
    if "perplexity" in check:
        parts.append(f"perplexity {check['perplexity']:.3f}")
    if check.get("runs_in_genai") is False:
        parts.append("onnxruntime-genai cannot load it")
    return ", ".join(parts) or "runs"
