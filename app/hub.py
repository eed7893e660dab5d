"""Read a model repo on the Hugging Face Hub and download the files a conversion needs.

huggingface_hub is imported inside the functions, so importing this module stays cheap. The Hub endpoint is read
from HF_ENDPOINT at each call (huggingface_hub itself reads it once, at import).
"""

from __future__ import annotations

import errno
import fnmatch
import glob
import importlib
import json
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from app.errors import CheckpointError, ForgeError, HubError

HUB_URL = "https://huggingface.co"
API_TIMEOUT_S = 30.0

# Files a conversion reads, matched against names at the root of the repo.
CONVERSION_PATTERNS: tuple[str, ...] = (
    "config.json",
    "generation_config.json",
    "*.safetensors",
    "*.safetensors.index.json",
    "tokenizer*",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.json",
    "*.jinja",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "*.tiktoken",
)
# Only for repos without any safetensors: the pickled PyTorch weights, not optimizer or training-state .bin files.
BIN_FALLBACK_PATTERNS: tuple[str, ...] = ("pytorch_model*.bin", "pytorch_model*.bin.index.json")
CHAT_TEMPLATE_FOLDER = "additional_chat_templates"

_NAME_PART = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?"
_REPO_ID = re.compile(rf"{_NAME_PART}/{_NAME_PART}")

ProgressCallback = Callable[[int, int], None]
FreeSpace = Callable[[Path], int]


@dataclass(frozen=True)
class HubFile:
    path: str
    size: int


@dataclass(frozen=True)
class HubModel:
    repo_id: str
    sha: str
    files: tuple[HubFile, ...]
    conversion_files: tuple[str, ...]
    download_size: int  # bytes of conversion_files
    license: str | None
    downloads: int
    gated: bool
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    revision_sha: str
    offline: bool = False  # True when the Hub could not be reached and the cached copy was returned


def looks_like_hub_id(text: str) -> bool:
    """True for an "org/name" repo id that is not also an existing local path."""
    text = text.strip()
    if not _REPO_ID.fullmatch(text) or "--" in text or ".." in text:
        return False
    return not Path(text).expanduser().exists()


def conversion_files(paths: Iterable[str]) -> list[str]:
    """The repo files a conversion needs, out of all the files in the repo."""
    paths = list(paths)
    root = [path for path in paths if "/" not in path]
    patterns = CONVERSION_PATTERNS
    if not any(path.endswith(".safetensors") for path in root):
        patterns += BIN_FALLBACK_PATTERNS
    chosen = [path for path in root if any(fnmatch.fnmatchcase(path, pattern) for pattern in patterns)]
    chosen = _without_consolidated(chosen)
    templates = [path for path in paths if path.startswith(f"{CHAT_TEMPLATE_FOLDER}/") and path.endswith(".jinja")]
    return sorted(chosen + templates)


def hub_model_summary(
    repo_id: str,
    revision: str | None = None,
    token: str | None = None,
    cache_dir: str | Path | None = None,
) -> HubModel:
    """What the repo holds: files and sizes, licence, downloads, gating, and its config.json."""
    from huggingface_hub import hf_hub_download

    with _translated_errors(repo_id, revision):
        info = _model_info(repo_id, revision, token)
        files = _hub_files(info)
        chosen = _checked_conversion_files(repo_id, files)
        config_path = hf_hub_download(
            repo_id,
            "config.json",
            revision=info.sha,
            token=token,
            cache_dir=_cache_dir(cache_dir),
            endpoint=_endpoint(),
        )
    sizes = {file.path: file.size for file in files}
    return HubModel(
        repo_id=repo_id,
        sha=info.sha,
        files=files,
        conversion_files=tuple(chosen),
        download_size=sum(sizes[name] for name in chosen),
        license=_license(info),
        downloads=info.downloads or 0,
        gated=bool(info.gated),
        config=_read_config(repo_id, Path(config_path)),
    )


