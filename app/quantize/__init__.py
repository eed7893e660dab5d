"""Quantization jobs: NVIDIA ModelOpt INT4 on ONNX GenAI folders, ONNX Runtime's quantizers on any ONNX model,
and AMD Quark AWQ on Hugging Face checkpoints followed by a builder export.

This module holds what every backend shares: the one table of algorithms and their options (the CLI and the
window both read it), planning (input checks, output checks) and the worker side (staging, quality figures,
forge.json, the move into place). Each backend module exposes OPTIONS and run(input, output, algo, options, emit).
"""

from __future__ import annotations

import importlib
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..jobs.protocol import Message, Progress

# algo -> backend module (app/quantize/<module>.py)
ALGORITHMS: dict[str, str] = {
    "awq_lite": "modelopt",
    "awq_clip": "modelopt",
    "rtn": "modelopt",
    "rtn_dq": "modelopt",
    "fp16": "ort",
    "q8": "ort",
    "s8s8": "ort",
    "s8u8": "ort",
    "u8u8": "ort",
    "q4": "ort",
    "q4f16": "ort",
    "bnb4": "ort",
    "variants": "ort",  # several ORT variants into one folder, named model_fp16.onnx, model_q4.onnx, ...
    "quark-awq": "quark",
}
# What each backend takes as input.
INPUT_KIND = {"modelopt": "genai", "ort": "onnx", "quark": "checkpoint"}


@dataclass(frozen=True)
class QuantOption:
    """One --set KEY=VALUE a backend understands. kind: bool, int, float, choice, text, list."""

    name: str
    kind: str
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    algorithms: tuple[str, ...] = ()
    """The backend's algorithms this option applies to; empty means all of them."""

    def parse(self, raw: str) -> Any:
        if self.kind == "bool":
            lowered = raw.strip().lower()
            if lowered not in {"true", "false", "1", "0"}:
                raise InputError(f"{self.name} takes true or false, not '{raw}'.")
            return lowered in {"true", "1"}
        if self.choices and raw not in self.choices:
            raise InputError(f"{self.name} takes one of {', '.join(self.choices)}, not '{raw}'.")
        try:
            if self.kind == "int":
                return int(raw)
            if self.kind == "float":
                return float(raw)
        except ValueError:
            raise InputError(f"{self.name} takes a {self.kind} number, not '{raw}'.") from None
        if self.kind == "list":
            return [item.strip() for item in raw.split(",") if item.strip()]
        return raw


def backend(algo: str) -> Any:
    if algo not in ALGORITHMS:
        raise InputError(f"unknown algorithm '{algo}'; choose one of: {', '.join(ALGORITHMS)}.")
    return importlib.import_module(f"{__name__}.{ALGORITHMS[algo]}")


def options_for(algo: str) -> list[QuantOption]:
    return [option for option in backend(algo).OPTIONS if not option.algorithms or algo in option.algorithms]


def parse_options(algo: str, overrides: dict[str, str]) -> dict[str, Any]:
    """Defaults of the algorithm's options, overridden by --set values, each checked and typed."""
    table = {option.name: option for option in options_for(algo)}
    unknown = sorted(set(overrides) - set(table))
    if unknown:
        raise InputError(f"{', '.join(unknown)} is not an option of {algo}; known: {', '.join(table)}.")
    values = {name: option.default for name, option in table.items()}
    values.update({name: table[name].parse(raw) for name, raw in overrides.items()})
    return values


