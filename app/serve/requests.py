"""Reading OpenAI request bodies into what the scheduler runs, refusing anything else with one sentence.

Every field of /v1/chat/completions and /v1/completions is either honoured, ignored (listed in IGNORED: it changes
nothing a local model could do differently), or refused with a 400 that names it. Sampling a request leaves
unsaid comes from the model's genai_config.json, as in `main.py chat`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from ..chat import GenerationSettings

INT32_MAX = 2**31 - 1
MAX_STOP_STRINGS = 4
MAX_STOP_CHARS = 256
MAX_SCHEMA_CHARS = 64 * 1024
MAX_TOOLS = 64
# Accepted and without effect here: accounting and routing fields of the hosted API.
IGNORED = frozenset({"user", "metadata", "store", "service_tier", "parallel_tool_calls", "stream_options"})
CHAT_FIELDS = frozenset(
    {
        "model",
        "messages",
        "stream",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "seed",
        "stop",
        "n",
        "response_format",
        "tools",
        "tool_choice",
        "frequency_penalty",
        "presence_penalty",
        "logprobs",
        "top_logprobs",
        "logit_bias",
    }
)
COMPLETION_FIELDS = frozenset(
    {
        "model",
        "prompt",
        "stream",
        "max_tokens",
        "temperature",
        "top_p",
        "seed",
        "stop",
        "n",
        "best_of",
        "echo",
        "suffix",
        "frequency_penalty",
        "presence_penalty",
        "logprobs",
        "logit_bias",
    }
)
ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})


class RequestError(Exception):
    """A request that cannot be served as sent: an HTTP status, one sentence, and OpenAI's type, param and code."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.param, self.code, self.kind, self.headers = status, param, code, kind, headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": str(self), "type": self.kind, "param": self.param, "code": self.code}}


@dataclass
class Parsed:
    """A request as the server runs it."""

    model: str
    stream: bool
    include_usage: bool
    max_tokens: int | None
    search: dict[str, Any]
    stop: list[str]
    messages: list[dict[str, Any]] = field(default_factory=list)
    prompt: str = ""
    guidance: tuple[str, str] | None = None
    tool_names: list[str] = field(default_factory=list)
    """Non-empty when the reply is a tool call: the output is then parsed into `tool_calls`."""


def parse_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise RequestError(f"the request body is not JSON ({type(error).__name__}); send a JSON object.") from None
    if not isinstance(body, dict):
        raise RequestError(f"the request body is a JSON {type(body).__name__}; send a JSON object.")
    return body


def parse_chat(body: dict[str, Any], defaults: GenerationSettings, guidance_available: bool) -> Parsed:
    _known(body, CHAT_FIELDS)
    messages = _messages(body.get("messages"))
    limit = _max_tokens(body, "max_completion_tokens") or _max_tokens(body, "max_tokens")
    parsed = _common(body, defaults, limit)
    parsed.messages = messages
    _response_format(body.get("response_format"), parsed, guidance_available)
    _tools(body.get("tools"), body.get("tool_choice"), parsed, guidance_available)
    if body.get("top_logprobs") is not None:
        raise RequestError("top_logprobs is not supported by this server; leave it out.", param="top_logprobs")
    return parsed


def parse_completion(body: dict[str, Any], defaults: GenerationSettings) -> Parsed:
    _known(body, COMPLETION_FIELDS)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise RequestError(
            "prompt must be one string (token arrays and several prompts are not served).", param="prompt"
        )
    if not prompt:
        raise RequestError("prompt is empty; send the text to complete.", param="prompt")
    parsed = _common(body, defaults, _max_tokens(body, "max_tokens") or 16)
    parsed.prompt = prompt
    for name, allowed in (("echo", (None, False)), ("suffix", (None, "")), ("best_of", (None, 1))):
        if body.get(name) not in allowed:
            raise RequestError(f"{name} is not supported by this server; leave it out.", param=name)
    return parsed


