"""The OpenAI-compatible server (app/serve) on the demo converted once: the real `openai` client, plain HTTP,
hostile requests, concurrency, disconnects, and `main.py serve` itself."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

openai = pytest.importorskip("openai")

from app.errors import InputError  # noqa: E402
from app.library import Library  # noqa: E402
from app.serve import ServeConfig, Server, check_config, library_models  # noqa: E402
from tests.conftest import ROOT, run_main  # noqa: E402

MODEL = "demo-int4"
SCHEMA = {
    "type": "object",
    "properties": {"color": {"enum": ["red", "green"]}, "size": {"type": "integer", "minimum": 1, "maximum": 9}},
    "required": ["color", "size"],
    "additionalProperties": False,
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"enum": ["Paris", "Oslo"]}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("serve") / MODEL
    done = run_main("convert", "demo", "-o", str(folder), "--preset", "int4", "--ep", "cpu")
    assert done.returncode == 0, done.stderr
    return folder


@pytest.fixture(scope="module")
def library(demo_folder, tmp_path_factory) -> Library:
    library = Library(tmp_path_factory.mktemp("library") / "library.json")
    library.add_folder(demo_folder)
    return library


@pytest.fixture(scope="module")
def server(library):
    records: list = []
    started = Server(library_models([MODEL], library), ServeConfig(port=0), records.append).start()
    started.records = records
    yield started
    started.close()


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server.url, api_key="not-needed", max_retries=0)


def post(server, path: str, body, headers: dict | None = None) -> tuple[int, dict, dict]:
    """A plain HTTP POST: (status, JSON body, headers)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    connection.request("POST", path, data, {"Content-Type": "application/json", **(headers or {})})
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    return response.status, json.loads(payload), dict(response.getheaders())


def chat_body(content: str = "Tell me about the cat.", **extra) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], **extra}


def assert_refusal(status: int, body: dict, expected_status: int, param: str | None = None) -> str:
    assert status == expected_status, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    message = error["message"]
    assert "\n" not in message and message.endswith(".") and "Traceback" not in message
    if param is not None:
        assert error["param"] == param
    return message


def greedy(client, content: str, max_tokens: int, **extra) -> str:
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": content}], max_tokens=max_tokens, temperature=0, **extra
    )
    return reply.choices[0].message.content


# --- the openai client -------------------------------------------------------------------------------------------


def test_the_library_model_is_listed_by_its_id(client, server):
    assert [model.id for model in client.models.list().data] == [MODEL]
    assert client.models.retrieve(MODEL).owned_by == "onnx-forge"


def test_a_greedy_reply_equals_main_py_chat_for_the_same_conversation(client, demo_folder):
    prompt = "Once upon a time, a little dog"
    done = run_main("chat", str(demo_folder), "--prompt", prompt, "--greedy", "--json")
    assert done.returncode == 0, done.stderr
    expected = json.loads(done.stdout)
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": prompt}], temperature=0, max_tokens=expected["new_tokens"]
    )
    assert reply.choices[0].message.content == expected["text"]
    assert reply.usage.prompt_tokens == expected["prompt_tokens"]
    assert reply.usage.completion_tokens == expected["new_tokens"]
    assert reply.usage.total_tokens == expected["prompt_tokens"] + expected["new_tokens"]


def test_a_stream_carries_the_same_reply_its_finish_reason_and_usage(client):
    whole = client.chat.completions.create(**chat_body(), max_tokens=30, temperature=0)
    pieces, reasons, usage = [], [], None
    for chunk in client.chat.completions.create(
        **chat_body(), max_tokens=30, temperature=0, stream=True, stream_options={"include_usage": True}
    ):
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            reasons.append(choice.finish_reason)
    assert "".join(pieces) == whole.choices[0].message.content
    assert reasons[-1] == whole.choices[0].finish_reason == "length" and set(reasons[:-1]) == {None}
    assert usage.completion_tokens == whole.usage.completion_tokens == 30


def test_completions_stream_and_not(client):
    whole = client.completions.create(model=MODEL, prompt="The sun was", max_tokens=12, temperature=0)
    assert whole.choices[0].finish_reason == "length" and whole.usage.completion_tokens == 12
    streamed = "".join(
        chunk.choices[0].text
        for chunk in client.completions.create(
            model=MODEL, prompt="The sun was", max_tokens=12, temperature=0, stream=True
        )
        if chunk.choices
    )
    assert streamed == whole.choices[0].text and streamed


