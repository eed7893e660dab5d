"""AMD Quark AWQ UINT4 on a Hugging Face checkpoint, then the model builder (seed 001): one job, two stages.

1. Quark's Python API quantizes the checkpoint: the LLM template of its model type, the uint4 weight-only
   per-group asymmetric scheme, the AWQ algorithm calibrated on a text, freeze, and an export with Quark's default
   custom_mode="quark" into the job's work folder. (custom_mode="awq" renames unquantized tensors under
   transformers 5, model.norm.qweight and the like, and the builder then dies parsing a layer index.)
2. The model builder turns that export into an INT4 GenAI folder. It would re-quantize an lm_head that Quark left
   in float with its own RTN, so lm_head is kept out of the builder's quantization unless Quark quantized it;
   app.presets.resolve adds shared_embeddings=false to that exclusion, without which a tied-embedding model builds
   an invalid graph.

AWQ on the CPU is slow, so the job estimates its time up front and reports every decoder layer. Nothing heavy is
imported at module level, and the checkpoint's own code is never run (trust_remote_code is always off).
"""

from __future__ import annotations

import contextlib
import fnmatch
import gc
import logging
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..checkpoints import CheckpointInfo, inspect_checkpoint, read_config
from ..errors import InputError
from ..jobs.protocol import Log, Message, Progress
from . import QuantOption
from . import calibration as calib

GROUP_SIZES = (128, 64, 32)
DATA_TYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
BUILDER_EPS = ("cpu", "cuda", "dml", "webgpu", "trt-rtx")

OPTIONS: list[QuantOption] = [
    QuantOption(
        "group_size",
        "choice",
        "auto",
        "input channels sharing one scale and zero point; auto: the largest of 128, 64, 32 that divides every "
        "quantized layer's input size",
        ("auto", "128", "64", "32"),
    ),
    QuantOption(
        "data_type",
        "choice",
        "auto",
        "data type Quark quantizes in and exports (scales, unquantized weights); auto: the checkpoint's own",
        ("auto", *DATA_TYPES),
    ),
    QuantOption("include_lm_head", "bool", False, "quantize lm_head with AWQ too (smaller, usually a little worse)"),
    QuantOption(
        "calibration_data",
        "text",
        calib.BUNDLED,
        calib.DATA_HELP,
    ),
    QuantOption("calib_size", "int", 32, "calibration samples; AWQ time grows with samples x length"),
    QuantOption("calib_seq_len", "int", 256, "tokens in every calibration sample"),
    QuantOption(
        "ep",
        "choice",
        "cpu",
        "execution provider the builder makes the model for (cpu: FP32 activations; GPUs: FP16)",
        BUILDER_EPS,
    ),
]

# Percent at which the job's parts end: loading, AWQ (layer by layer), Quark's export, the builder.
_LOADED, _AWQ_DONE, _EXPORTED, _BUILT = 5.0, 55.0, 60.0, 95.0

# Wall-time model of the job on the CPU, measured on 2 cores (see estimate_seconds).
_IMPORT_SECONDS = 45.0
_AWQ_SECONDS_PER_WEIGHT = 1.1e-5
_AWQ_SECONDS_PER_WEIGHT_TOKEN = 1.03e-9
_AWQ_SECONDS_PER_TOKEN = 1.24e-3
_BUILD_SECONDS_PER_PARAMETER = 2e-7
_RECOMMEND_GPU_SECONDS = 30 * 60
_DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}
_WORKER_BASE_BYTES = 1024**3  # Python, torch, transformers, Quark, onnxruntime and the builder: ~0.6 GB

Emit = Callable[[Message], None]


@dataclass(frozen=True)
class Settings:
    """The options resolved against one checkpoint: what both stages run with."""

    group_size: int
    data_type: str
    """A key of DATA_TYPES."""
    include_lm_head: bool
    calibration_data: str
    calib_size: int
    calib_seq_len: int
    ep: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- checks, without heavy imports ------------------------------------------------------------------------------


