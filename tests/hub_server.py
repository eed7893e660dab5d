"""A loopback stand-in for the Hugging Face Hub that serves local folders as model repos over real HTTP.

It answers the endpoints huggingface_hub 2.4 calls to read and download a model repo:

- ``GET /api/models/{repo_id}`` and ``/api/models/{repo_id}/revision/{revision}`` (model_info, repo_info);
  ``?blobs=True`` adds sizes and LFS metadata to the siblings, as the Hub does;
- ``GET /api/models?search=...&author=...&sort=downloads|likes&limit=N&expand=...`` (list_models): one page, the
  repos whose id contains the search text (case-insensitive); with ``expand`` only ``_id``, ``id`` and the named
  fields, as the Hub does (``safetensors`` is read from the repo's safetensors headers, ``usedStorage`` summed);
- ``GET /api/models/{repo_id}/tree/{revision}[/{path}]`` (list_repo_tree, used by snapshot_download);
- ``HEAD`` and ``GET /{repo_id}/resolve/{revision}/{filename}`` (hf_hub_download), with X-Repo-Commit, ETag,
  X-Linked-Etag / X-Linked-Size for LFS files, Content-Length, and Range requests for resumed downloads.

Errors carry the X-Error-Code header huggingface_hub turns into its exception classes: RepoNotFound (404),
RevisionNotFound (404), EntryNotFound (404) and GatedRepo (401 without a token, 403 with a token that has not
been granted access). As on the real Hub, a gated repo's metadata and file list are public; only its files are not.

Usage, with the ``hub_server`` fixture (import it into conftest.py)::

    def test_download(hub_server, tmp_path):
        hub_server.add_repo("acme/tiny", folder)                      # public repo
        hub_server.add_repo("acme/locked", folder, gated=True, tokens=["hf_good"])
        hub_server.cut_next_download("acme/tiny", "model.safetensors", after_bytes=11_000_000)
        stall = hub_server.stall_download("acme/tiny", "model.safetensors", after_bytes=1000)  # stall.reached, .release
        listing = hub_server.stall_next_listing()                    # the next search waits for listing.release
        ...                                                           # HF_ENDPOINT points at hub_server.url
        assert hub_server.downloads_of("model.safetensors")           # requests the server answered

The fixture also points HF_HOME, HF_HUB_CACHE and the token file at a fresh temporary folder
(``hub_server.cache_dir`` is the hub cache), removes any HF token from the environment and turns telemetry off.
"""

from __future__ import annotations

import hashlib
import json
import math
import socket
import struct
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".gguf", ".onnx", ".model", ".tiktoken")
LFS_MIN_SIZE = 10 * 1024 * 1024
DEFAULT_BRANCH = "main"
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class RepoFile:
    path: str
    disk_path: Path
    size: int
    blob_id: str  # git sha1 of the content, or of the LFS pointer for LFS files
    lfs_sha256: str | None

    @property
    def etag(self) -> str:
        return self.lfs_sha256 or self.blob_id

    @property
    def pointer_size(self) -> int:
        return len(_lfs_pointer(self.lfs_sha256 or "", self.size))


@dataclass
class HubRepo:
    repo_id: str
    files: dict[str, RepoFile]
    sha: str
    gated: bool = False
    tokens: frozenset[str] = frozenset()
    license: str | None = "apache-2.0"
    downloads: int = 0
    likes: int = 0

    def knows_revision(self, revision: str) -> bool:
        return revision in (DEFAULT_BRANCH, self.sha)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]

    @property
    def range(self) -> str | None:
        return self.headers.get("range")


@dataclass
class _Cut:
    after_bytes: int


@dataclass
class Stall:
    """A download held mid-file: `reached` is set when the server stops sending, `release` lets it go on."""

    after_bytes: int
    reached: threading.Event
    release: threading.Event


