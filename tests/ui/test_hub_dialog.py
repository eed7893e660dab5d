"""The Hub dialog as a user meets it (issue 13, finding 13): one Enter, one search; offline, a busy bar, a Cancel that
abandons the search and one sentence soon; a failed download shows its sentence, not an empty bar; it opens with
suggestions that convert and fit here, without the network. Against the loopback Hub of tests/hub_server.py."""

from __future__ import annotations

import dataclasses
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.hardware import HardwareReport, probe_hardware
from app.hardware_probes import RecordedProbes
from app.hub import KNOWN_MODELS
from app.library import Library
from app.paths import demo_checkpoint
from tests.hub_server import HubServer, closed_port_url, hub_server  # noqa: F401 - the fixture
from tests.test_library import DEMO_REPO, GATED_REPO, GRANTED, credential_store  # noqa: F401
from ui.widgets.hub_dialog import HubDialog

DOWNLOAD_TIMEOUT_MS = 60_000
RECORDINGS = Path(__file__).resolve().parent.parent / "data" / "hardware"
pytestmark = pytest.mark.qt_log_ignore(r"^This plugin does not support (propagateSizeHints|raise)\(\)$")


@pytest.fixture
def hub(hub_server: HubServer, credential_store: Path) -> HubServer:  # noqa: F811
    hub_server.add_repo(DEMO_REPO, demo_checkpoint(), license="mit", downloads=50)
    hub_server.add_repo(GATED_REPO, demo_checkpoint(), gated=True, tokens=[GRANTED], downloads=900)
    return hub_server


@pytest.fixture
def dialog(qtbot, tmp_path: Path, hub: HubServer) -> Iterator[HubDialog]:
    widget = HubDialog(Library(tmp_path / "library.json"))
    qtbot.addWidget(widget)
    widget.show()
    yield widget
    qtbot.waitUntil(lambda: not widget._background.busy, timeout=20_000)  # no search left running past the test


def listings(hub: HubServer) -> list[str]:
    return [request.path for request in hub.requests if request.path == "/api/models"]


def searched(qtbot, dialog: HubDialog) -> None:
    qtbot.waitUntil(lambda: not dialog._background.busy and not dialog.is_searching, timeout=20_000)


class Listener:
    """A loopback port that accepts connections and then closes each at once (hold=False) or never answers."""

    def __init__(self, hold: bool) -> None:
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._hold = hold
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.getsockname()[1]}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._server.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            if self._hold:
                self._held.append(connection)
            else:
                connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for connection in self._held:
            connection.close()
        self._server.close()


@pytest.fixture
def listener(request) -> Iterator[Listener]:
    server = Listener(hold=request.param)
    yield server
    server.close()


# --- one Enter, one search ------------------------------------------------------------------------------------------


def test_one_enter_starts_one_search(qtbot, dialog: HubDialog, hub: HubServer) -> None:
    dialog.query.setFocus()
    qtbot.keyClicks(dialog.query, "demo")
    qtbot.keyClick(dialog.query, Qt.Key.Key_Return)
    searched(qtbot, dialog)
    assert dialog.repo_ids() == [DEMO_REPO]
    assert listings(hub) == ["/api/models"]
    qtbot.keyClick(dialog.query, Qt.Key.Key_Enter)  # the keypad's Enter
    searched(qtbot, dialog)
    assert listings(hub) == ["/api/models"] * 2


# --- offline: busy, Cancel, one sentence soon ------------------------------------------------------------------------


