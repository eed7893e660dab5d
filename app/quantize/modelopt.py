"""NVIDIA ModelOpt INT4 on an ONNX Runtime GenAI folder (seed 002): AWQ lite, AWQ clip, RTN, RTN DQ-only, and
mixed INT4+INT8, through `modelopt.onnx.quantization.int4.quantize`.

Traps of nvidia-modelopt 0.47 on a machine without CUDA, each handled here so the user never meets it:
- awq_lite's node fusion calls CuPy's `.get()` on NumPy arrays: fusion is turned off unless CuPy with CUDA runs;
- AWQ concatenates activations over samples: calibration samples all have the same token length;
- plain `rtn` writes QuantizeLinear/DequantizeLinear without axis or block size, which onnxruntime rejects:
  the attributes are completed (opset 21 blocked Q/DQ), so the model runs here and TensorRT gets its Q/DQ;
- the builder's value_info shape annotations break generation after quantization: they are cleared first;
- AWQ writes a full-size augmented copy to the temp folder: it goes to the job's scratch folder, checked for room,
  and removed with the staging area even when the job is killed;
- ModelOpt reconfigures logging (a stdout handler; on stdout the worker speaks the job protocol): its records
  become Log messages and every logger is restored afterwards;
- the model is saved with onnx directly so its data file keeps the builder's `model.onnx.data` name.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError, OutputError
from ..jobs.protocol import Log, Progress
from . import QuantOption, copy_genai_folder, find_onnx_model
from . import calibration as calib

AWQ = ("awq_lite", "awq_clip")
MIXED = ("awq_lite", "rtn_dq")  # ModelOpt's guide: mixed INT4+INT8 works with awq_lite and rtn_dq
DQ_ONLY = ("awq_lite", "awq_clip", "rtn_dq")
OPTIONS: list[QuantOption] = [
    QuantOption("block_size", "int", 128, "INT4 block size: input channels that share one scale", ("32", "64", "128")),
    QuantOption("calib_size", "int", 32, "calibration samples (the guide offers 32, 64, 128); more is slower", (), AWQ),
    QuantOption("calib_seq_len", "int", 256, "tokens in every calibration sample (all samples are equal)", (), AWQ),
    QuantOption(
        "calibration_data",
        "text",
        calib.BUNDLED,
        calib.DATA_HELP,
        (),
        AWQ,
    ),
    QuantOption(
        "calibration_eps",
        "list",
        ["auto"],
        "execution providers that run calibration, first choice first: auto (CUDA when this onnxruntime has it, "
        "else CPU), cpu, cuda, dml, NvTensorRtRtx",
        (),
        AWQ,
    ),
    QuantOption(
        "add_position_ids",
        "choice",
        "auto",
        "feed position_ids in calibration: auto follows the model (DirectML builds take them, CUDA and "
        "TensorRT-RTX builds do not); true or false must match it",
        ("auto", "true", "false"),
        AWQ,
    ),
    QuantOption("use_zero_point", "bool", False, "asymmetric UINT4 with zero points", (), ("awq_lite",)),
    QuantOption(
        "awqlite_alpha_step", "float", 0.1, "step of the AWQ scale search over alpha in [0, 1]", (), ("awq_lite",)
    ),
    QuantOption(
        "awqlite_run_per_subgraph", "bool", False, "search one scale per group of sibling MatMuls", (), ("awq_lite",)
    ),
    QuantOption(
        "awqlite_fuse_nodes",
        "bool",
        True,
        "fold the AWQ input scales into the preceding node (needs CuPy with CUDA; otherwise Mul nodes stay)",
        (),
        ("awq_lite",),
    ),
    QuantOption(
        "awqlite_fast_path",
        "choice",
        "auto",
        "collect all activations in one pass per sample (much faster, needs memory); auto: when they fit in a "
        "quarter of the free memory",
        ("auto", "true", "false"),
        ("awq_lite",),
    ),
    QuantOption("awqclip_alpha_step", "float", 0.05, "step of the AWQ weight-clipping search", (), ("awq_clip",)),
    QuantOption("awqclip_alpha_min", "float", 0.5, "smallest clipping ratio tried", (), ("awq_clip",)),
    QuantOption("awqclip_bsz_col", "int", 1024, "output columns per chunk in the clipping search", (), ("awq_clip",)),
    QuantOption(
        "enable_mixed_quant",
        "bool",
        False,
        "INT8 per channel for sensitive layers (ModelOpt's default: first and last eighth of layers and every "
        "third in between, for qkv/v_proj and down_proj), INT4 for the rest",
        (),
        MIXED,
    ),
    QuantOption(
        "layers_8bit",
        "list",
        [],
        "layers for INT8 instead of ModelOpt's default choice (turns mixed precision on): indices like layers.0, "
        "paths like model/layers.0/attn/qkv_proj, or partial names like down_proj",
        (),
        MIXED,
    ),
    QuantOption(
        "gather_quantize_axis", "choice", "none", "INT4 for Gather (embedding) weights on this axis", ("none", "0", "1")
    ),
    QuantOption("gather_block_size", "int", 32, "block size of Gather weights' INT4", ("16", "32", "64", "128")),
    QuantOption(
        "use_column_major",
        "bool",
        False,
        "store weights column-major with Transpose nodes, for execution providers that need it",
        (),
        DQ_ONLY,
    ),
    QuantOption("nodes_to_exclude", "list", ["/lm_head"], "node-name patterns (regular expressions) kept unquantized"),
]

_RTN_NOTE = (
    "rtn keeps the full-precision weights behind QuantizeLinear->DequantizeLinear pairs: the form TensorRT "
    "consumes. onnxruntime folds the pairs when it loads the model, so it runs here, but it is not smaller; "
    "for a small model on onnxruntime pick rtn_dq or awq_lite."
)
_LAYERS_8BIT = re.compile(r"^[/a-zA-Z0-9_.\-]+$")  # ModelOpt's own format check, per pattern


@dataclass
class Source:
    """What check() learnt about the input, without loading its weights."""

    folder: Path
    model: Path
    config: dict[str, Any]
    graph: Any
    weights: dict[str, tuple[int, ...]]  # quantizable MatMul node -> weight shape
    model_bytes: int
    half: bool  # FP16 weights: NumPy has no fast float16 matmul
    inputs: calib.ModelInputs | None = None


# --- checks that need no heavy import ---------------------------------------------------------------------------


def check(input_path: Path, algo: str, options: dict[str, Any]) -> Source:
    """Refuse in one sentence what cannot work, before anything runs: the framework can call this at planning."""
    import importlib.util
    import json

    import onnx

    if importlib.util.find_spec("modelopt") is None:
        raise InputError(f"{algo} needs NVIDIA ModelOpt, which is not installed: pip install -e '.[quantize]'.")

    folder = input_path if input_path.is_dir() else input_path.parent
    if not (folder / "genai_config.json").is_file():
        raise InputError(f"{algo} needs an ONNX Runtime GenAI folder (with genai_config.json); convert first.")
    config = json.loads((folder / "genai_config.json").read_text(encoding="utf-8"))
    named = folder / config["model"]["decoder"].get("filename", "model.onnx")
    model = named if input_path.is_dir() and named.is_file() else find_onnx_model(input_path)
    if model.name != named.name:
        raise InputError(f"{model.name} is not the model genai_config.json names ({named.name}); give the folder.")
    graph = onnx.load(str(model), load_external_data=False).graph
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    excluded = _patterns(options["nodes_to_exclude"])
    weights: dict[str, tuple[int, ...]] = {}
    half = False
    for node in graph.node:
        weight = initializers.get(node.input[1]) if node.op_type in ("MatMul", "Gemm") else None
        if weight is not None and len(weight.dims) == 2 and not any(p.match(node.name) for p in excluded):
            if weight.data_type == 16:
                raise InputError("the model's weights are bfloat16; quantize its FP16 or FP32 build with ModelOpt.")
            weights[node.name] = tuple(weight.dims)
            half = half or weight.data_type == 10
    if not weights:
        raise InputError(f"{model.name} has no MatMul weights left to quantize (check nodes_to_exclude).")
    model_bytes = sum(p.stat().st_size for p in folder.iterdir() if p.name.startswith(model.name))
    source = Source(folder, model, config, graph, weights, model_bytes, half)
    _check_sizes(source, options)
    _check_mixed(source, algo, options)
    if algo in AWQ:
        _check_calibration(source, algo, options)
    return source


def _patterns(items: list[str]) -> list[re.Pattern[str]]:
    try:
        return [re.compile(item) for item in items]
    except re.error as error:
        raise InputError(f"nodes_to_exclude has a pattern that is not a regular expression ({error}).") from None


def _check_sizes(source: Source, options: dict[str, Any]) -> None:
    hidden = int(source.config["model"]["decoder"].get("hidden_size") or 0)
    smallest_node, smallest = min(((name, shape[0]) for name, shape in source.weights.items()), key=lambda x: x[1])
    block = options["block_size"]
    if hidden and block > hidden:
        raise InputError(
            f"block_size {block} is larger than the model's hidden size {hidden}; pick a block size of at most "
            f"{_largest_block(hidden)}."
        )
    if block > smallest:
        raise InputError(
            f"block_size {block} is larger than the {smallest} input channels of {smallest_node}; pick a block "
            f"size of at most {_largest_block(smallest)}."
        )
    if options["gather_quantize_axis"] != "none" and hidden and options["gather_block_size"] > hidden:
        raise InputError(f"gather_block_size {options['gather_block_size']} is larger than the hidden size {hidden}.")


def _largest_block(size: int) -> int:
    return max((block for block in (16, 32, 64, 128) if block <= size), default=16)


def _check_mixed(source: Source, algo: str, options: dict[str, Any]) -> None:
    layers = options.get("layers_8bit") or []
    for pattern in layers:
        if not _LAYERS_8BIT.match(pattern):
            raise InputError(f"layers_8bit entry '{pattern}' is not a layer index, path or name (like layers.0).")
        if not any(_matches_layer(node, pattern) for node in source.weights):
            raise InputError(
                f"layers_8bit entry '{pattern}' matches no quantized MatMul; use names like layers.0, "
                "qkv_proj or model/layers.0/attn/qkv_proj."
            )
    mixed = bool(options.get("enable_mixed_quant") or layers)
    if mixed and options.get("awqlite_run_per_subgraph"):
        raise InputError("mixed INT4+INT8 does not work with awqlite_run_per_subgraph; turn one of them off.")
    if options.get("awqlite_run_per_subgraph") and options.get("awqlite_fast_path") == "true":
        raise InputError("awqlite_fast_path does not work with awqlite_run_per_subgraph; turn one of them off.")


def _matches_layer(node_name: str, pattern: str) -> bool:
    """ModelOpt's rule: the pattern's dot/slash tokens appear in a row in the node name's."""
    hay = node_name.lstrip("/").replace("/", ".").split(".")
    needle = pattern.lstrip("/").replace("/", ".").split(".")
    return any(hay[i : i + len(needle)] == needle for i in range(len(hay) - len(needle) + 1))