def test_a_stop_string_ends_the_reply_before_it(client):
    free = greedy(client, "Tell me about the cat.", 60)
    stop = free[10:13]
    cut = client.chat.completions.create(**chat_body(), max_tokens=60, temperature=0, stop=[stop, "zzzz"])
    assert cut.choices[0].message.content == free[: free.index(stop)]
    assert cut.choices[0].finish_reason == "stop"
    streamed = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in client.chat.completions.create(**chat_body(), max_tokens=60, temperature=0, stop=stop, stream=True)
        if chunk.choices
    )
    assert streamed == cut.choices[0].message.content


def test_a_seed_repeats_a_sampled_reply(client):
    def sampled(seed: int) -> str:
        reply = client.chat.completions.create(**chat_body(), max_tokens=40, temperature=1.0, top_p=0.9, seed=seed)
        return reply.choices[0].message.content

    assert sampled(7) == sampled(7)
    assert len({sampled(seed) for seed in range(4)}) > 1


def test_json_schema_output_parses_and_validates(client):
    for stream in (False, True):
        request = dict(
            **chat_body("Describe a ball."),
            max_tokens=60,
            response_format={"type": "json_schema", "json_schema": {"name": "ball", "schema": SCHEMA}},
        )
        if stream:
            text = "".join(
                chunk.choices[0].delta.content or ""
                for chunk in client.chat.completions.create(**request, stream=True)
                if chunk.choices
            )
        else:
            reply = client.chat.completions.create(**request)
            assert reply.choices[0].finish_reason == "stop"
            text = reply.choices[0].message.content
        value = json.loads(text)
        assert set(value) == {"color", "size"} and value["color"] in ("red", "green")
        assert isinstance(value["size"], int) and 1 <= value["size"] <= 9


def test_a_schema_the_runtime_cannot_use_is_a_400_with_its_reason(server):
    format_ = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "no-such-type"}}}
    status, body, _ = post(server, "/v1/chat/completions", chat_body(response_format=format_))
    message = assert_refusal(status, body, 400)
    assert message.startswith(f"{MODEL} could not generate: ") and "no-such-type" in message
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    request = json.dumps(chat_body(response_format=format_, stream=True))
    connection.request("POST", "/v1/chat/completions", request, {"Content-Type": "application/json"})
    events = [line[6:] for line in connection.getresponse().read().decode().split("\n\n") if line]
    connection.close()
    assert "error" in json.loads(events[-1]) and "no-such-type" in events[-1]  # the stream had begun: it ends so


def test_a_required_tool_call_comes_back_as_tool_calls(client):
    reply = client.chat.completions.create(
        **chat_body("What is the weather in Paris?"), max_tokens=60, tools=[WEATHER], tool_choice="required"
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments)["city"] in ("Paris", "Oslo")
    named = {"type": "function", "function": {"name": "get_weather"}}
    chunks = list(
        client.chat.completions.create(
            **chat_body("Weather?"), max_tokens=60, tools=[WEATHER], tool_choice=named, stream=True
        )
    )
    calls = [call for chunk in chunks if chunk.choices for call in (chunk.choices[0].delta.tool_calls or [])]
    assert [call.function.name for call in calls] == ["get_weather"]
    assert json.loads(calls[0].function.arguments)["city"] in ("Paris", "Oslo")
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_the_client_sees_openai_errors(client):
    with pytest.raises(openai.NotFoundError, match="is not served here"):
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="reads at most 512 tokens in all"):
        client.chat.completions.create(**chat_body("word " * 3000))


# --- plain HTTP, and what a hostile client sends -----------------------------------------------------------------