def download_checkpoint(
    repo_id: str,
    revision: str | None = None,
    token: str | None = None,
    cache_dir: str | Path | None = None,
    on_progress: ProgressCallback | None = None,
    *,
    free_space: FreeSpace | None = None,
) -> DownloadResult:
    """Download the conversion files of a repo into the Hugging Face cache and return the snapshot folder.

    Files already in the cache are not downloaded again, and a connection dropped mid-file is resumed where it
    stopped. on_progress(done, total) is called with bytes, from the download threads; an exception raised in it
    cancels the download. When the Hub cannot be reached, a complete cached copy is returned (offline=True).
    """
    from huggingface_hub import snapshot_download

    cache = _cache_dir(cache_dir)
    with _translated_errors(repo_id, revision):
        try:
            pinned, sizes = _pinned_conversion_files(repo_id, revision, token, cache)
        except Exception as error:
            cached = _cached_checkpoint(repo_id, revision, cache, on_progress) if _is_network_error(error) else None
            if cached is None:
                raise
            return cached
        total = sum(sizes.values())
        missing = sum(size for name, size in sizes.items() if not _is_cached(repo_id, name, cache, pinned.resolved))
        _check_free_space(repo_id, cache, missing, free_space or _free_bytes)
        progress = _Progress(total=total, done_before=total - missing, callback=on_progress)
        folder = snapshot_download(
            repo_id,
            revision=pinned,
            cache_dir=cache,
            token=token,
            endpoint=_endpoint(),
            allow_patterns=[glob.escape(name) for name in sizes],
            tqdm_class=_silent_bar_class(progress),
        )
    progress.finish()
    return DownloadResult(path=Path(folder), revision_sha=pinned.resolved)


