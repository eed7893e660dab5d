"""The chat engine (app/chat.py) and `main.py chat`, on real converted models: the demo and a tiny Llama whose
role-marker chat template puts every turn in the prompt."""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from app.chat import (
    ChatSession,
    GenerationSettings,
    ProviderUnavailableError,
    check_template,
    load_genai,
    read_genai_config,
)
from app.errors import InputError, ModelLoadError
from tests.conftest import ROOT, run_main

no_directml_here = pytest.mark.skipif(sys.platform == "win32", reason="DirectML may be usable on Windows")


@pytest.fixture(scope="session")
def builds(tmp_path_factory, checkpoints) -> dict[str, Path]:
    """The demo converted for the CPU and for DirectML side by side (as the studio lays variants out), a DirectML
    build alone, and a tiny Llama with a role-marker chat template."""
    from app.presets import BuildOptions
    from app.repairs import call_builder

    root = tmp_path_factory.mktemp("chat-builds")
    made = {"cpu": root / "variants" / "demo-int4", "dml": root / "variants" / "demo-int4-dml"}
    for name, ep in (("cpu", "cpu"), ("dml", "dml")):
        done = run_main("convert", "demo", "-o", str(made[name]), "--preset", "int4", "--ep", ep)
        assert done.returncode == 0, done.stderr
    made["dml-alone"] = Path(shutil.copytree(made["dml"], root / "alone" / "demo-int4-dml"))
    made["llama"] = root / "llama-fp32"
    call_builder(checkpoints("llama"), made["llama"], root / "cache", BuildOptions("fp32", "fp32", "cpu"), False)
    return made


def bare_greedy(folder: Path, prompt: str, max_length: int) -> list[int]:
    """The twenty-line onnxruntime-genai loop, with nothing of ours in it."""
    og = load_genai()
    model = og.Model(str(folder))
    tokenizer = og.Tokenizer(model)
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=max_length, do_sample=False)
    generator = og.Generator(model, params)
    generator.append_tokens(tokenizer.encode(prompt))
    tokens = []
    while not generator.is_done():
        generator.generate_next_token()
        tokens.append(int(generator.get_next_tokens()[0]))
    return tokens


@pytest.mark.parametrize("model", ["cpu", "llama"])
def test_greedy_reply_equals_a_plain_generate_loop_token_for_token(builds, model):
    session = ChatSession(builds[model])
    session.set_settings({"max_length": 80, "do_sample": False})
    pieces: list[str] = []
    reply = session.send("Tom goes to the", pieces.append)

    expected = bare_greedy(builds[model], reply.prompt, 80)
    stream = session.tokenizer.create_stream()
    expected_pieces = [piece for piece in (stream.decode(token) for token in expected) if piece]
    assert reply.new_tokens == len(expected) > 0
    assert pieces == expected_pieces
    assert reply.text == "".join(expected_pieces)


def test_second_turn_renders_the_first_through_the_checkpoints_template(builds):
    from transformers import AutoTokenizer

    session = ChatSession(builds["llama"], system="Be brief.")
    session.set_settings({"max_length": 120})
    first = session.send("Convert the model")
    second = session.send("Now quantize it")
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Convert the model"},
        {"role": "assistant", "content": first.text},
        {"role": "user", "content": "Now quantize it"},
    ]
    hf = AutoTokenizer.from_pretrained(str(builds["llama"]))
    assert second.prompt == hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert "<|user|>\nConvert the model<|end|>" in second.prompt and second.prompt.endswith("<|assistant|>\n")
    assert check_template(session.tokenizer, builds["llama"]) == ""


def test_regenerate_replaces_the_last_reply_and_clear_forgets(builds):
    session = ChatSession(builds["cpu"])
    session.set_settings({"max_length": 60, "do_sample": True, "temperature": 1.5, "seed": 7})
    first = session.send("Tom goes to the")
    list(session.regenerate())
    again = session.last_reply()
    assert [turn.role for turn in session.transcript.turns] == ["user", "assistant"]
    assert again.prompt == first.prompt
    session.set_settings({"seed": 7})
    list(session.regenerate())
    assert session.last_reply().text == again.text  # a seed makes sampling repeatable
    session.clear()
    assert session.transcript.turns == []
    with pytest.raises(InputError, match="nothing to regenerate"):
        session.regenerate()


def test_stop_halts_within_one_token(builds):
    session = ChatSession(builds["cpu"])
    pieces = session.stream("Tom goes to the")
    first = next(pieces)
    session.stop()
    assert list(pieces) == []
    reply = session.last_reply()
    assert reply.stopped and reply.new_tokens == 1 and reply.text == first


def test_stop_before_the_first_token_counts(builds):
    session = ChatSession(builds["cpu"])
    pieces = session.stream("Tom goes to the")
    session.stop()
    assert list(pieces) == [] and session.last_reply().new_tokens == 0


