"""A user's files are never lost: what the output held while a job ran, --overwrite, killed and cancelled jobs.

Each case of issue 11's "data loss" and "leftovers" lists is one test here, run against the real builder on the
tiny llama checkpoint (conversions in process where the claim is what is tested, a real `main.py` child where a
signal or the command line is).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from app import staging
from app.convert import ConvertRequest, plan_conversion, run_conversion
from app.errors import OutputError
from app.jobs.protocol import Progress
from app.jobs.runner import JobProcess, make_outcome
from app.jobs.worker import os_error_sentence, read_spec
from tests.hostile.contract import ROOT, refused, session_processes, snapshot, staging_left


def plan(source: Path, out: Path, overwrite: bool = False, **request):
    return plan_conversion(
        ConvertRequest(str(source), str(out), preset="fp32", ep="cpu", overwrite=overwrite, check=False, **request),
        usable_eps={"cpu"},
    )


def convert(plan_) -> dict:
    return run_conversion(plan_, lambda message: None)


@pytest.fixture
def forge_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "forge-home"
    monkeypatch.setenv("FORGE_HOME", str(home))
    return home


# --- the output is claimed, not overwritten --------------------------------------------------------------------


def test_files_put_into_the_output_while_a_conversion_runs_are_kept(checkpoints, tmp_path, forge_home):
    out = tmp_path / "out"
    planned = plan(checkpoints("llama"), out)
    out.mkdir()  # the user starts filling the folder after the plan looked at it
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="changed while the job ran") as refusal:
        convert(planned)
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"
    kept = tmp_path / "out.new"
    assert str(kept) in str(refusal.value) and (kept / "forge.json").is_file()
    assert not staging_left(tmp_path)


def test_two_conversions_into_one_new_output_never_replace_each_other(checkpoints, tmp_path, forge_home):
    out = tmp_path / "out"
    first, second = plan(checkpoints("llama"), out), plan(checkpoints("llama"), out)
    convert(first)
    with pytest.raises(OutputError):
        convert(second)
    assert json.loads((out / "forge.json").read_text())["job_id"] == first.request.job_id
    assert json.loads((tmp_path / "out.new" / "forge.json").read_text())["job_id"] == second.request.job_id


def test_an_output_replaced_while_a_build_ran_is_not_replaced_again(checkpoints, tmp_path, forge_home):
    out = tmp_path / "out"
    convert(plan(checkpoints("llama"), out))
    planned = plan(checkpoints("llama"), out, overwrite=True)
    (out / "model.onnx.data").write_bytes(b"changed by someone else")  # same names, other contents
    with pytest.raises(OutputError):
        convert(planned)
    assert (out / "model.onnx.data").read_bytes() == b"changed by someone else"


def test_overwrite_replaces_a_model_only_once_the_new_one_is_in_place(checkpoints, tmp_path, forge_home):
    out = tmp_path / "out"
    convert(plan(checkpoints("llama"), out))
    planned = plan(checkpoints("llama"), out, overwrite=True)
    convert(planned)
    assert json.loads((out / "forge.json").read_text())["job_id"] == planned.request.job_id
    assert sorted(p.name for p in tmp_path.iterdir()) == ["forge-home", "out"]


# --- --overwrite never deletes what is not our own model -------------------------------------------------------


def _home_like(folder: Path) -> Path:
    (folder / "Documents").mkdir(parents=True)
    (folder / "Documents" / "thesis.docx").write_bytes(b"years of work")
    (folder / "genai_config.json").write_text("{}")  # lying: looks like a model at the top
    return folder


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (lambda f: _home_like(f), "holds folders that are not part of a model"),
        (lambda f: (f.mkdir(), (f / "thesis.docx").write_bytes(b"mine")), "is not a converted model"),
        (
            lambda f: (f.mkdir(), (f / "genai_config.json").write_text("{}"), (f / "thesis.docx").write_text("x")),
            "holds files that are not part of the model",
        ),
    ],
    ids=["home-folder", "documents-folder", "model-with-a-document"],
)
def test_overwrite_refuses_a_folder_that_holds_the_users_files(make, said, checkpoints, tmp_path):
    out = tmp_path / "out"
    make(out)
    result = refused(["convert", str(checkpoints("llama")), "-o", str(out), "--ep", "cpu", "--overwrite"], output=out)
    assert said in result.line


@pytest.mark.parametrize("where", ["hub", "."], ids=["hub-cache", "hf-home"])
def test_overwrite_refuses_the_hugging_face_cache(where, checkpoints, tmp_path):
    hf_home = tmp_path / "hf"
    cached = hf_home / "hub" / "models--acme--tiny" / "snapshots" / "0" / "config.json"
    cached.parent.mkdir(parents=True)
    cached.write_text("{}")
    (hf_home / "hub" / "genai_config.json").write_text("{}")  # whatever the cache looks like at the top
    out = hf_home / where
    env = {"HF_HOME": str(hf_home)}
    result = refused(
        ["convert", str(checkpoints("llama")), "-o", str(out), "--ep", "cpu", "--overwrite"],
        output=out,
        watch=[hf_home],
        env=env,
    )
    assert "Hugging Face" in result.line


# --- the job's end is read off the disk ------------------------------------------------------------------------


def test_a_cancel_after_the_model_is_in_place_reports_it_in_place(checkpoints, tmp_path, forge_home):
    """Ctrl+C (or closing the window) while --report measures: the new model is in place, so the job succeeded."""
    out = tmp_path / "out"
    planned = plan(checkpoints("llama"), out, report={})
    measuring = threading.Event()

    def on_message(message) -> None:
        if isinstance(message, Progress) and message.stage in ("measuring", "speed", "drift", "perplexity"):
            measuring.set()

    job = JobProcess("convert", planned.to_dict(), on_message)
    job.start()
    assert measuring.wait(timeout=300), "the job never reached its measuring step"
    job.cancel()
    outcome = job.wait(timeout=30)
    assert outcome.status == "succeeded" and "measuring" in outcome.note
    assert outcome.result["output"] == str(out.resolve())
    assert json.loads((out / "forge.json").read_text())["job_id"] == planned.request.job_id
    assert not staging_left(tmp_path)


def test_a_cancel_before_the_model_is_in_place_is_a_cancel():
    outcome = make_outcome(
        -15, cancelled=True, placed=None, result=None, error=None, peak=0, seconds=1.0, stderr_tail=[], pid=1
    )
    assert outcome.status == "cancelled" and not outcome.note


# --- nothing is left behind --------------------------------------------------------------------------------------


def _start_convert(source: Path, out: Path, home: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "convert", str(source), "-o", str(out), "--ep", "cpu"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "FORGE_HOME": str(home), "HF_HUB_OFFLINE": "1"},
        start_new_session=True,
    )


def _wait_for_staging(folder: Path, child: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not (folder.is_dir() and any(p.name.startswith(staging.STAGING_PREFIX) for p in folder.iterdir())):
        assert child.poll() is None, f"the conversion ended before it staged anything: {child.stderr.read()}"
        assert time.monotonic() < deadline, "no staging folder appeared"
        time.sleep(0.05)
    time.sleep(0.5)  # into the build proper


def _kill_and_wait(child: subprocess.Popen, signum: int, group: bool = False, timeout: float = 30) -> None:
    """Signal main.py (or its whole session) and wait until it and every process it started are gone: the worker
    runs in a session of its own."""
    tree = [psutil.Process(child.pid), *psutil.Process(child.pid).children(recursive=True)]
    (os.killpg if group else os.kill)(child.pid, signum)
    child.wait(timeout=timeout)
    _, alive = psutil.wait_procs(tree, timeout=timeout)
    assert not alive, f"processes left: {alive}"
    assert not session_processes(child.pid)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize(
    ("signum", "name"),
    [
        (signal.SIGKILL, "out"),
        (signal.SIGTERM, "out[1]"),  # glob characters in the name
        (signal.SIGHUP, "out*?"),
        (signal.SIGINT, "[out]"),
    ],
    ids=["SIGKILL", "SIGTERM-glob-name", "SIGHUP-glob-name", "SIGINT-glob-name"],
)
def test_a_killed_or_interrupted_command_line_leaves_nothing(signum, name, checkpoints, tmp_path):
    """The signal goes to main.py alone (a closed terminal, `kill`, the task manager); its worker cleans up."""
    source = checkpoints("llama", num_layers=12, hidden_size=512)
    parent = tmp_path / "new" / "deeper"
    child = _start_convert(source, parent / name, tmp_path / "home")
    _wait_for_staging(parent, child)
    _kill_and_wait(child, signum)
    assert not (tmp_path / "new").exists(), snapshot(tmp_path / "new")  # the parents it made are gone too


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_staging_of_a_job_killed_outright_is_swept_by_the_next_run(checkpoints, tmp_path):
    """The whole process tree killed at once (a power cut, the OOM killer): the next run of anything sweeps."""
    source = checkpoints("llama", num_layers=12, hidden_size=512)
    out = tmp_path / "elsewhere" / "out"
    home = tmp_path / "home"
    child = _start_convert(source, out, home)
    _wait_for_staging(out.parent, child)
    tree = [psutil.Process(child.pid), *psutil.Process(child.pid).children(recursive=True)]
    for process in tree:
        process.kill()  # all at once, as a power cut would
    psutil.wait_procs(tree, timeout=30)
    assert staging_left(out.parent)  # nobody was left to clean up
    env = {**os.environ, "FORGE_HOME": str(home)}
    listed = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "presets"], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert listed.returncode == 0, listed.stderr
    assert not staging_left(out.parent) and not (tmp_path / "elsewhere").exists()
    assert not list((home / "staging").iterdir())


def test_a_cancelled_quantization_leaves_no_staging(tmp_path, forge_home):
    from app.quantize import QuantizeRequest, plan_quantization

    fp32 = tmp_path / "demo-fp32"
    convert(plan("demo", fp32))
    out = tmp_path / "q4"
    request = plan_quantization(QuantizeRequest(str(fp32), str(out), "q4"))
    staged = threading.Event()

    def on_message(message) -> None:
        if isinstance(message, Progress) and message.stage not in ("starting", "reading"):
            staged.set()

    job = JobProcess("quantize", request.to_dict(), on_message)
    job.start()
    assert staged.wait(timeout=300), "the quantization never started"
    job.cancel()
    assert job.wait(timeout=30).status == "cancelled"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo-fp32", "forge-home"]


def test_a_live_jobs_staging_is_never_swept(tmp_path, forge_home):
    root = staging.create(tmp_path / "out", "convert")
    assert staging.sweep(tmp_path / "out") == [] and root.is_dir()
    staging.remove(root, success=False)
    assert not root.exists() and not staging_left(tmp_path)


def test_staging_whose_pid_was_reused_is_swept(tmp_path, forge_home):
    """A pid that now belongs to another process (started at another time) is not the owner."""
    root = staging.create(tmp_path / "out", "convert")
    owner = json.loads((root / staging.OWNER_FILE).read_text())
    owner["started"] -= 3600
    (root / staging.OWNER_FILE).write_text(json.dumps(owner))
    assert staging.sweep(tmp_path / "out") == [root] and not root.exists()


def test_an_old_output_moved_aside_by_a_killed_job_is_put_back(tmp_path, forge_home):
    out = tmp_path / "out"
    root = staging.create(out, "convert")
    out.mkdir()
    (out / "genai_config.json").write_text("{}")
    out.rename(root / "previous")  # the job was killed between the two renames of its claim
    owner = json.loads((root / staging.OWNER_FILE).read_text())
    (root / staging.OWNER_FILE).write_text(json.dumps({**owner, "pid": 2**22 + 7}))
    staging.sweep()
    assert (out / "genai_config.json").is_file() and not root.exists()


def test_a_staging_marker_pointing_elsewhere_is_ignored(tmp_path, forge_home):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "owner.json").write_text(json.dumps({"pid": 2**22 + 7, "started": 0, "output": str(precious)}))
    (forge_home / "staging").mkdir(parents=True)
    (forge_home / "staging" / "x.json").write_text(json.dumps({"path": str(precious)}))
    staging.sweep()
    assert (precious / "owner.json").is_file()


def test_staging_a_cancelled_build_brought_back_is_swept_by_its_marker(tmp_path, forge_home):
    """A cancel removes the worker's staging from its stdin thread while the build runs on: the builder's next
    makedirs can make the folder again, without owner.json; the marker the cancel leaves says whose it was."""
    root = staging.create(tmp_path / "out", "convert")
    not_brought_back = staging.create(tmp_path / "other", "convert")
    staging.remove_mine()  # what the worker does on a cancel
    (root / "model").mkdir(parents=True)  # the builder's os.makedirs(output_dir) a moment later
    marker = forge_home / "staging" / f"{root.name}.json"
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "pid": 2**22 + 7}))  # the worker is gone
    staging.sweep()
    assert not root.exists() and not not_brought_back.exists()
    assert list((forge_home / "staging").iterdir()) == []


# --- the worker's spec and its failures ---------------------------------------------------------------------------


def test_a_spec_larger_than_a_command_line_travels_in_a_file(tmp_path):
    spec = {"padding": "x" * (4 * 1024 * 1024), "request": {"output": str(tmp_path / "out")}}
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    assert read_spec(f"@{path}") == spec and not path.exists()  # read once, then gone


@pytest.mark.parametrize(
    "argument",
    ["@/nonexistent/spec.json", "[1, 2]", "{not json", "", '"a string"', "@"],
    ids=["missing-file", "not-an-object", "not-json", "empty", "a-string", "no-path"],
)
def test_a_bad_spec_is_refused_in_one_sentence(argument):
    worker = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "worker", "convert", argument],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
    )
    assert worker.returncode == 2 and "Traceback" not in worker.stdout + worker.stderr
    (line,) = [json.loads(line) for line in worker.stdout.splitlines() if line.strip()]
    assert "spec cannot be read" in line["message"] and "\n" not in line["message"]


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (OSError(errno.ENOSPC, "No space left on device", "/x/model.onnx.data"), "ran out of space"),
        (OSError(errno.EACCES, "Permission denied", "/x/model.onnx"), "permission denied"),
        (OSError(errno.EROFS, "Read-only file system", "/x/model.onnx"), "permission denied"),
        (FileNotFoundError(errno.ENOENT, "No such file", "/x/config.json"), "is missing"),
        (OSError(errno.EIO, "Input/output error"), "check the disk"),
    ],
    ids=["no-space", "permission", "read-only", "missing", "io"],
)
def test_disk_failures_become_one_sentence(error, said, tmp_path):
    for spec in ({"request": {"output": str(tmp_path / "out")}, "output_bytes": 10**9}, {}, {"request": 3}):
        sentence = os_error_sentence(error, spec)
        assert said in sentence and "\n" not in sentence


def test_a_disk_that_fills_during_the_build_is_one_sentence_and_leaves_nothing(checkpoints, mount_tmpfs, forge_home):
    disk = mount_tmpfs("256m")
    out = disk / "out"
    planned = plan(checkpoints("llama", num_layers=12, hidden_size=512), out)  # fits: the plan checked free space
    filler = disk / "someone-elses-download"
    with filler.open("wb") as file:  # then another program fills the disk
        try:
            while True:
                file.write(b"\0" * (1 << 20))
        except OSError:
            pass
    outcome = JobProcess("convert", planned.to_dict(), lambda message: None)
    outcome.start()
    ended = outcome.wait(timeout=300)
    assert ended.status == "failed" and "ran out of space" in ended.message, ended.message
    assert "\n" not in ended.message and "Traceback" not in ended.message
    assert sorted(p.name for p in disk.iterdir()) == ["someone-elses-download"]


# --- output paths that can never work ----------------------------------------------------------------------------


def _loop(tmp_path: Path) -> Path:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    return tmp_path / "a" / "out"


def _under_a_file(tmp_path: Path) -> Path:
    (tmp_path / "file").write_text("x")
    return tmp_path / "file" / "out"


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (lambda t: t / ("x" * 300), "longer than 255 bytes"),
        (lambda t: t.joinpath(*["d" * 200] * 25), "too long"),
        (_loop, "cannot be resolved"),
        (_under_a_file, "is a file"),
        (lambda t: (t / "f").write_text("x") and t / "f", "is a file"),
    ],
    ids=["long-name", "path-max", "symlink-loop", "under-a-file", "a-file"],
)
def test_an_output_that_cannot_be_made_is_refused_before_anything_is_written(make, said, checkpoints, tmp_path):
    watched = tmp_path / "watched"
    watched.mkdir()
    out = make(watched)
    result = refused(["convert", str(checkpoints("llama")), "-o", str(out), "--ep", "cpu"], watch=[watched])
    assert said in result.line


def test_a_mount_point_is_never_an_output(checkpoints):
    mount = next((p for p in (Path("/dev/shm"), Path("/dev"), Path("/proc")) if os.path.ismount(p)), None)
    if mount is None:
        pytest.skip("no mount point to try here")
    refused(["convert", str(checkpoints("llama")), "-o", str(mount), "--ep", "cpu", "--overwrite"])