@dataclass
class QuantizeRequest:
    input: str
    output: str
    algo: str
    overrides: dict[str, str] = field(default_factory=dict)
    overwrite: bool = False
    evaluate: bool = True
    report: dict[str, Any] | None = None
    """When given (app.report.MeasureSettings fields, {} for the defaults): measure quality and speed when done."""
    job_id: str = ""
    """Set by the plan and recorded in forge.json: tells afterwards whether this job's model reached the output."""
    output_state: dict[str, Any] | None = None
    """What the output was at planning (staging.OutputState): the model is moved there only if it still is."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_input(algo: str, input_path: Path) -> None:
    """Refuse in one sentence an input the algorithm cannot take."""
    kind = INPUT_KIND[ALGORITHMS[algo]]
    if not input_path.exists():
        raise InputError(f"{input_path} does not exist; give the folder to quantize.")
    if kind == "checkpoint":
        from ..checkpoints import check_convertible, inspect_checkpoint

        check_convertible(inspect_checkpoint(input_path))
        return
    folder = input_path if input_path.is_dir() else input_path.parent
    if kind == "genai" and not (folder / "genai_config.json").exists():
        raise InputError(
            f"{algo} needs an ONNX Runtime GenAI folder (with genai_config.json); convert the checkpoint first."
        )
    from ..model_folder import check_external_data, check_model_folder

    if (folder / "genai_config.json").exists():
        check_model_folder(folder)
    model = find_onnx_model(input_path)
    check_external_data(model)
    if is_quantized(model):
        raise InputError(f"{model} is already quantized; quantize its FP16 or FP32 build instead.")


def find_onnx_model(input_path: Path) -> Path:
    if input_path.is_file():
        if input_path.suffix != ".onnx":
            raise InputError(f"{input_path} is not an ONNX model (.onnx); give a model file or its folder.")
        return input_path
    for name in ("model.onnx", "decoder_model.onnx"):
        if (input_path / name).is_file():
            return input_path / name
    candidates = sorted(input_path.glob("*.onnx"))
    if len(candidates) != 1:
        raise InputError(f"{input_path} holds {len(candidates)} .onnx files; give the model file itself.")
    return candidates[0]


_QUANTIZED_OPS = {
    "MatMulNBits",
    "GatherBlockQuantized",
    "DequantizeLinear",
    "QLinearMatMul",
    "MatMulInteger",
    "DynamicQuantizeLinear",
    "QuantizeLinear",
    "MatMulBnb4",
}


def is_quantized(model_path: Path) -> bool:
    import onnx

    try:
        graph = onnx.load(str(model_path), load_external_data=False).graph
    except Exception as error:  # noqa: BLE001 - anything onnx cannot parse is not a model we can take
        raise InputError(f"{model_path} is not a readable ONNX model ({error}).") from None
    return any(node.op_type in _QUANTIZED_OPS for node in graph.node)


def plan_quantization(request: QuantizeRequest) -> QuantizeRequest:
    """Every check that needs no heavy import; raises InputError. Returns the request with typed options checked."""
    from ..convert import check_output, resolve_output

    input_path = Path(request.input).expanduser().resolve()
    options = parse_options(request.algo, request.overrides)
    check_input(request.algo, input_path)
    module = backend(request.algo)
    if hasattr(module, "check"):
        module.check(input_path, request.algo, options)
    source = input_path if input_path.is_dir() else input_path.parent
    request.output_state = check_output(resolve_output(request.output), source, request.overwrite).to_dict()
    request.job_id = request.job_id or uuid.uuid4().hex
    return request


# --- in the worker ---------------------------------------------------------------------------------------------

Emit = Callable[[Message], None]


def copy_genai_folder(source: Path, destination: Path, skip: set[str]) -> None:
    """Everything a GenAI folder needs beside its model (config, tokenizer, templates), not the model files."""
    destination.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.is_file() and path.name not in skip and not path.name.startswith("model.onnx"):
            shutil.copy2(path, destination / path.name)


def run_quantization(spec: dict[str, Any], emit: Emit) -> dict[str, Any]:
    from .. import manifest, staging

    request = QuantizeRequest(**spec)
    if request.output_state is None:
        request = plan_quantization(request)  # a request that was never planned: its checks run here
    started = time.perf_counter()
    input_path = Path(request.input).expanduser().resolve()
    output = Path(request.output).expanduser().resolve()
    options = parse_options(request.algo, request.overrides)
    root = staging.create(output, "quantize")
    placed = False
    try:
        built = root / "model"
        built.mkdir()
        details = backend(request.algo).run(input_path, built, request.algo, options, emit, root / "work") or {}
        emit(Progress(96, "checking", "measuring size and quality against the input"))
        if not request.evaluate:
            quality = {"verdict": "not measured"}
        elif "variants" in details:
            quality = {"verdict": "measured per variant", "variants": details["variants"]}
        else:
            quality = compare_quality(input_path, built)
        record = {
            "format": 1,
            "kind": "quantization",
            "created": manifest.now(),
            "source": {"kind": "folder", "path": str(input_path)},
            "algorithm": request.algo,
            "backend": ALGORITHMS[request.algo],
            "options": options,
            "details": details,
            "quality": quality,
            "versions": manifest.package_versions(),
            "wall_seconds": round(time.perf_counter() - started, 2),
            "peak_memory_bytes": manifest.peak_memory_bytes(),
            "files": manifest.file_records(built),
            "job_id": request.job_id,
        }
        record["size_bytes"] = sum(item["size"] for item in record["files"])
        manifest.write(built, record)
        staging.claim(built, output, staging.OutputState.from_dict(request.output_state), root)
        placed = True
        result = {"output": str(output), "manifest": record}
        if request.report is not None:
            from ..report import measure_after

            result["report"] = measure_after(output, request.report, emit)
        emit(Progress(100, "done", str(output)))
        return result
    finally:
        staging.remove(root, success=placed)


def folder_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and p.name != "forge.json")


def compare_quality(input_path: Path, output: Path) -> dict[str, Any]:
    """Size against the input and, for GenAI models, perplexity against the input on the held-out text."""
    from ..evaluate import perplexity

    result: dict[str, Any] = {"input_bytes": folder_size(input_path), "output_bytes": folder_size(output)}
    result["size_ratio"] = round(result["output_bytes"] / max(result["input_bytes"], 1), 4)
    if not (output / "genai_config.json").is_file():
        result["verdict"] = f"{result['size_ratio']:.0%} of the input's size; not a GenAI model, so no perplexity."
        return result
    reference_dir = input_path if (input_path / "genai_config.json").is_file() else None
    after = perplexity(output).perplexity
    result["perplexity"] = round(after, 4)
    if reference_dir is None:
        result["verdict"] = f"{result['size_ratio']:.0%} of the input's size, perplexity {after:.3f}."
        return result
    before = perplexity(reference_dir).perplexity
    result["input_perplexity"] = round(before, 4)
    change = after / before - 1
    result["perplexity_change"] = round(change, 4)
    result["verdict"] = (
        f"{result['size_ratio']:.0%} of the input's size; perplexity {before:.3f} -> {after:.3f} ({change:+.1%})."
    )
    return result
