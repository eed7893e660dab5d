# Replaces PyInstaller's PySide6 run-time hook, which imports PySide6.QtCore in every process (to register an
# embedded qt.conf) and so would load Qt into each job worker. Here only the window's process does that: the
# window is the program started with no arguments.


def _forge_rthook() -> None:
    import os
    import sys

    qt_path = os.path.join(sys._MEIPASS, "PySide6", *([] if sys.platform.startswith("win") else ["Qt"]))
    os.environ["QT_PLUGIN_PATH"] = os.path.join(qt_path, "plugins")
    if len(sys.argv) > 1:
        return
    from _pyi_rth_utils import qt as qt_rth_utils

    qt_rth_utils.ensure_single_qt_bindings_package("PySide6")
    qt_rth_utils.create_embedded_qt_conf("PySide6", qt_path)


_forge_rthook()
del _forge_rthook
