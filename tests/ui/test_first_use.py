"""The window as a first-time user meets it (issue 13): menus, a finished job that keeps the user's selection,
a used output folder, Remove, drops, the folder dialog, and what the Jobs pane says of a job that ended."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, Qt, QTimer, QUrl
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox

from app.checkpoints import inspect_checkpoint
from app.convert import ConvertRequest, plan_conversion
from app.hardware import probe_hardware
from app.hardware_probes import RecordedProbes
from app.library import Library
from app.paths import demo_checkpoint, models_dir
from tests.ui.conftest import drag_enter_and_drop
from ui.jobs import PROGRESS_COL, STATE_ROLE
from ui.main_window import MainWindow
from ui.presets import PresetPane

RECORDINGS = Path(__file__).resolve().parent.parent / "data" / "hardware"
JOB_MS = 180_000
pytestmark = pytest.mark.qt_log_ignore(r"^This plugin does not support (propagateSizeHints|raise)\(\)$")


@pytest.fixture
def window(qtbot):
    window = MainWindow(probe_hardware=False)  # closed below, not by qtbot: its close would ask a modal question
    window.set_hardware(probe_hardware(RecordedProbes(RECORDINGS / "linux_no_gpu.json")))
    window.show()
    yield window
    window.confirm_close = lambda busy: True  # a failed test must not leave a modal question open
    window.jobs.cancel_all()
    window.chat.shutdown()
    window.close()
    qtbot.waitUntil(lambda: not window.jobs.has_running(), timeout=30_000)
    window.deleteLater()


def menu_actions(window: MainWindow, title: str) -> list:
    menu = next(action.menu() for action in window.menuBar().actions() if action.text() == title)
    return [action for action in menu.actions() if not action.isSeparator()]


def drop_on(window: MainWindow, qtbot, folder: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(folder))])
    enter, drop = drag_enter_and_drop(window, mime)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(window, drop)
    qtbot.waitUntil(lambda: selected_path(window) == str(folder.resolve()), timeout=20_000)


def selected_path(window: MainWindow) -> str | None:
    entry = window.browser.selected_entry()
    return entry.path if entry is not None else None


def click_in_message_box(qtbot, button_text: str) -> None:
    """Click a button of the message box about to open (it runs its own event loop)."""

    def click() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, click)
            return
        qtbot.mouseClick(next(b for b in box.buttons() if b.text() == button_text), Qt.MouseButton.LeftButton)

    QTimer.singleShot(0, click)


# --- 1, 22: menus and keys ------------------------------------------------------------------------------------------


def test_the_view_menu_shows_each_tab(window):
    actions = menu_actions(window, "&View")
    assert len(actions) == window.tabs.count() >= 6
    for index in reversed(range(len(actions))):
        assert actions[index].shortcut() == QKeySequence(f"Ctrl+{index + 1}")
        actions[index].trigger()
        assert window.tabs.currentIndex() == index, actions[index].text()


def test_convert_answers_ctrl_return_and_ctrl_keypad_enter(window):
    convert = next(action for action in menu_actions(window, "&Jobs") if action.text() == "&Convert")
    assert QKeySequence("Ctrl+Enter") in convert.shortcuts() and QKeySequence("Ctrl+Return") in convert.shortcuts()


# --- 2, 8, 16, 20: a finished job announces itself and leaves the user's choices alone ------------------------------


def test_a_finished_conversion_keeps_the_selection_and_offers_open_chat_quantize(window, qtbot, tmp_path):
    first = Path(shutil.copytree(demo_checkpoint(), tmp_path / "first"))
    second = Path(shutil.copytree(demo_checkpoint(), tmp_path / "second"))
    drop_on(window, qtbot, second)
    drop_on(window, qtbot, first)
    window.presets.set_ep("cpu")
    window.presets.tick_presets(["int4"])
    output = tmp_path / "built" / "first-int4"
    qtbot.keyClicks(window.presets.output_edit, "x")  # the user types a folder of their own
    window.presets.output_edit.clear()
    qtbot.keyClicks(window.presets.output_edit, str(output))
    with qtbot.waitSignal(window.jobs.job_started, timeout=20_000):
        qtbot.mouseClick(window.presets.convert_button, Qt.MouseButton.LeftButton)
    assert window.presets.ticked() == []  # queued: the ticks are cleared
    assert window.browser.select_path(second.resolve())  # the user moves on while it runs
    row = window.jobs._model.rowCount() - 1
    assert window.jobs._model.index(row, 1).data() == "int4 (cpu)"
    with qtbot.waitSignal(window.jobs.job_finished, timeout=JOB_MS) as finished:
        pass
    assert finished.args[1] == "succeeded", window.jobs.log_view.toPlainText()[-2000:]
    qtbot.waitUntil(lambda: any(e.path == str(output.resolve()) for e in window.browser.entries()), timeout=20_000)
    QApplication.processEvents()
    assert selected_path(window) == str(second.resolve())
    assert "second" in window.presets.model_label.text()
    assert window.quantize._input == str(second.resolve())
    assert window.tabs.currentWidget() is window.jobs  # Convert went there; the end of the job moved nothing
    assert window.notice.isVisible() and str(output.resolve()) in window.notice.label.text()
    assert set(window.notice.buttons) == {"Open", "Chat", "Quantize"}
    assert "the model is in" in window.jobs._status.text()
    qtbot.mouseClick(window.notice.buttons["Chat"], Qt.MouseButton.LeftButton)
    assert window.tabs.currentWidget() is window.chat
    assert window.chat.columns[0].model_path() == str(output.resolve())
    assert selected_path(window) == str(second.resolve())
    assert not window.notice.isVisible()


def test_a_used_output_folder_offers_replace_or_keep_both(qtbot, tmp_path):
    pane = PresetPane()
    qtbot.addWidget(pane)
    pane.set_checkpoint(inspect_checkpoint(demo_checkpoint()), "demo")
    pane.tick_presets(["int4"])
    used = tmp_path / "demo-int4"
    used.mkdir()
    (used / "forge.json").write_text("{}")
    pane.output_edit.clear()
    qtbot.keyClicks(pane.output_edit, str(used))
    for answer, expected_output, overwrite in (("Keep both", tmp_path / "demo-int4-2", False), ("Replace", used, True)):
        click_in_message_box(qtbot, answer)
        with qtbot.waitSignal(pane.convert_requested, timeout=5000) as signal:
            qtbot.mouseClick(pane.convert_button, Qt.MouseButton.LeftButton)
        (request,) = signal.args[0]
        assert (Path(request.output), request.overwrite) == (expected_output, overwrite)
    click_in_message_box(qtbot, "Cancel")
    with qtbot.assertNotEmitted(pane.convert_requested):
        qtbot.mouseClick(pane.convert_button, Qt.MouseButton.LeftButton)


# --- 18: the output folder follows the preset inside the user's folder; batches name their sub-folders --------------


def test_a_typed_parent_keeps_following_the_preset_and_a_batch_names_its_sub_folders(qtbot, tmp_path):
    pane = PresetPane()
    qtbot.addWidget(pane)
    pane.set_checkpoint(inspect_checkpoint(demo_checkpoint()), "demo")
    pane.tick_presets(["int4"])
    pane.output_edit.clear()
    qtbot.keyClicks(pane.output_edit, str(tmp_path / "mine" / "demo-int4"))
    pane.tick_presets(["fp32"])
    assert pane.output_edit.text() == str(tmp_path / "mine" / "demo-fp32")
    pane.tick_presets(["fp32", "int4"])
    assert pane.output_edit.text() == str(tmp_path / "mine")
    assert pane.subfolders_label.text() == f"Makes demo-fp32, demo-int4 in {tmp_path / 'mine'}"
    pane.tick_presets(["int4"])
    pane.output_edit.clear()
    qtbot.keyClicks(pane.output_edit, str(tmp_path / "my-own-name"))
    pane.tick_presets(["fp32"])
    assert pane.output_edit.text() == str(tmp_path / "my-own-name")  # a name of the user's own stays


# --- 10: Remove takes one click -------------------------------------------------------------------------------------


def test_removing_a_converted_model_takes_one_click(qtbot, demo_int4):
    from ui.browser import BrowserPane

    converted = Path(shutil.copytree(demo_int4, models_dir() / "demo-int4")).resolve()
    library = Library()
    library.add_folder(converted)  # a finished job stores it, and the models-folder scan finds it too
    pane = BrowserPane(library)
    qtbot.addWidget(pane)
    with qtbot.waitSignal(pane.refreshed, timeout=10_000):
        pane.refresh(select=str(converted))
    assert pane.selected_entry().path == str(converted)
    with qtbot.waitSignal(pane.refreshed, timeout=10_000):
        qtbot.mouseClick(pane.remove_button, Qt.MouseButton.LeftButton)
    assert all(entry.path != str(converted) for entry in pane.entries())
    assert converted.is_dir()  # only the listing forgets it


# --- 17, 19: drops and the folder dialog ----------------------------------------------------------------------------


def test_drags_of_files_and_empty_folders_are_refused_and_messages_do_not_go_stale(qtbot, tmp_path, monkeypatch):
    from ui.browser import BrowserPane

    pane = BrowserPane(Library(tmp_path / "library.json"))
    qtbot.addWidget(pane)
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("hello")
    for path in (tmp_path / "empty", tmp_path / "notes.txt"):
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(path))])
        enter, _drop = drag_enter_and_drop(pane, mime)
        QApplication.sendEvent(pane, enter)
        assert not enter.isAccepted(), path
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "readme.md").write_text("not a model")
    pane.add_folder(junk)
    qtbot.waitUntil(lambda: "Adding" not in pane.message.text(), timeout=10_000)
    assert pane.message.styleSheet() and "junk" in pane.message.text()  # a refusal stands out
    demo = Path(shutil.copytree(demo_checkpoint(), tmp_path / "drops" / "demo-llama"))
    other = Path(shutil.copytree(demo_checkpoint(), tmp_path / "drops" / "other"))
    started_in: list[str] = []
    monkeypatch.setattr(
        QFileDialog, "getExistingDirectory", lambda _parent, _title, start: started_in.append(start) or str(demo)
    )
    with qtbot.waitSignal(pane.refreshed, timeout=10_000):
        qtbot.mouseClick(pane.add_button, Qt.MouseButton.LeftButton)
    assert started_in == [str(Path.home())]  # first time: home, not the program's working directory
    assert pane.message.text() == "Added demo-llama." and not pane.message.styleSheet()
    with qtbot.waitSignal(pane.refreshed, timeout=10_000):
        pane.add_folder(other)
    pane.select_path(demo.resolve())  # the user looks at another model: "Added other." is no longer about it
    assert pane.message.text() == ""
    monkeypatch.setattr(
        QFileDialog, "getExistingDirectory", lambda _parent, _title, start: started_in.append(start) or ""
    )
    qtbot.mouseClick(pane.add_button, Qt.MouseButton.LeftButton)
    assert started_in[-1] == str(demo.parent.resolve())  # next time: where the last folder came from


# --- 11, 20: what the Jobs pane says of a job that ended ------------------------------------------------------------


def test_a_cancelled_job_says_what_is_on_disk_and_a_killed_window_keeps_its_progress(
    window, qtbot, tmp_path, demo_int4
):
    from app.jobs.history import JobHistory
    from tests.checkpoint_factory import make_checkpoint

    source = make_checkpoint("llama", tmp_path / "bigger", num_layers=12, hidden_size=512)
    output = tmp_path / "out"
    plan = plan_conversion(ConvertRequest(str(source), str(output), preset="int4", ep="cpu"), {"cpu"})
    queued = plan_conversion(ConvertRequest(str(source), str(tmp_path / "later"), preset="int4", ep="cpu"), {"cpu"})
    job_id = window.jobs.enqueue(plan)
    window.jobs.enqueue(queued)
    window.chat.columns[0].select_model(str(demo_int4))
    window.chat.columns[0].load()
    assert (
        window.busy_text()
        == f"a conversion is running ({window.jobs.record(job_id).title}); 1 more job waits in the queue; "
        "1 chat session has a model loaded"
    )
    runner = window.jobs.current_runner()
    with qtbot.waitSignal(runner.progress, timeout=JOB_MS, check_params_cb=lambda *a: a[1] == "layers"):
        pass
    # As a window killed now would find it at its next start: interrupted, with how far it got and for how long.
    seen = JobHistory().get(job_id)
    assert seen.state == "interrupted" and seen.progress > 0 and seen.seconds > 0
    with qtbot.waitSignal(window.jobs.job_finished, timeout=30_000, check_params_cb=lambda *a: a[0] == job_id):
        window.jobs.cancel_all()
    record = window.jobs.record(job_id)
    window.jobs.select(job_id)
    status = window.jobs._status.text()
    assert "cancelled: cancelled" not in status and f"nothing was written to {output.resolve()}" in status
    row = window.jobs._model.row_of(job_id)
    assert window.jobs._model.index(row, PROGRESS_COL).data(STATE_ROLE) == "cancelled"
    assert record.progress > 0  # the bar stays where the job stopped, drawn grey, not as work in progress


# --- 9: one star, and the CPU is steered to INT4 --------------------------------------------------------------------


def test_a_cpu_only_machine_gets_one_star_on_int4(qtbot):
    pane = PresetPane()
    qtbot.addWidget(pane)
    pane.set_hardware(probe_hardware(RecordedProbes(RECORDINGS / "linux_no_gpu.json")))
    pane.set_checkpoint(inspect_checkpoint(demo_checkpoint()), "demo")
    starred = [preset_id for preset_id, card in pane.cards.items() if card.recommended_label.isVisibleTo(pane)]
    assert starred == ["int4"] and pane.recommended_id == "int4"
    assert all("Recommended" not in card.checkbox.text() for card in pane.cards.values())
