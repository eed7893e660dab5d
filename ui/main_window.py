"""The main window composes the panes; it holds no conversion logic of its own."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QSystemTrayIcon,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app import __version__
from app.errors import ForgeError
from app.paths import app_icon
from ui.browser import BrowserPane, droppable
from ui.chat import ChatPane
from ui.hardware import HardwarePane, HardwareProbe, status_summary
from ui.jobs import JobsPane
from ui.presets import PresetPane
from ui.quantize import QuantizePane
from ui.report import ReportPane
from ui.serve import ServePane
from ui.settings import Settings
from ui.widgets.error_dialog import show_error
from ui.widgets.notice import NoticeBar

# Jobs shorter than this finish while the user is still looking: no tray message for them.
_NOTIFY_AFTER_SECONDS = 20


class MainWindow(QMainWindow):
    def __init__(self, probe_hardware: bool = True) -> None:
        super().__init__()
        self.setWindowTitle("ONNX Forge")
        self.setWindowIcon(QIcon(str(app_icon())))
        self.setAcceptDrops(True)
        self.settings = Settings()
        self.hardware_report = None

        self.browser = BrowserPane()
        self.presets = PresetPane()
        self.quantize = QuantizePane()
        self.jobs = JobsPane()
        self.hardware = HardwarePane()
        self.chat = ChatPane()
        self.report = ReportPane()
        self.serve = ServePane()
        self.tabs = QTabWidget()
        self.tabs.addTab(self.presets, "Convert")
        self.tabs.addTab(self.quantize, "Quantize")
        self.tabs.addTab(self.jobs, "Jobs")
        self.tabs.addTab(self.hardware, "Hardware")
        self.tabs.addTab(self.chat, "Chat")
        self.tabs.addTab(self.report, "Report")
        self.tabs.addTab(self.serve, "Serve")
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.browser)
        splitter.addWidget(self.tabs)
        splitter.setStretchFactor(1, 3)
        self.notice = NoticeBar()
        central = QWidget()
        central_layout = QVBoxLayout(central)
        central_layout.setContentsMargins(0, 0, 0, 0)
        central_layout.addWidget(self.notice)
        central_layout.addWidget(splitter, 1)
        self.setCentralWidget(central)
        self.hardware_label = QLabel("Probing hardware…")
        self.statusBar().addPermanentWidget(self.hardware_label)
        self.tray = QSystemTrayIcon(self.windowIcon(), self) if QSystemTrayIcon.isSystemTrayAvailable() else None

        self.browser.selection_changed.connect(self._on_selection)
        self.browser.refreshed.connect(lambda: self.quantize.show_results(self.browser.entries()))
        self.browser.refreshed.connect(lambda: self.chat.set_models(self.browser.entries()))
        self.browser.refreshed.connect(lambda: self.serve.set_models(self.browser.entries()))
        self.presets.convert_requested.connect(self._on_convert_requested)
        self.quantize.quantize_requested.connect(self._on_quantize_requested)
        self.report.measure_requested.connect(self._on_measure_requested)
        self.jobs.job_finished.connect(self._on_job_finished)
        self.hardware.gpu_chosen.connect(self._on_gpu_chosen)
        self._build_menus()
        self._restore()
        if probe_hardware:
            self.probe = HardwareProbe(self)
            self.probe.ready.connect(self.set_hardware)
            self.probe.failed.connect(lambda reason: self.hardware_label.setText(f"Hardware unknown: {reason}"))
            self.probe.start()

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self._action(file_menu, "&Add folder…", QKeySequence.StandardKey.Open, self.browser.choose_folder)
        self._action(file_menu, "Search the &Hub…", QKeySequence("Ctrl+H"), self.browser.open_hub_dialog)
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", QKeySequence.StandardKey.Quit, self.close)
        jobs_menu = self.menuBar().addMenu("&Jobs")
        convert = self._action(jobs_menu, "&Convert", QKeySequence("Ctrl+Return"), self.presets.request_convert)
        convert.setShortcuts([QKeySequence("Ctrl+Return"), QKeySequence("Ctrl+Enter")])  # Enter: the keypad's
        self._action(jobs_menu, "Cancel &all", QKeySequence("Ctrl+Shift+X"), self.jobs.cancel_all)
        view_menu = self.menuBar().addMenu("&View")
        for index in range(self.tabs.count()):
            # triggered(bool) would fill a lambda's default argument: partial fixes the index, the slot drops `checked`
            show_tab = partial(self._show_tab, index)
            self._action(view_menu, self.tabs.tabText(index), QKeySequence(f"Ctrl+{index + 1}"), show_tab)
        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "&About ONNX Forge", QKeySequence.StandardKey.HelpContents, self.show_about)

    def _show_tab(self, index: int, _checked: bool = False) -> None:
        self.tabs.setCurrentIndex(index)

    def _action(self, menu, text: str, shortcut: QKeySequence, slot) -> QAction:
        action = QAction(text, self)
        action.setShortcut(shortcut)
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _restore(self) -> None:
        if self.settings.geometry is not None:
            self.restoreGeometry(self.settings.geometry)
        else:
            self.resize(1280, 800)
        if self.settings.window_state is not None:
            self.restoreState(self.settings.window_state)

    # --- reactions -------------------------------------------------------------------------------

    def set_hardware(self, report) -> None:
        self.hardware_report = report
        self.presets.set_hardware(report)
        self.hardware.set_report(report)
        self.chat.set_hardware(report)
        self.browser.set_hardware(report)
        saved = self.settings.gpu_index
        if saved is not None and any(gpu.index == saved for gpu in report.gpus):
            self.hardware.select_gpu(saved)
            self.presets.set_gpu(saved)
            self.chat.select_gpu(report, saved)
        self.hardware_label.setText(status_summary(report))

    def _on_gpu_chosen(self, index: int) -> None:
        self.settings.gpu_index = index
        self.presets.set_gpu(index)
        if self.hardware_report is not None:
            self.chat.select_gpu(self.hardware_report, index)

    def _on_selection(self, entry) -> None:
        from app.checkpoints import CheckpointInfo

        if entry is not None and entry.kind == "checkpoint":
            self.presets.set_checkpoint(CheckpointInfo(**entry.info), entry.name)
        else:
            self.presets.set_checkpoint(None, "")
        usable = entry is not None and entry.kind in ("checkpoint", "onnx")
        self.quantize.set_model(
            entry.path if usable else "", entry.name if usable else "", entry.kind if usable else ""
        )
        self.quantize.show_results(self.browser.entries())
        self.report.set_model(entry.path if usable else "")
        if entry is not None and entry.kind == "onnx":
            self.chat.select_model(entry.path)

    def _on_convert_requested(self, requests: list) -> None:
        from app.convert import plan_conversion

        usable = self.hardware_report.usable_providers() if self.hardware_report else {"cpu"}
        try:
            plans = [plan_conversion(request, usable) for request in requests]
        except ForgeError as error:
            show_error(self, str(error))
            return
        for plan in plans:
            for warning in plan.warnings:
                self.statusBar().showMessage(warning, 10000)
            self.jobs.enqueue(plan)
        self.presets.clear_ticks()  # queued: the next Convert starts from a clean slate
        self.tabs.setCurrentWidget(self.jobs)

    def _on_quantize_requested(self, request) -> None:
        self.jobs.enqueue_quantization(request)
        self.tabs.setCurrentWidget(self.jobs)

    def _on_measure_requested(self, folders: list) -> None:
        self.jobs.enqueue_report(folders)
        self.tabs.setCurrentWidget(self.jobs)

    def _on_job_finished(self, job_id: str, state: str, output: str) -> None:
        record = self.jobs.record(job_id)
        makes_model = record is not None and record.kind in ("convert", "quantize")
        if makes_model and state == "succeeded" and output:
            self.browser.remember(Path(output))  # listed, never selected: the user's selection stays
            self._announce_model(record.title, output)
        elif makes_model and state != "succeeded":
            self.notice.announce(
                f"{record.title}: {state}. {record.message}".strip(), {"Show job": self._show_jobs}, "problem"
            )
        self.report.refresh()
        seconds = self.jobs.seconds_of(job_id)
        if self.tray is not None and not self.isActiveWindow() and seconds >= _NOTIFY_AFTER_SECONDS:
            self.tray.show()
            what = record.title if record is not None else "A job"
            self.tray.showMessage("ONNX Forge", f"{what}: {state}")

    def _announce_model(self, title: str, output: str) -> None:
        actions = {
            "Open": partial(self.browser.select_path, output),
            "Chat": partial(self._chat_with, output),
            "Quantize": partial(self._quantize, output),
        }
        self.notice.announce(f"{title} is ready: {output}", actions)

    def _show_jobs(self) -> None:
        self.tabs.setCurrentWidget(self.jobs)

    def _chat_with(self, output: str) -> None:
        self.chat.select_model(output)
        self.tabs.setCurrentWidget(self.chat)

    def _quantize(self, output: str) -> None:
        if self.browser.select_path(output):
            self.tabs.setCurrentWidget(self.quantize)

    def show_about(self) -> None:
        from app.manifest import package_versions

        versions = "\n".join(f"{name} {version}" for name, version in package_versions().items())
        QMessageBox.about(self, "About ONNX Forge", f"ONNX Forge {__version__}\n\n{versions}")

    # --- window events ---------------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt's name
        urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
        if droppable([url.toLocalFile() for url in urls if url.isLocalFile()]):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt's name
        for url in event.mimeData().urls():
            if url.isLocalFile():
                self.browser.add_folder(Path(url.toLocalFile()))
        event.acceptProposedAction()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        busy = self.busy_text()
        if busy and not self.confirm_close(busy):
            event.ignore()
            return
        self.jobs.cancel_all()
        self.chat.shutdown()
        self.serve.shutdown()
        self.settings.geometry = self.saveGeometry()
        self.settings.window_state = self.saveState()
        self.settings.sync()
        event.accept()

    def busy_text(self) -> str:
        """What quitting would stop: jobs running and queued, chat sessions with a model loaded ('' when nothing)."""
        parts = [self.jobs.busy_text()]
        chats = self.chat.loaded_count()
        if chats:
            parts.append(f"{chats} chat session{'s' * (chats != 1)} {'have' if chats != 1 else 'has'} a model loaded")
        if self.serve.is_running():
            parts.append("the local server is serving models")
        return "; ".join(part for part in parts if part)

    def confirm_close(self, busy: str) -> bool:
        answer = QMessageBox.question(
            self,
            "ONNX Forge",
            f"{busy[0].upper()}{busy[1:]}. Stop and quit?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes
