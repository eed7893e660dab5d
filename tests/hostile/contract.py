"""The contract every hostile input must keep, checked in one call.

A refusal through the command line (`refused(...)`) runs `main.py <args>` as a real child in its own session and
asserts all of it:

- exit code 2, exactly one non-empty stderr line, starting `error: `, and no "Traceback" anywhere;
- every watched folder (and the output, and its nearest existing ancestor) hashes the same before and after:
  nothing changed, nothing new (new parent folders included), no `.forge-staging-*` left;
- no process of the child's session is left;
- the canary file is absent: no checkpoint code ran (plant it with `plant_canary`).

In-process refusals (Hypothesis cases call the plan function directly, a child per example is too slow) are
checked with `refused_in_process(fn, *args)`: an InputError whose sentence is one line.

    from tests.hostile.contract import plant_canary, refused

    plant_canary(checkpoint, canary)
    result = refused(["convert", str(checkpoint), "-o", str(out), "--ep", "cpu"], watch=[checkpoint], canary=canary)
    assert "config.json" in result.line
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
STAGING_PREFIX = ".forge-staging-"
EXIT_INPUT = 2
CANARY_MODULE = "forge_canary"
_MAX_SENTENCE = 1000


@dataclass
class Refusal:
    returncode: int
    stdout: str
    stderr: str
    line: str
    """The single `error: …` line, without the prefix."""


def snapshot(root: Path) -> dict[str, str]:
    """Relative path -> sha256 (files), '<dir>', '-> target' (links) or the kind; {'.': '<missing>'} if absent.

    Never opens anything but a regular file: a FIFO in the tree would block the snapshot itself."""
    if not root.exists() and not root.is_symlink():
        return {".": "<missing>"}
    if not root.is_dir() or root.is_symlink():
        return {".": _describe(root)}
    found = {".": "<dir>"}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            found[str(path.relative_to(root))] = _describe(path)
    return found


def _describe(path: Path) -> str:
    if path.is_symlink():
        return f"-> {os.readlink(path)}"
    if path.is_dir():
        return "<dir>"
    if not path.is_file():
        return "<special>"
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def plant_canary(folder: Path, canary: Path, *, pickle_as: str | None = "training_args.bin") -> None:
    """Put code in a checkpoint that writes `canary` if anything runs it: an auto_map module (when config.json is
    a JSON object) and a malicious pickle (`pickle_as`, None for none). `canary` must lie outside watched folders."""
    canary = canary.resolve()
    code = f"from pathlib import Path\nPath({str(canary)!r}).write_text('checkpoint code ran')\n"
    (folder / f"{CANARY_MODULE}.py").write_text(code + "class CanaryConfig: pass\nclass CanaryModel: pass\n")
    config_path = folder / "config.json"
    config = _json_object(config_path)
    if config is not None:
        config["auto_map"] = {
            "AutoConfig": f"{CANARY_MODULE}.CanaryConfig",
            "AutoModelForCausalLM": f"{CANARY_MODULE}.CanaryModel",
        }
        config_path.write_text(json.dumps(config), encoding="utf-8")
    if pickle_as:
        (folder / pickle_as).write_bytes(pickle.dumps(_Payload(code)))


def _json_object(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


class _Payload:
    """Unpickling this runs its code: the classic malicious checkpoint."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str]]:
        return exec, (self.code,)


def existing_ancestor(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def session_processes(session: int) -> list[int]:
    """Live (non-zombie) processes whose session id is `session` (Linux /proc; [] elsewhere)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[3]) == session:
            found.append(int(entry.name))
    return found


def run_main(
    args: Sequence[str], *, env: dict[str, str] | None = None, stdin: str | None = None, timeout: float = 120
) -> tuple[subprocess.CompletedProcess[str], list[int]]:
    """Run main.py in a new session; returns the result and the processes of that session still alive after it."""
    child = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), *args],
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
        start_new_session=True,
    )
    try:
        stdout, stderr = child.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        raise AssertionError(f"main.py {' '.join(args)} did not finish in {timeout} s (hung)") from None
    left = _wait_for_session(child.pid)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr), left


def _wait_for_session(session: int, grace: float = 3.0) -> list[int]:
    """A child's children may need a moment to exit after it; anything still there after `grace` is a leak."""
    deadline = time.monotonic() + grace
    while (left := session_processes(session)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def refused(
    args: Sequence[str],
    *,
    watch: Iterable[Path] = (),
    output: Path | None = None,
    canary: Path | None = None,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 120,
) -> Refusal:
    """Run `main.py args` and assert the whole refusal contract (see the module docstring)."""
    watched = [Path(p) for p in watch]
    if output is not None:
        watched += [Path(output), existing_ancestor(Path(output))]
    before = {str(p): snapshot(p) for p in watched}
    result, left = run_main(args, env=env, stdin=stdin, timeout=timeout)
    shown = f"main.py {' '.join(args)}\nexit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr + result.stdout, shown
    assert result.returncode == EXIT_INPUT, shown
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), shown
    assert_sentence(lines[0][len("error: ") :])
    for path in watched:
        assert snapshot(path) == before[str(path)], f"{path} changed\n{shown}"
        assert not staging_left(path), f"staging left in {path}: {staging_left(path)}\n{shown}"
    assert not left, f"processes left behind: {left}\n{shown}"
    if canary is not None:
        assert not Path(canary).exists(), f"checkpoint code ran (canary {canary} written)\n{shown}"
    return Refusal(result.returncode, result.stdout, result.stderr, lines[0][len("error: ") :])


def staging_left(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    return [str(p) for p in snapshot(root) if Path(p).name.startswith(STAGING_PREFIX)]


def assert_sentence(message: str) -> None:
    """One line a person can read: non-empty, no newline, no traceback, not a wall of text."""
    assert message.strip(), "empty error message"
    assert "\n" not in message, f"more than one line: {message!r}"
    assert "Traceback" not in message, message
    assert len(message) <= _MAX_SENTENCE, f"{len(message)} characters: {message[:200]}…"


def refused_in_process(function: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    """Call `function`, assert it raises app.errors.InputError with one sentence; return the sentence."""
    from app.errors import InputError

    try:
        function(*args, **kwargs)
    except InputError as error:
        assert_sentence(str(error))
        return str(error)
    raise AssertionError(f"{getattr(function, '__name__', function)} accepted the input")
