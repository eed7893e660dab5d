"""How much does `main.py convert` cost over the bare builder command? Run: python bench/convert_overhead.py

Converts the demo checkpoint and a random Llama shaped like SmolLM-135M (made here, once: 30 layers, hidden 576,
a 49,152-token vocabulary, tied embeddings) with both, alternating, at FP32 and INT4, and prints the median
wall-time ratio and the peak resident memory of each (the whole process tree, sampled every 50 ms).
Targets (issue 14): ratio <= 1.05 and peak ratio <= 1.00.
Also times `main.py --help` (target < 0.5 s) to show the lazy imports hold.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def random_llama(dest: Path, vocab_size: int | None = None, **shape: int | bool) -> Path:
    """A random Llama of this shape with the demo's tokenizer, saved once to dest."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from app.paths import demo_checkpoint

    if (dest / "config.json").is_file():
        return dest
    tokenizer = AutoTokenizer.from_pretrained(demo_checkpoint())
    config = LlamaConfig(
        vocab_size=vocab_size or len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **shape,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return dest


def make_100m_checkpoint(dest: Path) -> Path:
    """~113M parameters, the demo's vocabulary."""
    return random_llama(
        dest,
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=12,
        num_attention_heads=12,
        num_key_value_heads=4,
        max_position_embeddings=1024,
    )


def make_135m_checkpoint(dest: Path) -> Path:
    """The shape of SmolLM-135M: tied embeddings and a real-sized vocabulary (49,152)."""
    return random_llama(
        dest,
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
    )


def run_measured(command: list[str], allow_failure: bool = False) -> tuple[float, int]:
    """(wall seconds, peak RSS of the process tree in bytes); a failing command ends the bench unless allowed."""
    # stderr goes to a file: a pipe nobody reads until the end fills up and stalls a chatty command.
    with tempfile.TemporaryFile() as log:
        started = time.perf_counter()
        process = psutil.Popen(command, stdout=subprocess.DEVNULL, stderr=log, cwd=ROOT)
        peak = 0
        while process.poll() is None:
            total = 0
            try:
                for member in [process, *process.children(recursive=True)]:
                    total += member.memory_info().rss
            except psutil.Error:
                pass
            peak = max(peak, total)
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        if process.returncode != 0 and not allow_failure:
            log.seek(0)
            raise SystemExit(f"{' '.join(command)} failed:\n{log.read().decode(errors='replace')[-2000:]}")
    return seconds, peak


def bench(name: str, source: Path, preset: str, runs: int, work: Path, check: bool) -> None:
    from app.manifest import builder_command
    from app.presets import resolve

    bare_out, forge_out, cache = work / "bare", work / "forge", work / "cache"
    # The builder command forge.json records for this build, as a user would replay it (hf_remote=false included).
    recorded = builder_command(str(source), resolve(preset, "cpu"))
    output_at = recorded.index("OUT")
    bare = [sys.executable, *recorded[1:output_at], str(bare_out), "-c", str(cache), *recorded[output_at + 1 :]]
    forge = [
        sys.executable,
        str(ROOT / "main.py"),
        "convert",
        str(source),
        "-o",
        str(forge_out),
        "--preset",
        preset,
        "--ep",
        "cpu",
        "--overwrite",
        *([] if check else ["--no-check"]),
    ]
    timings: dict[str, list[float]] = {"bare": [], "forge": []}
    peaks: dict[str, list[int]] = {"bare": [], "forge": []}
    for _ in range(runs):
        for label, command, out in (("bare", bare, bare_out), ("forge", forge, forge_out)):
            shutil.rmtree(out, ignore_errors=True)
            seconds, peak = run_measured(command)
            timings[label].append(seconds)
            peaks[label].append(peak)
    ratios = [f / b for f, b in zip(timings["forge"], timings["bare"], strict=False)]
    peak_ratios = [f / b for f, b in zip(peaks["forge"], peaks["bare"], strict=False)]
    label = f"{name} {preset}{'' if check else ' (--no-check)'}"
    print(
        f"{label:<34} bare {statistics.median(timings['bare']):6.2f} s"
        f"   forge {statistics.median(timings['forge']):6.2f} s   wall ratio {statistics.median(ratios):.3f}"
        f"   peak RSS bare {statistics.median(peaks['bare']) / 2**20:,.0f} MB"
        f"   forge {statistics.median(peaks['forge']) / 2**20:,.0f} MB"
        f"   peak ratio {statistics.median(peak_ratios):.3f}",
        flush=True,
    )


def help_time(runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "main.py"), "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--skip-135m", action="store_true", help="only the demo checkpoint")
    parser.add_argument("--presets", default="fp32,int4", help="comma-separated presets (CPU)")
    parser.add_argument("--also-no-check", action="store_true", help="also time main.py convert --no-check")
    args = parser.parse_args()
    from app.paths import demo_checkpoint

    print(f"main.py --help: {help_time():.3f} s (median of 5; target < 0.5 s)", flush=True)
    with tempfile.TemporaryDirectory(prefix="forge-bench-") as tmp:
        work = Path(tmp)
        sources = [("demo", demo_checkpoint())]
        if not args.skip_135m:
            sources.append(("random llama 135M", make_135m_checkpoint(work / "llama-135m")))
        for name, source in sources:
            for preset in args.presets.split(","):
                for check in (True, False) if args.also_no_check else (True,):
                    bench(name, source, preset, args.runs, work, check)


if __name__ == "__main__":
    main()