def test_settings_start_from_genai_config_and_are_checked(builds):
    session = ChatSession(builds["cpu"])
    search = read_genai_config(builds["cpu"])["search"]
    assert session.settings == GenerationSettings(
        max_length=search["max_length"],
        do_sample=search["do_sample"],
        temperature=search["temperature"],
        top_p=search["top_p"],
        top_k=search["top_k"],
        repetition_penalty=search["repetition_penalty"],
    )
    with pytest.raises(InputError, match="context of 512 tokens"):
        session.set_settings({"max_length": 513})
    with pytest.raises(InputError, match="top-p"):
        session.set_settings({"top_p": 0})
    with pytest.raises(InputError, match="unknown generation setting beam"):
        session.set_settings({"beam": 2})
    assert session.settings.max_length == 512  # a refused change changes nothing


def test_a_prompt_longer_than_the_context_is_refused_and_not_kept(builds):
    session = ChatSession(builds["cpu"])
    with pytest.raises(InputError, match=r"the conversation is \d+ tokens.*maximum length of 512"):
        session.stream("Tom goes to the park. " * 200)
    assert session.transcript.turns == []
    session.set_settings({"max_length": 30})
    reply = session.send("Tom goes to the park and")
    assert reply.prompt_tokens + reply.new_tokens == 30
    assert "cut at the maximum length of 30" in reply.warning


def test_a_folder_that_is_not_a_genai_model(tmp_path):
    with pytest.raises(ModelLoadError, match="no genai_config.json, so it is not an ONNX Runtime GenAI model"):
        ChatSession(ROOT / "resources" / "demo")
    with pytest.raises(ModelLoadError, match="is not a folder"):
        ChatSession(tmp_path / "missing")


@no_directml_here
def test_a_build_for_a_provider_this_machine_lacks_offers_the_cpu_build(builds):
    with pytest.raises(ProviderUnavailableError) as caught:
        ChatSession(builds["dml"])
    assert "built for DirectML, which is not usable here" in str(caught.value)
    assert caught.value.cpu_build == builds["cpu"].resolve()
    assert f"its CPU build {builds['cpu'].name} runs here" in str(caught.value)
    with pytest.raises(ProviderUnavailableError, match="convert it for the CPU") as alone:
        ChatSession(builds["dml-alone"])
    assert alone.value.cpu_build is None


def test_the_provider_is_chosen_in_memory_never_in_genai_config(builds):
    config = builds["dml"] / "genai_config.json"
    before = config.read_bytes()
    reply = ChatSession(builds["dml"], ep="cpu").send("Tom goes to the")
    assert reply.new_tokens > 0 and config.read_bytes() == before


def test_a_model_from_a_newer_builder_says_so(builds, copy_of):
    folder = copy_of(builds["cpu"])
    record = json.loads((folder / "forge.json").read_text())
    record["versions"]["onnxruntime-genai"] = "9.1.0"
    (folder / "forge.json").write_text(json.dumps(record))
    installed = re.escape(importlib.metadata.version("onnxruntime-genai"))
    newer = rf"built by onnxruntime-genai 9\.1\.0, newer than the installed {installed};"
    with pytest.raises(ModelLoadError, match=newer):
        ChatSession(folder)


def test_a_template_that_onnxruntime_genai_renders_differently_is_flagged(builds, copy_of):
    folder = copy_of(builds["llama"])
    # transformers renders with trim_blocks (the newline after a block tag goes); onnxruntime-genai keeps it.
    (folder / "chat_template.jinja").write_text(
        "{{ bos_token }}{% for message in messages %}\n"
        "{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}{% endfor %}\n"
        "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
    )
    session = ChatSession(folder)
    assert "renders the chat template differently" in check_template(session.tokenizer, folder)


def test_exports(builds):
    session = ChatSession(builds["cpu"], system="Tell stories.")
    session.set_settings({"max_length": 40})
    reply = session.send("Tom goes to the")
    markdown = session.transcript.to_markdown()
    assert "**System:** Tell stories." in markdown and "**User:**\n\nTom goes to the" in markdown
    assert reply.text in markdown and f"{reply.new_tokens} tokens" in markdown
    exported = json.loads(session.transcript.to_json())
    assert exported["system"] == "Tell stories."
    assert [m["role"] for m in exported["messages"]] == ["user", "assistant"]
    assert exported["messages"][1]["figures"]["new_tokens"] == reply.new_tokens


def test_interactive_cli_keeps_the_conversation(builds):
    lines = "Tom goes to the\nThen Lily\n/clear\n/regenerate\nA cat\n/exit\nnever read\n"
    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "chat", str(builds["cpu"]), "--max-length", "120"],
        input=lines,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    replies = done.stdout.splitlines()
    assert len(replies) == 3 and all(replies)
    assert done.stderr.count(" tok/s · first token ") == 3
    assert "(conversation cleared)" in done.stderr and "error: there is nothing to regenerate" in done.stderr


