"""ONNX Forge entry point. No arguments: the window. A command: the same engine, headless.

`main.py worker JOB SPEC` is how the studio re-launches itself for heavy jobs (in a frozen app,
sys.executable is the app itself), so it is handled first, before anything imports Qt.
"""

from __future__ import annotations

import multiprocessing
import os
import sys


def main() -> int:
    multiprocessing.freeze_support()
    guard_streams()
    args = sys.argv[1:]
    if args[:1] == ["worker"]:
        from app.jobs.worker import run

        if len(args) != 3:
            print("usage: main.py worker JOB @SPEC_FILE|SPEC_JSON", file=sys.stderr)
            return 2
        code = run(args[1], args[2])
        # The job is over and its result sent: tearing down torch and the runtime would only cost seconds.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    if not args:
        return open_window()
    from app.cli import main as cli_main

    return cli_main(args)


def guard_streams() -> None:
    """A windowed .exe started without pipes has sys.stdout/sys.stderr = None: give writers (print, tqdm, logging)
    somewhere to write. The worker still finds the parent's pipes, when there are any, as fds 1 and 2."""
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))  # lives as long as the app


def open_window() -> int:
    try:
        from ui.app import run_window
    except ImportError as error:
        print(
            f"error: the window cannot start ({error}); use a command instead, see `main.py --help`.", file=sys.stderr
        )
        return 2
    return run_window()


if __name__ == "__main__":
    sys.exit(main())