def test_a_plain_http_stream_is_server_sent_events_ending_in_done(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    body = json.dumps(chat_body(max_tokens=8, temperature=0, stream=True))
    connection.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 200 and response.getheader("content-type").startswith("text/event-stream")
    events = [line for line in response.read().decode().split("\n\n") if line]
    connection.close()
    assert all(event.startswith("data: ") for event in events) and events[-1] == "data: [DONE]"
    chunks = [json.loads(event[6:]) for event in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert len({chunk["id"] for chunk in chunks}) == 1


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"temperature": "hot"}, "temperature"),
        ({"temperature": -1}, "temperature"),
        ({"temperature": 1e308}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": -5}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"max_tokens": 2**70}, "max_tokens"),
        ({"max_tokens": 5000}, "max_tokens"),
        ({"max_completion_tokens": "10"}, "max_completion_tokens"),
        ({"seed": 2**70}, "seed"),
        ({"seed": -1}, "seed"),
        ({"n": 2}, "n"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stop": [""]}, "stop"),
        ({"stop": 5}, "stop"),
        ({"stream": "yes"}, "stream"),
        ({"logprobs": True}, "logprobs"),
        ({"presence_penalty": 1.5}, "presence_penalty"),
        ({"logit_bias": {"5": 10}}, "logit_bias"),
        ({"frobnicate": 1}, "frobnicate"),
        ({"messages": []}, "messages"),
        ({"messages": "hi"}, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}, None),
        ({"response_format": {"type": "yaml"}}, "response_format"),
        ({"response_format": {"type": "json_schema", "json_schema": {"schema": "x"}}}, "response_format"),
        ({"tools": [{"type": "function", "function": {}}]}, "tools"),
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "other"}}}, "tool_choice"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"model": ""}, "model"),
        ({"model": ["demo"]}, "model"),
    ],
)
def test_a_bad_parameter_gets_one_sentence_naming_it(server, change, param):
    status, body, _ = post(server, "/v1/chat/completions", {**chat_body(), **change})
    assert_refusal(status, body, 400, param)


def test_a_model_named_by_path_or_unknown_is_never_loaded(server, demo_folder):
    for name in (str(demo_folder), "../" + MODEL, MODEL.upper(), "x" * 10_000):
        status, body, _ = post(server, "/v1/chat/completions", {**chat_body(), "model": name})
        assert_refusal(status, body, 404, "model")
        assert len(body["error"]["message"]) < 300
    assert list(server.models) == [MODEL]


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"{not json", {}, 400),
        (b"[1, 2]", {}, 400),
        (b"", {}, 400),
        (b"[" * 100_000 + b"]" * 100_000, {}, 400),
        (b'{"model": "x"}', {"Content-Type": "text/plain"}, 415),
        (json.dumps(chat_body("a" * 2_000_000)).encode(), {}, 413),
    ],
    ids=["not-json", "a-list", "empty", "deep", "text-plain", "huge"],
)
def test_bodies_that_are_not_requests_get_one_sentence(server, body, headers, status):
    got, payload, _ = post(server, "/v1/chat/completions", body, headers)
    assert_refusal(got, payload, status)


def test_completions_refuse_what_they_cannot_do(server):
    for change, param in (
        ({"prompt": ""}, "prompt"),
        ({"prompt": [1, 2, 3]}, "prompt"),
        ({"prompt": ["a", "b"]}, "prompt"),
        ({"echo": True}, "echo"),
        ({"best_of": 3}, "best_of"),
        ({"suffix": "end"}, "suffix"),
    ):
        status, body, _ = post(server, "/v1/completions", {"model": MODEL, "prompt": "Hi", **change})
        assert_refusal(status, body, 400, param)


def test_a_chat_template_that_refuses_the_messages_is_the_clients_400(demo_folder, tmp_path):
    strict = Path(shutil.copytree(demo_folder, tmp_path / "strict"))
    (strict / "chat_template.jinja").write_text(
        "{% for m in messages %}{% if m['role'] == 'tool' %}{{ raise_exception('no tool messages here') }}"
        "{% endif %}{{ m['content'] }}{% endfor %}",
        encoding="utf-8",
    )
    served = Server({"strict": strict}, ServeConfig(port=0)).start()
    try:
        messages = [{"role": "user", "content": "hi"}, {"role": "tool", "content": "42"}]
        status, body, _ = post(served, "/v1/chat/completions", {"model": "strict", "messages": messages})
        message = assert_refusal(status, body, 400, "messages")
        assert (
            message
            == "strict's chat template refused these messages (no tool messages here); change the roles or content."
        )
        status, _, _ = post(
            served, "/v1/chat/completions", {"model": "strict", "messages": messages[:1], "max_tokens": 2}
        )
        assert status == 200
    finally:
        served.close()


