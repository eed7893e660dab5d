"""Conversion jobs: plan (in the caller's process, cheap) and build (in the worker child).

A plan checks everything that can be checked before any heavy import: the source, the preset and
provider, the output folder, and whether disk and memory will hold the build. The build runs the
installed builder in the worker's own interpreter into a staging folder beside the output, checks
what it made the way a user would, writes forge.json, and only then moves the folder into place.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import gc
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import manifest, staging
from .builder_defects import checkpoint_warning, target_defect
from .checkpoint_config import text_config
from .checkpoints import CheckpointInfo, check_convertible, inspect_checkpoint, read_config
from .errors import InputError, OutputError
from .jobs.protocol import Message
from .paths import demo_checkpoint
from .presets import BuildOptions, default_ep, get_preset, resolve

GIB = 1024**3
_IO_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}
# Bytes per quantized weight at block size 32: 4 bits plus one 16- or 32-bit scale per block.
_INT4_BYTES = 0.5 + 4 / 32
# Memory the worker holds before it reads a weight: Python, torch, onnxruntime and the builder (measured ~0.7 GB).
_WORKER_BASE_BYTES = int(0.8 * GIB)


@dataclass
class ConvertRequest:
    source: str
    output: str
    preset: str = "int4"
    ep: str | None = None
    overrides: dict[str, str] = field(default_factory=dict)
    overwrite: bool = False
    trust_remote_code: bool = False
    revision: str | None = None
    check: bool = True
    report: dict[str, Any] | None = None
    """When given (app.report.MeasureSettings fields, {} for the defaults): measure quality and speed when done."""
    job_id: str = ""
    """Set by the plan and recorded in forge.json: tells afterwards whether this job's model reached the output."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ConvertPlan:
    request: ConvertRequest
    source_path: str | None
    """Local checkpoint folder; None for a hub id the worker downloads first."""
    hub_id: str | None
    options: BuildOptions
    checkpoint: CheckpointInfo | None
    output_bytes: int
    peak_ram_bytes: int
    warnings: list[str] = field(default_factory=list)
    output_state: dict[str, Any] | None = None
    """What the output was at planning (staging.OutputState): the model is moved there only if it still is."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["options"] = self.options.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConvertPlan:
        checkpoint = data.get("checkpoint")
        return cls(
            request=ConvertRequest(**data["request"]),
            source_path=data["source_path"],
            hub_id=data["hub_id"],
            options=BuildOptions(**data["options"]),
            checkpoint=CheckpointInfo(**checkpoint) if checkpoint else None,
            output_bytes=data["output_bytes"],
            peak_ram_bytes=data["peak_ram_bytes"],
            warnings=data.get("warnings", []),
            output_state=data.get("output_state"),
        )


def resolve_source(source: str) -> tuple[Path | None, str | None]:
    """(local folder, hub id): 'demo', an existing path, or a hub id like 'org/name'."""
    if source == "demo":
        return demo_checkpoint(), None
    path = Path(source).expanduser()
    if path.exists():
        return path, None
    from .hub import looks_like_hub_id

    if looks_like_hub_id(source):
        return None, source
    return path, None  # inspect_checkpoint explains that the path does not exist


def plan_conversion(request: ConvertRequest, usable_eps: set[str] | None) -> ConvertPlan:
    """Check a request and resolve it into a plan.

    usable_eps, from the hardware report, picks the default provider; None means not probed, which is
    fine when the request names its provider.
    """
    local, hub_id = resolve_source(request.source)
    if request.ep is None and usable_eps is None:
        raise InputError("no execution provider given and the hardware is unknown; pass --ep.")
    ep = request.ep or default_ep(get_preset(request.preset), usable_eps)
    options = resolve(request.preset, ep, request.overrides)
    output = resolve_output(request.output)
    checkpoint = None
    if local is not None:
        checkpoint = inspect_checkpoint(local)
        check_convertible(checkpoint, request.trust_remote_code)
        output_state = check_output(output, Path(checkpoint.path), request.overwrite)
    else:
        output_state = check_output(output, None, request.overwrite)
    request.job_id = request.job_id or uuid.uuid4().hex
    output_bytes, peak_ram = estimate_needs(checkpoint, options)
    warnings = check_resources(output, output_bytes, peak_ram)
    if checkpoint:
        config = read_config(Path(checkpoint.path))
        defect = target_defect(config, ep, checkpoint.builder_version, options.precision)
        if defect:
            raise InputError(defect)
        defect_warning = checkpoint_warning(text_config(config), checkpoint.builder_version)
        if defect_warning:
            warnings.append(defect_warning)
    if checkpoint and checkpoint.needs_remote_code and not request.trust_remote_code:
        warnings.append(
            "this checkpoint ships its own Python code (auto_map); it is not run: the builder's own "
            "implementation is used. Pass --trust-remote-code only if you trust its authors."
        )
    if usable_eps is not None and ep not in usable_eps:
        warnings.append(
            f"this machine cannot run {ep} models, so the output is built and checked but not test-run here."
        )
    return ConvertPlan(
        request,
        checkpoint.path if checkpoint else None,
        hub_id,
        options,
        checkpoint,
        output_bytes,
        peak_ram,
        warnings,
        output_state.to_dict(),
    )


# Limits of the file systems users have: NTFS and ext4 take 255 characters a name; Windows' classic limit is 260
# characters a path, and the staging folder beside the output adds its own name to the longest path inside it.
_NAME_MAX = 255
_PATH_MAX = 4096 if os.name != "nt" else 260
_PATH_ROOM = 120  # the staging folder's name plus the longest file name a model has inside it


def resolve_output(output: str) -> Path:
    """The output as an absolute path, refused in one sentence where no folder can ever be made there."""
    if not output or not output.strip():
        raise OutputError("the output folder is empty; give a folder for the converted model.")
    if "\x00" in output:
        raise OutputError("the output folder's name contains a NUL character; choose another name.")
    try:
        path = Path(output).expanduser().resolve()
    except (RuntimeError, OSError) as error:  # a symlink loop, an unreadable link
        raise OutputError(f"{output} cannot be resolved ({error}); choose another output folder.") from None
    if len(path.name.encode()) > _NAME_MAX:
        raise OutputError(f"the output folder's name is longer than {_NAME_MAX} bytes; choose a shorter name.")
    if len(str(path)) + _PATH_ROOM > _PATH_MAX:
        raise OutputError(
            f"the output path is {len(str(path))} characters long, too long for the files a model holds "
            f"(at most {_PATH_MAX - _PATH_ROOM} here); choose a shorter path."
        )
    return path


def check_output(output: Path, source: Path | None, overwrite: bool) -> staging.OutputState:
    """Refuse an output that cannot be written or must not be replaced; returns what it is now, for the claim."""
    staging.sweep(output)
    if output.exists() and not output.is_dir():
        raise OutputError(f"{output} is a file; choose a folder for the converted model.")
    blocker = next((p for p in output.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise OutputError(f"{blocker} is a file, so no folder can be made inside it; choose another output folder.")
    if os.path.ismount(output):
        raise OutputError(f"{output} is a mount point and cannot be replaced; choose a folder inside it.")
    writable = existing_ancestor(output.parent)
    if not _can_write(writable):
        raise OutputError(f"{writable} cannot be written to; choose an output folder you can write to.")
    if source is not None:
        if output == source or staging.is_inside(output, source):
            raise OutputError(
                f"the output {output} is inside the source checkpoint {source}; choose a folder outside it."
            )
        if staging.is_inside(source, output):
            raise OutputError(
                f"the source checkpoint {source} is inside the output {output}; choose another output folder."
            )
    if output.is_dir() and any(output.iterdir()):
        if not overwrite:
            raise OutputError(f"{output} is not empty; choose a new folder or pass --overwrite to replace it.")
        staging.check_replaceable(output, source)
    return staging.OutputState.of(output)


def _can_write(folder: Path) -> bool:
    """Whether a folder can be made here, tried for real: os.access says yes to root on a read-only mount."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        os.rmdir(tempfile.mkdtemp(prefix=staging.STAGING_PREFIX, dir=folder))
    except OSError:
        return False
    return True