def _check_calibration(source: Source, algo: str, options: dict[str, Any]) -> None:
    size, length = options["calib_size"], options["calib_seq_len"]
    if not 1 <= size <= 1024:
        raise InputError(f"calib_size takes 1 to 1024 samples (the guide uses 32, 64 or 128), not {size}.")
    context = int(source.config["model"].get("context_length") or source.config["search"]["max_length"])
    if not 8 <= length <= context:
        raise InputError(f"calib_seq_len takes 8 to {context} tokens (the model's context), not {length}.")
    for name, low, high in (("awqlite_alpha_step", 0, 1), ("awqclip_alpha_step", 0, 0.5)):
        if name in options and not low < options[name] <= high:
            raise InputError(f"{name} takes a step above {low} and at most {high}, not {options[name]}.")
    if "awqclip_alpha_min" in options and not 0 < options["awqclip_alpha_min"] < 1:
        raise InputError(f"awqclip_alpha_min takes a ratio between 0 and 1, not {options['awqclip_alpha_min']}.")
    if options.get("awqclip_bsz_col", 1) < 1:
        raise InputError("awqclip_bsz_col takes a positive number of columns.")
    calib.check_eps(options["calibration_eps"])
    source.inputs = calib.read_model_inputs(source.graph, source.config)
    has_positions = source.inputs.position_ids is not None
    wanted = options["add_position_ids"]
    if wanted != "auto" and (wanted == "true") != has_positions:
        raise InputError(
            f"add_position_ids={wanted} does not match the model, which {'takes' if has_positions else 'has no'} "
            "position_ids input (DirectML builds have it, CUDA and TensorRT-RTX builds do not); leave it on auto."
        )
    calib.check_source(options["calibration_data"])


