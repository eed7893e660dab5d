"""`main.py serve [MODEL …]`: its options, and the loop that prints the request log until Ctrl+C."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import Any

from .. import options

API_KEY_ENV = "ONNX_FORGE_API_KEY"
PORT = options.whole_number(0, 65535, "a port number")
SLOTS = options.whole_number(1, 256)
PENDING = options.whole_number(1, 100_000)
BODY_BYTES = options.whole_number(1024, 1024**3)


def add_serve_command(commands: Any) -> None:
    serve = commands.add_parser("serve", help="serve library models over an OpenAI-compatible API on this machine")
    serve.add_argument(
        "models",
        nargs="*",
        metavar="MODEL",
        help="library model ids or ONNX model folders (a folder is added to the library); default: every ONNX model "
        "in the library",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)")
    serve.add_argument("--port", type=PORT, default=8000, help="port (default 8000; 0 picks a free one)")
    serve.add_argument(
        "--api-key",
        default=os.environ.get(API_KEY_ENV) or None,
        help=f"require 'Authorization: Bearer KEY' (needed beyond 127.0.0.1; default: ${API_KEY_ENV}, which keeps "
        "it out of process listings)",
    )
    serve.add_argument(
        "--cors-origin", action="append", default=[], metavar="ORIGIN", help="allow this web origin (repeatable)"
    )
    serve.add_argument(
        "--ep",
        choices=["cpu", "cuda", "dml", "webgpu", "trt-rtx"],
        help="run on this provider (default: the one each model was built for)",
    )
    serve.add_argument("--device-id", type=options.DEVICE_ID, help="which GPU (DirectML adapter index or CUDA device)")
    serve.add_argument("--slots", type=SLOTS, default=8, help="requests generating at once per model (default 8)")
    serve.add_argument("--max-pending", type=PENDING, default=64, help="running or waiting per model before 429")
    serve.add_argument("--max-body-bytes", type=BODY_BYTES, default=1024 * 1024, help="largest request body")
    serve.add_argument(
        "--batching",
        choices=["auto", "engine", "queue"],
        default="auto",
        help="onnxruntime-genai's Engine (continuous batching) or a fair queue (default: the Engine where it runs)",
    )
    serve.add_argument("--log-format", choices=["text", "json"], default="text", help="request log on stdout")
    serve.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from . import ServeConfig, Server, check_config, library_models

    config = ServeConfig(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        cors_origins=args.cors_origin,
        max_body_bytes=args.max_body_bytes,
        slots=args.slots,
        max_pending=max(args.max_pending, args.slots),
        batching=args.batching,
        ep=args.ep,
        device_id=args.device_id,
    )
    check_config(config)  # before anything loads: a refused address costs nothing
    folders = library_models(args.models)
    as_json = args.log_format == "json"
    server = Server(folders, config, lambda record: _print_record(record.to_dict(), as_json)).start()
    listening = {"type": "listening", "url": server.url, "models": list(folders), "batching": server.batching}
    if as_json:
        print(json.dumps(listening), flush=True)
    else:
        names = ", ".join(folders)
        print(f"serving {names} at {server.url} ({server.batching}); Ctrl+C stops.", file=sys.stderr, flush=True)
    signal.signal(signal.SIGTERM, _interrupt)  # a service manager's (or the Serve tab's) stop: the same clean end
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    load = server.load()
    server.close()
    if as_json:
        print(json.dumps({"type": "stopped", "load": load}), flush=True)
    else:
        print("stopped.", file=sys.stderr)
    return 0


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


def _print_record(record: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps({"type": "request", **record}, ensure_ascii=False), flush=True)
        return
    figures = f"{record['completion_tokens']} tokens"
    if record["completion_tokens"]:
        figures += f", {record['tokens_per_second']:.1f} tok/s, first token {record['first_token_ms']:.0f} ms"
    end = record["error"] or record["finish_reason"] or ("client went away" if record["disconnected"] else "")
    print(f"{record['status']} {record['endpoint']} {record['model']}: {figures} ({end})", flush=True)
