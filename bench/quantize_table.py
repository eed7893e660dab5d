"""What each quantization algorithm costs and what it keeps. Run: python bench/quantize_table.py

1. Wall time and peak resident memory (the whole process tree, sampled every 50 ms) of `main.py quantize` for
   every algorithm on the FP32 build of a ~113M-parameter random Llama (made here, once; Quark starts from the
   checkpoint itself), measured without the perplexity step so that only the quantizer is timed.
2. Perplexity of every result on the trained demo model against its FP32 build, on the held-out text: the
   quality table (a random model's perplexity says nothing, so the quality half runs on the demo).

Each quantization is one run: the figures are minutes apart, so the noise of a shared 2-core machine matters
less than for the convert-overhead ratio. --algos picks a subset; --calib-size trades AWQ time for calibration.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from convert_overhead import make_100m_checkpoint, run_measured  # noqa: E402 - the bench folder is not a package

# (label, algorithm, --set options)
RUNS: list[tuple[str, str, list[str]]] = [
    ("rtn_dq", "rtn_dq", []),
    ("rtn", "rtn", []),
    ("awq_lite", "awq_lite", []),
    ("awq_lite+int8", "awq_lite", ["enable_mixed_quant=true"]),
    ("awq_clip", "awq_clip", []),
    ("fp16", "fp16", []),
    ("q8", "q8", []),
    ("s8s8", "s8s8", []),
    ("s8u8", "s8u8", []),
    ("u8u8", "u8u8", []),
    ("q4", "q4", []),
    ("q4f16", "q4f16", []),
    ("bnb4", "bnb4", []),
    ("quark-awq", "quark-awq", []),
]
_CALIBRATED = {"awq_lite", "awq_clip", "quark-awq"}


def main_py(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "main.py"), *args]


def convert_fp32(checkpoint: Path, out: Path) -> Path:
    if not (out / "genai_config.json").is_file():
        subprocess.run(
            main_py("convert", str(checkpoint), "-o", str(out), "--preset", "fp32", "--ep", "cpu", "--no-check"),
            check=True,
            capture_output=True,
        )
    return out


def quantize_command(
    label: str, algo: str, sets: list[str], checkpoint: Path, fp32: Path, out: Path, calib: int
) -> list[str]:
    source = checkpoint if algo == "quark-awq" else fp32
    extra = [f"calib_size={calib}", "calib_seq_len=128"] if algo in _CALIBRATED else []
    options = [item for pair in [*sets, *extra] for item in ("--set", pair)]
    return main_py("quantize", str(source), "-o", str(out / label), "--algo", algo, "--overwrite", *options)


def cost_table(checkpoint: Path, work: Path, runs: list[tuple[str, str, list[str]]], calib: int) -> None:
    fp32 = convert_fp32(checkpoint, work / "fp32")
    input_mb = sum(p.stat().st_size for p in fp32.iterdir() if p.is_file()) / 2**20
    print(f"\n~113M random Llama, FP32 build {input_mb:,.0f} MB; one run each, 2 cores\n")
    print(f"{'algorithm':<15} {'wall s':>8} {'peak RSS MB':>12} {'output MB':>10}")
    for label, algo, sets in runs:
        seconds, peak = run_measured(quantize_command(label, algo, sets, checkpoint, fp32, work, calib) + ["--no-eval"])
        size = sum(p.stat().st_size for p in (work / label).rglob("*") if p.is_file()) / 2**20
        print(f"{label:<15} {seconds:8.1f} {peak / 2**20:12,.0f} {size:10,.1f}", flush=True)
        shutil.rmtree(work / label, ignore_errors=True)


def quality_table(work: Path, runs: list[tuple[str, str, list[str]]], calib: int) -> None:
    from app.paths import demo_checkpoint

    demo = demo_checkpoint()
    fp32 = convert_fp32(demo, work / "demo-fp32")
    fp32_perplexity = _perplexity(fp32)
    print("\ndemo model (trained, 1.05M parameters): perplexity on the held-out text against its FP32 build\n")
    print(f"{'algorithm':<15} {'size %':>7} {'perplexity':>11} {'FP32':>8} {'change':>8}")
    for label, algo, sets in runs:
        done = subprocess.run(
            quantize_command(label, algo, sets, demo, fp32, work, calib), capture_output=True, text=True
        )
        if done.returncode != 0:
            print(f"{label:<15} failed: {done.stderr.strip().splitlines()[-1:]}")
            continue
        quality = json.loads((work / label / "forge.json").read_text())["quality"]
        # Quark starts from the checkpoint: its result is compared with the FP32 build's figure.
        before = quality.get("input_perplexity", fp32_perplexity)
        after = quality["perplexity"]
        print(
            f"{label:<15} {quality['size_ratio']:7.1%} {after:11.4f} {before:8.4f} {after / before - 1:+8.2%}",
            flush=True,
        )


def _perplexity(folder: Path) -> float:
    done = subprocess.run(main_py("eval", str(folder), "--json"), capture_output=True, text=True, check=True)
    return json.loads(done.stdout)["perplexity"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", help="comma-separated labels to run (default: all)")
    parser.add_argument("--calib-size", type=int, default=16, help="calibration samples for the AWQ algorithms")
    parser.add_argument("--skip-cost", action="store_true", help="only the demo quality table")
    parser.add_argument("--skip-quality", action="store_true", help="only the 100M cost table")
    args = parser.parse_args()
    wanted = set(args.algos.split(",")) if args.algos else None
    runs = [run for run in RUNS if wanted is None or run[0] in wanted]
    with tempfile.TemporaryDirectory(prefix="forge-bench-quantize-") as tmp:
        work = Path(tmp)
        if not args.skip_quality:
            quality_table(work / "quality", runs, args.calib_size)
        if not args.skip_cost:
            cost_table(make_100m_checkpoint(work / "llama-113m"), work / "cost", runs, args.calib_size)


if __name__ == "__main__":
    main()