def _known(body: dict[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(body) - allowed - IGNORED)
    if unknown:
        raise RequestError(
            f"unrecognized request argument {unknown[0]}; this server does not take it.", param=unknown[0]
        )
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("model is missing; name one of GET /v1/models.", param="model")


def _common(body: dict[str, Any], defaults: GenerationSettings, max_tokens: int | None) -> Parsed:
    stream = _bool(body, "stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise RequestError('stream_options must be an object such as {"include_usage": true}.', param="stream_options")
    include_usage = bool(options and options.get("include_usage") is True)
    n = body.get("n", 1)
    if n is not None and (isinstance(n, bool) or n != 1):
        raise RequestError("n must be 1: this server makes one choice per request.", param="n")
    for name in ("frequency_penalty", "presence_penalty"):
        value = body.get(name)
        if value is not None and _number(body, name, -2, 2) != 0:
            raise RequestError(f"{name} is not supported by this server; leave it out or send 0.", param=name)
    if body.get("logprobs") not in (None, False):
        raise RequestError("logprobs is not supported by this server; leave it out.", param="logprobs")
    if body.get("logit_bias") not in (None, {}):
        raise RequestError("logit_bias is not supported by this server; leave it out.", param="logit_bias")
    return Parsed(
        model=body["model"],
        stream=stream,
        include_usage=include_usage,
        max_tokens=max_tokens,
        search=_search(body, defaults),
        stop=_stop(body.get("stop")),
    )


def _search(body: dict[str, Any], defaults: GenerationSettings) -> dict[str, Any]:
    temperature = _number(body, "temperature", 0, 2)
    top_p = _number(body, "top_p", 0, 1)
    if top_p == 0:
        raise RequestError("top_p must be above 0 and at most 1.", param="top_p")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= INT32_MAX):
        raise RequestError(f"seed must be a whole number from 0 to {INT32_MAX}.", param="seed")
    sample = defaults.do_sample if temperature is None else temperature > 0
    search: dict[str, Any] = {"do_sample": sample, "repetition_penalty": defaults.repetition_penalty}
    if sample:
        search |= {
            "temperature": defaults.temperature if temperature is None else temperature,
            "top_p": defaults.top_p if top_p is None else top_p,
            "top_k": defaults.top_k,
        }
    if seed is not None:
        search["random_seed"] = seed
    return search


def _messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages must be a non-empty list of {role, content} objects.", param="messages")
    out = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise RequestError(f"{where} must be an object with a role and content.", param=where)
        role = message.get("role")
        if role not in ROLES:
            raise RequestError(f"{where}.role must be one of {', '.join(sorted(ROLES))}.", param=f"{where}.role")
        content = _content(message.get("content"), f"{where}.content", role)
        if role == "assistant" and message.get("tool_calls"):
            content = content or json.dumps(
                [call.get("function", {}) for call in message["tool_calls"] if isinstance(call, dict)]
            )
        out.append({"role": "system" if role == "developer" else role, "content": content})
    return out


def _content(content: Any, where: str, role: str) -> str:
    if content is None and role in ("assistant", "tool"):
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise RequestError(f"{where} may hold only text parts; this model reads text only.", param=where)
            texts.append(part["text"])
        return "".join(texts)
    raise RequestError(f"{where} must be a string or a list of text parts.", param=where)


def _response_format(value: Any, parsed: Parsed, guidance_available: bool) -> None:
    if value is None:
        return
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return
    if kind not in ("json_object", "json_schema"):
        raise RequestError("response_format.type must be text, json_object or json_schema.", param="response_format")
    if kind == "json_object":
        schema: Any = {"type": "object"}
    else:
        spec = value.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise RequestError(
                "response_format.json_schema.schema must be a JSON schema object.", param="response_format"
            )
    parsed.guidance = ("json_schema", _schema_text(schema, "response_format", guidance_available))


def _tools(tools: Any, choice: Any, parsed: Parsed, guidance_available: bool) -> None:
    if tools is None:
        if choice not in (None, "none"):
            raise RequestError("tool_choice needs tools; send the tools to choose from.", param="tool_choice")
        return
    if not isinstance(tools, list) or not tools or len(tools) > MAX_TOOLS:
        raise RequestError(f"tools must be a list of 1 to {MAX_TOOLS} functions.", param="tools")
    functions = {}
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str) or not name or len(name) > 64:
            raise RequestError(f"tools[{index}] must be a function with a name of 1 to 64 characters.", param="tools")
        parameters = function.get("parameters", {"type": "object"})
        if not isinstance(parameters, dict):
            raise RequestError(f"tools[{index}].function.parameters must be a JSON schema object.", param="tools")
        functions[name] = parameters
    if choice in (None, "auto", "none"):
        return  # the model answers in words; a reply is a tool call only where the client asks for one
    if choice == "required":
        chosen = list(functions)
    elif (
        isinstance(choice, dict)
        and isinstance(choice.get("function"), dict)
        and choice["function"].get("name") in functions
    ):
        chosen = [choice["function"]["name"]]
    else:
        raise RequestError("tool_choice must be none, auto, required or one of the tools by name.", param="tool_choice")
    if parsed.guidance is not None:
        raise RequestError("send either response_format or a required tool call, not both.", param="tool_choice")
    calls = [
        {
            "type": "object",
            "properties": {"name": {"const": name}, "arguments": functions[name]},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for name in chosen
    ]
    schema = calls[0] if len(calls) == 1 else {"anyOf": calls}
    parsed.guidance = ("json_schema", _schema_text(schema, "tools", guidance_available))
    parsed.tool_names = chosen


def _schema_text(schema: dict[str, Any], param: str, guidance_available: bool) -> str:
    if not guidance_available:
        raise RequestError(
            f"{param} needs constrained decoding, which the installed onnxruntime-genai does not have; "
            "update it (0.14 or later) or leave it out.",
            param=param,
        )
    # Compact JSON unless the schema says otherwise: a small model can otherwise fill its budget with whitespace.
    schema = {"x-guidance": {"whitespace_flexible": False}, **schema}
    text = json.dumps(schema)
    if len(text) > MAX_SCHEMA_CHARS:
        raise RequestError(
            f"the {param} schema is over {MAX_SCHEMA_CHARS} characters; send a smaller one.", param=param
        )
    return text


def _stop(stop: Any) -> list[str]:
    if stop is None:
        return []
    stops = [stop] if isinstance(stop, str) else stop
    if (
        not isinstance(stops, list)
        or len(stops) > MAX_STOP_STRINGS
        or not all(isinstance(item, str) and 0 < len(item) <= MAX_STOP_CHARS for item in stops)
    ):
        raise RequestError(
            f"stop must be a string or a list of up to {MAX_STOP_STRINGS} non-empty strings of at most "
            f"{MAX_STOP_CHARS} characters.",
            param="stop",
        )
    return stops


def _max_tokens(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= INT32_MAX:
        raise RequestError(f"{name} must be a whole number of at least 1.", param=name)
    return value


def _number(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise RequestError(f"{name} must be a number from {low:g} to {high:g}.", param=name)
    return float(value)


def _bool(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise RequestError(f"{name} must be true or false.", param=name)
    return value
