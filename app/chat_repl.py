"""`main.py chat MODEL`: one reply with --prompt, otherwise a conversation at the terminal."""

from __future__ import annotations

import argparse
import io
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any, TextIO

from . import options
from .chat import ChatSession, Reply
from .errors import ForgeError

HELP = "/clear forgets the conversation, /regenerate answers again, /system TEXT sets the system prompt, /exit quits."


def add_arguments(chat: argparse.ArgumentParser) -> None:
    chat.add_argument("model", help="an ONNX Runtime GenAI model folder")
    chat.add_argument("--prompt", help="the user's message; without it, chat interactively")
    chat.add_argument("--system", default="", help="a system prompt")
    chat.add_argument(
        "--max-length", type=options.MAX_LENGTH, help="maximum total tokens (default: the model's genai_config)"
    )
    chat.add_argument(
        "--ep",
        choices=["cpu", "cuda", "dml", "webgpu", "trt-rtx"],
        help="run on this provider (default: the one the model was built for)",
    )
    chat.add_argument("--device-id", type=options.DEVICE_ID, help="which GPU (DirectML adapter index or CUDA device)")
    how = chat.add_mutually_exclusive_group()
    how.add_argument("--sample", dest="do_sample", action="store_true", default=None, help="sample the next token")
    how.add_argument("--greedy", dest="do_sample", action="store_false", help="always take the likeliest token")
    chat.add_argument("--temperature", type=options.TEMPERATURE)
    chat.add_argument("--top-p", type=options.TOP_P)
    chat.add_argument("--top-k", type=options.TOP_K)
    chat.add_argument("--repetition-penalty", type=options.REPETITION_PENALTY)
    chat.add_argument("--seed", type=options.SEED, help="random seed for sampling (default: a new one each reply)")
    chat.add_argument("--json", action="store_true", help="print JSON with the reply and its figures")


def settings_from(args: argparse.Namespace) -> dict[str, Any]:
    names = ("max_length", "do_sample", "temperature", "top_p", "top_k", "repetition_penalty", "seed")
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def cmd_chat(args: argparse.Namespace) -> int:
    session = ChatSession(Path(args.model), args.ep, args.device_id, args.system)
    session.set_settings(settings_from(args))
    if args.prompt is None:
        if isinstance(sys.stdin, io.TextIOWrapper):
            sys.stdin.reconfigure(errors="surrogateescape")  # bytes that are not UTF-8 reach valid_text, not a crash
        return interact(session, sys.stdin, sys.stdout)
    if args.json:
        print(json.dumps(session.send(args.prompt).to_dict(), indent=2, ensure_ascii=False))
        return 0
    reply = session.send(args.prompt, lambda text: print(text, end="", flush=True))
    print(f"\n[{reply.figures()}]", file=sys.stderr)
    if reply.warning:
        print(f"warning: {reply.warning}", file=sys.stderr)
    return 0


def interact(session: ChatSession, stdin: TextIO, stdout: TextIO) -> int:
    """Turns until /exit or the end of input. Ctrl+C stops a reply; at the prompt it quits."""
    print(f"Chatting with {session.folder.name} on {session.provider}. {HELP}", file=sys.stderr)
    while True:
        print("> ", end="", file=stderr_or(stdout), flush=True)
        try:
            line = stdin.readline()
        except KeyboardInterrupt:
            return 0
        if not line:
            return 0
        text = line.rstrip("\n")
        command, _, rest = text.partition(" ")
        if command == "/exit":
            return 0
        if command == "/clear":
            session.clear()
            print("(conversation cleared)", file=sys.stderr)
            continue
        if command == "/system":
            session.set_system(rest)
            continue
        try:
            pieces = session.regenerate() if command == "/regenerate" else session.stream(text)
        except ForgeError as error:
            print(f"error: {error}", file=sys.stderr)
            continue
        reply = _stream_interruptibly(session, pieces, stdout)
        stdout.write("\n")
        stdout.flush()
        print(f"[{reply.figures()}]", file=sys.stderr)
        if reply.warning:
            print(f"warning: {reply.warning}", file=sys.stderr)


def stderr_or(stdout: TextIO) -> TextIO:
    """The prompt marker goes where the user looks: stderr when stdout is piped, so replies stay clean."""
    return stdout if stdout.isatty() else sys.stderr


def _stream_interruptibly(session: ChatSession, pieces: Any, stdout: TextIO) -> Reply:
    """Print the reply; Ctrl+C meanwhile stops generation between two tokens instead of raising.

    The handler only sets the session's stop flag, so there is no moment in which a KeyboardInterrupt could
    escape half-way through a token (signal handlers run on the main thread, where this is called from the CLI).
    """
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, lambda *_: session.stop()) if on_main_thread else None
    try:
        for piece in pieces:
            stdout.write(piece)
            stdout.flush()
    finally:
        if on_main_thread:
            signal.signal(signal.SIGINT, previous)
    return session.last_reply()
