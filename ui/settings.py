"""Typed, versioned settings over QSettings (an INI file in the studio's data folder)."""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QSettings

from app.paths import data_dir

SETTINGS_VERSION = 1


class Settings:
    def __init__(self) -> None:
        self._qt = QSettings(str(data_dir() / "settings.ini"), QSettings.Format.IniFormat)
        if int(self._qt.value("version", 0)) < SETTINGS_VERSION:
            # Version 1 is the first: later upgrade steps go here, each keyed on the version it upgrades from.
            self._qt.setValue("version", SETTINGS_VERSION)

    def _bytes(self, key: str) -> QByteArray | None:
        value = self._qt.value(key)
        return value if isinstance(value, QByteArray) else None

    @property
    def geometry(self) -> QByteArray | None:
        return self._bytes("window/geometry")

    @geometry.setter
    def geometry(self, value: QByteArray) -> None:
        self._qt.setValue("window/geometry", value)

    @property
    def window_state(self) -> QByteArray | None:
        return self._bytes("window/state")

    @window_state.setter
    def window_state(self, value: QByteArray) -> None:
        self._qt.setValue("window/state", value)

    @property
    def last_folder(self) -> str:
        return str(self._qt.value("folders/last", ""))

    @last_folder.setter
    def last_folder(self, value: str) -> None:
        self._qt.setValue("folders/last", value)

    @property
    def gpu_index(self) -> int | None:
        value = self._qt.value("hardware/gpu_index")
        return int(value) if value not in (None, "") else None

    @gpu_index.setter
    def gpu_index(self, value: int) -> None:
        self._qt.setValue("hardware/gpu_index", value)

    def sync(self) -> None:
        self._qt.sync()
