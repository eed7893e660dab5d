"""app.library on real folders, Hub search and the download worker job against the loopback Hub, the token store."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError

from app.errors import HubError, InputError
from app.hub import clear_token, download_checkpoint, get_token, hub_model_summary, search_models, set_token
from app.jobs.protocol import Error, Message, Progress
from app.jobs.runner import run_job, worker_command
from app.library import Library, LibraryEntry
from app.paths import demo_checkpoint, models_dir
from tests.hub_server import HubServer, closed_port_url, hub_server  # noqa: F401 - the fixture

DEMO_REPO = "acme/demo-llama"
GATED_REPO = "acme/locked-llama"
GRANTED = "hf_granted_token_123"
DEMO_WEIGHT_BYTES = 1049728 * 4  # the demo's float32 parameters, as its safetensors header says


class FileKeyring(KeyringBackend):
    """A credential store in a JSON file named by FORGE_TEST_KEYRING, so a worker child can share the test's store."""

    priority = 1  # type: ignore[assignment] - keyring declares it as a class property

    def _load(self) -> dict[str, str]:
        path = Path(os.environ["FORGE_TEST_KEYRING"])
        return json.loads(path.read_text()) if path.is_file() else {}

    def _store(self, data: dict[str, str]) -> None:
        Path(os.environ["FORGE_TEST_KEYRING"]).write_text(json.dumps(data))

    def get_password(self, service: str, username: str) -> str | None:
        return self._load().get(f"{service}/{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        self._store({**self._load(), f"{service}/{username}": password})

    def delete_password(self, service: str, username: str) -> None:
        data = self._load()
        if data.pop(f"{service}/{username}", None) is None:
            raise PasswordDeleteError("no such password")
        self._store(data)


@pytest.fixture
def credential_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """FileKeyring in this process and, through PYTHON_KEYRING_BACKEND, in every worker child; never the real store."""
    store = tmp_path / "keyring.json"
    monkeypatch.setenv("FORGE_TEST_KEYRING", str(store))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", f"{FileKeyring.__module__}.FileKeyring")
    previous = keyring.get_keyring()
    keyring.set_keyring(FileKeyring())
    try:
        yield store
    finally:
        keyring.set_keyring(previous)


@pytest.fixture(autouse=True)
def forge_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "forge-home"
    monkeypatch.setenv("FORGE_HOME", str(home))
    return home


@pytest.fixture
def library(tmp_path: Path) -> Library:
    return Library(tmp_path / "library.json")


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    return Path(shutil.copytree(demo_checkpoint(), tmp_path / "models" / "demo-llama"))


def make_onnx_folder(folder: Path, *, record: bool = True, provider: str | None = None) -> Path:
    folder.mkdir(parents=True)
    providers = [{provider: {}}] if provider else []
    decoder = {"filename": "model.onnx", "session_options": {"provider_options": providers}}
    genai = {"model": {"type": "llama", "context_length": 512, "vocab_size": 1024, "decoder": decoder}}
    (folder / "genai_config.json").write_text(json.dumps(genai))
    (folder / "model.onnx").write_bytes(b"\0" * 2048)
    if record:
        manifest = {
            "format": 1,
            "created": "2026-11-25T13:26:07+00:00",
            "source": {"kind": "demo", "path": "/somewhere/demo"},
            "checkpoint": {"architecture": "LlamaForCausalLM", "parameters": 1049728},
            "preset": "int4",
            "options": {"precision": "int4", "execution_provider": "cpu", "extra_options": {"int4_block_size": 32}},
            "check": {"verdict": "ran", "sample": " shop."},
            "size_bytes": 1257708,
        }
        (folder / "forge.json").write_text(json.dumps(manifest))
    return folder


def paths(entries: list[LibraryEntry]) -> list[str]:
    return [entry.path for entry in entries]


# --- adding folders --------------------------------------------------------------------------------------------------


def test_add_a_checkpoint_folder(library: Library, demo: Path) -> None:
    (entry,) = library.add_folder(demo)
    assert (entry.kind, entry.origin, entry.name, entry.reason) == ("checkpoint", "folder", "demo-llama", None)
    assert entry.info["architecture"] == "LlamaForCausalLM"
    assert entry.info["parameters"] == 1049728 and entry.info["tokenizer"] and entry.info["builder_supported"]
    assert paths(library.entries()) == [str(demo.resolve())]


def test_add_an_onnx_folder_made_here(library: Library, tmp_path: Path) -> None:
    (entry,) = library.add_folder(make_onnx_folder(tmp_path / "demo-int4"))
    assert entry.kind == "onnx"
    info = entry.info
    assert (info["preset"], info["provider"], info["check"], info["size_bytes"]) == ("int4", "cpu", "ran", 1257708)
    assert info["made_by_forge"] and info["created"].startswith("2026-11-25")
    assert info["options"]["extra_options"] == {"int4_block_size": 32}


def test_an_onnx_folder_without_forge_json_is_read_from_genai_config(library: Library, tmp_path: Path) -> None:
    (entry,) = library.add_folder(make_onnx_folder(tmp_path / "phi-dml", record=False, provider="dml"))
    info = entry.info
    assert entry.kind == "onnx" and not info["made_by_forge"]
    assert (info["model_type"], info["provider"], info["context_length"]) == ("llama", "dml", 512)
    assert info["onnx_files"] == ["model.onnx"] and info["size_bytes"] > 2048


def test_add_a_folder_of_models_one_level_down(library: Library, demo: Path, tmp_path: Path) -> None:
    parent = demo.parent
    make_onnx_folder(parent / "demo-int4")
    (parent / "notes").mkdir()
    added = library.add_folder(parent)
    assert sorted(entry.kind for entry in added) == ["checkpoint", "onnx"]
    assert library.folders == [str(parent.resolve())]
    make_onnx_folder(parent / "demo-fp32")  # appears at the next listing: the folder is what is remembered
    assert [entry.name for entry in library.entries()] == ["demo-fp32", "demo-int4", "demo-llama"]


@pytest.mark.parametrize(
    ("make", "sentence"),
    [
        (lambda tmp: tmp / "missing", "does not exist"),
        (lambda tmp: (tmp / "empty").mkdir() or tmp / "empty", "holds no checkpoint (config.json) or ONNX GenAI"),
        (lambda tmp: (tmp / "f.txt").write_text("x") and tmp / "f.txt", "is a file"),
    ],
)
def test_a_folder_without_models_is_refused_in_one_sentence(library: Library, tmp_path: Path, make, sentence) -> None:
    with pytest.raises(InputError, match=sentence.replace("(", r"\(").replace(")", r"\)")):
        library.add_folder(make(tmp_path))
    assert library.entries() == [] and not library.path.exists()


# --- broken folders --------------------------------------------------------------------------------------------------


def test_a_broken_config_comes_back_with_its_reason(library: Library, demo: Path) -> None:
    (demo / "config.json").write_text("{not json")
    (entry,) = library.add_folder(demo)
    assert entry.kind == "broken" and entry.kind_hint == "checkpoint"
    assert "config.json is not valid JSON" in entry.reason and "re-download" in entry.reason
    assert library.entries()[0].reason == entry.reason


def test_a_checkpoint_cut_short_is_broken(library: Library, demo: Path) -> None:
    weights = demo / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100_000])
    (entry,) = library.add_folder(demo)
    assert entry.kind == "broken" and "is cut short" in entry.reason


