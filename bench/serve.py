"""What does serving through `main.py serve` cost, and does it hold up under load? Run: python bench/serve.py

The server runs as `main.py serve MODEL --port 0 --log-format json` (its own process, as users run it); the
client here speaks plain HTTP and times server-sent events as they arrive. Greedy throughout.

1. One stream against onnxruntime-genai's bare generate() loop on the same model and prompt, alternating runs:
   decoding tok/s (tokens after the first, first to last) and time to first token (client: request sent to first
   content chunk; bare: generator made to first token). Targets: ratio >= 0.95, TTFT at most 10 ms above.
2. Eight concurrent streams: aggregate tok/s (all tokens / wall time) against one stream; every reply must equal
   the same prompt's reply alone. Target >= 2x where the Engine batches.
   Model for 1 and 2: the ~113M-parameter random Llama of bench/convert_overhead.py, INT4 for the CPU, or --model.
3. A soak of --soak requests on the demo (8 clients at once, every fifth client leaves after its first chunk):
   each finished reply must equal its prompt's greedy reply; the server's RSS after a warm-up against the end
   (target < 5 % growth); and the server's own count of admitted requests and generators when it stops (0, 0).

Which batching ran (engine: onnxruntime-genai 0.18's Engine; queue: the fair queue) is printed with the figures;
run it with each environment's Python to compare.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

PROMPT = "Tom goes to the park. He sees a big dog and"
WORDS = "cat dog sun tree boat bird fish cake hat cup ball kite frog star moon rain".split()


class ServerProcess:
    """`main.py serve` in a child, with its request log read on a thread."""

    def __init__(self, folder: Path, home: Path, *extra: str) -> None:
        command = [sys.executable, str(ROOT / "main.py"), "serve", str(folder), "--port", "0", "--log-format", "json"]
        env = {**os.environ, "FORGE_HOME": str(home)}
        self.child = subprocess.Popen(
            [*command, *extra], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT
        )
        listening = json.loads(self.child.stdout.readline())
        self.port = int(listening["url"].rsplit(":", 1)[1].split("/")[0])
        self.model, self.batching = listening["models"][0], listening["batching"]
        self.records: list[dict] = []
        self.stopped: dict = {}
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.child.stdout:
            event = json.loads(line)
            if event["type"] == "request":
                self.records.append(event)
            elif event["type"] == "stopped":
                self.stopped = event["load"]

    def rss(self) -> int:
        return psutil.Process(self.child.pid).memory_info().rss

    def stop(self) -> dict:
        self.child.send_signal(signal.SIGTERM)
        self.child.wait(timeout=60)
        self._reader.join(10)
        return self.stopped


def stream(port: int, model: str, prompt: str, max_tokens: int, leave_after_first: bool = False) -> dict:
    """One streamed chat request: its text, the client's time to the first content and decoding tok/s."""
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens}
    body |= {"temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    sent = time.perf_counter()
    connection.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
    response = connection.getresponse()
    pieces, first, last, usage = [], 0.0, 0.0, {}
    for line in response:
        if not line.startswith(b"data: {"):
            continue
        chunk = json.loads(line[6:])
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk["choices"]:
            text = choice["delta"].get("content")
            if text:
                last = time.perf_counter()
                first = first or last
                pieces.append(text)
                if leave_after_first:
                    connection.sock.shutdown(2)
                    connection.close()
                    return {"left": True}
    connection.close()
    tokens = usage.get("completion_tokens", 0)
    return {
        "text": "".join(pieces),
        "tokens": tokens,
        "ttft": first - sent,
        "speed": (tokens - 1) / (last - first) if tokens > 1 and last > first else 0.0,
        "ended": last,
        "sent": sent,
    }


def bare_loop(og, model, tokenizer, prompt: str, max_length: int) -> tuple[int, float, float]:
    """(new tokens, time to first token, decoding tok/s) with nothing of ours in the loop."""
    started = time.perf_counter()
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=max_length, do_sample=False)
    generator = og.Generator(model, params)
    stream_ = tokenizer.create_stream()
    generator.append_tokens(tokenizer.encode(prompt))
    first, count = 0.0, 0
    while not generator.is_done():
        generator.generate_next_token()
        count += 1
        if count == 1:
            first = time.perf_counter()
        stream_.decode(generator.get_next_tokens()[0])
    return count, first - started, (count - 1) / (time.perf_counter() - first)


def one_stream(server: ServerProcess, folder: Path, runs: int, new_tokens: int) -> float:
    from app.chat import load_genai, render_prompt

    og = load_genai()
    model = og.Model(str(folder))
    tokenizer = og.Tokenizer(model)
    prompt = render_prompt(tokenizer, folder, [{"role": "user", "content": PROMPT}])
    max_length = len(tokenizer.encode(prompt)) + new_tokens
    served, bare, ratios, ttft_served, ttft_bare = [], [], [], [], []
    for run in range(runs + 1):
        reply = stream(server.port, server.model, PROMPT, new_tokens)
        count, ttft, speed = bare_loop(og, model, tokenizer, prompt, max_length)
        assert count == reply["tokens"], (count, reply["tokens"])
        if run == 0:
            continue  # warm-up
        served.append(reply["speed"])
        bare.append(speed)
        ratios.append(reply["speed"] / speed)
        ttft_served.append(reply["ttft"] * 1000)
        ttft_bare.append(ttft * 1000)
    extra = statistics.median(ttft_served) - statistics.median(ttft_bare)
    print(f"1. one stream, {folder.name}, {new_tokens} new tokens, {runs} runs after a warm-up ({server.batching})")
    print(f"   served   median {statistics.median(served):8.1f} tok/s  (spread {min(served):.1f}-{max(served):.1f})")
    print(f"   bare og  median {statistics.median(bare):8.1f} tok/s  (spread {min(bare):.1f}-{max(bare):.1f})")
    print(f"   ratio median {statistics.median(ratios):.3f}  (target >= 0.95)")
    print(
        f"   first token: served {statistics.median(ttft_served):.1f} ms, bare {statistics.median(ttft_bare):.1f} ms, "
        f"+{extra:.1f} ms  (target <= +10 ms)"
    )
    return statistics.median(served)


