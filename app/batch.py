"""Several presets from one checkpoint in one worker: `main.py convert CKPT --preset fp32,int4,uint4,int4-int8`.

A batch is one worker job (`convert-batch`, spec `{"plans": [ConvertPlan.to_dict(), ...]}`) that converts each
plan in turn with run_conversion, so each output is planned, staged, built, checked, recorded and claimed exactly
as a single conversion is. Each preset is still built by the installed builder's own stages (app.repairs ->
create_model: options, the Model, make_model, save_model with its INT4 quantizer, the GenAI config, the tokenizer
files); what the separate runs would each redo is done once for the batch:

- the imports (torch, transformers, onnxruntime, the builder): once, in the worker;
- the weights: the builder's load_weights runs once; every later preset gets the same PyTorch model;
- the float tensors: each float initializer the builder makes (a weight transposed and cast, a RoPE cache) is
  materialized once per name, dtype and shape, and every later preset saves or quantizes that same tensor: the
  INT4 variants quantize the float graph the FP32 variant wrote;
- identical builds: presets the builder resolves to the same settings (INT4 and INT4+INT8 for the CPU, where the
  builder's default accuracy level is already 4) are built once; the other is a copy, checked file by file
  against the first one's forge.json before it is used.

The graph itself (nodes, about 0.3 s for 135M parameters) is rebuilt by the builder for each preset: it keeps
per-preset state while building it (a tied embedding reads the quantized LM head under names that depend on the
symmetry; the nodes it excludes from quantization), and its own make_model is what guarantees that state.
Tensors are shared only between presets whose builder options differ in quantization settings alone, since only
then does one name, dtype and shape mean one content. Presets with other options, FP16/BF16 ones next to FP32,
share the weights but not their float tensors; a hub id, another checkpoint or --trust-remote-code apart runs
as its own job. The log says which.

forge.json of each output adds a `batch` record: the batch's presets, what this build reused, and for a copy,
the build it copies. Its builder_command stays the command that makes this output (tests/test_batch.py checks
that a batch's outputs equal separate conversions, file by file).
"""

from __future__ import annotations

import contextlib
import shutil
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .convert import ConvertPlan, Emit, run_conversion
from .errors import ForgeError
from .jobs.protocol import Log, Message, Progress
from .presets import QUANTIZATION_KEYS, BuildOptions, generic_key

if TYPE_CHECKING:
    from .jobs.runner import Outcome

BATCH_JOB = "convert-batch"
# Options whose only reader is the builder's QuantConfig: two presets differing in them alone build the same model
# when their QuantConfigs are equal (the CPU's default accuracy level is the 4 that INT4+INT8 asks for).
_READ_BY_QUANT_CONFIG_ONLY = ("accuracy_level",)


# --- which plans share a worker ------------------------------------------------------------------------------------


def batches(plans: list[ConvertPlan]) -> list[list[ConvertPlan]]:
    """The plans in groups that run as one worker job each, in the order given: plans of one local checkpoint with
    the same trust setting form one batch; a hub id (each job downloads into the cache) runs alone."""
    groups: dict[tuple[str, bool], list[ConvertPlan]] = {}
    alone: list[list[ConvertPlan]] = []
    order: list[list[ConvertPlan]] = []
    for plan in plans:
        if plan.source_path is None:
            alone.append([plan])
            order.append(alone[-1])
            continue
        key = (str(Path(plan.source_path).resolve()), plan.request.trust_remote_code)
        if key not in groups:
            groups[key] = []
            order.append(groups[key])
        groups[key].append(plan)
    return order


def float_key(options: BuildOptions) -> tuple[str, tuple[tuple[str, str], ...]]:
    """What decides a build's float tensors: the provider and every option but the weight-quantization ones."""
    rest = {k: repr(v) for k, v in options.extra_options.items() if generic_key(k) not in QUANTIZATION_KEYS}
    return options.execution_provider, tuple(sorted(rest.items()))


def same_build(first: BuildOptions, second: BuildOptions) -> bool:
    """Whether the builder makes the same model for both: same precision and provider, equal QuantConfigs (the
    builder's own reading of the quantization options), and no other option apart."""
    if (first.precision, first.execution_provider) != (second.precision, second.execution_provider):
        return False

    def rest(options: BuildOptions) -> dict[str, Any]:
        return {k: v for k, v in options.extra_options.items() if k not in _READ_BY_QUANT_CONFIG_ONLY}

    return rest(first) == rest(second) and quant_config(first) == quant_config(second)