class HubServer:
    """The Hub stand-in: a ThreadingHTTPServer on 127.0.0.1 with a free port, serving from its own thread."""

    def __init__(self) -> None:
        self.repos: dict[str, HubRepo] = {}
        self.requests: list[RecordedRequest] = []
        self.cache_dir: Path | None = None
        self._cuts: dict[tuple[str, str], _Cut] = {}
        self._stalls: dict[tuple[str, str], Stall] = {}
        self._every_stall: list[Stall] = []
        self._listing_stall: Stall | None = None
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._httpd.hub = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="hub-server", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        for stall in self._every_stall:
            stall.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def add_repo(
        self,
        repo_id: str,
        folder: str | Path,
        gated: bool = False,
        *,
        tokens: Iterable[str] = (),
        license: str | None = "apache-2.0",
        downloads: int = 0,
        likes: int = 0,
    ) -> HubRepo:
        """Serve every file under folder as repo_id. For a gated repo, only the given tokens get its files."""
        files = {file.path: file for file in _scan(Path(folder))}
        repo = HubRepo(
            repo_id=repo_id,
            files=files,
            sha=_commit_sha(repo_id, files.values()),
            gated=gated,
            tokens=frozenset(tokens),
            license=license,
            downloads=downloads,
            likes=likes,
        )
        with self._lock:
            self.repos[repo_id] = repo
        return repo

    def cut_next_download(self, repo_id: str, filename: str, after_bytes: int) -> None:
        """Drop the connection of the next GET of that file after sending after_bytes of it."""
        with self._lock:
            self._cuts[(repo_id, filename)] = _Cut(after_bytes)

    def stall_download(self, repo_id: str, filename: str, after_bytes: int) -> Stall:
        """Hold the next GET of that file after after_bytes until the returned stall is released (or 60 s pass)."""
        stall = Stall(after_bytes, threading.Event(), threading.Event())
        with self._lock:
            self._stalls[(repo_id, filename)] = stall
            self._every_stall.append(stall)
        return stall

    def stall_next_listing(self) -> Stall:
        """Hold the next /api/models answer until the returned stall is released (or 60 s pass)."""
        stall = Stall(0, threading.Event(), threading.Event())
        with self._lock:
            self._listing_stall = stall
            self._every_stall.append(stall)
        return stall

    def downloads_of(self, filename: str) -> list[RecordedRequest]:
        """The GET requests for a file's content (any repo, any revision)."""
        suffix = "/" + filename
        return [r for r in self.requests if r.method == "GET" and "/resolve/" in r.path and r.path.endswith(suffix)]

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _take_cut(self, repo_id: str, filename: str) -> _Cut | None:
        with self._lock:
            return self._cuts.pop((repo_id, filename), None)

    def _take_stall(self, repo_id: str, filename: str) -> Stall | None:
        with self._lock:
            return self._stalls.pop((repo_id, filename), None)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeHub/1.0"

    @property
    def hub(self) -> HubServer:
        return self.server.hub  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class names it so
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._route()

    def do_HEAD(self) -> None:  # noqa: N802
        self._route()

    def _route(self) -> None:
        split = urlsplit(self.path)
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.hub._record(RecordedRequest(self.command, unquote(split.path), headers))
        parts = split.path.strip("/").split("/")
        query = parse_qs(split.query)
        if parts == ["api", "models"]:
            self._list_models(query)
        elif parts[:2] == ["api", "models"] and len(parts) >= 4:
            self._api(parts[2:], query)
        elif len(parts) >= 5 and parts[2] == "resolve":
            self._resolve(f"{parts[0]}/{parts[1]}", unquote(parts[3]), unquote("/".join(parts[4:])))
        else:
            self._send_error(404, None, "Not Found")

    # --- /api/models/... ---------------------------------------------------------------------------------------------

    def _api(self, parts: list[str], query: dict[str, list[str]]) -> None:
        repo = self._repo_or_error(f"{parts[0]}/{parts[1]}")
        if repo is None:
            return
        rest = parts[2:]
        if not rest:
            self._model_info(repo, DEFAULT_BRANCH, query)
        elif rest[0] == "revision" and len(rest) == 2:
            self._model_info(repo, unquote(rest[1]), query)
        elif rest[0] == "tree" and len(rest) >= 2:
            self._tree(repo, unquote(rest[1]), unquote("/".join(rest[2:])), query)
        else:
            self._send_error(404, None, "Not Found")

    def _list_models(self, query: dict[str, list[str]]) -> None:
        search = (query.get("search") or [""])[0].lower()
        author = (query.get("author") or [""])[0]
        with self.hub._lock:
            repos = list(self.hub.repos.values())
            stall, self.hub._listing_stall = self.hub._listing_stall, None
        if stall is not None:
            stall.reached.set()
            stall.release.wait(timeout=60)
        found = [repo for repo in repos if search in repo.repo_id.lower()]
        if author:
            found = [repo for repo in found if repo.repo_id.split("/")[0] == author]
        sort = (query.get("sort") or [""])[0]
        if sort in ("downloads", "likes"):
            found.sort(key=lambda repo: repo.downloads if sort == "downloads" else repo.likes, reverse=True)
        limit = int((query.get("limit") or [1000])[0])
        expand = query.get("expand") or query.get("expand[]") or []
        self._send_json([_listing_item(repo, expand) for repo in found[:limit]], {})

    def _model_info(self, repo: HubRepo, revision: str, query: dict[str, list[str]]) -> None:
        if not self._revision_ok(repo, revision):
            return
        with_blobs = _flag(query, "blobs")
        tags = ["transformers", "safetensors", "text-generation"]
        if repo.license:
            tags.append(f"license:{repo.license}")
        body = {
            "_id": repo.sha[:24],
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": repo.sha,
            "lastModified": "2025-01-01T00:00:00.000Z",
            "createdAt": "2025-01-01T00:00:00.000Z",
            "private": False,
            "gated": "manual" if repo.gated else False,
            "disabled": False,
            "downloads": repo.downloads,
            "likes": 0,
            "library_name": "transformers",
            "pipeline_tag": "text-generation",
            "tags": tags,
            "cardData": {"license": repo.license} if repo.license else {},
            "siblings": [_sibling(file, with_blobs) for file in sorted(repo.files.values(), key=lambda f: f.path)],
        }
        self._send_json(body, {"X-Repo-Commit": repo.sha})

    def _tree(self, repo: HubRepo, revision: str, folder: str, query: dict[str, list[str]]) -> None:
        if not self._revision_ok(repo, revision):
            return
        prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
        recursive = _flag(query, "recursive")
        entries: dict[str, dict[str, Any]] = {}
        for file in sorted(repo.files.values(), key=lambda f: f.path):
            if not file.path.startswith(prefix):
                continue
            folders = file.path[len(prefix) :].split("/")[:-1]
            shown = len(folders) if recursive else min(len(folders), 1)
            for depth in range(1, shown + 1):
                path = prefix + "/".join(folders[:depth])
                entries.setdefault(path, {"type": "directory", "oid": _git_blob_sha(path.encode()), "size": 0})
            if recursive or not folders:
                entries[file.path] = _tree_file(file)
        if prefix and not entries:
            self._send_error(404, "EntryNotFound", f"{folder} does not exist on {revision}", repo.sha)
            return
        self._send_json([{**entry, "path": path} for path, entry in entries.items()], {"X-Repo-Commit": repo.sha})

    # --- /{repo_id}/resolve/{revision}/{filename} --------------------------------------------------------------------

    def _resolve(self, repo_id: str, revision: str, filename: str) -> None:
        repo = self._repo_or_error(repo_id)
        if repo is None or not self._revision_ok(repo, revision) or not self._access_ok(repo):
            return
        file = repo.files.get(filename)
        if file is None:
            self._send_error(404, "EntryNotFound", f"{filename} does not exist on {revision}", repo.sha)
            return
        headers = {
            "X-Repo-Commit": repo.sha,
            "ETag": f'"{file.etag}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        if file.lfs_sha256:
            headers |= {"X-Linked-Etag": f'"{file.etag}"', "X-Linked-Size": str(file.size)}
        byte_range = _parse_range(self.headers.get("Range"), file.size)
        if byte_range == "invalid":
            self._send_bytes(416, b"", {**headers, "Content-Range": f"bytes */{file.size}"})
            return
        start, end = byte_range or (0, file.size - 1)
        status = 206 if byte_range else 200
        if byte_range:
            headers["Content-Range"] = f"bytes {start}-{end}/{file.size}"
        cut = self.hub._take_cut(repo.repo_id, filename) if self.command == "GET" else None
        stall = self.hub._take_stall(repo.repo_id, filename) if self.command == "GET" else None
        self._send_file(status, file.disk_path, start, end, headers, cut, stall)

    def _copy(self, stream: Any, budget: int) -> int:
        sent = 0
        while sent < budget:
            chunk = stream.read(min(_CHUNK, budget - sent))
            if not chunk:
                break
            self.wfile.write(chunk)
            sent += len(chunk)
        self.wfile.flush()
        return sent

    # --- checks ------------------------------------------------------------------------------------------------------

    def _repo_or_error(self, repo_id: str) -> HubRepo | None:
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            self._send_error(404, "RepoNotFound", "Repository not found")
        return repo

    def _revision_ok(self, repo: HubRepo, revision: str) -> bool:
        if repo.knows_revision(revision):
            return True
        self._send_error(404, "RevisionNotFound", "Invalid rev id: " + revision)
        return False

    def _access_ok(self, repo: HubRepo) -> bool:
        if not repo.gated:
            return True
        authorization = self.headers.get("Authorization", "")
        token = authorization.removeprefix("Bearer ").strip() if authorization else ""
        if not token:
            message = f"Access to model {repo.repo_id} is restricted. You must have access to it and be authenticated."
            self._send_error(401, "GatedRepo", message)
            return False
        if token not in repo.tokens:
            message = f"Access to model {repo.repo_id} is restricted and you are not in the authorized list."
            self._send_error(403, "GatedRepo", message)
            return False
        return True

    # --- responses ---------------------------------------------------------------------------------------------------

    def _send_error(self, status: int, code: str | None, message: str, commit: str | None = None) -> None:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        if commit:
            headers["X-Repo-Commit"] = commit
        self._send_json({"error": message}, headers, status)

    def _send_json(self, body: Any, headers: dict[str, str], status: int = 200) -> None:
        self._send_bytes(status, json.dumps(body).encode(), {**headers, "Content-Type": "application/json"})

    def _send_bytes(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_file(
        self,
        status: int,
        path: Path,
        start: int,
        end: int,
        headers: dict[str, str],
        cut: _Cut | None,
        stall: Stall | None = None,
    ) -> None:
        length = end - start + 1
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(length)}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        budget = length if cut is None else min(length, cut.after_bytes)
        try:
            with path.open("rb") as stream:
                stream.seek(start)
                if stall is not None:
                    budget -= self._copy(stream, min(stall.after_bytes, budget))
                    stall.reached.set()
                    stall.release.wait(timeout=60)
                self._copy(stream, budget)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            return
        if cut is not None:
            # The declared Content-Length is not reached: the client sees the connection drop mid-file.
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)


# --- repo contents ----------------------------------------------------------------------------------------------------


def _scan(folder: Path) -> Iterator[RepoFile]:
    for disk_path in sorted(folder.rglob("*")):
        relative = disk_path.relative_to(folder)
        if not disk_path.is_file() or ".git" in relative.parts:
            continue
        size = disk_path.stat().st_size
        if disk_path.suffix in LFS_SUFFIXES or size >= LFS_MIN_SIZE:
            sha256 = _file_digest(disk_path, hashlib.sha256())
            yield RepoFile(relative.as_posix(), disk_path, size, _git_blob_sha(_lfs_pointer(sha256, size)), sha256)
        else:
            yield RepoFile(relative.as_posix(), disk_path, size, _git_blob_sha(disk_path.read_bytes()), None)


def _file_digest(path: Path, digest: Any) -> str:
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _git_blob_sha(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def _lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _commit_sha(repo_id: str, files: Iterable[RepoFile]) -> str:
    listing = "\n".join(f"{file.path} {file.etag}" for file in sorted(files, key=lambda f: f.path))
    return hashlib.sha1(f"{repo_id}\n{listing}".encode()).hexdigest()


def _sibling(file: RepoFile, with_blobs: bool) -> dict[str, Any]:
    sibling: dict[str, Any] = {"rfilename": file.path}
    if with_blobs:
        sibling |= {"size": file.size, "blobId": file.blob_id}
        if file.lfs_sha256:
            sibling["lfs"] = {"size": file.size, "sha256": file.lfs_sha256, "pointerSize": file.pointer_size}
    return sibling


def _listing_item(repo: HubRepo, expand: list[str]) -> dict[str, Any]:
    """One model of /api/models: the Hub's default fields, or with expand only _id, id and the fields named."""
    fields: dict[str, Any] = {
        "author": repo.repo_id.split("/")[0],
        "sha": repo.sha,
        "createdAt": "2025-01-01T00:00:00.000Z",
        "lastModified": "2025-01-01T00:00:00.000Z",
        "private": False,
        "gated": "manual" if repo.gated else False,
        "disabled": False,
        "downloads": repo.downloads,
        "likes": repo.likes,
        "trendingScore": 0,
        "library_name": "transformers",
        "pipeline_tag": "text-generation",
        "tags": [
            "transformers",
            "safetensors",
            "text-generation",
            *([f"license:{repo.license}"] if repo.license else []),
        ],
        "cardData": {"license": repo.license} if repo.license else {},
        "usedStorage": sum(file.size for file in repo.files.values()),
    }
    safetensors = _safetensors_parameters(repo)
    if safetensors is not None:
        fields["safetensors"] = safetensors
    default = ("likes", "trendingScore", "private", "downloads", "tags", "pipeline_tag", "library_name", "createdAt")
    chosen = expand or default
    item = {"_id": repo.sha[:24], "id": repo.repo_id}
    item |= {name: fields[name] for name in chosen if name in fields}
    if not expand:
        item["modelId"] = repo.repo_id
    return item


def _safetensors_parameters(repo: HubRepo) -> dict[str, Any] | None:
    """{"parameters": {dtype: count}, "total": count} from the repo's safetensors headers; None without any."""
    parameters: dict[str, int] = {}
    for file in repo.files.values():
        if not file.path.endswith(".safetensors"):
            continue
        try:
            with file.disk_path.open("rb") as stream:
                header = json.loads(stream.read(struct.unpack("<Q", stream.read(8))[0]))
        except (OSError, ValueError, struct.error):
            return None
        for name, tensor in header.items():
            if name != "__metadata__":
                count = math.prod(tensor["shape"])
                parameters[tensor["dtype"]] = parameters.get(tensor["dtype"], 0) + count
    return {"parameters": parameters, "total": sum(parameters.values())} if parameters else None


def _tree_file(file: RepoFile) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": "file", "oid": file.blob_id, "size": file.size}
    if file.lfs_sha256:
        entry["lfs"] = {"oid": file.lfs_sha256, "size": file.size, "pointerSize": file.pointer_size}
    return entry


def _flag(query: dict[str, list[str]], name: str) -> bool:
    return any(value.lower() in ("1", "true") for value in query.get(name, []))


def _parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """(start, end) for a single "bytes=start-[end]" range, None without one, "invalid" when unsatisfiable."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header.removeprefix("bytes=").partition("-")
    if not first:  # suffix range "bytes=-N"
        count = int(last)
        return (max(size - count, 0), size - 1) if count else "invalid"
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    return (start, end) if start <= end else "invalid"


# --- environment and fixture ------------------------------------------------------------------------------------------


def closed_port_url() -> str:
    """The URL of a loopback port nothing listens on: connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def isolate_hf_home(monkeypatch: pytest.MonkeyPatch, home: Path, endpoint: str) -> Path:
    """Point huggingface_hub at endpoint and at a private HF home; return its hub cache folder.

    huggingface_hub copies these environment variables into huggingface_hub.constants when it is first imported,
    so both the variables and the constants are set: it works whether or not it was imported already.
    """
    cache = home / "hub"
    cache.mkdir(parents=True, exist_ok=True)
    token_path = home / "token"
    environment = {
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(cache),
        "HF_TOKEN_PATH": str(token_path),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_DISABLE_SYMLINKS_WARNING": "1",
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)

    from huggingface_hub import constants, hf_api

    constants_values = {
        "ENDPOINT": endpoint,
        "HUGGINGFACE_CO_URL_TEMPLATE": endpoint + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(cache),
        "HF_TOKEN_PATH": str(token_path),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        "HF_HUB_DISABLE_TELEMETRY": True,
        "HF_HUB_DISABLE_PROGRESS_BARS": True,
        "HF_HUB_OFFLINE": False,
    }
    for name, value in constants_values.items():
        monkeypatch.setattr(constants, name, value)
    # The module-level HfApi behind huggingface_hub.model_info() & co. kept the endpoint it was created with.
    monkeypatch.setattr(hf_api.api, "endpoint", endpoint)
    return cache


@pytest.fixture
def hub_server(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    server = HubServer().start()
    server.cache_dir = isolate_hf_home(monkeypatch, tmp_path_factory.mktemp("hf_home"), server.url)
    try:
        yield server
    finally:
        server.stop()