# --- the job ------------------------------------------------------------------------------------------------------


def run(input_dir: Path, output_dir: Path, algo: str, options: dict[str, Any], emit: Any, work_dir: Path) -> dict:
    progress, timer = _Progress(emit), _Timer()
    stage = "calibrating" if algo in AWQ else "quantizing"
    progress(5, stage, "checking the model and the options")
    source = check(input_dir, algo, options)
    work_dir.mkdir(parents=True, exist_ok=True)
    _check_room(source, algo, work_dir)
    details: dict[str, Any] = {"algorithm": algo, "block_size": options["block_size"]}
    samples: list[dict[str, Any]] = []
    eps, profile = ["cpu"], None
    with _modelopt_session(emit, progress, work_dir) as int4:
        details["cpp_extension"] = _load_extension(emit, progress)
        timer.lap("import")
        if algo in AWQ:
            samples, eps, profile, details["calibration"] = _prepare_calibration(source, algo, options, progress)
            timer.lap("calibration")
            estimate = details["calibration"]["estimate_seconds"]
            emit(Log(f"AWQ on {eps[0]}: about {calib.duration(estimate)} for {len(samples)} samples here.", "modelopt"))
            if source.half and not int4.has_cupy:
                emit(Log("FP16 weights without CuPy: NumPy searches about 10x slower than on FP32.", "modelopt"))
        progress(12, stage, "loading the model")
        model = _load_model(source.model)
        timer.lap("load")
        kwargs = _modelopt_kwargs(source, algo, options, int4.has_cupy, emit)
        progress(15, stage, f"running ModelOpt {algo}")
        quantized = int4.quantize(
            model,
            calibration_method=algo,
            calibration_data_reader=samples,
            calibration_eps=eps,
            block_size=options["block_size"],
            use_zero_point=bool(options.get("use_zero_point")),
            nodes_to_exclude=list(options["nodes_to_exclude"]),
            input_shapes_profile=profile,
            log_level="INFO",
            **kwargs,
        )
        del model
        timer.lap("quantize")
    if algo == "rtn":
        _complete_qdq(quantized, options["block_size"], options["gather_block_size"])
        details["note"] = _RTN_NOTE
    _ensure_opset_21(quantized)
    details["weights"] = _weight_summary(quantized)
    details["modelopt_arguments"] = kwargs
    progress(88, "saving", "writing the quantized model")
    details["model_file"], details["data_file"] = _save(quantized, source.model.name, output_dir)
    progress(94, "saving", "copying the GenAI configuration and tokenizer")
    copy_genai_folder(source.folder, output_dir, {"forge.json", source.model.name, f"{source.model.name}.data"})
    timer.lap("save")
    progress(95, "saving", "saved")
    details["seconds"] = timer.seconds
    return details