def quant_config(options: BuildOptions) -> Any:
    """The installed builder's QuantConfig for these options, as its Model makes it."""
    from onnxruntime_genai.models import builder
    from onnxruntime_genai.models.quantization import QuantConfig

    from .builder_info import builder_info

    ep = builder_info().cli_execution_providers[options.execution_provider]
    onnx_dtype = builder.set_onnx_dtype(options.precision, options.extra_options)
    return QuantConfig.from_extra_options(options.extra_options, precision=onnx_dtype, execution_provider=ep)


# --- sharing the builder's stages ----------------------------------------------------------------------------------


@dataclass
class BuildShare:
    """What one build took from the batch instead of making it."""

    weights_shared: bool = False
    tensors_shared: int = 0
    tensors_made: int = 0
    bytes_shared: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "weights": "loaded by an earlier build of this batch" if self.weights_shared else "loaded by this build",
            "float_tensors_reused": self.tensors_shared,
            "float_tensors_made": self.tensors_made,
            "float_bytes_reused": self.bytes_shared,
        }


@dataclass
class SharedStages:
    """The batch's caches: PyTorch models by checkpoint, and float tensors by float_key, then name, dtype, shape."""

    models: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    tensors: dict[Any, dict[tuple[Any, ...], Any]] = field(default_factory=dict)
    scope: Any = None
    """The float_key of the build running now: tensors are shared within it only."""
    current: BuildShare = field(default_factory=BuildShare)
    depth: dict[str, int] = field(default_factory=dict)

    def begin(self, scope: Any) -> BuildShare:
        self.scope, self.current = scope, BuildShare()
        return self.current

    def drop_scope(self, scope: Any) -> None:
        """No later build needs this scope's tensors: free them."""
        self.tensors.pop(scope, None)


def _weights_key(model: Any, input_path: str) -> tuple[Any, ...] | None:
    """What the builder's load_weights reads for this Model, or None where it must run each time (a pre-quantized
    checkpoint is loaded with the preset's own quantization settings; an adapter or GGUF file is left alone)."""
    if getattr(model, "quant_type", None) is not None or str(input_path).endswith(".gguf"):
        return None
    options = getattr(model, "extra_options", {})
    if "adapter_path" in options:
        return None
    return type(model), str(input_path), model.model_name_or_path, options.get("num_hidden_layers")


def _share_float_tensors(shared: SharedStages, graph: Any) -> None:
    """Point every float initializer that an earlier build of this scope materialized at that tensor; materialize
    the others (a transposed weight made contiguous, a cast applied) for the builds after this one."""
    import numpy as np
    import onnx_ir as ir
    from onnx_ir.tensor_adapters import TorchTensor

    floats = {ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.BFLOAT16}
    cache = shared.tensors.setdefault(shared.scope, {})
    for value in graph.initializers.values():
        tensor = value.const_value
        if not isinstance(tensor, (ir.LazyTensor, TorchTensor)) or tensor.dtype not in floats:
            continue
        key = (value.name, tensor.dtype, tuple(tensor.shape))
        made = cache.get(key)
        if made is None:
            made = ir.Tensor(np.ascontiguousarray(tensor.numpy()), dtype=tensor.dtype, name=value.name)
            cache[key] = made
            shared.current.tensors_made += 1
        else:
            shared.current.tensors_shared += 1
            shared.current.bytes_shared += made.nbytes
        value.const_value = made


def _outermost(shared: SharedStages, name: str, call: Any) -> Any:
    """Run `call` counting its nesting: a subclass's method calling super() reaches the wrapped base method too."""
    shared.depth[name] = shared.depth.get(name, 0) + 1
    try:
        return call()
    finally:
        shared.depth[name] -= 1


def _wrap_load_weights(shared: SharedStages, original: Any) -> Any:
    def load_weights(self: Any, input_path: str, *args: Any, **kwargs: Any) -> Any:
        key = _weights_key(self, input_path)
        if shared.depth.get("load_weights") or key is None:
            return original(self, input_path, *args, **kwargs)
        if key in shared.models:
            shared.current.weights_shared = True
            return shared.models[key]
        model = _outermost(shared, "load_weights", lambda: original(self, input_path, *args, **kwargs))
        shared.models[key] = model
        return model

    return load_weights