def format_size(size: int) -> str:
    """A byte count the way people read it: 1.2 GB."""
    return _format_size(size)


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache this process uses (HF_HUB_CACHE, or HF_HOME/hub)."""
    return _cache_dir(None)


# --- Search ----------------------------------------------------------------------------------------------------------

# The model fields a search asks for; without `expand` the Hub leaves out the card (licence) and the weight dtypes.
SEARCH_FIELDS: tuple[str, ...] = ("downloads", "likes", "cardData", "gated", "pipeline_tag", "safetensors", "tags")


@dataclass(frozen=True)
class HubSearchResult:
    repo_id: str
    downloads: int
    likes: int
    license: str | None
    size_bytes: int | None  # the safetensors weights, when the Hub knows their dtypes
    gated: bool
    pipeline_tag: str | None


# One request, bounded: HfApi.list_models() retries a failed connection five times with back-off (about 23 s
# offline) and sends it with no timeout at all, so a search without network said "Searching…" for half a minute.
SEARCH_TIMEOUT_S = 8.0


def search_models(
    query: str, limit: int = 20, token: str | None = None, timeout: float | None = None
) -> list[HubSearchResult]:
    """Models whose id contains query, most downloaded first: one request to the Hub's model list, no retries.

    timeout (SEARCH_TIMEOUT_S unless given) bounds connecting and every read, so an unreachable Hub is told in
    seconds; a refused connection or a failed name lookup is told at once.
    """
    from huggingface_hub import get_session
    from huggingface_hub.hf_api import ModelInfo
    from huggingface_hub.utils import build_hf_headers, hf_raise_for_status

    seconds = SEARCH_TIMEOUT_S if timeout is None else timeout
    params: list[tuple[str, Any]] = [("sort", "downloads"), ("direction", -1), ("limit", limit)]
    params += [("search", query.strip())] if query.strip() else []
    params += [("expand", name) for name in SEARCH_FIELDS]
    with _search_errors():
        response = get_session().get(
            f"{_endpoint() or HUB_URL}/api/models",
            params=params,
            headers=build_hf_headers(token=token),
            timeout=seconds,
        )
        hf_raise_for_status(response)
        return [_search_result(ModelInfo(**{**item, "siblings": None})) for item in response.json()[:limit]]


def _search_result(model: Any) -> HubSearchResult:
    return HubSearchResult(
        repo_id=model.id,
        downloads=model.downloads or 0,
        likes=model.likes or 0,
        license=_license(model),
        size_bytes=_weights_size(model.safetensors),
        gated=bool(model.gated),
        pipeline_tag=model.pipeline_tag,
    )


def _weights_size(safetensors: Any) -> int | None:
    from app.weights import DTYPE_BYTES  # the inspector's safetensors dtype table

    if not safetensors or not safetensors.parameters:
        return None
    if any(dtype not in DTYPE_BYTES for dtype in safetensors.parameters):
        return None
    return sum(count * DTYPE_BYTES[dtype] for dtype, count in safetensors.parameters.items())


@contextmanager
def _search_errors() -> Iterator[None]:
    try:
        yield
    except ForgeError:
        raise
    except Exception as error:
        translated = _search_error(error)
        if translated is None:
            raise
        raise translated from error


def _search_error(error: BaseException) -> HubError | None:
    from huggingface_hub import errors as hf

    chain = list(_causes(error))
    network_error = _first(chain, _network_error_types())
    if network_error is not None:
        return _unreachable(_network_reason(network_error))
    http_error = _first(chain, hf.HfHubHTTPError)
    if http_error is not None:
        return _http_error("the model list", _status(http_error))
    if _first(chain, (ValueError, KeyError, TypeError)) is not None:  # a body that is not the Hub's JSON listing
        return _unreachable(f"{_endpoint() or HUB_URL} does not answer like the Hub")
    return None


# --- Suggestions ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KnownModel:
    """A small, ungated Hub model, with the config.json figures the size and fit estimates read."""

    repo_id: str
    license: str
    config: dict[str, Any]


_KNOWN_FIELDS = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "intermediate_size",
    "vocab_size",
    "max_position_embeddings",
    "tie_word_embeddings",
)
# Each row: repo id, licence, architecture, model_type, then the _KNOWN_FIELDS as the repo's config.json has them
# (head_dim None where the config leaves it to hidden_size / heads). Smallest first; all BF16 and ungated.
# fmt: off
_KNOWN_ROWS = (
    ("HuggingFaceTB/SmolLM2-135M-Instruct", "apache-2.0", "LlamaForCausalLM", "llama",
     576, 30, 9, 3, None, 1536, 49152, 8192, True),
    ("HuggingFaceTB/SmolLM2-360M-Instruct", "apache-2.0", "LlamaForCausalLM", "llama",
     960, 32, 15, 5, None, 2560, 49152, 8192, True),
    ("Qwen/Qwen2.5-0.5B-Instruct", "apache-2.0", "Qwen2ForCausalLM", "qwen2",
     896, 24, 14, 2, None, 4864, 151936, 32768, True),
    ("Qwen/Qwen3-0.6B", "apache-2.0", "Qwen3ForCausalLM", "qwen3",
     1024, 28, 16, 8, 128, 3072, 151936, 40960, True),
    ("Qwen/Qwen2.5-1.5B-Instruct", "apache-2.0", "Qwen2ForCausalLM", "qwen2",
     1536, 28, 12, 2, None, 8960, 151936, 32768, True),
    ("HuggingFaceTB/SmolLM2-1.7B-Instruct", "apache-2.0", "LlamaForCausalLM", "llama",
     2048, 24, 32, 32, None, 8192, 49152, 8192, True),
    ("microsoft/Phi-3.5-mini-instruct", "mit", "Phi3ForCausalLM", "phi3",
     3072, 32, 32, 32, None, 8192, 32064, 131072, False),
    ("Qwen/Qwen3-4B", "apache-2.0", "Qwen3ForCausalLM", "qwen3",
     2560, 36, 32, 8, 128, 9728, 151936, 40960, True),
    ("Qwen/Qwen2.5-7B-Instruct", "apache-2.0", "Qwen2ForCausalLM", "qwen2",
     3584, 28, 28, 4, None, 18944, 152064, 32768, False),
)
# fmt: on
KNOWN_MODELS: tuple[KnownModel, ...] = tuple(
    KnownModel(
        repo_id,
        license,
        {
            "architectures": [architecture],
            "model_type": model_type,
            "torch_dtype": "bfloat16",
            **{name: value for name, value in zip(_KNOWN_FIELDS, sizes, strict=True) if value is not None},
        },
    )
    for repo_id, license, architecture, model_type, *sizes in _KNOWN_ROWS
)


@dataclass(frozen=True)
class Suggestion:
    repo_id: str
    license: str
    parameters: int
    download_bytes: int  # the BF16 weights
    preset: str  # the preset recommended for it here
    ep: str
    level: str  # fits or tight
    reason: str  # the fit estimate's sentence


def suggested_models(report: Any) -> list[Suggestion]:
    """The KNOWN_MODELS the installed builder converts and that fit this PC, as the Convert tab would build them:
    its recommended preset and provider, its fit estimate for running the model, and the build's peak memory
    within the RAM. Smallest first; when none fits comfortably, those that fit tightly. No network is used."""
    from app.builder_defects import checkpoint_defect
    from app.builder_info import builder_info
    from app.convert import estimate_needs
    from app.fit import FIT_SHARE, build_options, fit_verdict, recommended
    from app.presets import PRESETS, default_ep

    builder = builder_info()
    found = []
    for known in KNOWN_MODELS:
        architecture = known.config["architectures"][0]
        if not builder.supports_architecture(architecture) or checkpoint_defect(known.config, builder):
            continue
        info = _known_info(known, builder.version)
        preset, _ = recommended(info, report)
        ep = default_ep(PRESETS[preset], report.usable_providers())
        fit = fit_verdict(info, preset, ep, report, None)
        _, build_peak = estimate_needs(info, build_options(preset, ep))
        if fit.level == "won't fit" or build_peak > (report.system.ram_bytes or 0) * FIT_SHARE:
            continue
        found.append(
            Suggestion(
                known.repo_id, known.license, info.parameters, info.weight_bytes, preset, ep, fit.level, fit.reason
            )
        )
    return [item for item in found if item.level == "fits"] or found


def _known_info(known: KnownModel, builder_version: str) -> Any:
    from app.checkpoint_config import text_config
    from app.checkpoints import CheckpointInfo, attention_shape, estimate_parameters

    config = known.config
    text = text_config(config)
    parameters = estimate_parameters(config)
    _, kv_heads, head_dim = attention_shape(text)
    return CheckpointInfo(
        path=known.repo_id,
        architecture=config["architectures"][0],
        family=config["model_type"],
        parameters=parameters,
        parameters_source="config",
        dtype="bfloat16",
        size_bytes=parameters * 2,
        weight_bytes=parameters * 2,
        num_layers=text["num_hidden_layers"],
        hidden_size=text["hidden_size"],
        vocab_size=text["vocab_size"],
        context_length=text["max_position_embeddings"],
        tokenizer=True,
        chat_template=True,
        quantization=None,
        builder_supported=True,
        builder_version=builder_version,
        builder_defect=None,
        needs_remote_code=False,
        tied_embeddings=bool(text.get("tie_word_embeddings")),
        kv_hidden_size=kv_heads * head_dim,
    )


# --- Token in the OS credential store --------------------------------------------------------------------------------

KEYRING_SERVICE = "onnx-forge"
KEYRING_USER = "huggingface"


def hub_token() -> str | None:
    """The token every Hub call of the studio uses: HF_TOKEN when set, else the one saved in the credential store."""
    return os.environ.get("HF_TOKEN") or get_token()


def get_token() -> str | None:
    """The Hub token saved in the OS credential store; None when none is saved or there is no store."""
    try:
        import keyring
        from keyring.errors import KeyringError
    except ImportError:
        return None
    try:
        return keyring.get_password(KEYRING_SERVICE, KEYRING_USER) or None
    except KeyringError:
        return None


def set_token(token: str) -> None:
    """Save the Hub token in the OS credential store (Windows Credential Manager, macOS Keychain, Secret Service)."""
    token = token.strip()
    if not token:
        raise HubError("the token is empty; paste a token from huggingface.co/settings/tokens")
    keyring, errors = _keyring()
    try:
        keyring.set_password(KEYRING_SERVICE, KEYRING_USER, token)
    except errors.KeyringError as error:
        raise HubError(f"the token cannot be saved: {_no_store(error)}") from None


def clear_token() -> None:
    """Remove the saved Hub token, if there is one."""
    keyring, errors = _keyring()
    try:
        keyring.delete_password(KEYRING_SERVICE, KEYRING_USER)
    except errors.PasswordDeleteError:
        return
    except errors.KeyringError as error:
        raise HubError(f"the token cannot be removed: {_no_store(error)}") from None


def _keyring() -> tuple[Any, Any]:
    try:
        import keyring
        import keyring.errors
    except ImportError:
        raise HubError("the token cannot be saved: the keyring package is not installed") from None
    return keyring, keyring.errors


def _no_store(error: BaseException) -> str:
    return f"the credential store does not answer ({type(error).__name__}); the token works for this session only"


# --- Hub calls -------------------------------------------------------------------------------------------------------


def _endpoint() -> str | None:
    endpoint = os.environ.get("HF_ENDPOINT", "").strip()
    return endpoint.rstrip("/") or None


def _api(token: str | None) -> Any:
    from huggingface_hub import HfApi

    return HfApi(endpoint=_endpoint(), token=token)


def _cache_dir(cache_dir: str | Path | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _model_info(repo_id: str, revision: str | None, token: str | None) -> Any:
    return _api(token).model_info(repo_id, revision=revision, files_metadata=True, timeout=API_TIMEOUT_S)


def _pinned_conversion_files(
    repo_id: str, revision: str | None, token: str | None, cache: Path
) -> tuple[Any, dict[str, int]]:
    """The revision resolved to a commit (recorded in the cache's refs/) and {conversion file: size} at it."""
    info = _model_info(repo_id, revision, token)
    pinned = _api(token).resolve_revision(repo_id, revision=revision, cache_dir=cache)
    if pinned.resolved != info.sha:  # the branch moved between the two calls
        info = _model_info(repo_id, pinned.resolved, token)
    files = _hub_files(info)
    sizes = {file.path: file.size for file in files}
    return pinned, {name: sizes[name] for name in _checked_conversion_files(repo_id, files)}


def _hub_files(info: Any) -> tuple[HubFile, ...]:
    files = []
    for sibling in info.siblings or []:
        size = sibling.size if sibling.size is not None else (sibling.lfs.size if sibling.lfs else 0)
        files.append(HubFile(path=sibling.rfilename, size=size))
    return tuple(files)


def _checked_conversion_files(repo_id: str, files: Iterable[HubFile]) -> list[str]:
    chosen = conversion_files(file.path for file in files)
    if "config.json" not in chosen:
        raise CheckpointError(f"{repo_id} has no config.json, so it is not a Transformers checkpoint this app reads")
    if not _has_weights(chosen):
        raise CheckpointError(f"{repo_id} has no .safetensors or pytorch_model.bin weights to convert")
    return chosen


def _has_weights(names: Iterable[str]) -> bool:
    return any(name.endswith((".safetensors", ".bin")) for name in names)


def _without_consolidated(names: list[str]) -> list[str]:
    # Mistral repos ship the same weights twice: Transformers shards plus a "consolidated" file for mistral-inference.
    sharded = [name for name in names if name.endswith(".safetensors") and not name.startswith("consolidated")]
    if not sharded:
        return names
    return [name for name in names if not (name.startswith("consolidated") and name.endswith(".safetensors"))]


def _license(info: Any) -> str | None:
    card_license = getattr(info.card_data, "license", None) if info.card_data is not None else None
    if isinstance(card_license, list):
        card_license = ", ".join(str(item) for item in card_license)
    if card_license:
        return str(card_license)
    tags = [tag.removeprefix("license:") for tag in info.tags or [] if tag.startswith("license:")]
    return ", ".join(tags) or None


def _read_config(repo_id: str, path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"the config.json of {repo_id} cannot be read ({error})") from error
    if not isinstance(config, dict):
        raise CheckpointError(f"the config.json of {repo_id} is not a JSON object")
    return config


def _is_cached(repo_id: str, filename: str, cache: Path, sha: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, filename, cache_dir=cache, revision=sha), str)