class _Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._clock = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self._clock, 2)
        self._clock = now


class _Progress:
    """Progress messages that only move forward."""

    def __init__(self, emit: Any) -> None:
        self._emit = emit
        self.last = 0.0

    def __call__(self, percent: float, stage: str, detail: str = "") -> None:
        percent = round(max(percent, self.last), 1)
        self.last = percent
        self._emit(Progress(percent, stage, detail))


def _check_room(source: Source, algo: str, work_dir: Path) -> None:
    """AWQ's augmented copy is as big as the model; the output at most as big again (rtn keeps the weights)."""
    needed = source.model_bytes * (2 if algo in AWQ else 1) + (64 << 20)
    free = shutil.disk_usage(work_dir).free
    if free < needed:
        raise OutputError(
            f"quantizing needs about {needed / 1e9:.1f} GB free beside the output ({work_dir.parent.parent}) "
            f"for ModelOpt's working copy and the result, but only {free / 1e9:.1f} GB is free; free some space."
        )


def _prepare_calibration(source: Source, algo: str, options: dict, progress: _Progress) -> tuple:
    """(samples, providers, TensorRT-RTX shape profile, details): the text cut into equal samples of the model's
    real inputs, and one of them run on the chosen provider first."""
    count, length = options["calib_size"], options["calib_seq_len"]
    progress(6, "calibrating", f"tokenizing the calibration text into {count} samples of {length} tokens")
    encode = calib.load_encoder(source.folder)
    text, described = calib.load_text(options["calibration_data"], count * length, lambda t: len(encode(t)))
    samples = calib.make_samples(text, encode, count, length, source.config["model"].get("bos_token_id"))
    inputs = source.inputs
    feeds = [inputs.feeds(tokens) for tokens in samples.tokens]
    eps = calib.resolve_eps(options["calibration_eps"])
    profile = None
    if "NvTensorRtRtx" in eps:
        profile = [inputs.shapes_profile(length) if ep == "NvTensorRtRtx" else {} for ep in eps]
    progress(9, "calibrating", f"one calibration batch on {eps[0]}")
    seconds = calib.probe(source.model, eps, profile, feeds[0], lambda s: _estimate(source, algo, options, s))
    details = {
        "samples": count,
        "tokens_per_sample": length,
        "source": described,
        "text_tokens": samples.text_tokens,
        "overlapping": samples.overlapping,
        "inputs": [name for name in (inputs.input_ids, inputs.attention_mask, inputs.position_ids) if name]
        + ([f"{len(inputs.past)} empty past key/value of {inputs.past[0].dtype}"] if inputs.past else []),
        "eps": eps,
        "seconds_per_sample": round(seconds, 4),
        "estimate_seconds": _estimate(source, algo, options, seconds),
    }
    return feeds, eps, profile, details