def _wrap_save_model(shared: SharedStages, original: Any) -> Any:
    def save_model(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not shared.depth.get("save_model") and shared.scope is not None and getattr(self, "model", None):
            _share_float_tensors(shared, self.model.graph)
        return _outermost(shared, "save_model", lambda: original(self, *args, **kwargs))

    return save_model


@contextlib.contextmanager
def shared_stages() -> Iterator[SharedStages]:
    """While open, the builder's Model classes load a checkpoint's weights once and save float tensors made once
    (per SharedStages.scope). The builder's files are not touched: its methods are wrapped for the duration, like
    app.repairs does for a repair."""
    import onnxruntime  # noqa: F401  (onnxruntime-genai finds its runtime through it)
    from onnxruntime_genai.models import builder

    shared = SharedStages()
    # The classes create_model dispatches on: the builder imports its builders by bare name (after editing sys.path),
    # so onnxruntime_genai.models.builders.* may be other copies of them.
    classes = {cls for cls in vars(builder).values() if isinstance(cls, type) and issubclass(cls, builder.Model)}
    owners = {owner for cls in classes for owner in cls.__mro__ if issubclass(owner, builder.Model)}
    wrapped: list[tuple[type, str, Any]] = []
    for owner in owners:
        for name, wrap in (("load_weights", _wrap_load_weights), ("save_model", _wrap_save_model)):
            if name in vars(owner):
                original = vars(owner)[name]
                wrapped.append((owner, name, original))
                setattr(owner, name, wrap(shared, original))
    try:
        yield shared
    finally:
        for owner, name, original in wrapped:
            setattr(owner, name, original)
        shared.models.clear()
        shared.tensors.clear()


# --- in the worker -------------------------------------------------------------------------------------------------


class _VariantEmit:
    """One preset's messages as part of the batch's: its percentage scaled into its share, its name on each stage."""

    def __init__(self, emit: Emit, index: int, count: int, preset: str) -> None:
        self._emit, self._index, self._count, self._preset = emit, index, count, preset

    def __call__(self, message: Message) -> None:
        if isinstance(message, Progress):
            percent = (100 * self._index + message.percent) / self._count
            detail = f"{self._preset} ({self._index + 1} of {self._count}): {message.detail}"
            message = Progress(round(percent, 1), message.stage, detail)
        self._emit(message)


def run_batch(spec: dict[str, Any], emit: Emit) -> dict[str, Any]:
    """Convert every plan of the spec; one failing leaves the others (its own staging removed). Returns
    {"outputs": [{"preset", "output", "status", "manifest" | "error", ...}, ...], "seconds"}."""
    started = time.perf_counter()
    plans = [ConvertPlan.from_dict(data) for data in spec["plans"]]
    presets = [plan.options.preset for plan in plans]
    scopes = [float_key(plan.options) for plan in plans]
    outputs: list[dict[str, Any]] = []
    emit(Log(f"batch of {len(plans)} presets from one checkpoint: {', '.join(presets)}", "batch"))
    with shared_stages() as shared:
        for index, plan in enumerate(plans):
            variant_emit = _VariantEmit(emit, index, len(plans), plan.options.preset)
            original = _copy_source(plans[:index], outputs, plan)
            record: dict[str, Any] = {"batch": {"presets": presets, "position": index}}
            build = _builder(shared, plan, scopes[index], original, record["batch"], variant_emit)
            try:
                result = run_conversion(plan, variant_emit, build=build, record_extra=record)
            except MemoryError:
                raise  # the worker reports it; outputs already in place stay
            except Exception as error:  # noqa: BLE001 - one preset's failure must not end the others
                outputs.append(_failure(plan, error))
                emit(Log(f"{plan.options.preset} failed: {outputs[-1]['error']}", "batch"))
            else:
                outputs.append({"preset": plan.options.preset, "status": "succeeded", **result})
            if scopes[index] not in scopes[index + 1 :]:
                shared.drop_scope(scopes[index])
    return {"outputs": outputs, "seconds": round(time.perf_counter() - started, 2)}


def _copy_source(earlier: list[ConvertPlan], outputs: list[dict[str, Any]], plan: ConvertPlan) -> dict[str, Any] | None:
    """The result of an earlier, successful build of this batch that the builder makes identically, if any."""
    for other, outcome in zip(earlier, outputs, strict=True):
        if outcome["status"] == "succeeded" and same_build(other.options, plan.options):
            return outcome
    return None


def _builder(
    shared: SharedStages,
    plan: ConvertPlan,
    scope: Any,
    original: dict[str, Any] | None,
    record: dict[str, Any],
    emit: Emit,
) -> Any:
    """The build step run_conversion calls for this plan: a copy of an identical earlier build where its files are
    still what its forge.json says, else the builder with the batch's shared stages."""

    def build(source: Path, built: Path, cache: Path) -> list[str]:
        from .repairs import build_with_repairs

        if original is not None and copy_build(Path(original["output"]), original["manifest"], built):
            same = f"the builder makes the same model as {original['preset']} here; copied"
            emit(Log(f"{plan.options.preset}: {same}", "batch"))
            record["copied_from"] = {
                "preset": original["preset"],
                "output": original["output"],
                "why": "the builder resolves both presets to the same settings for this provider",
            }
            return list(original["manifest"].get("repairs", []))
        share = shared.begin(scope)
        try:
            repairs = build_with_repairs(source, built, cache, plan.options, plan.request.trust_remote_code)
        finally:
            shared.scope = None
        record["shared"] = share.to_dict()
        emit(Log(f"{plan.options.preset}: {_share_sentence(share)}", "batch"))
        return repairs

    return build


def _share_sentence(share: BuildShare) -> str:
    weights = "weights reused" if share.weights_shared else "weights loaded"
    if not share.tensors_shared:
        return f"{weights}; its {share.tensors_made} float tensors made here (no earlier preset of the batch has them)"
    return f"{weights}; {share.tensors_shared} float tensors ({share.bytes_shared / 1e6:.0f} MB) reused"


def copy_build(folder: Path, record: dict[str, Any], built: Path) -> bool:
    """Copy the model files of an earlier build (as its forge.json lists them) into `built`; True only if every
    copy has the size and SHA-256 the record says, otherwise `built` is left empty."""
    from .manifest import sha256

    built.mkdir(parents=True, exist_ok=True)
    try:
        for item in record["files"]:
            target = built / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / item["path"], target)
            if target.stat().st_size != item["size"] or sha256(target) != item["sha256"]:
                raise ValueError(f"{item['path']} changed since it was built")
    except (OSError, ValueError, KeyError):
        shutil.rmtree(built, ignore_errors=True)
        built.mkdir(parents=True)
        return False
    return True