def _cached_checkpoint(
    repo_id: str, revision: str | None, cache: Path, on_progress: ProgressCallback | None
) -> DownloadResult | None:
    """The complete cached snapshot of a repo, found without the network, or None."""
    from huggingface_hub import get_cached_repo_tree, snapshot_download
    from huggingface_hub.errors import CachedRepoTreeNotFoundError, LocalEntryNotFoundError, RevisionResolutionError

    try:
        pinned = _api(None).resolve_revision(repo_id, revision=revision, cache_dir=cache, local_files_only=True)
        sizes = {file.path: file.size for file in get_cached_repo_tree(repo_id, revision=pinned, cache_dir=cache)}
        chosen = conversion_files(sizes)
        if "config.json" not in chosen or not _has_weights(chosen):
            return None
        folder = snapshot_download(
            repo_id,
            revision=pinned,
            cache_dir=cache,
            local_files_only=True,
            allow_patterns=[glob.escape(name) for name in chosen],
        )
    except (CachedRepoTreeNotFoundError, LocalEntryNotFoundError, RevisionResolutionError):
        return None
    _Progress(total=sum(sizes[name] for name in chosen), done_before=0, callback=on_progress).finish()
    return DownloadResult(path=Path(folder), revision_sha=pinned.resolved, offline=True)