def _estimate(source: Source, algo: str, options: dict, seconds_per_sample: float) -> int:
    fast = algo == "awq_lite" and _fast_path(source, options, options["calib_size"])
    if algo == "awq_lite":
        alphas = round(1 / options["awqlite_alpha_step"]) + 1
    else:
        alphas = round((1 - options["awqclip_alpha_min"]) / options["awqclip_alpha_step"]) + 1
    return calib.estimate_seconds(
        algo,
        list(source.weights.values()),
        options["calib_size"],
        options["calib_seq_len"],
        alphas,
        seconds_per_sample,
        fast,
        source.half,
    )


@contextmanager
def _modelopt_session(emit: Any, progress: _Progress, work_dir: Path) -> Iterator[Any]:
    """ModelOpt imported and hooked for one job: its logging and progress bars become job messages, its temp
    files go to the job's scratch folder; logging, tempfile and the hooks are restored on the way out."""
    saved_loggers = _logging_state()
    saved_tempdir, saved_env = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir = str(work_dir)
    os.environ["TMPDIR"] = str(work_dir)
    try:
        import modelopt.onnx.quantization.int4 as int4

        modelopt_logger = logging.getLogger("modelopt.onnx")
        for handler in modelopt_logger.handlers[:]:
            modelopt_logger.removeHandler(handler)
        modelopt_logger.addHandler(_EmitHandler(emit))
        modelopt_logger.setLevel(logging.INFO)
        modelopt_logger.propagate = False
        saved_hooks = int4.tqdm, int4.configure_logging
        int4.tqdm = _ProgressBars(progress)
        int4.configure_logging = lambda *args, **kwargs: None
        try:
            yield int4
        finally:
            int4.tqdm, int4.configure_logging = saved_hooks
    finally:
        tempfile.tempdir = saved_tempdir
        if saved_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved_env
        _restore_logging(saved_loggers)


def _logging_state() -> dict[str, tuple]:
    state = {"": (logging.root.level, list(logging.root.handlers), True, False)}
    for name, item in logging.root.manager.loggerDict.items():
        if isinstance(item, logging.Logger):
            state[name] = (item.level, list(item.handlers), item.propagate, item.disabled)
    return state