def test_a_deleted_folder_is_listed_as_broken(library: Library, demo: Path) -> None:
    library.add_folder(demo)
    shutil.rmtree(demo)
    (entry,) = library.entries()
    assert entry.kind == "broken" and entry.path == str(demo.resolve())
    assert "no longer exists" in entry.reason and "remove it from the library" in entry.reason


def test_an_onnx_folder_missing_its_model_is_broken(library: Library, tmp_path: Path) -> None:
    folder = make_onnx_folder(tmp_path / "demo-int4")
    (folder / "model.onnx").unlink()
    (entry,) = library.add_folder(folder)
    assert entry.kind == "broken" and entry.kind_hint == "onnx" and "lacks model.onnx" in entry.reason
    (folder / "model.onnx").write_bytes(b"x")
    (folder / "forge.json").write_text("{")
    assert "forge.json is not valid JSON" in library.entries()[0].reason


# --- persistence -----------------------------------------------------------------------------------------------------


def test_the_library_persists_across_instances(library: Library, demo: Path, tmp_path: Path) -> None:
    onnx = make_onnx_folder(tmp_path / "demo-int4")
    library.add_folder(demo)
    library.add_folder(onnx)
    library.add_folder(demo)  # added twice, remembered once
    assert Library(library.path).folders == [str(onnx.resolve()), str(demo.resolve())]
    Library(library.path).remove(onnx)
    assert paths(Library(library.path).entries()) == [str(demo.resolve())]
    assert sorted(path.name for path in library.path.parent.glob("*library*")) == ["library.json"]  # no temp files