# --- Disk space and progress -----------------------------------------------------------------------------------------


def _free_bytes(path: Path) -> int:
    for folder in (path, *path.parents):
        if folder.exists():
            return shutil.disk_usage(folder).free
    return shutil.disk_usage(Path.cwd()).free


def _check_free_space(repo_id: str, cache: Path, needed: int, free_space: FreeSpace) -> None:
    free = free_space(cache)
    if needed > free:
        raise HubError(
            f"downloading {repo_id} needs {_format_size(needed)} in {cache} but only {_format_size(free)} is free; "
            "free some space or choose another download folder"
        )


def _format_size(size: int) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


class _Progress:
    """Folds the byte counts of huggingface_hub's progress bars into one (done, total) report."""

    def __init__(self, total: int, done_before: int, callback: ProgressCallback | None) -> None:
        self.total = total
        self.done_before = done_before
        self.callback = callback
        self._lock = threading.Lock()
        self._bars: dict[int, int] = {}
        self._reported = -1

    def bar_moved(self, bar_id: int, count: int) -> None:
        with self._lock:
            self._bars[bar_id] = count
            # snapshot_download keeps two byte bars (network bytes and bytes written) that follow each other.
            done = min(self.total, self.done_before + max(self._bars.values()))
            self._report(done)

    def finish(self) -> None:
        with self._lock:
            self._report(self.total)

    def _report(self, done: int) -> None:
        if done != self._reported and self.callback is not None:
            self._reported = done
            self.callback(done, self.total)


class _NullStream:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def _silent_bar_class(progress: _Progress) -> type:
    """A tqdm class for snapshot_download that prints nothing and forwards byte counts to progress."""
    from tqdm.std import tqdm

    class SilentBar(tqdm):
        monitor_interval = 0  # no tqdm monitor thread

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["file"] = _NullStream()
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            displayed = super().update(n)
            if self.unit == "B":
                progress.bar_moved(id(self), int(self.n))
            return displayed

    return SilentBar


# --- Errors ----------------------------------------------------------------------------------------------------------


@contextmanager
def _translated_errors(repo_id: str, revision: str | None) -> Iterator[None]:
    try:
        yield
    except ForgeError:
        raise
    except Exception as error:
        translated = _translate(error, repo_id, revision)
        if translated is None:
            raise
        raise translated from error


def _translate(error: BaseException, repo_id: str, revision: str | None) -> HubError | None:
    from huggingface_hub import errors as hf

    chain = list(_causes(error))
    if any(isinstance(item, OSError) and item.errno == errno.ENOSPC for item in chain):
        return HubError(f"the disk ran out of space while downloading {repo_id}; free some space and try again")
    gated = _first(chain, hf.GatedRepoError)
    if gated is not None:
        if _status(gated) == 401:
            return HubError(f"{repo_id} is gated: add a Hugging Face token in settings")
        return HubError(f"{repo_id} is gated: accept its licence on {HUB_URL}/{repo_id} first")
    if _first(chain, hf.RepositoryNotFoundError) is not None:
        return HubError(f"no model named {repo_id} on the Hugging Face Hub; check the spelling")
    if _first(chain, hf.RevisionNotFoundError) is not None:
        return HubError(f"{repo_id} has no branch, tag or commit named {revision!r}; check the revision")
    if _first(chain, hf.DisabledRepoError) is not None:
        return HubError(f"{repo_id} has been disabled on the Hugging Face Hub; pick another model")
    http_error = _first(chain, hf.HfHubHTTPError)
    if http_error is not None:
        return _http_error(repo_id, _status(http_error))
    network_error = _first(chain, _network_error_types())
    if network_error is not None:
        return _unreachable(_network_reason(network_error))
    if _first(chain, (hf.FileMetadataError, json.JSONDecodeError)) is not None:  # a web page where JSON was due
        return _unreachable(f"{_endpoint() or HUB_URL} does not answer like the Hub")
    if _first(chain, (hf.LocalEntryNotFoundError, hf.RevisionResolutionError)) is not None:
        return _unreachable("no answer")
    return None