def layer_input_sizes(config: dict[str, Any]) -> dict[str, int]:
    """The input width of every kind of linear layer Quark quantizes, from config.json: q/k/v, gate/up and lm_head
    read the hidden state, o_proj the attention heads, down_proj the MLP's intermediate state."""
    text = config.get("text_config", config)
    hidden = int(text.get("hidden_size", 0))
    heads = int(text.get("num_attention_heads", 0) or 0)
    head_dim = int(text.get("head_dim") or (hidden // heads if heads else 0))
    sizes = {"hidden_size": hidden, "o_proj input (heads x head_dim)": heads * head_dim}
    for key in ("intermediate_size", "moe_intermediate_size", "shared_expert_intermediate_size"):
        sizes[key] = int(text.get(key) or 0)
    return {name: size for name, size in sizes.items() if size > 0}


def choose_group_size(config: dict[str, Any], requested: str) -> int:
    """The requested group size, or with 'auto' the largest that divides every quantized layer's input size;
    a size that does not divide them is refused in words."""
    sizes = layer_input_sizes(config)
    fitting = [size for size in GROUP_SIZES if all(width % size == 0 for width in sizes.values())]
    if requested == "auto":
        if not fitting:
            widths = ", ".join(f"{name} {width}" for name, width in sizes.items())
            raise InputError(
                f"none of the group sizes {', '.join(map(str, GROUP_SIZES))} divides every quantized layer's input "
                f"({widths}), so Quark cannot quantize this model per group."
            )
        return fitting[0]
    size = int(requested)
    if size not in fitting:
        misfits = [f"{name} {width}" for name, width in sizes.items() if width % size]
        verb = "is not a multiple" if len(misfits) == 1 else "are not multiples"
        instead = f"use {' or '.join(map(str, fitting))}, or auto" if fitting else "no group size fits this model"
        raise InputError(
            f"group size {size} does not divide every quantized layer's input size ({', '.join(misfits)} {verb} "
            f"of {size}); {instead}."
        )
    return size


def resolve_settings(info: CheckpointInfo, config: dict[str, Any], options: dict[str, Any]) -> Settings:
    """The options checked against the checkpoint, 'auto' resolved; raises InputError with the reason."""
    if options["calib_size"] < 1:
        raise InputError(f"calib_size must be at least 1, not {options['calib_size']}.")
    if options["calib_seq_len"] < 8:
        raise InputError(f"calib_seq_len must be at least 8 tokens, not {options['calib_seq_len']}.")
    if info.context_length and options["calib_seq_len"] > info.context_length:
        raise InputError(
            f"calib_seq_len {options['calib_seq_len']} is longer than the model's context of "
            f"{info.context_length} tokens; lower it."
        )
    calib.check_source(str(options["calibration_data"]))
    data_type = options["data_type"]
    if data_type == "auto":
        data_type = {name: key for key, name in DATA_TYPES.items()}.get(info.dtype, "fp32")
    return Settings(
        group_size=choose_group_size(config, str(options["group_size"])),
        data_type=data_type,
        include_lm_head=bool(options["include_lm_head"]),
        calibration_data=str(options["calibration_data"]),
        calib_size=int(options["calib_size"]),
        calib_seq_len=int(options["calib_seq_len"]),
        ep=str(options["ep"]),
    )


@dataclass
class Plan:
    info: CheckpointInfo
    config: dict[str, Any]
    settings: Settings
    build: Any
    """app.presets.BuildOptions of stage 2."""


def plan(input_dir: Path, options: dict[str, Any]) -> Plan:
    """Every check that needs no heavy import: the checkpoint, the options, and the builder options they give.
    Cheap enough to run before the job starts as well as in it."""
    info = inspect_checkpoint(input_dir)
    if info.needs_remote_code:
        raise InputError(
            f"{info.path} ships its own Python code (auto_map), which Quark would have to run; quantize a "
            "checkpoint that transformers supports natively."
        )
    config = read_config(Path(info.path))
    settings = resolve_settings(info, config, options)
    return Plan(info, config, settings, build_options(settings))


def check(input_path: Path, algo: str, options: dict[str, Any]) -> None:
    """Refuse, before the job starts, what the job would refuse (plan_quantization calls it)."""
    plan(input_path, options)


def build_options(settings: Settings) -> Any:
    """INT4 builder options for Quark's export. The builder takes Quark's quantized weights as they are; an lm_head
    Quark left in float stays out of the builder's own RTN (resolve then adds shared_embeddings=false)."""
    from ..presets import resolve

    overrides = {} if settings.include_lm_head else {"nodes_to_exclude": "/lm_head/MatMul"}
    return resolve("int4", settings.ep, overrides)


def layer_weights(config: dict[str, Any]) -> int:
    """Weights in one decoder layer's attention and MLP projections, from config.json."""
    text = config.get("text_config", config)
    hidden = int(text.get("hidden_size", 0))
    heads = int(text.get("num_attention_heads", 1) or 1)
    kv_heads = int(text.get("num_key_value_heads", heads) or heads)
    head_dim = int(text.get("head_dim") or hidden // heads)
    intermediate = int(text.get("intermediate_size", 4 * hidden))
    return hidden * head_dim * (2 * heads + 2 * kv_heads) + 3 * hidden * intermediate


def estimate_seconds(plan: Plan) -> float:
    """Rough wall time of the whole job on the CPU: loading Quark, AWQ layer by layer, the builder.

    An AWQ layer costs a part proportional to its weights (the clipping search quantizes every weight 10 times
    against 512 sampled tokens), one proportional to weights x calibration tokens (the scale search runs the layer
    on every sample 20 times) and one proportional to the tokens alone (attention). Fitted to runs on 2 cores: a
    SmolLM2-135M-shaped layer (3.5M weights) took 44 s with 8 x 128 tokens and 79 s with 32 x 256; a demo layer
    (0.2M weights) 14 s with 32 x 256.
    """
    settings = plan.settings
    tokens = settings.calib_size * settings.calib_seq_len
    weights = layer_weights(plan.config)
    per_layer = (
        weights * (_AWQ_SECONDS_PER_WEIGHT + _AWQ_SECONDS_PER_WEIGHT_TOKEN * tokens) + _AWQ_SECONDS_PER_TOKEN * tokens
    )
    return _IMPORT_SECONDS + plan.info.num_layers * per_layer + _BUILD_SECONDS_PER_PARAMETER * plan.info.parameters


# --- the job ----------------------------------------------------------------------------------------------------


def run(
    input_dir: Path, output_dir: Path, algo: str, options: dict[str, Any], emit: Emit, work_dir: Path
) -> dict[str, Any]:
    started = time.perf_counter()
    job = plan(input_dir, options)
    for warning in check_resources(job, Path(output_dir)):
        emit(Log(f"warning: {warning}"))
    announce(job, emit)
    exported = Path(work_dir) / "quark"
    quantize_checkpoint(Path(job.info.path), exported, job.settings, emit)
    gc.collect()  # Quark's model (hooks make reference cycles) goes before the builder loads the export
    quark_seconds = time.perf_counter() - started
    emit(Log(f"Stage 2 of 2: the model builder: -i <Quark's export> {' '.join(job.build.builder_flags())}"))
    build(exported, Path(output_dir), Path(work_dir) / "cache", job.build, job.info.num_layers, emit)
    shutil.rmtree(exported, ignore_errors=True)
    return {
        "settings": job.settings.to_dict(),
        "builder_options": job.build.to_dict(),
        "quark_version": quark_version(),
        "quark_seconds": round(quark_seconds, 1),
        "build_seconds": round(time.perf_counter() - started - quark_seconds, 1),
    }


def check_resources(job: Plan, output_dir: Path) -> list[str]:
    """Refuse a job the disk cannot hold (Quark's export and the built model), warn when memory looks short.

    Quark holds the model in its data type plus a working copy of each layer and its activations; the builder
    then holds Quark's export and the ONNX graph, as a conversion does.
    """
    from .. import convert

    output_bytes, build_peak = convert.estimate_needs(job.info, job.build)
    quark_peak = _WORKER_BASE_BYTES + 2 * job.info.parameters * _DTYPE_BYTES[job.settings.data_type]
    return convert.check_resources(output_dir, 2 * output_bytes, max(build_peak, quark_peak))


def announce(job: Plan, emit: Emit) -> None:
    """What the job will do and, on the CPU, how long it should take."""
    settings = job.settings
    lm_head = "quantized by Quark" if settings.include_lm_head else "kept in float"
    emit(
        Log(
            f"Stage 1 of 2: AMD Quark AWQ, UINT4 asymmetric, group size {settings.group_size}, {settings.data_type}, "
            f"lm_head {lm_head}; calibration: {settings.calib_size} samples of {settings.calib_seq_len} tokens."
        )
    )
    if cuda_available():
        emit(Log("Quark runs on the GPU (CUDA)."))
        return
    seconds = estimate_seconds(job)
    emit(Log(f"Estimated time on this CPU: about {calib.duration(seconds)} for {job.info.num_layers} decoder layers."))
    if seconds > _RECOMMEND_GPU_SECONDS:
        emit(
            Log(
                "AWQ is slow on the CPU: PyTorch with CUDA on an NVIDIA GPU makes it many times faster; fewer "
                "calibration samples (calib_size) also shorten it."
            )
        )


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def quark_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("amd-quark")


def quantize_checkpoint(source: Path, destination: Path, settings: Settings, emit: Emit) -> Any:
    """Stage 1: Quark AWQ of the checkpoint into destination (safetensors in Quark's format, with the tokenizer).

    Returns Quark's frozen, fake-quantized torch model: the reference the built model must agree with.
    """
    # Quark compiles its fake-quantize kernel with torch.compile, which needs a C++ compiler; it turns that off on
    # Windows itself. Off everywhere, so every platform runs (and is estimated) alike, unless the user sets it.
    os.environ.setdefault("QUARK_DISABLE_COMPILE", "1")
    progress = QuarkProgress(emit)
    progress.stage(1, "loading", "loading AMD Quark (it scans every transformers model: about 40 s)")
    with progress.capture():
        import torch
        from quark.torch import LLMTemplate, ModelQuantizer, export_safetensors
        from quark.torch.utils.llm import preprocess_for_quantization
        from transformers import AutoModelForCausalLM, AutoTokenizer

        progress.stage(3, "loading", "reading the checkpoint")
        template = llm_template(LLMTemplate, read_config(source))
        device = "cuda" if torch.cuda.is_available() else "cpu"
        tokenizer = AutoTokenizer.from_pretrained(str(source), trust_remote_code=False)
        # Loaded whole, then moved: a device_map would need accelerate, which nothing else here uses.
        model = AutoModelForCausalLM.from_pretrained(
            str(source), dtype=getattr(torch, DATA_TYPES[settings.data_type]), trust_remote_code=False
        )
        model = model.to(device).eval()
        preprocess_for_quantization(model)
        loader = calibration_loader(tokenizer, settings, device, emit)
        quantizer = ModelQuantizer(
            template.get_config(
                scheme=f"uint4_wo_{settings.group_size}",
                algorithm="awq",
                exclude_layers=excluded_layers(template.exclude_layers_name, settings.include_lm_head),
                algo_configs=borrowed_awq_config(LLMTemplate, template.model_type),
            )
        )
        progress.stage(_LOADED, "awq", f"layer 1 of {model.config.num_hidden_layers}")
        model = quantizer.quantize_model(model, loader)
        progress.stage(_AWQ_DONE, "exporting", "freezing and writing Quark's safetensors")
        model = quantizer.freeze(model)
        with torch.no_grad():
            export_safetensors(model, str(destination), custom_mode="quark")
    copy_side_files(source, destination)
    progress.stage(_EXPORTED, "exporting", "Quark's export is written")
    return model


# Model types the builder converts that Quark 0.13 has templates for; named when a model type has none.
_KNOWN_TEMPLATES = ("llama", "mistral", "qwen2", "qwen3", "phi3", "gemma2", "gemma3", "olmo", "granite")


def llm_template(templates: Any, config: dict[str, Any]) -> Any:
    model_type = str(config.get("model_type", ""))
    available = templates.list_available()
    if model_type not in available:
        known = ", ".join(name for name in _KNOWN_TEMPLATES if name in available)
        raise InputError(
            f"AMD Quark has no LLM template for model type '{model_type}' (it has {known} and more); convert this "
            "model with a preset, or quantize its ONNX build with ModelOpt."
        )
    return templates.get(model_type)


# Model types whose Quark 0.13 template has no AWQ layer map, and the type whose map fits their decoder layer.
# Qwen3's layer is Qwen2's plus per-head q/k norms after the projections, which AWQ's input-side scales leave alone.
_AWQ_MAP_DONORS = {"qwen3": "qwen2"}


def borrowed_awq_config(templates: Any, model_type: str) -> dict[str, Any] | None:
    """The AWQ layer map to pass for a template that lacks its own, None where the template has one."""
    if templates.get(model_type).algo_config.get("awq") is not None or model_type not in _AWQ_MAP_DONORS:
        return None
    return {"awq": templates.get(_AWQ_MAP_DONORS[model_type]).algo_config["awq"]}


def excluded_layers(template_excluded: list[str], include_lm_head: bool) -> list[str]:
    """The template's exclusions (lm_head, MoE routers, ...), less lm_head when it is to be quantized."""
    if not include_lm_head:
        return list(template_excluded)
    return [pattern for pattern in template_excluded if not fnmatch.fnmatch("lm_head", pattern)]


def calibration_loader(tokenizer: Any, settings: Settings, device: str, emit: Emit) -> Any:
    """calib_size windows of calib_seq_len tokens spread over the calibration text, one sample per batch."""
    import torch

    def encode(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]

    needed = settings.calib_size * settings.calib_seq_len
    text, origin = calib.load_text(settings.calibration_data, needed, lambda piece: len(encode(piece)))
    samples = calib.make_samples(text, encode, settings.calib_size, settings.calib_seq_len, tokenizer.bos_token_id)
    overlap = "; it is short, so samples overlap" if samples.overlapping else ""
    emit(Log(f"Calibration text: {origin}, {samples.text_tokens} tokens{overlap}."))
    return torch.utils.data.DataLoader(torch.tensor(samples.tokens, device=device), batch_size=1)


_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


def copy_side_files(source: Path, destination: Path) -> None:
    """The tokenizer, chat template and generation config, which the builder copies into the GenAI folder:
    Quark's export restores some of them, not always all."""
    for path in source.iterdir():
        if not path.is_file() or (destination / path.name).exists():
            continue
        if path.name.endswith(_WEIGHT_SUFFIXES) or path.name.endswith(".index.json"):
            continue
        shutil.copy2(path, destination / path.name)


def build(exported: Path, output: Path, cache: Path, options: Any, num_layers: int, emit: Emit) -> None:
    """Stage 2: the model builder on Quark's export; its progress fills this job's last stretch."""
    from ..convert import build_model
    from ..jobs.progress import BuilderProgress

    def rescaled(message: Message) -> None:
        if isinstance(message, Progress):
            percent = _EXPORTED + (_BUILT - _EXPORTED) * message.percent / 100
            message = Progress(round(percent, 1), message.stage, message.detail)
        emit(message)

    with BuilderProgress(rescaled, num_layers).capture():
        build_model(exported, output, cache, options, trust_remote_code=False)


# --- Quark's output as log lines and per-layer progress ----------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_AWQ_BAR = re.compile(r"^AWQ:.*?(\d+)/(\d+) \[")


class QuarkProgress:
    """Quark prints through its own loggers, in colour, and tqdm bars. Its AWQ bar counts decoder layers: that is
    the per-layer progress. Everything else becomes plain log lines."""

    def __init__(self, emit: Emit) -> None:
        self._emit = emit
        self._percent = 0.0
        self._layers_done = -1

    def stage(self, percent: float, stage: str, detail: str = "") -> None:
        if percent >= self._percent:
            self._percent = percent
            self._emit(Progress(round(percent, 1), stage, detail))

    def line(self, text: str, stream: str) -> None:
        text = _ANSI.sub("", text).strip()
        if text:
            self._emit(Log(text, "quark"))
            self.update(text)

    def update(self, text: str) -> None:
        """Move the percentage for one line, or one tqdm refresh, of Quark's output."""
        match = _AWQ_BAR.match(_ANSI.sub("", text).strip())
        if not match or int(match.group(1)) == self._layers_done:
            return
        done, total = int(match.group(1)), max(int(match.group(2)), 1)
        self._layers_done = done
        detail = f"layer {done + 1} of {total}" if done < total else f"all {total} layers"
        self.stage(_LOADED + (_AWQ_DONE - _LOADED) * done / total, "awq", detail)

    @contextlib.contextmanager
    def capture(self) -> Iterator[None]:
        """Route prints, tqdm bars and logging through this object while Quark runs.

        Quark's loggers (and transformers') keep the stream they were created with: those made earlier are pointed
        here for the duration, those made meanwhile (at import) are pointed back at the real stderr afterwards.
        """
        from ..jobs.progress import _LineStream

        stream = _LineStream(self, "quark")
        saved_stdout, saved_stderr = sys.stdout, sys.stderr
        redirected = {handler: handler.stream for handler in _stream_handlers() if handler.stream is saved_stderr}
        for handler in redirected:
            handler.setStream(stream)
        sys.stdout = sys.stderr = stream
        try:
            yield
        finally:
            stream.finish()
            sys.stdout, sys.stderr = saved_stdout, saved_stderr
            for handler in _stream_handlers():
                if handler.stream is stream:
                    handler.setStream(redirected.get(handler, saved_stderr))


def _stream_handlers() -> list[logging.StreamHandler]:
    known = list(logging.root.manager.loggerDict.values())
    loggers = [logging.getLogger(), *(logger for logger in known if isinstance(logger, logging.Logger))]
    return [
        handler
        for logger in loggers
        for handler in logger.handlers
        if type(handler) is logging.StreamHandler  # not FileHandler, which subclasses it
    ]