def estimate_needs(checkpoint: CheckpointInfo | None, options: BuildOptions) -> tuple[int, int]:
    """(output bytes, worker peak RAM bytes) for a build, from the parameter count.

    The builder holds the PyTorch weights (in the checkpoint's dtype) and the ONNX graph's tensors at
    once; an INT4 build also keeps the float graph while it writes the quantized one.
    """
    if checkpoint is None:
        return 0, 0
    params = checkpoint.parameters
    embedding = checkpoint.vocab_size * checkpoint.hidden_size
    element = io_bytes(options)
    if options.precision in _IO_BYTES:
        output = params * element
        graph_copies = 1
    else:
        output = int((params - embedding) * _INT4_BYTES + embedding * element)
        graph_copies = 2
    peak = _WORKER_BASE_BYTES + checkpoint.weight_bytes + graph_copies * params * element
    return output, peak


def io_bytes(options: BuildOptions) -> int:
    """Bytes per activation and KV-cache element: FP32 builds and CPU INT4 builds keep FP32 I/O, others 16-bit."""
    if options.precision in _IO_BYTES:
        return _IO_BYTES[options.precision]
    return _IO_BYTES["fp32"] if options.execution_provider == "cpu" else 2


def disk_needed(output_bytes: int) -> int:
    """Disk a build of this size needs: the model plus room for the tokenizer, configs and the manifest."""
    return int(output_bytes * 1.1)


