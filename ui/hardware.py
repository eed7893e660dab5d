"""The Hardware pane and the probe behind it.

The window never imports onnxruntime or torch, so the report comes from a child: this program re-launched
as `hardware --json` (app.jobs.runner.app_command), rebuilt here with HardwareReport.from_dict.
"""

from __future__ import annotations

import json

from PySide6.QtCore import QCoreApplication, QObject, QProcess, QProcessEnvironment, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.convert import human_size
from app.fit import short_gpu_name
from app.flavors import FLAVORS, advise
from app.hardware import Gpu, HardwareReport, ProviderStatus
from app.jobs.runner import app_command
from app.presets import EP_NAMES

PROBE_TIMEOUT_MS = 60_000
_GPU_COLUMNS = ("Adapter", "Vendor", "Name", "Memory", "Driver", "Compute capability", "Type", "LUID")
_PROVIDER_COLUMNS = ("Provider", "Usable", "Why", "INT4 weight-only")


class HardwareProbe(QObject):
    """Runs `main.py hardware --json` in a child; emits ready(report) or failed(sentence), exactly once per start."""

    ready = Signal(object)
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._process: QProcess | None = None
        self._done = True
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._on_timeout)
        application = QCoreApplication.instance()
        if application is not None:
            application.aboutToQuit.connect(self.stop)

    def start(self) -> None:
        if self.is_running():
            return
        program, *arguments = app_command("hardware", "--json")
        process = QProcess(self)
        environment = QProcessEnvironment.systemEnvironment()
        environment.insert("PYTHONIOENCODING", "utf-8")
        process.setProcessEnvironment(environment)
        process.finished.connect(self._on_finished)
        process.errorOccurred.connect(self._on_error)
        self._process = process
        self._done = False
        self._timer.start(PROBE_TIMEOUT_MS)
        process.start(program, arguments)

    def is_running(self) -> bool:
        return self._process is not None and self._process.state() != QProcess.ProcessState.NotRunning

    def stop(self) -> None:
        """Kill a probe still running (the window is closing)."""
        self._done = True
        self._timer.stop()
        if self.is_running():
            self._process.kill()
            self._process.waitForFinished(2000)

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._finish(None, f"the hardware probe could not start: {self._process.errorString()}")

    def _on_timeout(self) -> None:
        if self.is_running():
            self._process.kill()
        self._finish(None, f"the hardware probe gave no answer in {PROBE_TIMEOUT_MS // 1000} seconds")

    def _on_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        stdout = bytes(self._process.readAllStandardOutput().data()).decode("utf-8", "replace")
        stderr = bytes(self._process.readAllStandardError().data()).decode("utf-8", "replace")
        if status != QProcess.ExitStatus.NormalExit or code != 0:
            last = next((line for line in reversed(stderr.splitlines()) if line.strip()), "no output")
            self._finish(None, f"the hardware probe stopped with exit code {code} ({last.strip()})")
            return
        try:
            report = HardwareReport.from_dict(json.loads(stdout))
        except (ValueError, KeyError, TypeError) as error:
            self._finish(None, f"the hardware probe answered something unreadable ({error})")
            return
        self._finish(report, "")

    def _finish(self, report: HardwareReport | None, reason: str) -> None:
        if self._done:
            return
        self._done = True
        self._timer.stop()
        if report is None:
            self.failed.emit(reason)
        else:
            self.ready.emit(report)


def primary_gpu(report: HardwareReport) -> Gpu | None:
    """The GPU the studio mostly talks about: DirectML's default adapter, else the one with the most memory."""
    if report.default_dml_device is not None:
        default = next((gpu for gpu in report.gpus if gpu.index == report.default_dml_device), None)
        if default is not None:
            return default
    return max(report.gpus, key=lambda gpu: gpu.dedicated_memory_bytes or 0, default=None)


def status_summary(report: HardwareReport | None) -> str:
    """One line for the status bar: 'RTX 4070 · 12 GB · DML ✓ CUDA ✓ TRT-RTX ✗'."""
    if report is None:
        return "Hardware unknown"
    marks = " ".join(
        f"{status.name.upper()} {'✓' if status.usable else '✗'}" for status in report.providers if status.name != "cpu"
    )
    gpu = primary_gpu(report)
    if gpu is None:
        return f"CPU only · {marks}"
    memory = gpu.dedicated_memory_bytes
    size = f" · {round(memory / 1024**3)} GB" if memory and memory >= 1024**3 else ""
    return f"{short_gpu_name(gpu)}{size} · {marks}"


def flavor_text(report: HardwareReport) -> str:
    """Which flavor is installed, which would serve this PC best and why, and how to get it (app.flavors)."""
    advice = advise(report)
    names = [
        f"{FLAVORS[key].label} ({FLAVORS[key].package} {report.packages[FLAVORS[key].package]})"
        for key in advice.installed
    ]
    installed = " and ".join(names) or "none (no onnxruntime-genai package)"
    if len(names) > 1:
        installed += ": more than one flavor in one environment clash"
    best = FLAVORS[advice.best]
    return f"Installed: {installed}\nBest for this PC: {best.label}, because {advice.why}.\nHow: {advice.how}."


def _mark(value: bool | None) -> str:
    return {True: "✓", False: "✗", None: "?"}[value]


def _item(text: str, tooltip: str = "") -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setToolTip(tooltip or text)
    return item


