"""app.hub against the loopback Hub of tests/hub_server.py, through the real huggingface_hub over HTTP."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.errors import CheckpointError, HubError
from app.hub import (
    DownloadResult,
    conversion_files,
    download_checkpoint,
    hub_model_summary,
    looks_like_hub_id,
)
from tests.hub_server import HubServer, closed_port_url, hub_server  # noqa: F401 - the fixture

REPO = "acme/tiny-llama"
CONVERSION_NAMES = {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json"}
CONFIG = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 64}
TEN_MB = 10 * 1024 * 1024  # huggingface_hub's DOWNLOAD_CHUNK_SIZE


def make_repo_folder(folder: Path, weights_size: int = 4096) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(CONFIG))
    (folder / "generation_config.json").write_text(json.dumps({"max_length": 32}))
    (folder / "tokenizer.json").write_text(json.dumps({"version": "1.0", "model": {"type": "BPE"}}))
    (folder / "model.safetensors").write_bytes(_pattern(weights_size))
    (folder / "pytorch_model.bin").write_bytes(_pattern(3000, seed=7))
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n# tiny\n")
    return folder


def _pattern(size: int, seed: int = 1) -> bytes:
    block = bytes((seed * 31 + index * 7) % 256 for index in range(4096))
    return (block * (size // len(block) + 1))[:size]


@pytest.fixture
def hub(hub_server: HubServer, tmp_path: Path) -> HubServer:  # noqa: F811 - pytest injects the imported fixture
    hub_server.add_repo(REPO, make_repo_folder(tmp_path / "repo"), license="llama3.2", downloads=1234)
    return hub_server


def download(repo_id: str = REPO, **kwargs) -> tuple[DownloadResult, list[tuple[int, int]]]:
    reports: list[tuple[int, int]] = []
    result = download_checkpoint(repo_id, on_progress=lambda done, total: reports.append((done, total)), **kwargs)
    return result, reports


def snapshot_names(folder: Path) -> set[str]:
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}


# --- pure helpers --------------------------------------------------------------------------------------------------


def test_looks_like_hub_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert looks_like_hub_id("meta-llama/Llama-3.2-1B-Instruct")
    assert looks_like_hub_id(" Qwen/Qwen2.5-0.5B ")
    for text in ("gpt2", "a/b/c", "/abs/path", "./org/name", "org/", "org/-name", "org/na..me", r"C:\models\x", ""):
        assert not looks_like_hub_id(text), text
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "phi").mkdir(parents=True)
    assert not looks_like_hub_id("models/phi")


def test_conversion_files_prefer_safetensors() -> None:
    paths = [
        "config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "consolidated.safetensors",
        "pytorch_model.bin",
        "tf_model.h5",
        "flax_model.msgpack",
        "onnx/model.onnx",
        "original/tokenizer.model",
        "tokenizer.model",
        "tokenizer_config.json",
        "chat_template.jinja",
        "additional_chat_templates/tool_use.jinja",
        "README.md",
    ]
    assert conversion_files(paths) == [
        "additional_chat_templates/tool_use.jinja",
        "chat_template.jinja",
        "config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "tokenizer.model",
        "tokenizer_config.json",
    ]


def test_conversion_files_fall_back_to_pytorch_bin() -> None:
    paths = ["config.json", "pytorch_model.bin", "training_args.bin", "vocab.json", "merges.txt", "model.gguf"]
    assert conversion_files(paths) == ["config.json", "merges.txt", "pytorch_model.bin", "vocab.json"]


def test_importing_app_hub_stays_cheap() -> None:
    code = (
        "import sys, app.hub; "
        "print(sorted(m for m in ('huggingface_hub', 'torch', 'transformers', 'tqdm') if m in sys.modules))"
    )
    root = Path(__file__).resolve().parent.parent
    output = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert output.stdout.strip() == "[]"


# --- summary -------------------------------------------------------------------------------------------------------


def test_summary_reports_files_sizes_license_and_config(hub: HubServer) -> None:
    summary = hub_model_summary(REPO)

    assert summary.repo_id == REPO
    assert summary.sha == hub.repos[REPO].sha
    assert {file.path: file.size for file in summary.files}["pytorch_model.bin"] == 3000
    assert set(summary.conversion_files) == CONVERSION_NAMES
    sizes = {file.path: file.size for file in summary.files}
    assert summary.download_size == sum(sizes[name] for name in CONVERSION_NAMES)
    assert summary.license == "llama3.2"
    assert summary.downloads == 1234
    assert summary.gated is False
    assert summary.config == CONFIG


def test_summary_of_a_repo_without_weights(hub_server: HubServer, tmp_path: Path) -> None:  # noqa: F811
    folder = tmp_path / "no-weights"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    hub_server.add_repo("acme/empty", folder)
    with pytest.raises(CheckpointError, match="acme/empty has no .safetensors or pytorch_model.bin weights"):
        hub_model_summary("acme/empty")


# --- download ------------------------------------------------------------------------------------------------------


def test_download_gets_exactly_the_conversion_files(hub: HubServer, tmp_path: Path) -> None:
    result, reports = download()

    assert result.revision_sha == hub.repos[REPO].sha
    assert result.path.name == result.revision_sha
    assert result.offline is False
    assert snapshot_names(result.path) == CONVERSION_NAMES
    source = tmp_path / "repo"
    for name in CONVERSION_NAMES:
        assert (result.path / name).read_bytes() == (source / name).read_bytes()
    assert hub.downloads_of("pytorch_model.bin") == []
    total = sum((source / name).stat().st_size for name in CONVERSION_NAMES)
    assert reports[-1] == (total, total)
    assert [done for done, _ in reports] == sorted(done for done, _ in reports)
    assert {report_total for _, report_total in reports} == {total}


def test_download_into_a_given_cache_dir(hub: HubServer, tmp_path: Path) -> None:
    result, _ = download(cache_dir=tmp_path / "my-cache")
    assert result.path.is_relative_to(tmp_path / "my-cache")
    assert snapshot_names(result.path) == CONVERSION_NAMES


def test_second_download_is_served_from_cache(hub: HubServer) -> None:
    first, _ = download()
    hub.clear_requests()

    second, reports = download()

    assert second.path == first.path
    assert [request.path for request in hub.requests if "/resolve/" in request.path] == []
    total = reports[-1][1]
    assert reports == [(total, total)]


def test_download_resumes_after_the_connection_drops(hub_server: HubServer, tmp_path: Path) -> None:  # noqa: F811
    # huggingface_hub writes 10 MB chunks: a cut after the first one lets it resume from byte 10 MB.
    folder = make_repo_folder(tmp_path / "big", weights_size=TEN_MB + 1_500_000)
    hub_server.add_repo("acme/big", folder)
    hub_server.cut_next_download("acme/big", "model.safetensors", after_bytes=TEN_MB + 500_000)

    result, reports = download("acme/big")

    assert (result.path / "model.safetensors").read_bytes() == (folder / "model.safetensors").read_bytes()
    gets = hub_server.downloads_of("model.safetensors")
    assert [request.range for request in gets] == [None, f"bytes={TEN_MB}-"]
    assert [done for done, _ in reports] == sorted(done for done, _ in reports)
    assert reports[-1][0] == reports[-1][1]


def test_an_exception_in_on_progress_cancels_the_download(hub_server: HubServer, tmp_path: Path) -> None:  # noqa: F811
    class Cancelled(Exception):
        pass

    def cancel(done: int, total: int) -> None:
        raise Cancelled

    hub_server.add_repo("acme/big", make_repo_folder(tmp_path / "big", weights_size=3 * TEN_MB))
    with pytest.raises(Cancelled):
        download_checkpoint("acme/big", on_progress=cancel)
    blobs = hub_server.cache_dir / "models--acme--big" / "blobs"
    assert [path.name for path in blobs.iterdir() if path.stat().st_size > TEN_MB] == []


def test_revision_pins_the_download(hub: HubServer) -> None:
    sha = hub.repos[REPO].sha
    assert download(revision=sha)[0].revision_sha == sha
    with pytest.raises(HubError, match=f"^{REPO} has no branch, tag or commit named 'v9'; check the revision$"):
        download(revision="v9")


# --- errors --------------------------------------------------------------------------------------------------------


@pytest.fixture
def gated(hub_server: HubServer, tmp_path: Path) -> HubServer:  # noqa: F811
    hub_server.add_repo("acme/locked", make_repo_folder(tmp_path / "locked"), gated=True, tokens=["hf_granted"])
    return hub_server


def test_gated_repo_without_token(gated: HubServer) -> None:
    expected = "^acme/locked is gated: add a Hugging Face token in settings$"
    with pytest.raises(HubError, match=expected):
        hub_model_summary("acme/locked")
    with pytest.raises(HubError, match=expected):
        download("acme/locked")


def test_gated_repo_with_a_token_not_granted(gated: HubServer) -> None:
    expected = r"^acme/locked is gated: accept its licence on https://huggingface\.co/acme/locked first$"
    with pytest.raises(HubError, match=expected):
        hub_model_summary("acme/locked", token="hf_other")
    with pytest.raises(HubError, match=expected):
        download("acme/locked", token="hf_other")


def test_gated_repo_with_a_granted_token(gated: HubServer) -> None:
    assert hub_model_summary("acme/locked", token="hf_granted").gated is True
    result, _ = download("acme/locked", token="hf_granted")
    assert snapshot_names(result.path) == CONVERSION_NAMES


def test_missing_repo(hub: HubServer) -> None:
    expected = "^no model named acme/nope on the Hugging Face Hub; check the spelling$"
    with pytest.raises(HubError, match=expected):
        hub_model_summary("acme/nope")
    with pytest.raises(HubError, match=expected):
        download("acme/nope")


def test_no_network(hub: HubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", closed_port_url())
    expected = (
        r"^cannot reach the Hugging Face Hub \(connection refused\); check your connection or use a local folder$"
    )
    with pytest.raises(HubError, match=expected):
        hub_model_summary(REPO)
    with pytest.raises(HubError, match=expected):
        download()


def test_offline_mode(hub: HubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # what HF_HUB_OFFLINE=1 does at import
    expected = r"^cannot reach the Hugging Face Hub \(offline mode is on \(HF_HUB_OFFLINE\)\);"
    with pytest.raises(HubError, match=expected):
        download()


def test_no_network_returns_a_complete_cached_copy(hub: HubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    online, _ = download()
    monkeypatch.setenv("HF_ENDPOINT", closed_port_url())

    offline, reports = download()

    assert offline == DownloadResult(online.path, online.revision_sha, offline=True)
    total = reports[-1][1]
    assert reports == [(total, total)]


def test_not_enough_disk_space_is_checked_first(hub: HubServer) -> None:
    expected = rf"^downloading {REPO} needs 4\.\d kB in {hub.cache_dir} but only 999 bytes is free; free some space"
    with pytest.raises(HubError, match=expected):
        download(free_space=lambda folder: 999)
    assert hub.downloads_of("model.safetensors") == []


# --- a real full disk: a 64 kB tmpfs (Linux, root only) ------------------------------------------------------------


@pytest.fixture
def tiny_disk(mount_tmpfs) -> Path:
    return mount_tmpfs("64k")


def test_not_enough_disk_space_on_a_real_disk(hub_server: HubServer, tmp_path: Path, tiny_disk: Path) -> None:  # noqa: F811
    hub_server.add_repo("acme/large", make_repo_folder(tmp_path / "large", weights_size=200_000))
    with pytest.raises(HubError, match=r"^downloading acme/large needs 20\d\.\d kB in .+ but only \d+\.\d kB is free;"):
        download("acme/large", cache_dir=tiny_disk)


@pytest.mark.filterwarnings("ignore:Not enough free disk space")  # huggingface_hub only warns; app.hub raises
def test_disk_filling_up_during_the_download(hub_server: HubServer, tmp_path: Path, tiny_disk: Path) -> None:  # noqa: F811
    hub_server.add_repo("acme/large", make_repo_folder(tmp_path / "large", weights_size=200_000))
    with pytest.raises(HubError, match="^the disk ran out of space while downloading acme/large; free some space"):
        download("acme/large", cache_dir=tiny_disk, free_space=lambda folder: 10**12)


# --- suggestions -----------------------------------------------------------------------------------------------------


def _recorded(name: str, ram_gib: float | None = None):
    from app.hardware import probe_hardware
    from app.hardware_probes import RecordedProbes

    report = probe_hardware(RecordedProbes(Path(__file__).parent / "data" / "hardware" / name))
    if ram_gib is None:
        return report
    return dataclasses.replace(report, system=dataclasses.replace(report.system, ram_bytes=int(ram_gib * 1024**3)))


def test_suggestions_fit_the_machine_and_the_builder(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.builder_info import builder_info
    from app.hub import KNOWN_MODELS, suggested_models

    roomy = suggested_models(_recorded("linux_no_gpu.json"))
    assert [item.repo_id for item in roomy][:3] == [model.repo_id for model in KNOWN_MODELS][:3]
    assert all((item.preset, item.ep, item.level) == ("int4", "cpu", "fits") for item in roomy)
    # The 7B's INT4 build holds its BF16 weights and two FP32 graphs: more than 23.5 GB of RAM.
    assert "Qwen/Qwen2.5-7B-Instruct" not in [item.repo_id for item in roomy]
    assert [item.repo_id for item in suggested_models(_recorded("linux_no_gpu.json", ram_gib=4))] == [
        "HuggingFaceTB/SmolLM2-135M-Instruct"
    ]
    gpu = suggested_models(_recorded("windows11_rtx4090_directml.json"))
    assert len(gpu) == len(KNOWN_MODELS) and {item.ep for item in gpu} == {"dml"}

    # An architecture the installed builder does not dispatch is never suggested.
    info = builder_info()
    without_qwen3 = dataclasses.replace(
        info, architectures=tuple(a for a in info.architectures if a != "Qwen3ForCausalLM")
    )
    monkeypatch.setattr("app.builder_info.builder_info", lambda: without_qwen3)
    assert not any("Qwen3" in item.repo_id for item in suggested_models(_recorded("linux_no_gpu.json")))