def _restore_logging(state: dict[str, tuple]) -> None:
    for name, item in list(logging.root.manager.loggerDict.items()):
        if isinstance(item, logging.Logger) and name not in state and name.startswith("modelopt"):
            # Created by ModelOpt's import: no console handler of its own, warnings go to our handlers.
            item.handlers.clear()
            item.setLevel(logging.WARNING)
            item.propagate = True
    for name, (level, handlers, propagate, disabled) in state.items():
        logger = logging.getLogger(name) if name else logging.root
        logger.setLevel(level)
        logger.handlers[:] = handlers
        logger.propagate, logger.disabled = propagate, disabled


class _EmitHandler(logging.Handler):
    _REWORDED = {
        "Using slower INT4 ONNX quantization using numpy": "No CuPy with CUDA here: ModelOpt uses its NumPy path."
    }

    def __init__(self, emit: Any) -> None:
        super().__init__(logging.INFO)
        self._emit = emit

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage().strip()
        prefix = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        for start, sentence in self._REWORDED.items():
            if text.startswith(start):
                prefix, text = "", sentence
        if text:
            self._emit(Log(prefix + text, "modelopt"))


class _ProgressBars:
    """Stands in for tqdm inside ModelOpt's int4 module: each loop it names moves the job's progress."""

    _SPANS = {  # tqdm description -> (stage, from %, to %)
        "Running AWQ scale search": ("calibrating", 15, 75),
        "Running clip search": ("calibrating", 15, 75),
        "Caching activations": ("calibrating", 15, 30),
        "Quantizing the weights": ("quantizing", 76, 85),
    }

    def __init__(self, progress: _Progress) -> None:
        self._progress = progress

    def __call__(self, iterable: Any = None, desc: str = "", **_: Any) -> Iterator[Any]:
        items = list(iterable)
        span = next((value for key, value in self._SPANS.items() if desc.startswith(key)), None)
        if span is None:
            yield from items
            return
        stage, start, end = span
        start = max(start, min(self._progress.last, end))  # after "Caching activations", the search goes on
        label = desc.strip(". ")
        for index, item in enumerate(items):
            self._progress(
                start + (end - start) * index / max(len(items), 1), stage, f"{label}: {index + 1} of {len(items)}"
            )
            yield item
        self._progress(end, stage, f"{label}: done")


def _load_extension(emit: Any, progress: _Progress) -> str:
    """ModelOpt packs INT4 with a C++ helper that cppimport compiles on first use (about 15 s, needs a compiler)."""
    import importlib.util

    spec = importlib.util.find_spec("modelopt.onnx.quantization")
    sources = Path(spec.origin).parent / "src" if spec and spec.origin else Path()
    if not any(p.suffix in (".so", ".pyd") for p in sources.glob("modelopt_round_and_pack_ext*")):
        progress(10, "quantizing", "compiling ModelOpt's C++ helper (first run only, about 15 s)")
    from modelopt.onnx.quantization.extensions import round_and_pack_ext

    if round_and_pack_ext is None:
        emit(
            Log(
                "ModelOpt's C++ helper could not be built (no compiler?): packing INT4 the slower Python way.",
                "modelopt",
            )
        )
        return "unavailable: slower Python path"
    return "loaded"


def _load_model(path: Path) -> Any:
    import onnx

    model = onnx.load(str(path), load_external_data=True)
    # The builder's shape annotations make quantized fp16 CPU graphs fail at generation ("Shape mismatch
    # attempting to re-use buffer"); onnxruntime infers what it needs.
    del model.graph.value_info[:]
    return model