@no_directml_here
def test_cli_refuses_a_dml_build_here_with_the_cpu_offer(builds):
    done = run_main("chat", str(builds["dml"]), "--prompt", "hi")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"error: {builds['dml'].name} was built for DirectML, which is not usable here (DirectML runs only on "
        f"Windows, and this is Linux); its CPU build {builds['cpu'].name} runs here: load that instead."
    )


def test_the_chat_child_takes_the_next_request_as_soon_as_it_announces_a_reply(builds):
    from app.jobs.chat_worker import ChatServer
    from app.jobs.protocol import ChatEvent

    events: list[ChatEvent] = []
    done = threading.Event()

    def emit(message) -> None:
        if isinstance(message, ChatEvent):
            events.append(message)
            if message.event == "reply":
                # The parent may answer at once, while the reply thread is still winding down.
                server.handle({"op": "settings", "settings": {"temperature": 0.5}})
                done.set()

    server = ChatServer(ChatSession(builds["cpu"]), emit)
    server.handle({"op": "send", "text": "Tom goes to the"})
    assert done.wait(60)
    assert [event.event for event in events] == ["reply", "settings"]
    assert server.session.settings.temperature == 0.5


# Sampled hot with this seed, the demo talks to the maximum length (507 new tokens): a reply to interrupt.
HOT = {"do_sample": True, "temperature": 5.0, "top_k": 1000, "seed": 2}


@pytest.mark.skipif(sys.platform == "win32", reason="Ctrl+C is a console event on Windows, not SIGINT")
def test_ctrl_c_stops_a_reply_in_the_conversation_loop(builds, capfd):
    """A real SIGINT, raised the moment the first piece is printed: the reply ends there, the loop goes on."""
    import io
    import os
    import signal

    from app.chat_repl import interact

    class InterruptOnFirstWrite(io.StringIO):
        def write(self, text: str) -> int:
            if not self.getvalue():
                os.kill(os.getpid(), signal.SIGINT)
            return super().write(text)

    session = ChatSession(builds["cpu"])
    session.set_settings(HOT)
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when the tests run as a background job
    assert interact(session, io.StringIO("Tom goes to the\n/exit\n"), InterruptOnFirstWrite()) == 0
    reply = session.last_reply()
    assert reply.stopped and 1 <= reply.new_tokens <= 3
    assert signal.getsignal(signal.SIGINT) == before  # put back after the reply
    assert "· stopped]" in capfd.readouterr().err


@pytest.mark.skipif(sys.platform == "win32", reason="Ctrl+C is a console event on Windows, not SIGINT")
def test_ctrl_c_in_the_interactive_cli_leaves_the_conversation_running(builds):
    import signal

    command = [sys.executable, str(ROOT / "main.py"), "chat", str(builds["cpu"])]
    command += ["--sample", "--temperature", "5", "--top-k", "1000", "--seed", "2"]
    child = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    child.stdin.write("Tom goes to the\n")
    child.stdin.flush()
    child.stdout.read(1)  # the reply has started
    child.send_signal(signal.SIGINT)  # the reply may be over on a slow machine: then it lands at the prompt
    out, err = child.communicate("/exit\n", timeout=60)
    assert child.returncode == 0, err
    assert "Traceback" not in err
    assert len([line for line in err.splitlines() if "tok/s" in line]) == 1


def test_the_chat_child_ends_when_its_parent_goes(builds):
    from app.jobs.runner import worker_command

    child = subprocess.Popen(
        worker_command("chat", {"model": str(builds["cpu"]), "check_template": False}),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    for line in child.stdout:
        if b'"ready"' in line:
            break
    child.stdin.close()  # what a killed window leaves: the end of stdin
    assert child.wait(timeout=30) == 0


def test_the_chat_child_continues_a_conversation_it_is_handed(demo_int4):
    from app.jobs.chat_worker import ChatServer
    from app.jobs.protocol import ChatEvent

    events: list[ChatEvent] = []
    replied = threading.Event()

    def emit(message) -> None:
        if isinstance(message, ChatEvent):
            events.append(message)
            if message.event == "reply":
                replied.set()

    server = ChatServer(ChatSession(demo_int4), emit)
    server.handle({"op": "history", "turns": [{"role": "user", "content": 3}]})
    assert events[-1].event == "refused"
    assert events[-1].data["message"] == "the conversation to continue is not a list of user and assistant turns."
    handed = [{"role": "user", "content": "Tom goes to the"}, {"role": "assistant", "content": " park."}]
    server.handle({"op": "history", "turns": handed})
    assert (events[-1].event, events[-1].data) == ("history", {"turns": 2})
    server.handle({"op": "send", "text": "Then Lily"})
    assert replied.wait(60)
    assert server.session.last_reply().prompt == "<s>Tom goes to the Then Lily"
    assert [turn.role for turn in server.session.transcript.turns] == ["user", "assistant", "user", "assistant"]
