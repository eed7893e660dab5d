"""What does chatting through ChatSession cost, and does the Chat tab keep the window responsive?
Run: python bench/chat_speed.py

1. Generation speed: ChatSession.send() against the bare onnxruntime-genai loop (its own twenty-line example)
   on the same model and prompt, greedy, alternating runs; both time decoding the same way (tokens after the
   first, per second from the first token to the last). Target: median ratio >= 0.97.
   Model: the ~113M-parameter random Llama of bench/convert_overhead.py converted to INT4 for the CPU
   (per-token time is then mostly the model, as with real models), or --model FOLDER.
2. The GUI thread's worst stall while the Chat tab streams the demo model's replies at full speed
   (about a thousand tokens a second here, far more pieces than a real model sends): a 10 ms QTimer
   records its largest gap. Target: < 50 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

PROMPT = "Tom goes to the park. He sees a big dog and"


def convert(source: str | Path, output: Path) -> Path:
    if not (output / "genai_config.json").is_file():
        command = [sys.executable, str(ROOT / "main.py"), "convert", str(source), "-o", str(output), "--preset", "int4"]
        subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return output


def bare_loop(og, model, tokenizer, prompt: str, max_length: int) -> tuple[int, float]:
    """(new tokens, decoding tok/s) with nothing of ours in the loop."""
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=max_length, do_sample=False)
    generator = og.Generator(model, params)
    stream = tokenizer.create_stream()
    generator.append_tokens(tokenizer.encode(prompt))
    pieces, first, count = [], 0.0, 0
    while not generator.is_done():
        generator.generate_next_token()
        count += 1
        if count == 1:
            first = time.perf_counter()
        pieces.append(stream.decode(generator.get_next_tokens()[0]))
    return count, (count - 1) / (time.perf_counter() - first)


def generation_speed(folder: Path, runs: int, new_tokens: int) -> None:
    from app.chat import ChatSession, load_genai

    og = load_genai()
    session = ChatSession(folder)
    prompt = session.rendered_prompt([{"role": "user", "content": PROMPT}])
    max_length = len(session.tokenizer.encode(prompt)) + new_tokens
    session.set_settings({"max_length": max_length, "do_sample": False})
    bare_model = og.Model(str(folder))  # its own copy: neither side shares caches with the other
    bare_tokenizer = og.Tokenizer(bare_model)
    ours, bare, ratios = [], [], []
    for run in range(runs + 1):
        session.clear()
        reply = session.send(PROMPT)
        count, speed = bare_loop(og, bare_model, bare_tokenizer, reply.prompt, max_length)
        assert count == reply.new_tokens, (count, reply.new_tokens)
        if run == 0:
            continue  # warm-up
        ours.append(reply.tokens_per_second)
        bare.append(speed)
        ratios.append(reply.tokens_per_second / speed)
    print(f"model {folder.name}: {reply.new_tokens} new tokens per run, {runs} runs after a warm-up")
    print(f"  ChatSession   median {statistics.median(ours):8.1f} tok/s")
    print(f"  bare og loop  median {statistics.median(bare):8.1f} tok/s")
    print(f"  ratio (ChatSession / bare) median {statistics.median(ratios):.3f}  (target >= 0.97)")


def gui_stall(demo_folder: Path, replies: int) -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from app.library import LibraryEntry
    from ui.chat import ChatPane

    app = QApplication.instance() or QApplication([])
    pane = ChatPane()
    pane.resize(1200, 700)
    pane.set_models([LibraryEntry("onnx", str(demo_folder), demo_folder.name, "folder")])
    pane.show()
    column = pane.columns[0]
    column.load()
    while column.state not in ("ready", "failed"):
        app.processEvents()
        time.sleep(0.005)
    assert column.state == "ready", column.status.text()
    box = pane.settings_box
    box.sample.setCurrentIndex(1)
    box.temperature.setValue(5.0)
    box.top_k.setValue(1000)

    clock = QElapsedTimer()
    worst, last, tokens, seconds = 0.0, 0.0, 0, 0.0

    def tick() -> None:
        nonlocal worst, last
        now = clock.nsecsElapsed() / 1e6
        if column.state == "streaming":
            worst = max(worst, now - last)
        last = now

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    clock.start()
    timer.start()
    loop = QEventLoop()
    column.reply_finished.connect(lambda _reply: loop.quit())
    for seed in range(1, replies + 1):
        box.seed.setValue(seed)
        pane.input.setText("Tom goes to the")
        pane.send()
        loop.exec()  # the window's own event loop, as a user has it
        reply = column.transcript.turns[-1].reply
        tokens += reply.new_tokens
        seconds += reply.seconds
    timer.stop()
    pane.shutdown()
    pane.close()
    speed = tokens / seconds
    print(f"GUI thread while the Chat tab streamed {tokens} tokens in {replies} replies ({speed:.0f} tok/s):")
    print(f"  worst gap of a 10 ms timer {worst:.1f} ms  (target < 50 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--model", type=Path, help="a GenAI folder to time (default: the 113M Llama, INT4)")
    parser.add_argument("--replies", type=int, default=8, help="replies streamed for the GUI stall figure")
    parser.add_argument("--work", type=Path, help="keep converted models here between runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="forge-chat-bench-") as tmp:
        work = args.work or Path(tmp)
        if args.model is None:
            from convert_overhead import make_100m_checkpoint

            args.model = convert(make_100m_checkpoint(work / "llama-113m"), work / "llama-113m-int4")
        generation_speed(args.model, args.runs, args.new_tokens)
        gui_stall(convert("demo", work / "demo-int4"), args.replies)


if __name__ == "__main__":
    main()