def _modelopt_kwargs(source: Source, algo: str, options: dict, has_cupy: bool, emit: Any) -> dict:
    kwargs: dict[str, Any] = {"use_column_major": bool(options.get("use_column_major"))}
    if options["gather_quantize_axis"] != "none":
        kwargs["gather_quantize_axis"] = int(options["gather_quantize_axis"])
        kwargs["gather_block_size"] = options["gather_block_size"]
    if options.get("enable_mixed_quant") or options.get("layers_8bit"):
        kwargs["enable_mixed_quant"] = True
        if options.get("layers_8bit"):
            kwargs["layers_8bit"] = ",".join(options["layers_8bit"])
    if algo == "awq_lite":
        kwargs["awqlite_alpha_step"] = options["awqlite_alpha_step"]
        kwargs["awqlite_run_per_subgraph"] = options["awqlite_run_per_subgraph"]
        kwargs["awqlite_fuse_nodes"] = bool(options["awqlite_fuse_nodes"] and has_cupy)
        if options["awqlite_fuse_nodes"] and not has_cupy:
            emit(Log("AWQ input scales stay as Mul nodes: folding them needs CuPy with CUDA.", "modelopt"))
        kwargs["enable_fast_path_using_high_sysram"] = _fast_path(source, options, options["calib_size"])
    if algo == "awq_clip":
        for name in ("awqclip_alpha_step", "awqclip_alpha_min", "awqclip_bsz_col"):
            kwargs[name] = options[name]
    return kwargs


def _fast_path(source: Source, options: dict, samples: int) -> bool:
    if options["awqlite_run_per_subgraph"] or options["awqlite_fast_path"] == "false":
        return False
    if options["awqlite_fast_path"] == "true":
        return True
    import psutil

    itemsize = 2 if source.half else 4
    cache = samples * options["calib_seq_len"] * sum(rows for rows, _ in source.weights.values()) * itemsize
    return cache < psutil.virtual_memory().available / 4


def _complete_qdq(model: Any, block_size: int, gather_block_size: int) -> None:
    """ModelOpt's rtn leaves its blocked Q/DQ pairs without axis and block_size (onnxruntime: "scale must be 1D
    tensor"); a 2-D scale blocks the axis where its shape differs from the weight's."""
    import onnx

    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    quantized_from = {node.output[0]: node.input[0] for node in model.graph.node if node.op_type == "QuantizeLinear"}
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or any(
            a.name == "block_size" for a in node.attribute
        ):
            continue
        scale = initializers.get(node.input[1])
        weight = initializers.get(quantized_from.get(node.input[0], node.input[0]))
        if scale is None or weight is None or len(scale.dims) != 2 or len(weight.dims) != 2:
            continue
        axes = [axis for axis in (0, 1) if scale.dims[axis] != weight.dims[axis]]
        if len(axes) != 1:
            continue
        axis = axes[0]
        block = next(
            (b for b in (block_size, gather_block_size) if math.ceil(weight.dims[axis] / b) == scale.dims[axis]),
            math.ceil(weight.dims[axis] / scale.dims[axis]),
        )
        node.attribute.extend(
            [onnx.helper.make_attribute("axis", axis), onnx.helper.make_attribute("block_size", block)]
        )


def _ensure_opset_21(model: Any) -> None:
    """Blocked DequantizeLinear and INT4 need opset 21 (the 0.14 builder already writes 21)."""
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx") and opset.version < 21:
            opset.version = 21


def _weight_summary(model: Any) -> dict[str, int]:
    """Quantized weights by stored type: int4/uint4/int8 initializers behind DequantizeLinear, or, for rtn, the
    type its QuantizeLinear produces."""
    import onnx

    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    zero_point_of = {node.output[0]: node.input[2] for node in model.graph.node if node.op_type == "QuantizeLinear"}
    counts: dict[str, int] = {}
    for node in model.graph.node:
        if node.op_type != "DequantizeLinear":
            continue
        stored = initializers.get(node.input[0])
        if stored is None:  # rtn: Q -> DQ, the Q's zero point has the stored type
            stored = initializers.get(zero_point_of.get(node.input[0], ""))
        if stored is not None:
            kind = onnx.helper.tensor_dtype_to_np_dtype(stored.data_type).name
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def _save(model: Any, name: str, output_dir: Path) -> tuple[str, str]:
    """One external data file named like the builder's; never written into an existing file (ModelOpt's
    guide: an existing output gets appended to and corrupted)."""
    import onnx

    output_dir.mkdir(parents=True, exist_ok=True)
    data = f"{name}.data"
    for stale in (output_dir / name, output_dir / data):
        stale.unlink(missing_ok=True)
    onnx.save_model(model, str(output_dir / name), save_as_external_data=True, location=data, size_threshold=1024)
    return name, data
