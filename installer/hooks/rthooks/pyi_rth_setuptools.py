# Replaces PyInstaller's setuptools run-time hook, which imports setuptools (0.3 s and ~10 MB) in every process to
# install its distutils shim. The window (the program started with no arguments) never imports setuptools or
# distutils; commands and job workers, where torch may, still get the shim.


def _forge_rthook() -> None:
    import os
    import sys

    if len(sys.argv) < 2:
        return
    import setuptools  # noqa: F401 - provides _distutils_hack

    if os.environ.get("SETUPTOOLS_USE_DISTUTILS", "local") == "local":
        import _distutils_hack

        _distutils_hack.add_shim()


_forge_rthook()
del _forge_rthook