def concurrent(server: ServerProcess, streams: int, new_tokens: int, single_speed: float) -> None:
    prompts = [f"{PROMPT} the {WORDS[index]}" for index in range(streams)]
    alone = {prompt: stream(server.port, server.model, prompt, new_tokens)["text"] for prompt in prompts}
    results: dict[str, dict] = {}

    def one(prompt: str) -> None:
        results[prompt] = stream(server.port, server.model, prompt, new_tokens)

    threads = [threading.Thread(target=one, args=(prompt,)) for prompt in prompts]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = max(result["ended"] for result in results.values()) - started
    tokens = sum(result["tokens"] for result in results.values())
    same = sum(results[prompt]["text"] == alone[prompt] for prompt in prompts)
    aggregate = tokens / wall
    print(f"2. {streams} concurrent streams ({server.batching}), {new_tokens} new tokens each")
    print(f"   aggregate {aggregate:.1f} tok/s = {aggregate / single_speed:.2f}x one stream ({single_speed:.1f} tok/s)")
    print(f"   replies identical to their single-request reply: {same}/{streams}")


def soak(server: ServerProcess, requests: int, clients: int, new_tokens: int) -> None:
    prompts = [f"Tale of the {word}" for word in WORDS]
    expected = {prompt: stream(server.port, server.model, prompt, new_tokens)["text"] for prompt in prompts}
    counts = {"done": 0, "left": 0, "wrong": 0, "errors": 0}
    lock = threading.Lock()
    next_index = iter(range(requests))
    rss: list[int] = []

    def client() -> None:
        for index in next_index:
            prompt = prompts[index % len(prompts)]
            try:
                result = stream(server.port, server.model, prompt, new_tokens, leave_after_first=index % 5 == 4)
            except OSError:
                result = {"error": True}
            with lock:
                if result.get("left"):
                    counts["left"] += 1
                elif result.get("error"):
                    counts["errors"] += 1
                elif result["text"] == expected[prompt]:
                    counts["done"] += 1
                else:
                    counts["wrong"] += 1
                if index == requests // 10:
                    rss.append(server.rss())  # after the warm-up

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    time.sleep(0.5)  # the last request-log lines
    end_rss = server.rss()
    logged = len(server.records) - len(prompts)
    statuses = sorted({record["status"] for record in server.records})
    growth = (end_rss - rss[0]) / rss[0] * 100 if rss else float("nan")
    print(f"3. soak: {requests} requests, {clients} clients, {new_tokens} tokens, {seconds:.1f} s ({server.batching})")
    print(f"   finished and identical {counts['done']}, left mid-stream {counts['left']}, wrong {counts['wrong']}, ")
    print(f"   client errors {counts['errors']}, logged by the server {logged}, statuses {statuses}")
    print(
        f"   server RSS {rss[0] / 2**20:.1f} MiB after warm-up, {end_rss / 2**20:.1f} MiB at the end: {growth:+.1f} %"
    )
    print(f"   left in the server when it stopped: {server.stop()}")


def convert(source: str | Path, output: Path) -> Path:
    if not (output / "genai_config.json").is_file():
        command = [sys.executable, str(ROOT / "main.py"), "convert", str(source), "-o", str(output), "--preset", "int4"]
        subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--soak", type=int, default=1000)
    parser.add_argument("--soak-tokens", type=int, default=32)
    parser.add_argument("--model", type=Path, help="a GenAI folder for 1 and 2 (default: the 113M Llama, INT4)")
    parser.add_argument("--work", type=Path, help="keep converted models here between runs")
    parser.add_argument("--batching", choices=["auto", "engine", "queue"], default="auto")
    parser.add_argument("--parts", choices=["all", "speed", "soak"], default="all", help="speed: 1 and 2; soak: 3")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="forge-serve-bench-") as tmp:
        work = args.work or Path(tmp)
        home = Path(tmp) / "home"
        if args.model is None and args.parts != "soak":
            from convert_overhead import make_100m_checkpoint

            args.model = convert(make_100m_checkpoint(work / "llama-113m"), work / "llama-113m-int4")
        if args.parts != "soak":
            server = ServerProcess(args.model, home, "--batching", args.batching)
            try:
                speed = one_stream(server, args.model, args.runs, args.new_tokens)
                concurrent(server, args.streams, args.new_tokens, speed)
            finally:
                server.stop()
        if args.parts != "speed":
            soak(
                ServerProcess(convert("demo", work / "demo-int4"), home, "--batching", args.batching),
                args.soak,
                8,
                args.soak_tokens,
            )


if __name__ == "__main__":
    main()
