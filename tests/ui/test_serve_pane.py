"""The Serve tab: a real `main.py serve` child started and stopped from the tab, its request log shown."""

from __future__ import annotations

import json
import urllib.request

import pytest

from app.library import LibraryEntry
from ui.serve import LOG_COLUMNS, ServePane, examples

pytest.importorskip("fastapi")

START_TIMEOUT_MS = 120_000


@pytest.fixture
def pane(qtbot):
    widget = ServePane()
    qtbot.addWidget(widget)
    yield widget
    widget.shutdown()


def tick_all(pane: ServePane) -> None:
    from PySide6.QtCore import Qt

    for row in range(pane.models.count()):
        pane.models.item(row).setCheckState(Qt.CheckState.Checked)


def test_the_tab_serves_a_library_model_and_logs_each_request(qtbot, pane, demo_int4):
    entries = [
        LibraryEntry("onnx", str(demo_int4), demo_int4.name, "folder"),
        LibraryEntry("checkpoint", "/elsewhere", "not-servable", "folder"),
    ]
    pane.set_models(entries)
    assert pane.models.count() == 1
    pane.start()
    assert pane.status.text() == "Tick at least one model to serve." and not pane.is_running()
    tick_all(pane)
    pane.set_models(entries)  # a library refresh keeps the ticks
    assert pane.chosen_models() == [str(demo_int4)]
    pane.port.setValue(0)
    with qtbot.waitSignal(pane.state_changed, timeout=START_TIMEOUT_MS, check_params_cb=lambda s: s == "serving"):
        pane.start()
    assert pane.url.startswith("http://127.0.0.1:") and pane.url.endswith("/v1")
    assert pane.url in pane.example.toPlainText() and "demo-int4" in pane.example.toPlainText()
    body = json.dumps({"model": "demo-int4", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3})
    request = urllib.request.Request(
        pane.url + "/chat/completions", body.encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert json.loads(response.read())["usage"]["completion_tokens"] == 3
    qtbot.waitUntil(lambda: pane.log.rowCount() == 1, timeout=10_000)
    row = {LOG_COLUMNS[column]: pane.log.item(0, column).text() for column in range(len(LOG_COLUMNS))}
    assert (row["Model"], row["Endpoint"], row["Status"], row["Tokens"]) == (
        "demo-int4",
        "/v1/chat/completions",
        "200",
        "3",
    )
    with qtbot.waitSignal(pane.state_changed, timeout=10_000):
        pane.stop()
    assert pane.state == "stopped" and not pane.is_running() and pane.status.text() == "Stopped."


def test_a_refused_start_says_why_in_one_sentence(qtbot, pane, demo_int4):
    pane.set_models([LibraryEntry("onnx", str(demo_int4), demo_int4.name, "folder")])
    tick_all(pane)
    pane.host.setText("0.0.0.0")
    with qtbot.waitSignal(pane.state_changed, timeout=START_TIMEOUT_MS, check_params_cb=lambda s: s == "stopped"):
        pane.start()
    assert pane.status.text().startswith("Listening on 0.0.0.0 lets other machines in: give an --api-key")
    pane.require_key.setChecked(True)
    assert len(pane.api_key.text()) >= 16  # a key is made for the user, who may change it


def test_the_examples_use_the_key_from_the_environment_never_the_key_itself():
    text = examples("http://127.0.0.1:8000/v1", "m", with_key=True)
    assert "ONNX_FORGE_API_KEY" in text and "base_url='http://127.0.0.1:8000/v1'" in text
    assert "not-needed" in examples("http://127.0.0.1:8000/v1", "m", with_key=False)