def existing_ancestor(path: Path) -> Path:
    """The folder itself or its nearest existing parent: where the output's free space is measured."""
    return next((p for p in (path, *path.parents) if p.exists()), Path(path.anchor))


def free_disk_bytes(path: Path) -> int:
    return shutil.disk_usage(existing_ancestor(path)).free


def check_resources(output: Path, output_bytes: int, peak_ram: int) -> list[str]:
    """Refuse a build the disk cannot hold; warn (or refuse) when memory is short."""
    import psutil

    existing = existing_ancestor(output)
    free = free_disk_bytes(existing)
    needed_disk = disk_needed(output_bytes)
    if needed_disk > free:
        raise OutputError(
            f"the converted model needs about {human_size(needed_disk)} but {existing} has {human_size(free)} free; "
            "free some space or choose an output folder on another drive."
        )
    memory = psutil.virtual_memory()
    swap = psutil.swap_memory().free
    if peak_ram > memory.total + swap:
        raise InputError(
            f"the build needs about {human_size(peak_ram)} of memory but this machine has {human_size(memory.total)} "
            "(plus swap); pick an INT4 preset of a smaller model or convert on a machine with more RAM."
        )
    if peak_ram > memory.available:
        return [
            f"the build needs about {human_size(peak_ram)} of memory and {human_size(memory.available)} is free now; "
            "close other programs or it may be stopped by the system."
        ]
    return []


def human_size(size: int) -> str:
    return f"{size / GIB:.1f} GB" if size >= GIB / 10 else f"{size / 1024**2:.0f} MB"


# --- in the worker -------------------------------------------------------------------------------

Emit = Callable[[Message], None]


Build = Callable[[Path, Path, Path], list[str]]
"""(source, staged model folder, builder cache) -> the ids of the repairs applied."""


