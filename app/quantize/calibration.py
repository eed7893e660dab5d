"""Calibration data for ModelOpt's AWQ, onnxruntime's static quantizers and Quark: a text, cut into samples of
equal token length, fed as the model's real inputs.

What the decoder takes is read from its ONNX graph and genai_config.json (input_ids, attention_mask, position_ids
when the build has them, an empty past key/value of the graph's dtype and head shape for every layer), never
assumed: builds for DirectML have position_ids, builds for CUDA and TensorRT-RTX do not. AWQ concatenates the
activations of all samples, so every sample has the same number of tokens.

Nothing heavy is imported at module level: numpy, onnx, tokenizers and datasets load inside the functions.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ..errors import InputError
from ..paths import resources_dir

BUNDLED = "bundled"
# name -> (Hub dataset, configuration, split, text column), as ModelOpt's example script loads them.
DATASETS: dict[str, tuple[str, str | None, str, str]] = {
    "cnn_dailymail": ("abisee/cnn_dailymail", "3.0.0", "train", "article"),
    "pile-val": ("mit-han-lab/pile-val-backup", None, "validation", "text"),
}
ALIASES = {"cnn": "cnn_dailymail", "pilevel": "pile-val", "pileval": "pile-val"}

# ONNX TensorProto element types -> numpy dtype names, for the inputs calibration fills.
_INT_TYPES = {6: "int32", 7: "int64"}
_FLOAT_TYPES = {1: "float32", 10: "float16"}
_BFLOAT16 = 16


DATA_HELP = (
    "bundled (generated prose, works offline), cnn_dailymail or pile-val (Hugging Face Hub, needs internet "
    "and the datasets package), or the path of a UTF-8 text file"
)


def bundled_text() -> Path:
    """Generated prose shipped with the studio (no copied corpus), so calibration works offline."""
    return resources_dir() / "text" / "calibration.txt"


def dataset_name(source: str) -> str | None:
    """The Hub dataset a calibration source names, or None for 'bundled' and file paths."""
    name = ALIASES.get(source.strip().lower(), source.strip().lower())
    return name if name in DATASETS else None


# --- the model's inputs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PastInput:
    name: str
    dtype: str
    heads: int
    head_size: int


@dataclass
class ModelInputs:
    """The decoder inputs one calibration sample fills: names and dtypes as the graph declares them."""

    input_ids: str
    ids_dtype: str
    attention_mask: str | None = None
    mask_dtype: str = "int64"
    position_ids: str | None = None
    positions_dtype: str = "int64"
    past: list[PastInput] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        named = [self.input_ids, self.attention_mask, self.position_ids]
        return [name for name in named if name] + [past.name for past in self.past]

    def feeds(self, tokens: list[int]) -> dict[str, Any]:
        """One batch of one sample, with an empty past: what the first step of generation feeds the model."""
        import numpy as np

        length = len(tokens)
        feeds = {self.input_ids: np.asarray([tokens], dtype=self.ids_dtype)}
        if self.attention_mask:
            feeds[self.attention_mask] = np.ones((1, length), dtype=self.mask_dtype)
        if self.position_ids:
            feeds[self.position_ids] = np.arange(length, dtype=self.positions_dtype).reshape(1, length)
        for past in self.past:
            feeds[past.name] = np.zeros((1, past.heads, 0, past.head_size), dtype=past.dtype)
        return feeds

    def shapes_profile(self, seq_len: int) -> dict[str, str]:
        """min/opt/max input shapes for TensorRT-RTX, which builds its engine for a range of shapes."""

        def shapes(seq: int, past: int) -> str:
            items = [f"{self.input_ids}:1x{seq}"]
            if self.attention_mask:
                items.append(f"{self.attention_mask}:1x{seq + past}")
            if self.position_ids:
                items.append(f"{self.position_ids}:1x{seq}")
            items += [f"{p.name}:1x{p.heads}x{past}x{p.head_size}" for p in self.past]
            return ",".join(items)

        return {
            "nv_profile_min_shapes": shapes(1, 0),
            "nv_profile_opt_shapes": shapes(seq_len, 0),
            "nv_profile_max_shapes": shapes(seq_len, seq_len),
        }


def read_model_inputs(graph: Any, genai_config: dict[str, Any]) -> ModelInputs:
    """Map the graph's inputs to their roles through genai_config's names; refuse what calibration cannot fill."""
    decoder = genai_config["model"]["decoder"]
    names = decoder.get("inputs", {})
    declared = {value.name: value.type.tensor_type for value in graph.input}

    def role(key: str, default: str) -> str | None:
        name = names.get(key, default)
        return name if name in declared else None

    input_ids = role("input_ids", "input_ids")
    if input_ids is None:
        raise InputError(
            "the model takes no input_ids (an embeddings-input build); calibration feeds token ids, "
            "so quantize a text-only build."
        )
    inputs = ModelInputs(input_ids, _int_dtype(input_ids, declared[input_ids].elem_type))
    if mask := role("attention_mask", "attention_mask"):
        inputs.attention_mask, inputs.mask_dtype = mask, _int_dtype(mask, declared[mask].elem_type)
    if positions := role("position_ids", "position_ids"):
        inputs.position_ids, inputs.positions_dtype = positions, _int_dtype(positions, declared[positions].elem_type)
    key_pattern = names.get("past_key_names", "past_key_values.%d.key")
    value_pattern = names.get("past_value_names", "past_key_values.%d.value")
    for layer in range(int(decoder.get("num_hidden_layers", 0))):
        for pattern in (key_pattern, value_pattern):
            name = pattern % layer
            if name in declared:
                inputs.past.append(_past_input(name, declared[name], decoder))
    unknown = [name for name in declared if name not in inputs.names]
    if unknown:
        raise InputError(
            f"the model takes inputs calibration cannot fill ({', '.join(unknown[:4])}); "
            "quantize a plain decoder build from the model builder."
        )
    return inputs


def _int_dtype(name: str, elem_type: int) -> str:
    if elem_type not in _INT_TYPES:
        raise InputError(f"the model's {name} input is not an integer tensor; it cannot be calibrated with token ids.")
    return _INT_TYPES[elem_type]


def _past_input(name: str, tensor_type: Any, decoder: dict[str, Any]) -> PastInput:
    if tensor_type.elem_type == _BFLOAT16:
        raise InputError(
            "the model keeps its key/value cache in bfloat16, which onnxruntime cannot run on the CPU for "
            "calibration; quantize its FP16 or FP32 build instead."
        )
    if tensor_type.elem_type not in _FLOAT_TYPES:
        raise InputError(f"the model's {name} input has an unexpected type; quantize an FP16 or FP32 build.")
    dims = [dim.dim_value if dim.HasField("dim_value") else None for dim in tensor_type.shape.dim]
    heads = (dims[1] if len(dims) == 4 else None) or decoder.get("num_key_value_heads")
    head_size = (dims[3] if len(dims) == 4 else None) or decoder.get("head_size")
    if not heads or not head_size:
        raise InputError(f"the shape of {name} is unknown (neither the graph nor genai_config.json gives it).")
    return PastInput(name, _FLOAT_TYPES[tensor_type.elem_type], int(heads), int(head_size))


# --- the text ---------------------------------------------------------------------------------------------------


def check_source(source: str) -> None:
    """Refuse, without reading a model, a calibration source that cannot work: a missing, empty or binary file,
    or a Hub dataset while offline or without the datasets package."""
    if source.strip().lower() == BUNDLED:
        return
    if name := dataset_name(source):
        _check_dataset_reachable(name)
        return
    read_calibration_file(Path(source).expanduser())


def read_calibration_file(path: Path) -> str:
    if not path.is_file():
        raise InputError(
            f"the calibration text {path} does not exist; give a text file, or 'bundled', 'cnn_dailymail' or "
            "'pile-val'."
        )
    data = path.read_bytes()
    if not data.strip():
        raise InputError(f"the calibration text {path} is empty; give a text of at least a few paragraphs.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path} is not a text file (it is not UTF-8); give plain prose for calibration.") from None
    controls = sum(1 for char in text if ord(char) < 32 and char not in "\n\r\t\f")
    if "\x00" in text or controls > len(text) // 100:
        raise InputError(
            f"{path} is not a text file (it holds NUL or other control bytes); give plain prose for calibration."
        )
    return text


_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


def _check_dataset_reachable(name: str) -> None:
    import importlib.util

    if importlib.util.find_spec("datasets") is None:
        raise InputError(
            f"calibrating on {name} needs the datasets package (pip install datasets) and internet access; "
            "use calibration_data=bundled or a text file instead."
        )
    offline = any(os.environ.get(var, "").strip().lower() in {"1", "true", "yes"} for var in _OFFLINE_VARS)
    endpoint = os.environ.get("HF_ENDPOINT", "").strip() or "https://huggingface.co"
    parsed = urlparse(endpoint)
    if not offline:
        try:
            socket.create_connection((parsed.hostname or "", parsed.port or 443), timeout=5).close()
        except OSError:
            offline = True
    if offline:
        raise InputError(
            f"{name} is downloaded from the Hugging Face Hub, which cannot be reached (offline); "
            "use calibration_data=bundled or a text file instead."
        )


def load_text(source: str, needed_tokens: int, count_tokens: Callable[[str], int]) -> tuple[str, str]:
    """(text, a description of where it came from). Hub datasets are streamed until the text has needed_tokens."""
    if source.strip().lower() == BUNDLED:
        path = bundled_text()
        return read_calibration_file(path), f"bundled text ({path.name})"
    if name := dataset_name(source):
        return _dataset_text(name, needed_tokens, count_tokens), f"{name} from the Hugging Face Hub"
    path = Path(source).expanduser().resolve()
    return read_calibration_file(path), str(path)


def _dataset_text(name: str, needed_tokens: int, count_tokens: Callable[[str], int]) -> str:
    _check_dataset_reachable(name)
    import datasets

    repo, config, split, column = DATASETS[name]
    pieces: list[str] = []
    tokens = 0
    try:
        for row in datasets.load_dataset(repo, config, split=split, streaming=True):
            text = str(row[column]).strip()
            if not text:
                continue
            pieces.append(text)
            tokens += count_tokens(text)
            if tokens >= needed_tokens:
                break
    except Exception as error:  # noqa: BLE001 - network and Hub failures all mean the same to the user
        raise InputError(
            f"{name} could not be read from the Hugging Face Hub ({str(error).splitlines()[0][:160]}); "
            "use calibration_data=bundled or a text file instead."
        ) from None
    return "\n\n".join(pieces)


# --- tokens and samples -----------------------------------------------------------------------------------------


def load_encoder(model_dir: Path) -> Callable[[str], list[int]]:
    """The model's own tokenizer: tokenizer.json through `tokenizers` (light), else onnxruntime-genai's."""
    path = model_dir / "tokenizer.json"
    if path.is_file():
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(path))
        return lambda text: tokenizer.encode(text, add_special_tokens=False).ids
    from ..chat import load_model

    _, og_tokenizer = load_model(model_dir, "cpu")
    return lambda text: list(og_tokenizer.encode(text))


@dataclass
class Samples:
    tokens: list[list[int]]
    text_tokens: int
    """How many tokens the whole text has."""

    @property
    def overlapping(self) -> bool:
        return len(self.tokens) * len(self.tokens[0]) > self.text_tokens


def make_samples(text: str, encode: Callable[[str], list[int]], count: int, length: int, bos: int | None) -> Samples:
    """count windows of exactly `length` tokens, spread evenly over the text, each opened by BOS like a prompt.

    A text shorter than count * length gives overlapping windows; one shorter than a single window is refused.
    """
    stream = encode(text)
    body = length - (1 if bos is not None else 0)
    if len(stream) < body:
        raise InputError(
            f"the calibration text gives only {len(stream)} tokens, fewer than one sample of {length}; "
            "give a longer text or lower calib_seq_len."
        )
    last_start = len(stream) - body
    starts = [round(i * last_start / max(count - 1, 1)) for i in range(count)]
    prefix = [bos] if bos is not None else []
    return Samples([prefix + stream[start : start + body] for start in starts], len(stream))


# --- where calibration runs -------------------------------------------------------------------------------------

EPS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "dml": "DmlExecutionProvider",
    "NvTensorRtRtx": "NvTensorRTRTXExecutionProvider",
}
EP_NAMES = {name.lower(): name for name in EPS} | {"trt-rtx": "NvTensorRtRtx", "directml": "dml"}
# A GPU picked by the pickers' number: cuda:<NVML index>, dml:<DXGI adapter>
_ON_GPU = re.compile(r"(cuda|dml):(\d{1,4})")


def check_eps(requested: list[str]) -> None:
    for ep in requested:
        if ep.lower() != "auto" and ep.lower() not in EP_NAMES and not _ON_GPU.fullmatch(ep.lower()):
            raise InputError(
                f"calibration_eps takes auto, {', '.join(EPS)}, cuda:<GPU> or dml:<adapter>, not '{ep[:80]}'."
            )


def resolve_eps(requested: list[str], report: Any = None) -> list[str]:
    """ModelOpt's provider names, first choice first; auto is CUDA (then CPU) when onnxruntime has it, else CPU.

    cuda:N and dml:N name a GPU as the Hardware tab numbers them; app.runtime_config says it ModelOpt's way and sets
    what the process needs for that number to mean the same GPU (CUDA's PCI order). `report`: a hardware report
    to read instead of probing this machine.
    """
    import onnxruntime

    if [ep.lower() for ep in requested] == ["auto"]:
        return ["cuda", "cpu"] if EPS["cuda"] in onnxruntime.get_available_providers() else ["cpu"]
    resolved = []
    for ep in requested:
        on_gpu = _ON_GPU.fullmatch(ep.lower())
        if on_gpu:
            from ..runtime_config import device_for, set_environment

            device = device_for(on_gpu.group(1), int(on_gpu.group(2)), report)
            set_environment(device)
            resolved.append(device.calibration_ep())
        elif ep.lower() != "auto":
            resolved.append(EP_NAMES[ep.lower()])
    return resolved


def base_ep(ep: str) -> str:
    """cuda:1 -> cuda: the provider without its GPU."""
    return ep.split(":", 1)[0]


def probe(model: Path, eps: list[str], profile: Any, feeds: dict, estimate: Callable[[float], float]) -> float:
    """Seconds per sample of one calibration batch on the first provider, in a session made the way ModelOpt
    makes it. Users see DirectML and TensorRT-RTX fail here (field notes): refuse in words and offer the CPU with
    an estimate of how long it would take."""
    import onnxruntime

    if EPS[base_ep(eps[0])] not in onnxruntime.get_available_providers():
        failed = f"calibration cannot run on {eps[0]}: this onnxruntime package has no {EPS[base_ep(eps[0])]}"
    else:
        try:
            return _one_batch(model, eps, profile, feeds)
        except _ProbeFailed as failure:
            if eps[0] == "cpu":
                raise InputError(f"the model does not run in onnxruntime on the CPU ({failure}).") from None
            failed = f"calibration on {eps[0]} failed on its first batch ({failure})"
    try:
        on_cpu = f"; on the CPU it would take about {duration(estimate(_one_batch(model, ['cpu'], None, feeds)))}"
    except _ProbeFailed:
        on_cpu = ""
    raise InputError(f"{failed}{on_cpu}: set calibration_eps=cpu to calibrate on the CPU.")


class _ProbeFailed(Exception):
    pass


def _one_batch(model: Path, eps: list[str], profile: Any, feeds: dict) -> float:
    from modelopt.onnx.quantization.ort_utils import create_inference_session

    wanted = EPS[base_ep(eps[0])]
    try:
        session = create_inference_session(str(model), eps, profile)
        if session.get_providers()[0] != wanted:
            raise _ProbeFailed(f"onnxruntime could not enable {wanted}")
        took = 0.0
        for _ in range(2):  # the first run allocates; the second is what every later sample costs
            started = time.perf_counter()
            session.run(None, feeds)
            took = time.perf_counter() - started
            if took > 1:
                break
        return took
    except _ProbeFailed:
        raise
    except Exception as error:  # noqa: BLE001 - whatever the provider raises, the user needs its first line
        text = str(error).strip()
        raise _ProbeFailed(text.splitlines()[0][:200] if text else type(error).__name__) from None


def estimate_seconds(
    algo: str,
    weights: list[tuple[int, ...]],
    samples: int,
    seq_len: int,
    alphas: int,
    seconds_per_sample: float,
    fast_path: bool,
    half: bool,
) -> int:
    """Rough wall time of ModelOpt's AWQ: the model runs once per sample for every weight (once per sample on
    awq_lite's fast path), then NumPy searches alphas over each weight. The constants were measured on 2 cores
    (NumPy has no fast float16 matmul: FP16 models search 15x (lite) and 8x (clip) slower than FP32)."""
    params = sum(rows * cols for rows, cols in weights)
    runs = samples if fast_path else samples * len(weights)
    if algo == "awq_lite":
        search = alphas * samples * seq_len * params * 1.5e-10 * (15 if half else 1)
    else:  # the clip search keeps 64 tokens of each activation and re-quantizes the whole weight per ratio
        search = alphas * params * 64 * 6e-9 * (8 if half else 1)
    return round(2 + runs * seconds_per_sample + search)  # 2 s: the augmented copy and its session


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(5, round(seconds / 5) * 5)} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} minutes"
    return f"{seconds / 3600:.1f} hours"
