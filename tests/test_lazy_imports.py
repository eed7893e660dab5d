import subprocess
import sys

from tests.conftest import ROOT, run_main

HEAVY = ("torch", "onnxruntime", "onnxruntime_genai", "transformers", "PySide6")


def test_importing_the_engine_leaves_heavy_libraries_out():
    code = (
        "import sys, app, app.cli, app.presets, app.convert, app.checkpoints, app.chat, app.manifest, app.hub, "
        "app.hardware, app.builder_info, app.jobs.runner, app.jobs.worker, app.jobs.console\n"
        "app.cli.build_parser()\n"
        f"print([name for name in {HEAVY!r} if name in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_help_runs_without_heavy_imports():
    code = (
        "import runpy, sys\n"
        "sys.argv = ['main.py', '--help']\n"
        "try:\n    runpy.run_path('main.py', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        f"print([name for name in {HEAVY!r} if name in sys.modules], file=sys.stderr)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert "convert" in result.stdout
    assert result.stderr.strip() == "[]"
    assert run_main("--help").returncode == 0