@pytest.mark.parametrize("listener", [False], indirect=True)
def test_a_hub_that_drops_the_connection_is_asked_once(
    qtbot, dialog: HubDialog, listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    # huggingface_hub's list_models() retried this five times with back-off: 24 s of "Searching…".
    monkeypatch.setenv("HF_ENDPOINT", listener.url)
    qtbot.keyClicks(dialog.query, "llama")
    qtbot.keyClick(dialog.query, Qt.Key.Key_Return)
    assert dialog.search_busy.isVisible() and dialog.cancel_search_button.isVisible()
    searched(qtbot, dialog)
    assert listener.accepted == 1
    sentence = dialog.message.text()  # "connection reset by peer" or "server disconnected…", as the timing falls
    assert sentence.startswith("cannot reach the Hugging Face Hub (") and "." not in sentence
    assert sentence.endswith("); check your connection or use a local folder")
    assert not dialog.search_busy.isVisible() and not dialog.cancel_search_button.isVisible()


def test_a_refused_connection_says_so(qtbot, dialog: HubDialog, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", closed_port_url())
    qtbot.mouseClick(dialog.search_button, Qt.MouseButton.LeftButton)
    searched(qtbot, dialog)
    assert dialog.message.text() == (
        "cannot reach the Hugging Face Hub (connection refused); check your connection or use a local folder"
    )


@pytest.mark.parametrize("listener", [True], indirect=True)
def test_a_hub_that_never_answers_times_out(
    qtbot, dialog: HubDialog, listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("app.hub.SEARCH_TIMEOUT_S", 0.3)  # without any timeout this search would wait forever
    monkeypatch.setenv("HF_ENDPOINT", listener.url)
    qtbot.mouseClick(dialog.search_button, Qt.MouseButton.LeftButton)
    searched(qtbot, dialog)
    assert listener.accepted == 1
    assert dialog.message.text().startswith("cannot reach the Hugging Face Hub (the connection timed out);")


def test_cancel_abandons_the_search(qtbot, dialog: HubDialog, hub: HubServer) -> None:
    stall = hub.stall_next_listing()
    qtbot.keyClicks(dialog.query, "demo")
    qtbot.keyClick(dialog.query, Qt.Key.Key_Return)
    qtbot.waitUntil(stall.reached.is_set)
    assert dialog.search_busy.isVisible() and dialog.message.text() == "Searching for 'demo'…"

    qtbot.mouseClick(dialog.cancel_search_button, Qt.MouseButton.LeftButton)
    assert dialog.message.text() == "Search cancelled."
    assert not dialog.search_busy.isVisible() and not dialog.cancel_search_button.isVisible()

    dialog.query.clear()
    qtbot.keyClicks(dialog.query, "llama")
    qtbot.keyClick(dialog.query, Qt.Key.Key_Return)  # answered at once while the cancelled one still waits
    qtbot.waitUntil(lambda: dialog.repo_ids() == [GATED_REPO, DEMO_REPO])
    stall.release.set()
    searched(qtbot, dialog)
    assert listings(hub) == ["/api/models"] * 2  # the cancelled search's answer came, and was dropped
    assert dialog.repo_ids() == [GATED_REPO, DEMO_REPO] and dialog.message.text() == "2 models found."


# --- a failed download -----------------------------------------------------------------------------------------------


def test_a_failed_download_shows_its_sentence_not_a_bar(qtbot, dialog: HubDialog) -> None:
    assert not dialog.progress.isVisible()
    dialog.query.setText("acme/nope")  # an exact org/name: Download takes it without a search
    with qtbot.waitSignal(dialog.download_finished, timeout=DOWNLOAD_TIMEOUT_MS) as finished:
        qtbot.mouseClick(dialog.download_button, Qt.MouseButton.LeftButton)
        assert dialog.progress.isVisible()
    assert finished.args == ["failed"]
    assert dialog.message.text() == "no model named acme/nope on the Hugging Face Hub; check the spelling"
    assert not dialog.progress.isVisible() and not dialog.progress_detail.isVisible()

    with qtbot.waitSignal(dialog.download_finished, timeout=DOWNLOAD_TIMEOUT_MS) as finished:
        dialog.download(DEMO_REPO)
    assert finished.args == ["succeeded"]
    assert dialog.progress.isVisible() and dialog.progress.value() == 100


# --- suggestions -----------------------------------------------------------------------------------------------------


def recorded(name: str, ram_gib: float | None = None) -> HardwareReport:
    report = probe_hardware(RecordedProbes(RECORDINGS / name))
    if ram_gib is None:
        return report
    return dataclasses.replace(report, system=dataclasses.replace(report.system, ram_bytes=int(ram_gib * 1024**3)))


def cells(dialog: HubDialog, row: int) -> list[str]:
    return [dialog.results.item(row, column).text() for column in range(dialog.results.columnCount())]


def test_it_opens_with_suggestions_that_fit_without_the_network(
    qtbot,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    credential_store: Path,  # noqa: F811 - never the real credential store
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", closed_port_url())
    report = recorded("linux_no_gpu.json")  # 23.5 GB of RAM, no GPU
    dialog = HubDialog(Library(tmp_path / "library.json"), report=report)
    qtbot.addWidget(dialog)
    dialog.show()
    ids = dialog.repo_ids()
    known = [model.repo_id for model in KNOWN_MODELS]
    assert ids == [repo_id for repo_id in known if repo_id in ids]  # smallest first
    assert ids[0] == "HuggingFaceTB/SmolLM2-135M-Instruct" and "Qwen/Qwen2.5-7B-Instruct" not in ids  # its build
    assert cells(dialog, 0) == ["HuggingFaceTB/SmolLM2-135M-Instruct", "INT4 for CPU", "269.0 MB", "apache-2.0", ""]
    assert dialog.results.item(0, 0).toolTip().endswith("of RAM: fits with 23.4 GB to spare.")
    assert dialog.message.text().startswith(f"Suggested for this PC: {len(ids)} small models the installed builder")
    assert not dialog._background.busy  # nothing was asked of the Hub

    dialog.set_hardware(recorded("linux_no_gpu.json", ram_gib=4))  # a 4 GB PC: only the smallest builds and runs
    assert dialog.repo_ids() == ["HuggingFaceTB/SmolLM2-135M-Instruct"]
    dialog.close()


def test_a_suggestion_downloads_on_a_double_click(qtbot, dialog: HubDialog) -> None:
    dialog.set_hardware(recorded("linux_no_gpu.json"))
    first = dialog.results.item(0, 0)
    rect = dialog.results.visualItemRect(first)
    with qtbot.waitSignal(dialog.download_finished, timeout=DOWNLOAD_TIMEOUT_MS) as finished:
        qtbot.mouseClick(dialog.results.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        qtbot.mouseDClick(dialog.results.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        assert dialog.message.text() == f"Downloading {first.text()}…"
    # The loopback Hub serves only the demo repos, so the real id is not there: the dialog says so.
    assert finished.args == ["failed"]
    assert dialog.message.text() == f"no model named {first.text()} on the Hugging Face Hub; check the spelling"


def test_a_search_replaces_the_suggestions_and_a_late_report_leaves_results(qtbot, dialog: HubDialog) -> None:
    dialog.set_hardware(recorded("linux_no_gpu.json"))
    assert dialog.results.horizontalHeaderItem(1).text() == "Builds here as"
    qtbot.keyClicks(dialog.query, "demo")
    qtbot.keyClick(dialog.query, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.repo_ids() == [DEMO_REPO])
    assert dialog.results.horizontalHeaderItem(1).text() == "Downloads"
    dialog.set_hardware(recorded("linux_no_gpu.json"))
    assert dialog.repo_ids() == [DEMO_REPO]


def test_the_library_pane_hands_the_hardware_report_to_the_dialog(
    qtbot,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    credential_store: Path,  # noqa: F811
) -> None:
    from ui.browser import BrowserPane

    monkeypatch.setenv("HF_ENDPOINT", closed_port_url())
    pane = BrowserPane(Library(tmp_path / "library.json"))
    qtbot.addWidget(pane)
    pane.set_hardware(recorded("linux_no_gpu.json", ram_gib=4))
    qtbot.mouseClick(pane.hub_button, Qt.MouseButton.LeftButton)
    dialog = pane._hub_dialog
    assert dialog.isVisible() and dialog.repo_ids() == ["HuggingFaceTB/SmolLM2-135M-Instruct"]
    pane.set_hardware(recorded("linux_no_gpu.json"))  # a report that arrives later refits the suggestions
    assert len(dialog.repo_ids()) > 1
    dialog.close()