def _http_error(repo_id: str, status: int | None) -> HubError:
    if status == 401:
        return HubError("the Hugging Face Hub rejected your token; check the token in settings")
    if status == 403:
        return HubError(f"your Hugging Face token may not read {repo_id}; give it read access on {HUB_URL}")
    if status == 429:
        return HubError("the Hugging Face Hub is limiting requests from this computer; wait a few minutes and retry")
    return HubError(f"the Hugging Face Hub answered with an error (HTTP {status}); try again later")


def _unreachable(reason: str) -> HubError:
    return HubError(f"cannot reach the Hugging Face Hub ({reason}); check your connection or use a local folder")


def _is_network_error(error: BaseException) -> bool:
    return _first(list(_causes(error)), _network_error_types()) is not None


def _network_error_types() -> tuple[type[BaseException], ...]:
    from huggingface_hub.errors import OfflineModeIsEnabled

    types: list[type[BaseException]] = [OfflineModeIsEnabled]
    # huggingface_hub 2.x talks through httpx2, 1.x through httpx.
    for module_name in ("httpx2", "httpx"):
        try:
            types.append(importlib.import_module(module_name).TransportError)
        except ImportError:
            pass
    return tuple(types)


def _network_reason(error: BaseException) -> str:
    from huggingface_hub.errors import OfflineModeIsEnabled

    if isinstance(error, OfflineModeIsEnabled):
        return "offline mode is on (HF_HUB_OFFLINE)"
    if "Timeout" in type(error).__name__:
        return "the connection timed out"
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", str(error).strip()).rstrip(".")
    return (text[:1].lower() + text[1:]) if text else type(error).__name__


def _causes(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _first(chain: list[BaseException], types: type | tuple[type, ...]) -> Any:
    return next((item for item in chain if isinstance(item, types)), None)


def _status(error: Any) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)