def _gpu_row(gpu: Gpu) -> list[QTableWidgetItem]:
    kind = {True: "discrete", False: "integrated", None: "unknown"}[gpu.discrete]
    adapter = f"DXGI {gpu.index}" if gpu.index is not None else "–"
    if gpu.nvml_index is not None:
        adapter += f" · NVML {gpu.nvml_index}"
    memory = human_size(gpu.dedicated_memory_bytes) if gpu.dedicated_memory_bytes else "?"
    if gpu.shared_memory_bytes:
        memory += f" (+{human_size(gpu.shared_memory_bytes)} shared)"
    cells = (adapter, gpu.vendor, gpu.name, memory, gpu.driver_version or "?", gpu.compute_capability or "–", kind)
    return [*(_item(cell) for cell in cells), _item(gpu.luid or "–", f"seen by: {', '.join(gpu.sources)}")]


def _provider_row(status: ProviderStatus) -> list[QTableWidgetItem]:
    return [
        _item(EP_NAMES.get(status.name, status.name), status.ep_name),
        _item(_mark(status.usable), status.reason),
        _item(status.reason),
        _item(_mark(status.int4), status.int4_reason),
    ]


def _table(columns: tuple[str, ...]) -> QTableWidget:
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(list(columns))
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    table.verticalHeader().hide()
    table.horizontalHeader().setStretchLastSection(True)
    return table


def _fill(table: QTableWidget, rows: list[list[QTableWidgetItem]]) -> None:
    table.setRowCount(len(rows))
    for row, items in enumerate(rows):
        for column, item in enumerate(items):
            table.setItem(row, column, item)
    table.horizontalHeader().resizeSections(QHeaderView.ResizeMode.ResizeToContents)


class HardwarePane(QWidget):
    """What this PC has: GPUs, which execution providers work and why, the installed onnxruntime packages."""

    gpu_chosen = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.report: HardwareReport | None = None
        self.system_label = QLabel("Probing hardware…")
        self.system_label.setWordWrap(True)
        self.gpu_combo = QComboBox()
        self.gpu_combo.activated.connect(self._on_gpu_activated)
        self.gpu_table = _table(_GPU_COLUMNS)
        self.provider_table = _table(_PROVIDER_COLUMNS)
        self.packages_label = QLabel()
        self.packages_label.setWordWrap(True)
        self.notes_label = QLabel()
        self.notes_label.setWordWrap(True)
        self.flavor_label = QLabel()
        self.flavor_label.setWordWrap(True)
        self.flavor_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        picker = QFormLayout()
        picker.addRow("GPU for DirectML and the fit check:", self.gpu_combo)
        layout = QVBoxLayout(self)
        layout.addWidget(self.system_label)
        layout.addLayout(picker)
        layout.addWidget(self._group("GPUs", self.gpu_table), 1)
        layout.addWidget(self._group("Execution providers", self.provider_table), 1)
        layout.addWidget(self._group("Runtime flavor", self.flavor_label))
        layout.addWidget(self._group("Installed packages", self.packages_label))
        layout.addWidget(self.notes_label)

    @staticmethod
    def _group(title: str, content: QWidget) -> QGroupBox:
        box = QGroupBox(title)
        QVBoxLayout(box).addWidget(content)
        return box

    def set_report(self, report: HardwareReport) -> None:
        self.report = report
        system = report.system
        cpu = system.cpu_name or "unknown CPU"
        if system.cpu_cores:
            cpu += f" ({system.cpu_cores} cores, {system.cpu_threads or '?'} threads)"
        ram = human_size(system.ram_bytes) if system.ram_bytes else "unknown"
        self.system_label.setText(f"{system.os} {system.os_version} {system.machine} · {cpu} · RAM {ram}")
        _fill(self.gpu_table, [_gpu_row(gpu) for gpu in report.gpus])
        _fill(self.provider_table, [_provider_row(status) for status in report.providers])
        self._fill_gpu_combo(report)
        packages = ", ".join(f"{name} {version}" for name, version in report.packages.items()) or "none"
        providers = ", ".join(report.onnxruntime_providers) or "none"
        self.packages_label.setText(f"{packages}\nonnxruntime providers: {providers}")
        self.flavor_label.setText(flavor_text(report))
        notes = "; ".join(f"{name}: {reason}" for name, reason in report.probe_notes.items())
        self.notes_label.setText(f"Probes with nothing to say: {notes}" if notes else "")

    def _fill_gpu_combo(self, report: HardwareReport) -> None:
        self.gpu_combo.clear()
        for gpu in report.gpus:
            if gpu.index is not None:
                memory = human_size(gpu.dedicated_memory_bytes) if gpu.dedicated_memory_bytes else "?"
                self.gpu_combo.addItem(f"[{gpu.index}] {gpu.name} ({memory})", gpu.index)
        if self.gpu_combo.count() == 0:
            self.gpu_combo.addItem("no DirectX GPU adapter", None)
        self.gpu_combo.setEnabled(self.gpu_combo.count() > 1)
        self.select_gpu(report.default_dml_device)

    def select_gpu(self, index: int | None) -> None:
        """Show `index` as the chosen adapter (a saved choice, or the report's default) without emitting."""
        position = self.gpu_combo.findData(index) if index is not None else -1
        if position >= 0:
            self.gpu_combo.setCurrentIndex(position)

    def chosen_gpu(self) -> int | None:
        return self.gpu_combo.currentData()

    def _on_gpu_activated(self, _position: int) -> None:
        index = self.chosen_gpu()
        if index is not None:
            self.gpu_chosen.emit(index)