def test_removing_a_model_inside_an_added_folder_hides_it(library: Library, demo: Path) -> None:
    make_onnx_folder(demo.parent / "demo-int4")
    library.add_folder(demo.parent)
    library.remove(demo)
    assert [entry.name for entry in Library(library.path).entries()] == ["demo-int4"]
    library.add_folder(demo)
    assert {entry.name for entry in library.entries()} == {"demo-int4", "demo-llama"}


def test_an_unreadable_library_file_is_kept_aside(library: Library) -> None:
    library.path.write_text("[1, 2")
    assert Library(library.path).entries() == []
    assert library.path.with_name("library.json.unreadable").read_text() == "[1, 2"


def test_default_location_and_converted_outputs(forge_home: Path, tmp_path: Path) -> None:
    output = make_onnx_folder(models_dir() / "demo-int4")
    make_onnx_folder(models_dir() / "variants" / "demo-fp32")
    make_onnx_folder(models_dir() / ".forge-staging-demo-x")  # a build in progress is not listed
    library = Library()
    assert library.path == forge_home / "library.json"
    entries = library.entries()
    assert [(entry.name, entry.origin) for entry in entries] == [("demo-int4", "converted"), ("demo-fp32", "converted")]
    (entry,) = library.add_folder(output)  # what the window does after a conversion
    assert entry.origin == "converted" and len(library.entries()) == 2


# --- the Hugging Face cache -----------------------------------------------------------------------------------------


@pytest.fixture
def hub(hub_server: HubServer, tmp_path: Path) -> HubServer:  # noqa: F811 - pytest injects the imported fixture
    hub_server.add_repo(DEMO_REPO, demo_checkpoint(), license="mit", downloads=50, likes=3)
    hub_server.add_repo(GATED_REPO, demo_checkpoint(), gated=True, tokens=[GRANTED], downloads=900)
    hub_server.add_repo("acme/other-model", demo_checkpoint(), license=None, downloads=7)
    return hub_server


def test_scan_hf_cache_lists_downloaded_snapshots(hub: HubServer, library: Library) -> None:
    download = download_checkpoint(DEMO_REPO)
    hub_model_summary("acme/other-model")  # caches config.json alone: nothing one can convert
    (entry,) = library.scan_hf_cache()
    assert (entry.kind, entry.origin, entry.name) == ("checkpoint", "hf-cache", DEMO_REPO)
    assert entry.path == str(download.path) and entry.revision == download.revision_sha
    assert entry.repo_id == DEMO_REPO and entry.info["architecture"] == "LlamaForCausalLM"
    assert library.scan_hf_cache(hub.cache_dir) == [entry]
    library.add_folder(download.path, origin="hub", repo_id=DEMO_REPO, revision=download.revision_sha)
    (listed,) = library.all_entries()  # once, as the download the user made
    assert (listed.origin, listed.name, listed.revision) == ("hub", DEMO_REPO, download.revision_sha)


def test_scan_hf_cache_without_a_cache(library: Library, tmp_path: Path) -> None:
    assert library.scan_hf_cache(tmp_path / "no-cache") == []


# --- search ----------------------------------------------------------------------------------------------------------


def test_search_lists_matching_models_most_downloaded_first(hub: HubServer) -> None:
    found = search_models("LLAMA")
    assert [result.repo_id for result in found] == [GATED_REPO, DEMO_REPO]
    gated, demo = found
    assert (demo.downloads, demo.likes, demo.license, demo.gated) == (50, 3, "mit", False)
    assert demo.size_bytes == DEMO_WEIGHT_BYTES and demo.pipeline_tag == "text-generation"
    assert gated.gated and gated.license == "apache-2.0"
    assert [result.repo_id for result in search_models("", limit=1)] == [GATED_REPO]
    assert search_models("nothing-like-this") == []