def test_a_foreign_host_header_is_refused_and_no_cors_is_offered(server):
    status, body, _ = post(server, "/v1/chat/completions", chat_body(), {"Host": "evil.example:8000"})
    assert_refusal(status, body, 421)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request(
        "OPTIONS",
        "/v1/chat/completions",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    response = connection.getresponse()
    response.read()
    connection.close()
    assert response.getheader("access-control-allow-origin") is None


def test_unknown_routes_answer_in_openai_shape(server):
    status, body, _ = post(server, "/v1/embeddings", {"model": MODEL, "input": "x"})
    assert_refusal(status, body, 404)


def test_a_full_queue_is_answered_429_with_a_retry_hint(server):
    model = server.models[MODEL]
    taken = model.max_pending - model.pending
    for _ in range(taken):
        model.admit()
    try:
        status, body, headers = post(server, "/v1/chat/completions", chat_body(max_tokens=4))
    finally:
        for _ in range(taken):
            model.release()
    assert_refusal(status, body, 429)
    assert body["error"]["code"] == "rate_limit_exceeded" and int(headers["retry-after"]) >= 1
    status, _, _ = post(server, "/v1/chat/completions", chat_body(max_tokens=4))
    assert status == 200


# --- concurrency and disconnects ---------------------------------------------------------------------------------


def test_eight_concurrent_streams_each_get_their_own_greedy_reply(client):
    prompts = [
        f"Story number {index}: the {word}" for index, word in enumerate("cat dog sun tree boat bird fish cake".split())
    ]
    alone = {prompt: greedy(client, prompt, 40) for prompt in prompts}
    together: dict[str, str] = {}

    def stream(prompt: str) -> None:
        own = openai.OpenAI(base_url=client.base_url, api_key="x", max_retries=0)
        chunks = own.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": prompt}], max_tokens=40, temperature=0, stream=True
        )
        together[prompt] = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)

    threads = [threading.Thread(target=stream, args=(prompt,)) for prompt in prompts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert together == alone


def wait_until(condition, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def settled(model) -> bool:
    """No request admitted, no generator left in the scheduler."""
    return model.pending == 0 and model.running() == 0


def test_a_client_that_disconnects_stops_its_generation(server):
    before = len(server.records)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    body = json.dumps({"model": MODEL, "prompt": "Once", "max_tokens": 500, "temperature": 0, "stream": True})
    connection.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.readline().startswith(b"data: ")
    connection.sock.shutdown(2)
    connection.close()
    assert wait_until(lambda: len(server.records) > before), server.records[-3:]
    record = server.records[-1]
    assert record.disconnected and record.completion_tokens < 500
    model = server.models[MODEL]
    assert wait_until(lambda: settled(model)), (model.pending, model.running())


def test_a_mixed_burst_loses_and_mixes_nothing(client, server):
    prompts = [f"Tale {index} of the {'red blue green'.split()[index % 3]} hat" for index in range(24)]
    alone = {prompt: greedy(client, prompt, 16) for prompt in prompts[:6]}
    results: dict[str, str] = {}

    def one(index: int, prompt: str) -> None:
        own = openai.OpenAI(base_url=client.base_url, api_key="x", max_retries=0)
        stream = own.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": prompt}], max_tokens=16, temperature=0, stream=True
        )
        if index % 5 == 4:
            next(iter(stream))
            stream.close()  # a fifth of the clients walk away mid-stream
            return
        results[prompt] = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)

    threads = [threading.Thread(target=one, args=(index, prompt)) for index, prompt in enumerate(prompts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert set(results) == {prompt for index, prompt in enumerate(prompts) if index % 5 != 4}
    assert all(results[prompt] == text for prompt, text in alone.items() if prompt in results)
    model = server.models[MODEL]
    assert wait_until(lambda: settled(model)), (model.pending, model.running())


def test_the_fair_queue_serves_concurrent_streams_their_own_replies_and_drops_the_ones_that_leave(library, client):
    prompts = [f"The {word} went home" for word in "fox owl cow pig".split()]
    alone = {prompt: greedy(client, prompt, 24) for prompt in prompts}
    queued = Server(library_models([MODEL], library), ServeConfig(port=0, slots=2, batching="queue")).start()
    try:
        assert queued.batching == "queue"
        own = openai.OpenAI(base_url=queued.url, api_key="x", max_retries=0)
        results: dict[str, str] = {}

        def one(prompt: str) -> None:
            results[prompt] = greedy(own, prompt, 24)

        threads = [threading.Thread(target=one, args=(prompt,)) for prompt in prompts]
        for thread in threads:
            thread.start()
        leaving = own.completions.create(model=MODEL, prompt="Once", max_tokens=400, temperature=0, stream=True)
        next(iter(leaving))
        leaving.close()
        for thread in threads:
            thread.join(60)
        assert results == alone
        model = queued.models[MODEL]
        assert wait_until(lambda: settled(model)), (model.pending, model.running())
    finally:
        queued.close()


# --- starting a server -------------------------------------------------------------------------------------------


def test_an_api_key_is_required_when_set_and_beyond_loopback(library):
    with pytest.raises(InputError, match="^listening on 0.0.0.0 lets other machines in: give an --api-key"):
        check_config(ServeConfig(host="0.0.0.0"))
    with pytest.raises(InputError, match="at least 16 printable characters"):
        check_config(ServeConfig(api_key="short"))
    check_config(ServeConfig(host="::1"))
    key = "k" * 24
    guarded = Server(library_models([MODEL], library), ServeConfig(port=0, api_key=key)).start()
    try:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": key}):
            status, body, _ = post(guarded, "/v1/chat/completions", chat_body(max_tokens=2), headers)
            assert_refusal(status, body, 401)
        status, _, _ = post(
            guarded, "/v1/chat/completions", chat_body(max_tokens=2), {"Authorization": f"Bearer {key}"}
        )
        assert status == 200
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=guarded.url, api_key="wrong", max_retries=0).models.list()
    finally:
        guarded.close()


def test_only_library_models_are_served(library, tmp_path):
    with pytest.raises(InputError, match="^nothing-like-it is not an ONNX model in the library"):
        library_models(["nothing-like-it"], library)
    with pytest.raises(InputError, match="holds no ONNX Runtime GenAI model"):
        library_models([], Library(tmp_path / "empty.json"))


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--batching", "fast"], "error: argument --batching"),
        (["--host", "0.0.0.0"], "error: listening on 0.0.0.0 lets other machines in"),
        (["--port", "70000"], "error: argument --port"),
        (["--port", "-1"], "error: argument --port"),
        (["--slots", "0"], "error: argument --slots"),
        (["no-such-model"], "error: no-such-model is not an ONNX model in the library"),
        (["--api-key", "x"], "error: the API key must be at least 16"),
    ],
)
def test_the_command_line_refuses_in_one_line(args, says):
    done = run_main("serve", *args, timeout=120)
    assert done.returncode == 2 and done.stderr.startswith(says), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_main_py_serve_answers_and_logs_each_request_as_json(demo_folder, tmp_path):
    env = {**os.environ, "FORGE_HOME": str(tmp_path)}
    command = [sys.executable, str(ROOT / "main.py"), "serve", str(demo_folder), "--port", "0", "--log-format", "json"]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        listening = json.loads(child.stdout.readline())
        assert listening["type"] == "listening" and listening["models"] == [MODEL]
        client = openai.OpenAI(base_url=listening["url"], api_key="x", max_retries=0)
        reply = client.chat.completions.create(**chat_body(), max_tokens=5, temperature=0)
        logged = json.loads(child.stdout.readline())
        assert logged["type"] == "request" and logged["id"] == reply.id and logged["completion_tokens"] == 5
        assert logged["status"] == 200 and logged["first_token_ms"] > 0
        assert str(demo_folder) in json.loads((tmp_path / "library.json").read_text())["folders"][0]["path"]
    finally:
        child.send_signal(signal.SIGTERM)  # as the Serve tab stops it; Ctrl+C (SIGINT) takes the same path
        out, _ = child.communicate(timeout=30)
    assert child.returncode == 0
    assert json.loads(out.splitlines()[-1]) == {"type": "stopped", "load": {MODEL: {"pending": 0, "running": 0}}}