def _failure(plan: ConvertPlan, error: Exception) -> dict[str, Any]:
    from .jobs.worker import internal_error_sentence, os_error_sentence

    if isinstance(error, ForgeError):
        sentence, kind = str(error), type(error).__name__
    elif isinstance(error, OSError):
        sentence, kind = os_error_sentence(error, plan.to_dict()), "OSError"
    else:
        sentence, kind = internal_error_sentence(error), "InternalError"
    return {
        "preset": plan.options.preset,
        "output": plan.request.output,
        "status": "failed",
        "error": sentence,
        "kind": kind,
        "details": traceback.format_exc(),
    }


# --- in the parent -------------------------------------------------------------------------------------------------


def batch_spec(plans: list[ConvertPlan]) -> dict[str, Any]:
    return {"plans": [plan.to_dict() for plan in plans]}


def outcomes(plans: list[ConvertPlan], outcome: Outcome) -> list[tuple[ConvertPlan, Outcome]]:
    """The batch job's outcome as one Outcome per plan. What is on disk decides, as for a single job: a plan whose
    model is in place (its forge.json names its job id) succeeded, also when the batch was cancelled or crashed
    after it."""
    from .jobs.protocol import Error
    from .jobs.runner import Outcome
    from .staging import placed

    reported = {entry["output"]: entry for entry in (outcome.result or {}).get("outputs", [])}
    rows = []
    for plan in plans:
        output = str(Path(plan.request.output).expanduser().resolve())
        entry = reported.get(output)
        record = placed(output, plan.request.job_id)
        if entry is not None and entry["status"] == "succeeded":
            seconds = entry["manifest"].get("wall_seconds", 0.0)
            rows.append((plan, Outcome("succeeded", 0, result=entry, seconds=seconds)))
        elif record is not None:
            result = {"output": output, "manifest": record}
            note = f"the model is in place; the batch after it {outcome.status}."
            rows.append(
                (plan, Outcome("succeeded", 0, result=result, seconds=record.get("wall_seconds", 0.0), note=note))
            )
        elif entry is not None:
            error = Error(entry["error"], entry["kind"], entry.get("details", ""))
            rows.append((plan, Outcome("failed", 1, message=entry["error"], error=error)))
        elif outcome.ok:
            rows.append((plan, Outcome("failed", 1, message="the batch ended without converting this preset.")))
        else:
            rows.append(
                (plan, Outcome(outcome.status, outcome.exit_code, message=outcome.message, error=outcome.error))
            )
    return rows
