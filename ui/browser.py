"""The model browser: the library's checkpoints, ONNX models and Hugging Face cache, with what inspect knows of each."""

from __future__ import annotations

import html
from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent, QIcon, QShowEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QStyle,
    QTextBrowser,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.errors import ForgeError
from app.hub import format_size
from app.library import Library, LibraryEntry
from ui.widgets.background import Background

GROUPS = ("Checkpoints", "ONNX models", "Hugging Face cache")
_ENTRY_ROLE = Qt.ItemDataRole.UserRole
_ORIGINS = {"folder": "added folder", "hf-cache": "Hugging Face cache", "hub": "downloaded", "converted": "converted"}
_PROBLEM_STYLE = "color: #b00020; font-weight: bold;"
_EMPTY_HINT = "Drop a checkpoint or ONNX model folder here, use Add folder…, or search the Hub."


class BrowserPane(QWidget):
    selection_changed = Signal(object)
    """The selected LibraryEntry, or None."""
    refreshed = Signal()
    """The tree was rebuilt from a fresh listing."""

    def __init__(self, library: Library | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.library = library if library is not None else Library()
        self.setAcceptDrops(True)
        self._background = Background(self)
        self._loaded = False
        self._shown: LibraryEntry | None = None
        self._hub_dialog: Any = None
        self._hardware_report: Any = None

        self.add_button = QPushButton("Add folder…")
        self.hub_button = QPushButton("Search the Hub…")
        self.refresh_button = QPushButton("Refresh")
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Remove from the library (the folder stays on disk)")
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Model", "Summary"])
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.details = QTextBrowser()
        self.details.setOpenLinks(False)
        self.message = QLabel(_EMPTY_HINT)
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._groups = [self._group_item(name) for name in GROUPS]
        self._layout()

        self.add_button.clicked.connect(self.choose_folder)
        self.hub_button.clicked.connect(self.open_hub_dialog)
        self.refresh_button.clicked.connect(self.refresh)
        self.remove_button.clicked.connect(self.remove_selected)
        self.tree.currentItemChanged.connect(self._on_current_changed)
        self.tree.currentItemChanged.connect(self._forget_message)
        self._show_details(None)

    def _layout(self) -> None:
        buttons = QHBoxLayout()
        for button in (self.add_button, self.hub_button, self.refresh_button, self.remove_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.tree)
        splitter.addWidget(self.details)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.message)

    def _group_item(self, name: str) -> QTreeWidgetItem:
        item = QTreeWidgetItem(self.tree, [name])
        item.setFlags(Qt.ItemFlag.ItemIsEnabled)
        item.setFirstColumnSpanned(True)
        item.setExpanded(True)
        return item

    # --- actions ------------------------------------------------------------------------------------------------------

    def add_folder(self, path: str | Path) -> None:
        """Add a model folder (or a folder of them) to the library; a refusal is shown in the message line."""
        folder = str(path)
        self._show_message(f"Adding {folder}…")
        self._background.run(
            partial(self.library.add_folder, folder), partial(self._on_added, folder), partial(self._on_failed, folder)
        )

    def remember(self, path: str | Path) -> None:
        """A finished job's output: into the library and the tree, the user's selection left as it is."""
        try:
            self.library.add_folder(path)
        except ForgeError as error:
            self._show_message(str(error), problem=True)
            return
        self.refresh()

    def refresh(self, select: str | None = None) -> None:
        """Inspect every entry again, off the GUI thread, and rebuild the tree; then select `select` if given."""
        self._background.run(
            self.library.all_entries, partial(self._show_entries, select), partial(self._on_failed, "the library")
        )

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a checkpoint or ONNX model folder", self._start_folder())
        if folder:
            self.add_folder(folder)

    def _start_folder(self) -> str:
        """Where the folder dialog opens: the last folder added, else the user's home (not the working directory)."""
        from ui.settings import Settings

        last = Settings().last_folder
        return last if last and Path(last).is_dir() else str(Path.home())

    def set_hardware(self, report: Any) -> None:
        """The hardware report the Hub dialog fits its suggestions to."""
        self._hardware_report = report
        if self._hub_dialog is not None:
            self._hub_dialog.set_hardware(report)

    def open_hub_dialog(self) -> Any:
        from ui.widgets.hub_dialog import HubDialog

        if self._hub_dialog is None:
            self._hub_dialog = HubDialog(self.library, self, self._hardware_report)
            self._hub_dialog.downloaded.connect(self._on_downloaded)
        self._hub_dialog.show()
        self._hub_dialog.raise_()
        self._hub_dialog.activateWindow()
        return self._hub_dialog

    def remove_selected(self) -> None:
        entry = self.selected_entry()
        if entry is None:
            return
        self.library.remove(entry.path)
        self._show_message(f"Removed {entry.name} from the library; its folder is still on disk.")
        self.refresh()

    # --- what is shown ------------------------------------------------------------------------------------------------

    def entries(self) -> list[LibraryEntry]:
        """The entries in the tree, in order."""
        return [
            group.child(index).data(0, _ENTRY_ROLE) for group in self._groups for index in range(group.childCount())
        ]

    def selected_entry(self) -> LibraryEntry | None:
        item = self.tree.currentItem()
        return item.data(0, _ENTRY_ROLE) if item is not None else None

    def select_path(self, path: str | Path) -> bool:
        """Select the entry of that folder; False when it is not in the tree."""
        item = self._item_of(str(path))
        if item is not None:
            self.tree.setCurrentItem(item)
        return item is not None

    def _item_of(self, path: str) -> QTreeWidgetItem | None:
        for group in self._groups:
            for index in range(group.childCount()):
                child = group.child(index)
                if child.data(0, _ENTRY_ROLE).path == path:
                    return child
        return None

    # --- results from the pool ----------------------------------------------------------------------------------------

    def _on_added(self, folder: str, added: list[LibraryEntry]) -> None:
        from ui.settings import Settings

        settings = Settings()
        settings.last_folder = str(Path(folder).expanduser().resolve().parent)
        settings.sync()
        names = ", ".join(entry.name for entry in added)
        self._show_message(f"Added {names}." if len(added) < 4 else f"Added {len(added)} models from {folder}.")
        self.refresh(select=added[0].path)

    def _on_failed(self, what: str, error: BaseException) -> None:
        if isinstance(error, ForgeError):
            self._show_message(str(error), problem=True)
        else:
            self._show_message(f"{what} could not be read ({type(error).__name__}: {error}).", problem=True)

    def _forget_message(self) -> None:
        """The user moved the selection: "Added …" described the last action, not the model now shown. A refusal
        stays until the next message."""
        if not self.message.styleSheet():
            self.message.setText("")

    def _show_message(self, text: str, problem: bool = False) -> None:
        """The one-line message: a refusal stands out in red; any message is cleared once the selection moves."""
        self.message.setText(text)
        self.message.setStyleSheet(_PROBLEM_STYLE if problem else "")

    def _on_downloaded(self, path: str) -> None:
        self.refresh(select=path)

    def _show_entries(self, select: str | None, entries: list[LibraryEntry]) -> None:
        current = select or (self._shown.path if self._shown is not None else None)
        self.tree.blockSignals(True)
        for group in self._groups:
            group.takeChildren()
        for entry in entries:
            self._groups[_group_index(entry)].addChild(self._entry_item(entry))
        for group, name in zip(self._groups, GROUPS, strict=True):
            group.setText(0, f"{name} ({group.childCount()})")
        item = self._item_of(current) if current else None
        self.tree.setCurrentItem(item)
        self.tree.blockSignals(False)
        self._on_current_changed(item)
        if not entries:
            self._show_message(_EMPTY_HINT)
        self.refreshed.emit()

    def _entry_item(self, entry: LibraryEntry) -> QTreeWidgetItem:
        item = QTreeWidgetItem([entry.name, summary(entry)])
        item.setData(0, _ENTRY_ROLE, entry)
        item.setIcon(0, self._icon(entry))
        tooltip = entry.reason if entry.broken else entry.path
        item.setToolTip(0, tooltip)
        item.setToolTip(1, tooltip)
        return item

    def _icon(self, entry: LibraryEntry) -> QIcon:
        if entry.broken:
            pixmap = QStyle.StandardPixmap.SP_MessageBoxWarning
        elif needs_attention(entry):
            pixmap = QStyle.StandardPixmap.SP_MessageBoxInformation
        elif entry.kind == "onnx":
            pixmap = QStyle.StandardPixmap.SP_DriveHDIcon
        else:
            pixmap = QStyle.StandardPixmap.SP_DirIcon
        return self.style().standardIcon(pixmap)

    def _on_current_changed(self, item: QTreeWidgetItem | None, _previous: QTreeWidgetItem | None = None) -> None:
        entry = item.data(0, _ENTRY_ROLE) if item is not None else None
        self.remove_button.setEnabled(entry is not None)
        changed = (entry.to_dict() if entry else None) != (self._shown.to_dict() if self._shown else None)
        self._shown = entry
        self._show_details(entry)
        if changed:
            self.selection_changed.emit(entry)

    def _show_details(self, entry: LibraryEntry | None) -> None:
        if entry is None:
            self.details.setHtml("<p>Select a model to see what it is.</p>")
            return
        rows = "".join(
            f"<tr><th align='left' valign='top'>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"
            for label, value in details_rows(entry)
        )
        self.details.setHtml(f"<table cellspacing='4'>{rows}</table>")

    # --- Qt events ----------------------------------------------------------------------------------------------------

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if not self._loaded:
            self._loaded = True
            self.refresh()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt's name
        if droppable(_local_paths(event)):
            event.acceptProposedAction()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:  # noqa: N802 - Qt's name
        if droppable(_local_paths(event)):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt's name
        paths = _local_paths(event)
        if not paths:
            return
        for path in paths:
            self.add_folder(path)
        event.acceptProposedAction()


