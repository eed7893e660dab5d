"""The Chat tab on the real demo model, each model in a real chat child process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.chat import Reply
from app.library import LibraryEntry
from tests.conftest import run_main
from ui.chat import ChatColumn, ChatPane

LOAD_MS = 60_000
REPLY_MS = 60_000
# With this seed and temperature the demo samples all the way to the maximum length (507 new tokens) without
# an end-of-text token: a reply long enough to stop half-way. Sampling with a seed is repeatable, per generation:
# onnxruntime-genai 0.18 draws differently from 0.14.1 (whose seed 2 ran to the end; on 0.18 it stops at
# 151; seed 10 runs to the end).
LONG_REPLY = {"do_sample": True, "temperature": 5.0, "top_k": 1000, "top_p": 1.0, "seed": 10}


@pytest.fixture(scope="module")
def demo_builds(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("chat-pane") / "variants"
    made = {"cpu": root / "demo-int4", "dml": root / "demo-int4-dml"}
    for name, ep in (("cpu", "cpu"), ("dml", "dml")):
        done = run_main("convert", "demo", "-o", str(made[name]), "--preset", "int4", "--ep", ep)
        assert done.returncode == 0, done.stderr
    return made


@pytest.fixture
def pane(qtbot, demo_builds):
    pane = ChatPane()
    qtbot.addWidget(pane)
    pane.set_models([LibraryEntry("onnx", str(path), path.name, "folder") for path in demo_builds.values()])
    pane.select_model(str(demo_builds["cpu"]))
    pane.show()
    yield pane
    pane.shutdown()


def load(qtbot, column: ChatColumn, path: Path | None = None) -> None:
    if path is not None:
        column.select_model(str(path))
    column.load()
    qtbot.waitUntil(lambda: column.state in ("ready", "failed"), timeout=LOAD_MS)
    assert column.state == "ready", column.status.text()


def send(qtbot, pane: ChatPane, text: str, columns: list[ChatColumn] | None = None) -> list[Reply]:
    replies: list[Reply] = []
    for column in columns or [pane.columns[0]]:
        column.reply_finished.connect(replies.append)
    pane.input.setText(text)
    pane.send_button.click()
    qtbot.waitUntil(lambda: len(replies) == len(columns or [0]), timeout=REPLY_MS)
    return replies


def set_settings(pane: ChatPane, values: dict) -> None:
    box = pane.settings_box
    box.sample.setCurrentIndex(1 if values.get("do_sample") else 0)
    box.temperature.setValue(values.get("temperature", box.temperature.value()))
    box.top_k.setValue(values.get("top_k", box.top_k.value()))
    box.top_p.setValue(values.get("top_p", box.top_p.value()))
    box.seed.setValue(values.get("seed", -1))


def test_a_reply_streams_in_and_the_second_turn_includes_the_first(qtbot, pane):
    column = pane.columns[0]
    load(qtbot, column)
    assert pane.settings_box.max_length.value() == 512 and pane.settings_box.max_length.maximum() == 512
    set_settings(pane, LONG_REPLY)
    batches: list[str] = []
    counts: list[int] = []
    live: list[str] = []
    column.process.piece.connect(lambda text, count: (batches.append(text), counts.append(count)))
    column.process.piece.connect(lambda _text, _count: live.append(column.live.text()))
    (first,) = send(qtbot, pane, "Tom goes to the")
    assert first.new_tokens == 507 and not first.stopped
    # It came as pieces (a loaded machine may hand several, or all, over in one read), and nothing was lost.
    assert sum(counts) > 100 and "".join(batches) == first.text
    assert any(" tokens" in text for text in live)  # live figures while streaming
    shown = column.view.toPlainText()
    # A sampled reply may hold a bare carriage return, which a text view shows as a line break.
    assert first.text.strip().replace("\r\n", "\n").replace("\r", "\n") in shown and first.figures() in shown
    assert "context" in column.status.text()

    set_settings(pane, {"do_sample": False})
    (second,) = send(qtbot, pane, "Then Lily")
    # The demo's template joins the user turns: the second prompt carries the first.
    assert second.prompt == "<s>Tom goes to the Then Lily"
    assert [turn.role for turn in column.transcript.turns] == ["user", "assistant", "user", "assistant"]


def test_stop_halts_the_reply(qtbot, pane):
    column = pane.columns[0]
    load(qtbot, column)
    set_settings(pane, LONG_REPLY)
    replies: list[Reply] = []
    column.reply_finished.connect(replies.append)
    pane.input.setText("Tom goes to the")
    pane.send_button.click()
    assert column.state == "streaming" and pane.stop_button.isEnabled()
    # At once, not on the first piece: on a loaded machine the whole reply can arrive in the first read.
    pane.stop_button.click()
    qtbot.waitUntil(lambda: bool(replies), timeout=REPLY_MS)
    assert replies[0].stopped and replies[0].new_tokens < 50  # of 507 unstopped
    assert pane.send_button.isEnabled() and not pane.stop_button.isEnabled()


def test_regenerate_clear_copy_and_export(qtbot, pane, tmp_path):
    column = pane.columns[0]
    load(qtbot, column)
    pane.system_edit.setText("Stories only.")
    (first,) = send(qtbot, pane, "Tom goes to the")
    replies: list[Reply] = []
    column.reply_finished.connect(replies.append)
    pane.regenerate_button.click()
    qtbot.waitUntil(lambda: bool(replies), timeout=REPLY_MS)
    assert replies[0].text == first.text  # greedy: the same answer again, in place of the first
    assert column.view.toPlainText().count(first.text.strip()) == 1
    pane.copy_button.click()
    from PySide6.QtGui import QGuiApplication

    assert QGuiApplication.clipboard().text() == first.text
    pane.export(tmp_path / "chat.md")
    pane.export(tmp_path / "chat.json")
    assert "**System:** Stories only." in (tmp_path / "chat.md").read_text()
    exported = json.loads((tmp_path / "chat.json").read_text())
    assert [m["role"] for m in exported["messages"]] == ["user", "assistant"]
    pane.clear_button.click()
    assert column.transcript.turns == [] and column.view.toPlainText() == ""
    (after,) = send(qtbot, pane, "Lily goes to the")
    assert after.prompt == "<s>Lily goes to the"  # the child forgot the conversation too


def test_side_by_side_shows_two_replies(qtbot, pane, demo_builds):
    pane.side_by_side.setChecked(True)
    left, right = pane.columns
    assert right.isVisible()
    load(qtbot, left)
    right.ep_combo.setCurrentIndex(right.ep_combo.findData("cpu"))
    load(qtbot, right, demo_builds["dml"])  # the DirectML build, run on the CPU by choice
    replies = send(qtbot, pane, "Tom goes to the", [left, right])
    assert len(replies) == 2 and replies[0].text == replies[1].text  # same weights, same greedy answer
    for column in (left, right):
        assert replies[0].text.strip() in column.view.toPlainText() and " tok/s" in column.view.toPlainText()


def test_a_prompt_longer_than_the_context_is_refused(qtbot, pane):
    column = pane.columns[0]
    load(qtbot, column)
    pane.input.setText("Tom goes to the park. " * 200)
    pane.send_button.click()
    qtbot.waitUntil(lambda: column.warning.isVisible(), timeout=REPLY_MS)
    assert "leaves no room under the maximum length of 512" in column.warning.text()
    assert column.state == "ready" and column.transcript.turns == []


def test_a_folder_that_is_not_a_genai_model(qtbot, pane, tmp_path):
    column = pane.columns[0]
    column.select_model(str(tmp_path))
    column.load()
    qtbot.waitUntil(lambda: column.state == "failed", timeout=LOAD_MS)
    assert column.status.text().endswith("has no genai_config.json, so it is not an ONNX Runtime GenAI model folder.")
    assert not column.cpu_button.isVisible()


def test_a_build_for_a_missing_provider_offers_the_cpu_build(qtbot, pane, demo_builds):
    column = pane.columns[0]
    column.select_model(str(demo_builds["dml"]))
    assert column.ep_combo.currentData() == "cpu"  # DirectML is not offered here
    # Asked for the provider it was built for, the child says why it cannot and offers the CPU build.
    column.ep_combo.addItem("DirectML", "dml")
    column.ep_combo.setCurrentIndex(column.ep_combo.findData("dml"))
    column.load()
    qtbot.waitUntil(lambda: column.state == "failed", timeout=LOAD_MS)
    assert "was built for DirectML, which is not usable here" in column.status.text()
    assert column.cpu_button.isVisible()
    column.cpu_button.click()
    qtbot.waitUntil(lambda: column.state == "ready", timeout=LOAD_MS)
    assert column.model_path() == str(demo_builds["cpu"].resolve())


def test_switching_models_ends_the_old_child(qtbot, pane, demo_builds):
    import psutil

    column = pane.columns[0]
    load(qtbot, column)
    old = column.process.pid
    load(qtbot, column, demo_builds["cpu"])
    assert column.process.pid != old
    qtbot.waitUntil(lambda: not psutil.pid_exists(old) or psutil.Process(old).status() == psutil.STATUS_ZOMBIE)


def test_a_folder_dropped_on_the_window_can_be_chatted_with(qtbot, demo_builds, monkeypatch):
    import psutil

    from tests.ui.test_main_window import RECORDINGS, RecordedProbes, drop_on, probe_hardware
    from ui.main_window import MainWindow

    window = MainWindow(probe_hardware=False)
    qtbot.addWidget(window)
    window.set_hardware(probe_hardware(RecordedProbes(RECORDINGS / "linux_no_gpu.json")))
    window.show()
    drop_on(window, qtbot, demo_builds["dml"])
    column = window.chat.columns[0]
    qtbot.waitUntil(lambda: column.model_path() == str(demo_builds["dml"].resolve()), timeout=20_000)
    # Built for DirectML, offered on what this machine has: the CPU only.
    assert [column.ep_combo.itemData(i) for i in range(column.ep_combo.count())] == ["cpu"]
    window.tabs.setCurrentWidget(window.chat)
    load(qtbot, column)
    pid = column.process.pid
    asked: list[str] = []
    monkeypatch.setattr(window, "confirm_close", lambda busy: asked.append(busy) or True)  # the user says Yes
    window.close()  # ends the chat child too
    assert asked and "chat" in asked[0]
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_the_gpu_picker_lists_directml_adapters_and_follows_the_hardware_tab(qtbot, demo_builds):
    from tests.ui.test_main_window import RECORDINGS, RecordedProbes, probe_hardware

    report = probe_hardware(RecordedProbes(RECORDINGS / "windows11_hybrid_laptop_rtx3060.json"))
    pane = ChatPane()
    qtbot.addWidget(pane)
    pane.set_models([LibraryEntry("onnx", str(demo_builds["dml"]), "demo-int4-dml", "folder")])
    pane.set_hardware(report)
    column = pane.columns[0]
    assert column.ep_combo.currentData() == "dml"  # the provider the model was built for
    adapters = [column.gpu_combo.itemText(i) for i in range(column.gpu_combo.count())]
    assert len(adapters) == 2 and not column.gpu_combo.isHidden()
    discrete = next(gpu for gpu in report.gpus if "RTX" in gpu.name)
    integrated = next(gpu for gpu in report.gpus if gpu is not discrete)
    pane.select_gpu(report, integrated.index)
    assert column.gpu_combo.currentText() == integrated.name
    assert column.gpu_combo.currentData() == integrated.index
    pane.select_gpu(report, discrete.index)
    assert column.gpu_combo.currentData() == discrete.index


# --- issue 13: side by side (finding 14) and Regenerate under greedy decoding (finding 22) ---------------------------


@pytest.fixture
def pane_int4(qtbot, demo_int4):
    pane = ChatPane()
    qtbot.addWidget(pane)
    pane.set_models([LibraryEntry("onnx", str(demo_int4), demo_int4.name, "folder")])
    pane.select_model(str(demo_int4))
    pane.show()
    yield pane
    pane.shutdown()


def click(qtbot, widget) -> None:
    from PySide6.QtCore import Qt

    qtbot.mouseClick(widget, Qt.MouseButton.LeftButton)


def tick(qtbot, checkbox) -> None:
    """A click on the box itself (a check box is often wider than its text, and its middle is empty)."""
    from PySide6.QtCore import QPoint, Qt

    qtbot.mouseClick(checkbox, Qt.MouseButton.LeftButton, pos=QPoint(6, checkbox.height() // 2))


def type_and_enter(qtbot, pane: ChatPane, text: str) -> None:
    from PySide6.QtCore import Qt

    pane.input.clear()
    qtbot.keyClicks(pane.input, text)
    qtbot.keyClick(pane.input, Qt.Key.Key_Return)


def test_side_by_side_b_continues_a_conversation_and_copy_export_cover_both(qtbot, pane_int4, tmp_path, monkeypatch):
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QFileDialog

    pane = pane_int4
    left, right = pane.columns
    click(qtbot, left.load_button)
    qtbot.waitUntil(lambda: left.state == "ready", timeout=LOAD_MS)
    replies: list[Reply] = []
    left.reply_finished.connect(replies.append)
    type_and_enter(qtbot, pane, "Tom goes to the")
    qtbot.waitUntil(lambda: len(replies) == 1, timeout=REPLY_MS)

    tick(qtbot, pane.side_by_side)
    assert pane.side_by_side.isChecked() and right.isVisible()
    # B is not loaded: Send waits for it, and says why.
    assert not pane.send_button.isEnabled() and not pane.regenerate_button.isEnabled()
    assert pane.send_hint.isVisible()
    assert pane.send_hint.text() == "Load B to send: side by side, each message goes to both models."
    type_and_enter(qtbot, pane, "Then Lily")
    assert len(left.transcript.turns) == 2 and left.state == "ready"  # Enter sent nothing either

    click(qtbot, right.load_button)
    qtbot.waitUntil(lambda: right.state == "ready", timeout=LOAD_MS)
    assert [(t.role, t.content) for t in right.transcript.turns] == [(t.role, t.content) for t in left.transcript.turns]
    assert "A's conversation so far: this model continues it." in right.view.toPlainText()
    assert pane.send_button.isEnabled() and not pane.send_hint.isVisible()

    right.reply_finished.connect(replies.append)
    type_and_enter(qtbot, pane, "Then Lily")
    qtbot.waitUntil(lambda: len(replies) == 3, timeout=REPLY_MS)
    # Both models answered the same conversation: the demo's template joins the user turns.
    assert [reply.prompt for reply in replies[1:]] == ["<s>Tom goes to the Then Lily"] * 2

    assert pane.copy_button.text() == "Copy both replies" and pane.export_button.text() == "Export both…"
    click(qtbot, pane.copy_button)
    name = Path(left.transcript.model).name
    assert QGuiApplication.clipboard().text() == (
        f"A · {name}:\n{left.last_reply_text()}\n\nB · {name}:\n{right.last_reply_text()}"
    )
    for suffix in ("json", "md"):
        target = tmp_path / f"both.{suffix}"
        monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, target=target: (str(target), ""))
        click(qtbot, pane.export_button)
    exported = json.loads((tmp_path / "both.json").read_text(encoding="utf-8"))["side_by_side"]
    assert [column["column"] for column in exported] == ["A", "B"]
    assert [len(column["messages"]) for column in exported] == [4, 4]
    markdown = (tmp_path / "both.md").read_text(encoding="utf-8")
    assert f"# A · Chat with {name}" in markdown and f"# B · Chat with {name}" in markdown


def test_ticking_side_by_side_keeps_the_window_width(qtbot):
    from tests.ui.test_main_window import RECORDINGS, RecordedProbes, probe_hardware
    from ui.main_window import MainWindow

    window = MainWindow(probe_hardware=False)
    qtbot.addWidget(window)
    window.set_hardware(probe_hardware(RecordedProbes(RECORDINGS / "linux_no_gpu.json")))
    window.show()
    window.tabs.setCurrentWidget(window.chat)
    qtbot.wait(50)
    window.resize(window.minimumSizeHint().width(), 800)  # the narrowest the window goes: no room to spare
    qtbot.wait(50)
    width, pane_minimum = window.width(), window.chat.minimumSizeHint().width()
    tick(qtbot, window.chat.side_by_side)
    qtbot.wait(50)
    assert window.chat.columns[1].isVisible()
    assert window.chat.minimumSizeHint().width() == pane_minimum  # B's room was there all along
    assert window.width() == width and window.minimumSizeHint().width() <= width
    tick(qtbot, window.chat.side_by_side)
    window.close()


def test_regenerate_under_greedy_decoding_says_why_the_reply_repeats(qtbot, pane_int4):
    pane = pane_int4
    column = pane.columns[0]
    click(qtbot, column.load_button)
    qtbot.waitUntil(lambda: column.state == "ready", timeout=LOAD_MS)
    set_settings(pane, {"do_sample": False})
    replies: list[Reply] = []
    column.reply_finished.connect(replies.append)
    type_and_enter(qtbot, pane, "Tom goes to the")
    qtbot.waitUntil(lambda: len(replies) == 1, timeout=REPLY_MS)
    assert not column.warning.isVisible()
    click(qtbot, pane.regenerate_button)
    qtbot.waitUntil(lambda: len(replies) == 2, timeout=REPLY_MS)
    assert replies[1].text == replies[0].text
    assert column.warning.isVisible() and column.warning.text().startswith(
        "The same reply again: greedy decoding always picks the likeliest next word"
    )
    assert "Sampling" in column.warning.text()

    set_settings(pane, {"do_sample": True, "temperature": 1.0, "seed": 3})
    click(qtbot, pane.regenerate_button)
    qtbot.waitUntil(lambda: len(replies) == 3, timeout=REPLY_MS)
    assert not column.warning.isVisible()  # sampling: no promise the reply repeats, and no note