def test_search_without_network_says_so(hub: HubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub.utils import _http

    monkeypatch.setattr(_http, "time", SimpleNamespace(sleep=lambda seconds: None))  # its retries would wait 23 s
    monkeypatch.setenv("HF_ENDPOINT", closed_port_url())
    with pytest.raises(HubError, match="^cannot reach the Hugging Face Hub"):
        search_models("llama")


# --- token -----------------------------------------------------------------------------------------------------------


def test_token_round_trip_through_the_credential_store(credential_store: Path) -> None:
    assert get_token() is None
    set_token(f"  {GRANTED}\n")
    assert get_token() == GRANTED
    assert json.loads(credential_store.read_text()) == {"onnx-forge/huggingface": GRANTED}
    clear_token()
    clear_token()  # nothing saved: nothing to do
    assert get_token() is None
    with pytest.raises(HubError, match="the token is empty"):
        set_token("  ")


def test_without_a_credential_store_the_token_is_not_saved() -> None:
    from keyring.backends.fail import Keyring as NoStore

    previous = keyring.get_keyring()
    keyring.set_keyring(NoStore())
    try:
        assert get_token() is None
        with pytest.raises(HubError, match="^the token cannot be saved: the credential store does not answer"):
            set_token(GRANTED)
    finally:
        keyring.set_keyring(previous)


# --- the download worker job -----------------------------------------------------------------------------------------


def run_download(repo_id: str, env: dict[str, str] | None = None) -> tuple[object, list[Message]]:
    messages: list[Message] = []
    outcome = run_job("download", {"repo_id": repo_id, "revision": None}, messages.append, env)
    return outcome, messages


def test_download_job_reports_progress_and_returns_the_snapshot(hub: HubServer, credential_store: Path) -> None:
    outcome, messages = run_download(DEMO_REPO)
    assert outcome.status == "succeeded", outcome.message
    progress = [message for message in messages if isinstance(message, Progress)]
    assert progress[-1].percent == 100.0 and progress[-1].stage == "downloading"
    assert progress[-1].detail == "4.3 of 4.3 MB"
    assert [message.percent for message in progress] == sorted(message.percent for message in progress)
    folder = Path(outcome.result["path"])
    assert (folder / "config.json").is_file() and folder.is_relative_to(hub.cache_dir)
    assert outcome.result["revision"] == hub.repos[DEMO_REPO].sha and outcome.result["offline"] is False


def test_download_job_takes_the_token_from_the_credential_store(hub: HubServer, credential_store: Path) -> None:
    outcome, messages = run_download(GATED_REPO)
    errors = [message for message in messages if isinstance(message, Error)]
    assert outcome.status == "failed" and errors[0].kind == "HubError"
    assert outcome.message == f"{GATED_REPO} is gated: add a Hugging Face token in settings"
    set_token(GRANTED)
    outcome, messages = run_download(GATED_REPO)
    assert outcome.status == "succeeded", outcome.message
    assert any(request.headers.get("authorization") == f"Bearer {GRANTED}" for request in hub.requests)
    assert not any(GRANTED in argument for argument in worker_command("download", {"repo_id": GATED_REPO}))
    assert not any(GRANTED in str(message) for message in messages)


def test_download_job_takes_a_token_from_its_environment(hub: HubServer, credential_store: Path) -> None:
    outcome, _ = run_download(GATED_REPO, env={"HF_TOKEN": "hf_not_granted"})
    assert outcome.message == f"{GATED_REPO} is gated: accept its licence on https://huggingface.co/{GATED_REPO} first"
    outcome, _ = run_download(GATED_REPO, env={"HF_TOKEN": GRANTED})
    assert outcome.status == "succeeded", outcome.message


def test_download_job_of_a_missing_repo(hub: HubServer, credential_store: Path) -> None:
    outcome, _ = run_download("acme/nope")
    assert outcome.status == "failed"
    assert outcome.message == "no model named acme/nope on the Hugging Face Hub; check the spelling"