def _local_paths(event: QDropEvent | QDragEnterEvent | QDragMoveEvent) -> list[str]:
    mime = event.mimeData()
    return [url.toLocalFile() for url in mime.urls() if url.isLocalFile()] if mime.hasUrls() else []


def droppable(paths: list[str]) -> bool:
    """A drag is welcome only while it carries a folder with something in it: a file or an empty folder never is a
    model (the drop of such a folder still gets its one-sentence refusal, from add_folder)."""
    return any(_has_content(Path(path)) for path in paths)


def _has_content(path: Path) -> bool:
    try:
        return path.is_dir() and any(path.iterdir())
    except OSError:
        return False


def _group_index(entry: LibraryEntry) -> int:
    if entry.origin == "hf-cache":
        return 2
    return 1 if entry.kind_hint == "onnx" else 0


# --- what an entry says, in words -------------------------------------------------------------------------------------


def needs_attention(entry: LibraryEntry) -> bool:
    """A checkpoint that is listed but will not convert as it is (missing files, unsupported, a builder defect)."""
    info = entry.info
    if entry.kind != "checkpoint":
        return entry.broken
    return bool(info["problems"]) or not info["builder_supported"] or bool(info["builder_defect"])


def summary(entry: LibraryEntry) -> str:
    info = entry.info
    if entry.broken:
        return "cannot be used: see details"
    if entry.kind == "checkpoint":
        return f"{info['architecture']} · {_count(info['parameters'])} · {info['dtype']}"
    label = info.get("preset") or info.get("algorithm") or info["model_type"]
    return f"{label} · {info['provider']} · {format_size(info['size_bytes'])}"


def details_rows(entry: LibraryEntry) -> list[tuple[str, str]]:
    """(label, value) lines describing an entry, as the details box shows them."""
    if entry.broken:
        rows = [("Problem", entry.reason or "unknown")]
    elif entry.kind == "checkpoint":
        rows = _checkpoint_rows(entry.info)
    else:
        rows = _onnx_rows(entry.info)
    return [("Name", entry.name), *rows, *_place_rows(entry)]


def _checkpoint_rows(info: dict[str, Any]) -> list[tuple[str, str]]:
    exact = "exact, from the weights" if info["parameters_source"] == "safetensors" else "estimated from config.json"
    builder = f"onnxruntime-genai {info['builder_version']}"
    rows = [
        ("Architecture", info["architecture"]),
        ("Family", info["family"]),
        ("Parameters", f"{_count(info['parameters'])} ({exact})"),
        ("Size", f"{format_size(info['size_bytes'])} ({format_size(info['weight_bytes'])} of weights)"),
        ("Weights dtype", info["dtype"]),
        ("Layers", f"{info['num_layers']} × {info['hidden_size']} wide, context {info['context_length']:,} tokens"),
        ("Tokenizer", "yes" if info["tokenizer"] else "missing: copy the tokenizer files into the folder"),
        ("Chat template", "yes" if info["chat_template"] else "none"),
        ("Builder support", f"yes ({builder})" if info["builder_supported"] else f"no: {builder} cannot convert it"),
        ("Pre-quantization", info["quantization"] or "none"),
        ("Builder defect", info["builder_defect"] or "none known"),
    ]
    if info["needs_remote_code"]:
        rows.append(("Remote code", "ships its own Python code, which runs only if you trust it"))
    if info["problems"]:
        rows.append(("Problems", "; ".join(info["problems"])))
    return rows


