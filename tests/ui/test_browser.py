"""BrowserPane (drops, groups, details) and HubDialog (search, download in a real worker child, cancel)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import psutil
import pytest
from PySide6.QtCore import QMimeData, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QApplication, QFileDialog

from app.hub import download_checkpoint
from app.library import Library, LibraryEntry
from app.paths import demo_checkpoint
from tests.hub_server import HubServer, closed_port_url, hub_server  # noqa: F401 - the fixture
from tests.test_library import DEMO_REPO, GATED_REPO, GRANTED, credential_store, make_onnx_folder  # noqa: F401
from tests.ui.conftest import drag_enter_and_drop
from ui.browser import BrowserPane
from ui.widgets.hub_dialog import HubDialog

DOWNLOAD_TIMEOUT_MS = 60_000
# The offscreen platform says so for every top-level window shown; it says nothing about the code under test.
pytestmark = pytest.mark.qt_log_ignore(r"^This plugin does not support (propagateSizeHints|raise)\(\)$")


@pytest.fixture
def pane(qtbot, tmp_path: Path) -> BrowserPane:
    widget = BrowserPane(Library(tmp_path / "library.json"))
    qtbot.addWidget(widget)
    return widget


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    return Path(shutil.copytree(demo_checkpoint(), tmp_path / "drops" / "demo-llama"))


def drop(pane: BrowserPane, *urls: QUrl) -> QDropEvent:
    """A real drag-enter and drop of these URLs on the pane, as the window system delivers them."""
    mime = QMimeData()
    mime.setUrls(list(urls))
    enter, event = drag_enter_and_drop(pane, mime)
    QApplication.sendEvent(pane, enter)
    if enter.isAccepted():
        QApplication.sendEvent(pane, event)
    return event


def drop_and_wait(qtbot, pane: BrowserPane, folder: Path) -> QDropEvent:
    with qtbot.waitSignal(pane.refreshed, timeout=10_000):
        event = drop(pane, QUrl.fromLocalFile(str(folder)))
    return event


def details_text(pane: BrowserPane) -> str:
    return pane.details.toPlainText()


# --- BrowserPane -----------------------------------------------------------------------------------------------------


def test_a_dropped_checkpoint_appears_and_its_details_show(qtbot, pane: BrowserPane, demo: Path) -> None:
    selected: list[LibraryEntry | None] = []
    pane.selection_changed.connect(selected.append)
    assert drop_and_wait(qtbot, pane, demo).isAccepted()
    (entry,) = pane.entries()
    assert entry.kind == "checkpoint" and entry.path == str(demo.resolve())
    assert pane.selected_entry() == entry and selected == [entry]  # the new entry is selected
    text = details_text(pane)
    for expected in ("LlamaForCausalLM", "llama", "1.05 M (exact, from the weights)", "float32", "Chat template"):
        assert expected in text
    assert "Builder support\nyes (onnxruntime-genai" in text
    assert pane.tree.topLevelItem(0).text(0) == "Checkpoints (1)"
    assert Library(pane.library.path).folders == [str(demo.resolve())]


def test_a_dropped_broken_folder_shows_its_reason(qtbot, pane: BrowserPane, demo: Path) -> None:
    (demo / "config.json").write_text("{not json")
    drop_and_wait(qtbot, pane, demo)
    (entry,) = pane.entries()
    assert entry.broken
    item = pane.tree.topLevelItem(0).child(0)
    assert "config.json is not valid JSON" in item.toolTip(0)
    assert "Problem\n" in details_text(pane) and "config.json is not valid JSON" in details_text(pane)


def test_a_folder_without_models_is_refused_in_the_message_line(qtbot, pane: BrowserPane, tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"\xff\xd8")  # an empty folder is refused at drag-enter already
    drop(pane, QUrl.fromLocalFile(str(tmp_path / "photos")))
    qtbot.waitUntil(lambda: "holds no checkpoint" in pane.message.text())
    assert pane.entries() == [] and pane.library.folders == []


def test_only_local_folders_are_accepted(pane: BrowserPane) -> None:
    assert not drop(pane, QUrl("https://huggingface.co/acme/model")).isAccepted()


def test_groups_and_onnx_details(qtbot, pane: BrowserPane, demo: Path) -> None:
    make_onnx_folder(demo.parent / "demo-int4")
    make_onnx_folder(demo.parent / "other-dml", record=False, provider="dml")
    drop_and_wait(qtbot, pane, demo.parent)
    groups = [pane.tree.topLevelItem(index).text(0) for index in range(3)]
    assert groups == ["Checkpoints (1)", "ONNX models (2)", "Hugging Face cache (0)"]
    assert pane.select_path(demo.parent / "demo-int4")
    text = details_text(pane)
    assert "Preset\nint4" in text and "Check\nran ( shop.)" in text and "block_size=32" in text
    pane.select_path(demo.parent / "other-dml")
    assert "Provider\ndml" in details_text(pane) and "no forge.json" in details_text(pane)


def test_hugging_face_cache_group(qtbot, pane: BrowserPane, hub_server: HubServer) -> None:  # noqa: F811
    hub_server.add_repo(DEMO_REPO, demo_checkpoint())
    snapshot = download_checkpoint(DEMO_REPO).path
    with qtbot.waitSignal(pane.refreshed):
        pane.refresh()
    assert pane.tree.topLevelItem(2).text(0) == "Hugging Face cache (1)"
    assert pane.select_path(snapshot)
    assert f"Hub repo\n{DEMO_REPO} @ " in details_text(pane) and "Hugging Face cache" in details_text(pane)


def test_add_folder_button_refresh_and_remove(
    qtbot, pane: BrowserPane, demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *args, **kwargs: str(demo))
    with qtbot.waitSignal(pane.refreshed):
        qtbot.mouseClick(pane.add_button, Qt.MouseButton.LeftButton)
    assert [entry.name for entry in pane.entries()] == ["demo-llama"]
    shutil.rmtree(demo)
    with qtbot.waitSignal(pane.refreshed):
        qtbot.mouseClick(pane.refresh_button, Qt.MouseButton.LeftButton)
    assert pane.selected_entry().broken and "no longer exists" in details_text(pane)
    with qtbot.waitSignals([pane.refreshed, pane.selection_changed]):
        qtbot.mouseClick(pane.remove_button, Qt.MouseButton.LeftButton)
    assert pane.entries() == [] and pane.selected_entry() is None


def test_the_first_show_lists_the_library(qtbot, tmp_path: Path, demo: Path) -> None:
    library = Library(tmp_path / "library.json")
    library.add_folder(demo)
    pane = BrowserPane(library)
    qtbot.addWidget(pane)
    with qtbot.waitSignal(pane.refreshed):
        pane.show()
    assert [entry.name for entry in pane.entries()] == ["demo-llama"]


# --- HubDialog -------------------------------------------------------------------------------------------------------


@pytest.fixture
def hub(hub_server: HubServer, credential_store: Path) -> HubServer:  # noqa: F811
    hub_server.add_repo(DEMO_REPO, demo_checkpoint(), license="mit", downloads=50)
    hub_server.add_repo(GATED_REPO, demo_checkpoint(), gated=True, tokens=[GRANTED], downloads=900)
    return hub_server


@pytest.fixture
def dialog(qtbot, tmp_path: Path, hub: HubServer) -> HubDialog:
    widget = HubDialog(Library(tmp_path / "library.json"))
    qtbot.addWidget(widget)
    widget.confirm_cancel = lambda: pytest.fail("the dialog asked to cancel unexpectedly")
    return widget


def download_and_wait(qtbot, dialog: HubDialog, repo_id: str) -> str:
    with qtbot.waitSignal(dialog.download_finished, timeout=DOWNLOAD_TIMEOUT_MS) as finished:
        dialog.download(repo_id)
    return finished.args[0]


def test_search_lists_the_repos(qtbot, dialog: HubDialog) -> None:
    dialog.query.setText("llama")
    qtbot.mouseClick(dialog.search_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.results.rowCount() == 2)
    assert dialog.repo_ids() == [GATED_REPO, DEMO_REPO]
    demo_row = [dialog.results.item(1, column).text() for column in range(5)]
    assert demo_row == [DEMO_REPO, "50", "4.2 MB", "mit", ""]
    assert dialog.results.item(0, 4).text().startswith("yes")
    assert dialog.message.text() == "2 models found."


def test_search_without_network_says_so(qtbot, dialog: HubDialog, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub.utils import _http

    monkeypatch.setattr(_http, "time", type("NoWait", (), {"sleep": staticmethod(lambda seconds: None)}))
    monkeypatch.setenv("HF_ENDPOINT", closed_port_url())
    dialog.search()
    qtbot.waitUntil(lambda: dialog.message.text().startswith("cannot reach the Hugging Face Hub"))


def test_download_shows_progress_and_adds_the_folder(qtbot, dialog: HubDialog) -> None:
    values: list[int] = []
    dialog.progress.valueChanged.connect(values.append)
    dialog.query.setText("demo")
    dialog.search()
    qtbot.waitUntil(lambda: dialog.repo_ids() == [DEMO_REPO])
    with qtbot.waitSignal(dialog.downloaded, timeout=DOWNLOAD_TIMEOUT_MS) as downloaded:
        qtbot.mouseClick(dialog.download_button, Qt.MouseButton.LeftButton)
        assert dialog.is_downloading and not dialog.download_button.isEnabled()
    path = downloaded.args[0]
    assert (Path(path) / "config.json").is_file()
    assert values[-1] == 100 and dialog.progress_detail.text() == "4.3 of 4.3 MB"
    assert dialog.message.text() == f"Downloaded {DEMO_REPO} to {path}."
    (entry,) = dialog.library.entries()
    assert (entry.path, entry.origin, entry.name, entry.kind) == (path, "hub", DEMO_REPO, "checkpoint")
    assert not dialog.is_downloading and dialog.download_button.isEnabled()


def test_a_gated_repo_says_what_is_missing(qtbot, dialog: HubDialog, forge_home: Path) -> None:
    assert download_and_wait(qtbot, dialog, GATED_REPO) == "failed"
    assert dialog.message.text() == f"{GATED_REPO} is gated: add a Hugging Face token in settings"
    dialog.token.setText("hf_not_granted")
    assert download_and_wait(qtbot, dialog, GATED_REPO) == "failed"
    assert dialog.message.text().startswith(f"{GATED_REPO} is gated: accept its licence on https://huggingface.co/")
    dialog.token.setText(GRANTED)  # typed, not saved: handed to the worker in its environment
    with qtbot.waitSignal(dialog.download_finished, timeout=DOWNLOAD_TIMEOUT_MS) as finished:
        dialog.download(GATED_REPO)
        assert not any(GRANTED in argument for argument in dialog._process.arguments())
    assert finished.args == ["succeeded"]
    assert not any(GRANTED in path.read_text(errors="replace") for path in forge_home.rglob("*") if path.is_file())


def test_a_saved_token_reaches_the_worker(
    qtbot,
    dialog: HubDialog,
    hub: HubServer,
    credential_store: Path,  # noqa: F811 - pytest injects the imported fixture
) -> None:
    dialog.token.setText(GRANTED)
    qtbot.mouseClick(dialog.save_token_button, Qt.MouseButton.LeftButton)
    assert dialog.token.text() == "" and "credential store" in dialog.token.placeholderText()
    assert json.loads(credential_store.read_text()) == {"onnx-forge/huggingface": GRANTED}
    assert download_and_wait(qtbot, dialog, GATED_REPO) == "succeeded"
    assert any(request.headers.get("authorization") == f"Bearer {GRANTED}" for request in hub.requests)
    qtbot.mouseClick(dialog.forget_token_button, Qt.MouseButton.LeftButton)
    assert json.loads(credential_store.read_text()) == {} and not dialog.forget_token_button.isEnabled()


def test_a_missing_repo_says_so(qtbot, dialog: HubDialog) -> None:
    assert download_and_wait(qtbot, dialog, "acme/nope") == "failed"
    assert dialog.message.text() == "no model named acme/nope on the Hugging Face Hub; check the spelling"
    assert dialog.library.entries() == []


def test_cancel_asks_first_then_stops_the_worker(qtbot, dialog: HubDialog, hub: HubServer) -> None:
    stall = hub.stall_download(DEMO_REPO, "model.safetensors", after_bytes=1000)
    asked: list[str] = []
    dialog.download(DEMO_REPO)
    qtbot.waitUntil(stall.reached.is_set, timeout=DOWNLOAD_TIMEOUT_MS)
    pid = dialog._process.processId()

    dialog.confirm_cancel = lambda: asked.append("no") or False
    qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    assert asked == ["no"] and dialog.is_downloading and psutil.pid_exists(pid)

    dialog.confirm_cancel = lambda: asked.append("yes") or True
    with qtbot.waitSignal(dialog.download_finished, timeout=10_000) as finished:
        qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    assert asked == ["no", "yes"] and finished.args == ["cancelled"]
    assert not psutil.pid_exists(pid) and dialog.message.text() == f"Stopped downloading {DEMO_REPO}."
    assert dialog.library.entries() == []
    stall.release.set()


def test_closing_during_a_download_stops_it(qtbot, dialog: HubDialog, hub: HubServer) -> None:
    stall = hub.stall_download(DEMO_REPO, "model.safetensors", after_bytes=1000)
    dialog.show()
    dialog.download(DEMO_REPO)
    qtbot.waitUntil(stall.reached.is_set, timeout=DOWNLOAD_TIMEOUT_MS)
    pid = dialog._process.processId()
    dialog.confirm_cancel = lambda: False
    dialog.close()
    assert dialog.isVisible() and dialog.is_downloading
    dialog.confirm_cancel = lambda: True
    dialog.close()
    assert not dialog.isVisible() and not dialog.is_downloading and not psutil.pid_exists(pid)
    stall.release.set()


def test_the_pane_opens_the_dialog_and_lists_a_download(qtbot, pane: BrowserPane, hub: HubServer) -> None:
    dialog = pane.open_hub_dialog()
    assert dialog.isVisible() and pane.open_hub_dialog() is dialog
    with qtbot.waitSignal(pane.refreshed, timeout=DOWNLOAD_TIMEOUT_MS):
        dialog.download(DEMO_REPO)
    dialog.close()
    (entry,) = pane.entries()
    assert entry.origin == "hub" and pane.selected_entry() == entry
    assert "LlamaForCausalLM" in details_text(pane)