def run_conversion(
    plan: ConvertPlan, emit: Emit, build: Build | None = None, record_extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Build, check, record and place one model. A batch (app.batch) passes its own `build` (sharing the weights
    with the other presets) and what forge.json must add about it, read once the build is done."""
    from .jobs.progress import BuilderProgress

    started = time.perf_counter()
    request = plan.request
    output = Path(request.output).expanduser().resolve()
    root = staging.create(output, "convert")
    placed = False
    try:
        source = Path(plan.source_path) if plan.source_path else None
        revision = None
        if source is None:
            from .hub import download_checkpoint, hub_token

            emit_progress = BuilderProgress(emit, num_layers=0)
            download = download_checkpoint(
                plan.hub_id, revision=request.revision, token=hub_token(), on_progress=emit_progress.download
            )
            source, revision = Path(download.path), download.revision_sha
            checkpoint = inspect_checkpoint(source)
            check_convertible(checkpoint, request.trust_remote_code)
            plan.checkpoint = checkpoint
        built = root / "model"
        progress = BuilderProgress(emit, num_layers=plan.checkpoint.num_layers)
        progress.stage(1, "starting", "loading the model builder (torch, transformers, onnx)")
        with progress.capture():
            if build is None:
                repairs = build_model(source, built, root / "cache", plan.options, request.trust_remote_code)
            else:
                repairs = build(source, built, root / "cache")
        release_memory()  # the builder's weights are garbage now: the check must not stack its model on them
        progress.stage(97, "checking", "loading the tokenizer and generating a few tokens, hashing the files")
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            hashing = pool.submit(manifest.file_records, built)  # reads the files while the check runs the model
            unchecked = {"verdict": "not checked"}
            check = verify_output(built, plan.options.execution_provider) if request.check else unchecked
            files = hashing.result()
        if check["verdict"] == "failed":
            raise OutputError(f"the built model does not work: {check['error']}")
        record = manifest.build_manifest(
            files,
            source=manifest.source_record(request.source, source, plan.hub_id, revision),
            options=plan.options,
            checkpoint=plan.checkpoint,
            wall_seconds=time.perf_counter() - started,
            check=check,
        )
        record["job_id"] = request.job_id
        record["repairs"] = repairs
        record.update(record_extra or {})
        manifest.write(built, record)
        staging.claim(built, output, staging.OutputState.from_dict(plan.output_state), root)
        placed = True
        result = {"output": str(output), "manifest": record}
        if request.report is not None:
            from .report import measure_after

            result["report"] = measure_after(output, request.report, emit)
        progress.stage(100, "done", str(output))
        return result
    finally:
        staging.remove(root, success=placed)


def release_memory() -> None:
    """Hand freed memory back to the system: glibc keeps a freed heap for reuse, so the process would stay at the
    builder's peak while the check loads the new model on top of it."""
    gc.collect()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


def build_model(source: Path, output: Path, cache: Path, options: BuildOptions, trust_remote_code: bool) -> list[str]:
    """Run the installed builder in this interpreter (no extra process), with the repairs its version needs
    (app.repairs); returns their ids."""
    from .repairs import build_with_repairs

    return build_with_repairs(source, output, cache, options, trust_remote_code)


def verify_output(folder: Path, ep: str) -> dict[str, Any]:
    """Check a fresh build as a user would: a whole graph, a tokenizer that loads, and where its provider runs
    here, a few generated tokens."""
    from .chat import can_run_here, check_tokenizer, generate_once

    dangling = dangling_outputs(folder / "model.onnx")
    if dangling:
        return {
            "verdict": "failed",
            "error": f"its graph declares outputs no node produces ({', '.join(dangling[:4])})",
        }
    try:
        tokenizer_checked_by = check_tokenizer(folder)
    except Exception as error:  # noqa: BLE001 - any load failure is the verdict
        return {"verdict": "failed", "error": f"its tokenizer does not load ({error})"}
    runnable, why = can_run_here(ep)
    if not runnable:
        return {"verdict": "tokenizer ok, not run", "tokenizer": tokenizer_checked_by, "reason": why}
    try:
        reply = generate_once(folder, "Hello", max_new_tokens=8, ep=ep)
    except Exception as error:  # noqa: BLE001
        return {"verdict": "failed", "error": f"it does not generate ({error})"}
    return {
        "verdict": "ran",
        "ep": ep,
        "tokenizer": tokenizer_checked_by,
        "sample": reply.text,
        "new_tokens": reply.new_tokens,
    }


def dangling_outputs(model_path: Path) -> list[str]:
    """Graph outputs that no node, input or initializer provides: such a model loads on no provider."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    provided = {name for node in graph.node for name in node.output}
    provided |= {value.name for value in graph.input} | {tensor.name for tensor in graph.initializer}
    return [output.name for output in graph.output if output.name not in provided]