def _onnx_rows(info: dict[str, Any]) -> list[tuple[str, str]]:
    if not info.get("made_by_forge"):
        return [
            ("Model type", info["model_type"]),
            ("Provider", info["provider"]),
            ("Context length", f"{info['context_length']:,} tokens"),
            ("Size", format_size(info["size_bytes"])),
            ("ONNX files", ", ".join(info["onnx_files"]) or "none"),
            ("Record", "no forge.json: made outside ONNX Forge, read from genai_config.json"),
        ]
    options = info.get("options") or {}
    extra = ", ".join(f"{key}={value}" for key, value in (options.get("extra_options") or {}).items())
    check = info.get("check") or "not recorded"
    if info.get("check_detail"):
        check += f" ({info['check_detail']})"
    source = info.get("source") or {}
    model = info.get("checkpoint") or {}
    if info.get("algorithm"):
        return [
            ("Quantized", str(info["algorithm"])),
            ("Provider", info["provider"]),
            ("Size", format_size(info["size_bytes"])),
            ("Quality", (info.get("quality") or {}).get("verdict") or "not recorded"),
            ("Created", str(info.get("created") or "unknown")),
            ("Input", str(source.get("path") or "unknown")),
        ]
    return [
        ("Preset", str(info.get("preset"))),
        ("Provider", info["provider"]),
        ("Precision", f"{options.get('precision', '?')}" + (f", {extra}" if extra else "")),
        ("Size", format_size(info["size_bytes"])),
        ("Created", str(info.get("created") or "unknown")),
        ("Check", check),
        ("Source", str(source.get("id") or source.get("path") or "unknown")),
        ("Source model", f"{model.get('architecture', '?')}, {_count(model.get('parameters', 0))} parameters"),
    ]


def _place_rows(entry: LibraryEntry) -> list[tuple[str, str]]:
    rows = [("Folder", entry.path), ("Origin", _ORIGINS.get(entry.origin, entry.origin))]
    if entry.repo_id:
        rows.append(("Hub repo", f"{entry.repo_id} @ {(entry.revision or 'main')[:12]}"))
    return rows


def _count(count: int) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            return f"{count / scale:.2f} {unit}"
    return str(count)
