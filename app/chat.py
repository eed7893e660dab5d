"""Chatting with a converted model through onnxruntime-genai: loading, the chat template, streaming, figures.

ChatSession is the engine of both `main.py chat` and the window's Chat tab (which runs it in a child
process, app/jobs/chat_worker.py). Nothing here imports Qt; onnxruntime-genai is imported on first use.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import InputError, ModelLoadError

# The genai_config provider names for each studio execution provider.
GENAI_PROVIDERS = {"cuda": "cuda", "dml": "dml", "webgpu": "WebGPU", "trt-rtx": "NvTensorRtRtx"}
PROVIDER_NAMES = {"cpu": "the CPU", "cuda": "CUDA", "dml": "DirectML", "webgpu": "WebGPU", "trt-rtx": "TensorRT-RTX"}
# Warn once a conversation has used this share of the maximum length.
CONTEXT_WARNING_SHARE = 0.8


class ProviderUnavailableError(ModelLoadError):
    """A model built for an execution provider this machine cannot use; cpu_build is a sibling that runs here."""

    def __init__(self, sentence: str, cpu_build: Path | None = None) -> None:
        super().__init__(sentence)
        self.cpu_build = cpu_build


def load_genai() -> Any:
    """onnxruntime-genai finds the onnxruntime shared library through the onnxruntime package: import it first."""
    import onnxruntime  # noqa: F401
    import onnxruntime_genai

    return onnxruntime_genai


def read_genai_config(folder: Path) -> dict[str, Any]:
    path = Path(folder) / "genai_config.json"
    if not path.is_file():
        raise ModelLoadError(f"{folder} has no genai_config.json, so it is not an ONNX Runtime GenAI model folder.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"{path} cannot be read as JSON ({error}); convert the model again.") from error


def read_forge_record(folder: Path) -> dict[str, Any]:
    """forge.json of a folder the studio made; {} for any other GenAI folder."""
    try:
        record = json.loads((Path(folder) / "forge.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return record if isinstance(record, dict) else {}


def model_provider(folder: Path) -> str:
    """The studio name of the provider a model was built for ('cpu' when its config lists none)."""
    options = read_genai_config(folder)["model"]["decoder"].get("session_options", {}).get("provider_options", [])
    names = [name for entry in options for name in entry]
    by_genai_name = {value.lower(): key for key, value in GENAI_PROVIDERS.items()}
    return by_genai_name.get(names[0].lower(), names[0]) if names else "cpu"


def can_run_here(ep: str) -> tuple[bool, str]:
    if ep == "cpu":
        return True, ""
    from .hardware import probe_hardware

    try:
        status = probe_hardware().provider(ep)
    except KeyError:
        return False, f"the hardware report does not cover {ep}"
    return status.usable, status.reason


def find_cpu_build(folder: Path) -> Path | None:
    """A sibling folder built by the studio from the same source for the CPU, if there is one."""
    source = read_forge_record(folder).get("source")
    folder = Path(folder).resolve()
    if not source or not folder.parent.is_dir():
        return None
    for sibling in sorted(folder.parent.iterdir()):
        if sibling == folder or not (sibling / "genai_config.json").is_file():
            continue
        if read_forge_record(sibling).get("source") == source and model_provider(sibling) == "cpu":
            return sibling
    return None


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split("+")[0].split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def check_loadable(folder: Path, ep: str | None = None) -> str:
    """The provider the model will run on; raises ModelLoadError with one sentence when it cannot run here."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelLoadError(f"{folder} is not a folder; pick an ONNX Runtime GenAI model folder.")
    from .model_folder import check_model_folder

    try:
        check_model_folder(folder)
    except InputError as error:
        raise ModelLoadError(str(error)) from None
    versions = read_forge_record(folder).get("versions", {})
    flavours = ("onnxruntime-genai", "onnxruntime-genai-directml", "onnxruntime-genai-cuda")
    built_with = next((versions[name] for name in flavours if versions.get(name)), None)
    if built_with:
        installed = load_genai().__version__  # the DirectML flavour is another distribution of the same module
        if _version_tuple(built_with) > _version_tuple(installed):
            raise ModelLoadError(
                f"{folder.name} was built by onnxruntime-genai {built_with}, newer than the installed {installed}; "
                "update onnxruntime-genai or convert the model again here."
            )
    target = ep or model_provider(folder)
    usable, why = can_run_here(target)
    if not usable:
        name = PROVIDER_NAMES.get(target, target)
        cpu_build = find_cpu_build(folder)
        offer = (
            f"its CPU build {cpu_build.name} runs here: load that instead."
            if cpu_build
            else "convert it for the CPU (preset int4) to run it here."
        )
        raise ProviderUnavailableError(
            f"{folder.name} was built for {name}, which is not usable here ({why}); {offer}", cpu_build
        )
    return target


def load_model(
    folder: Path, ep: str | None = None, device_id: int | None = None, overlay: dict[str, Any] | None = None
) -> tuple[Any, Any]:
    """(model, tokenizer) on the given provider; ep='cpu' runs any build on the CPU.

    The provider and GPU (and `overlay`, genai_config fields such as the server's Engine batch size) are set on the
    in-memory Config: the user's genai_config.json is never edited. `device_id` is the pickers' number (a DXGI
    adapter for DirectML, an NVML index for CUDA and TensorRT-RTX), said the way each provider reads it
    (app.runtime_config).
    """
    from .runtime_config import GENAI_PROVIDERS as DEVICE_PROVIDERS
    from .runtime_config import device_for, use_device

    target = check_loadable(Path(folder), ep)
    og = load_genai()
    config = og.Config(str(folder))
    if overlay:
        config.overlay(json.dumps(overlay))
    if target in DEVICE_PROVIDERS:
        try:
            use_device(og, config, device_for(target, device_id))
        except InputError as error:
            raise ModelLoadError(str(error)) from None
    elif ep is not None or device_id is not None:
        provider = GENAI_PROVIDERS.get(target, target)
        config.clear_providers()
        config.append_provider(provider)
    try:
        model = og.Model(config)
        return model, og.Tokenizer(model)
    except Exception as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelLoadError(
            f"{Path(folder).name} could not be loaded on {PROVIDER_NAMES.get(target, target)}: {first_line}"
        ) from error


def check_tokenizer(folder: Path) -> str:
    """Load and use the model's tokenizer; returns which loader checked it.

    onnxruntime-genai makes a tokenizer from a model, so the model is opened with no providers, on the CPU.
    Builds whose operators have no CPU kernel (BF16) cannot be opened that way; their tokenizer is then
    checked with transformers, which is the second best witness.
    """
    og = load_genai()
    config = og.Config(str(folder))
    config.clear_providers()
    try:
        model = og.Model(config)
    except Exception as error:  # noqa: BLE001 - any reason to fall back is reported in the verdict
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False).encode("Hello")
        return f"transformers (onnxruntime-genai cannot open this build on the CPU: {str(error).splitlines()[0][:160]})"
    og.Tokenizer(model).encode("Hello")
    return "onnxruntime-genai"


_LONE_SURROGATE = re.compile("[\ud800-\udc7f\udd00-\udfff]")


def valid_text(text: str) -> str:
    """Text that can cross into the runtime: bytes that were not UTF-8 (a terminal or pipe in another encoding,
    kept by Python as lone surrogates) become U+FFFD instead of failing inside the tokenizer."""
    text = _LONE_SURROGATE.sub("\ufffd", text)  # surrogates that stand for no byte
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def render_prompt(tokenizer: Any, folder: Path, messages: list[dict[str, str]]) -> str:
    """The chat prompt through the model's own template; the plain text where it ships none."""
    messages = [{**message, "content": valid_text(message["content"])} for message in messages]
    if not has_chat_template(folder):
        return "\n".join(message["content"] for message in messages)
    return tokenizer.apply_chat_template(json.dumps(messages), add_generation_prompt=True)


def has_chat_template(folder: Path) -> bool:
    tokenizer_config = Path(folder) / "tokenizer_config.json"
    if (Path(folder) / "chat_template.jinja").is_file():
        return True
    return tokenizer_config.is_file() and bool(
        json.loads(tokenizer_config.read_text(encoding="utf-8")).get("chat_template")
    )


TEMPLATE_PROBE = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hello, who are you?"},
    {"role": "assistant", "content": "I am a model converted to ONNX."},
    {"role": "user", "content": "Tell me a story."},
]


def check_template(tokenizer: Any, folder: Path) -> str:
    """'' when onnxruntime-genai renders the same prompt as the checkpoint's template (through transformers);
    otherwise one sentence saying how they differ or why it could not be checked."""
    if not has_chat_template(folder):
        return "the model ships no chat template, so messages are sent as plain text."
    ours = tokenizer.apply_chat_template(json.dumps(TEMPLATE_PROBE), add_generation_prompt=True)
    try:
        from transformers import AutoTokenizer

        theirs = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False).apply_chat_template(
            TEMPLATE_PROBE, tokenize=False, add_generation_prompt=True
        )
    except Exception as error:  # noqa: BLE001 - any reason is reported, the chat itself still works
        return f"the chat template could not be checked with transformers ({type(error).__name__}: {error})."
    if ours == theirs:
        return ""
    at = next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b), min(len(ours), len(theirs)))
    return (
        f"onnxruntime-genai renders the chat template differently from the checkpoint's own template "
        f"(from character {at}: {ours[at : at + 40]!r} instead of {theirs[at : at + 40]!r}); replies may suffer."
    )


def context_length(folder: Path) -> int:
    config = read_genai_config(folder)
    return int(config["model"].get("context_length") or config["search"]["max_length"])


@dataclass
class GenerationSettings:
    max_length: int = 512
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 50
    repetition_penalty: float = 1.0
    seed: int | None = None  # None: a different random seed each reply

    @classmethod
    def from_genai_config(cls, config: dict[str, Any]) -> GenerationSettings:
        search = config.get("search", {})
        context = int(config["model"].get("context_length") or search.get("max_length") or 512)
        defaults = cls()
        return cls(
            max_length=min(int(search.get("max_length", context)), context),
            do_sample=bool(search.get("do_sample", defaults.do_sample)),
            temperature=float(search.get("temperature", defaults.temperature)),
            top_p=float(search.get("top_p", defaults.top_p)),
            top_k=int(search.get("top_k", defaults.top_k)),
            repetition_penalty=float(search.get("repetition_penalty", defaults.repetition_penalty)),
        )

    def updated(self, changes: dict[str, Any]) -> GenerationSettings:
        known = {item.name: item.type for item in fields(self)}
        unknown = sorted(set(changes) - set(known))
        if unknown:
            raise InputError(f"unknown generation setting {', '.join(unknown)}; use one of {', '.join(known)}.")
        return replace(self, **changes)

    def validate(self, context: int) -> None:
        if not 1 <= self.max_length <= context:
            raise InputError(f"the maximum length must be between 1 and the model's context of {context} tokens.")
        if self.temperature <= 0 or not 0 < self.top_p <= 1 or self.top_k < 0 or self.repetition_penalty <= 0:
            raise InputError("temperature and repetition penalty must be above 0, top-p in (0, 1], top-k 0 or more.")

    def search_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "max_length": self.max_length,
            "do_sample": self.do_sample,
            "repetition_penalty": self.repetition_penalty,
        }
        if self.do_sample:
            options |= {"temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k}
        if self.seed is not None:
            options["random_seed"] = self.seed
        return options

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Reply:
    text: str
    prompt: str
    prompt_tokens: int
    new_tokens: int
    seconds: float
    first_token_seconds: float
    tokens_per_second: float = 0.0
    """New tokens after the first, per second of generation: the decoding speed, prompt processing excluded."""
    stopped: bool = False
    warning: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def figures(self) -> str:
        figures = (
            f"{self.new_tokens} tokens · {self.tokens_per_second:.1f} tok/s · "
            f"first token {self.first_token_seconds * 1000:.0f} ms"
        )
        return figures + (" · stopped" if self.stopped else "")


@dataclass
class Turn:
    role: str  # user or assistant
    content: str
    reply: Reply | None = None


@dataclass
class Transcript:
    """A conversation: what the chat template renders and what exports write."""

    system: str = ""
    turns: list[Turn] = field(default_factory=list)
    model: str = ""

    def messages(self) -> list[dict[str, str]]:
        system = [{"role": "system", "content": self.system}] if self.system else []
        return system + [{"role": turn.role, "content": turn.content} for turn in self.turns]

    def to_json(self) -> str:
        turns = [
            {"role": turn.role, "content": turn.content, **({"figures": turn.reply.to_dict()} if turn.reply else {})}
            for turn in self.turns
        ]
        return json.dumps({"model": self.model, "system": self.system, "messages": turns}, indent=2, ensure_ascii=False)

    def to_markdown(self) -> str:
        lines = [f"# Chat with {Path(self.model).name or 'a model'}", ""]
        if self.system:
            lines += [f"**System:** {self.system}", ""]
        for turn in self.turns:
            lines += [f"**{turn.role.capitalize()}:**", "", turn.content, ""]
            if turn.reply is not None:
                lines += [f"*{turn.reply.figures()}*", ""]
        return "\n".join(lines)


class ChatSession:
    """A loaded model and one conversation. stream() runs on any one thread; stop() may come from another."""

    def __init__(self, folder: Path, ep: str | None = None, device_id: int | None = None, system: str = "") -> None:
        self.folder = Path(folder)
        self.model, self.tokenizer = load_model(self.folder, ep, device_id)
        self.provider = ep or model_provider(self.folder)
        self.context = context_length(self.folder)
        self.settings = GenerationSettings.from_genai_config(read_genai_config(self.folder))
        self.transcript = Transcript(system=system, model=str(self.folder))
        self._stop = threading.Event()

    # --- the conversation ------------------------------------------------------------------------

    def set_system(self, text: str) -> None:
        self.transcript.system = text

    def set_settings(self, changes: dict[str, Any]) -> GenerationSettings:
        settings = self.settings.updated(changes)
        settings.validate(self.context)
        self.settings = settings
        return settings

    def clear(self) -> None:
        self.transcript.turns.clear()

    def set_history(self, turns: Any) -> None:
        """Continue another conversation: its user and assistant turns replace this one's."""
        if not isinstance(turns, list) or not all(
            isinstance(turn, dict)
            and turn.get("role") in ("user", "assistant")
            and isinstance(turn.get("content"), str)
            for turn in turns
        ):
            raise InputError("the conversation to continue is not a list of user and assistant turns.")
        self.transcript.turns = [Turn(turn["role"], turn["content"]) for turn in turns]

    def stop(self) -> None:
        """Make a running stream() end before its next token."""
        self._stop.set()

    def rendered_prompt(self, messages: list[dict[str, str]] | None = None) -> str:
        return render_prompt(self.tokenizer, self.folder, self.transcript.messages() if messages is None else messages)

    def send(self, text: str, on_text: Callable[[str], None] | None = None) -> Reply:
        """A user turn and its whole reply; on_text gets each piece as it comes."""
        for piece in self.stream(text):
            if on_text is not None:
                on_text(piece)
        return self.last_reply()

    def last_reply(self) -> Reply:
        reply = self.transcript.turns[-1].reply if self.transcript.turns else None
        if reply is None:
            raise InputError("there is no reply yet; send a message first.")
        return reply

    def regenerate(self) -> Iterator[str]:
        """Drop the last reply and answer the last user message again."""
        turns = self.transcript.turns
        if turns and turns[-1].role == "assistant":
            turns.pop()
        if not turns:
            raise InputError("there is nothing to regenerate; send a message first.")
        return self._reply()

    def stream(self, text: str) -> Iterator[str]:
        """Add a user turn and stream the reply's text pieces. The turn is refused (and not kept) when the
        conversation no longer fits in the maximum length."""
        if not text.strip():
            raise InputError("the message is empty; type something to send.")
        turns = self.transcript.turns
        if turns and turns[-1].role == "user":
            turns.pop()  # a turn whose reply failed to start is replaced, not answered twice
        turns.append(Turn("user", text))
        try:
            tokens, prompt = self._encode()
        except InputError:
            turns.pop()
            raise
        self._stop.clear()
        return self._generate(tokens, prompt)

    def _reply(self) -> Iterator[str]:
        tokens, prompt = self._encode()
        self._stop.clear()  # here, not inside the generator: a stop() before its first token must count
        return self._generate(tokens, prompt)

    def _encode(self) -> tuple[Any, str]:
        prompt = self.rendered_prompt()
        tokens = self.tokenizer.encode(prompt)
        limit = self.settings.max_length
        if len(tokens) >= limit:
            raise InputError(
                f"the conversation is {len(tokens)} tokens, which leaves no room under the maximum length of {limit}; "
                "clear the conversation, shorten the message or raise the maximum length."
            )
        return tokens, prompt

    def _generate(self, tokens: Any, prompt: str) -> Iterator[str]:
        og = load_genai()
        params = og.GeneratorParams(self.model)
        params.set_search_options(**self.settings.search_options())
        started = time.perf_counter()
        generator = og.Generator(self.model, params)
        stream = self.tokenizer.create_stream()
        generator.append_tokens(tokens)
        pieces: list[str] = []
        first_token = 0.0
        new_tokens = 0
        try:
            while not generator.is_done() and not self._stop.is_set():
                generator.generate_next_token()
                new_tokens += 1
                if new_tokens == 1:
                    first_token = time.perf_counter()
                piece = stream.decode(generator.get_next_tokens()[0])
                if piece:
                    pieces.append(piece)
                    yield piece
        finally:
            ended = time.perf_counter()
            stopped = self._stop.is_set() and not generator.is_done()
            reply = Reply(
                text="".join(pieces),
                prompt=prompt,
                prompt_tokens=len(tokens),
                new_tokens=new_tokens,
                seconds=ended - started,
                first_token_seconds=(first_token - started) if new_tokens else 0.0,
                tokens_per_second=(new_tokens - 1) / (ended - first_token) if new_tokens > 1 else 0.0,
                stopped=stopped,
            )
            reply.warning = self._context_warning(reply)
            self.transcript.turns.append(Turn("assistant", reply.text, reply))

    def _context_warning(self, reply: Reply) -> str:
        used = reply.prompt_tokens + reply.new_tokens
        limit = self.settings.max_length
        if used >= limit:
            return f"the reply was cut at the maximum length of {limit} tokens; clear the conversation to go on."
        if used >= CONTEXT_WARNING_SHARE * limit:
            return f"the conversation uses {used} of {limit} tokens; the next turns may not fit."
        return ""


def generate_once(
    folder: Path,
    prompt: str,
    *,
    max_length: int | None = None,
    max_new_tokens: int | None = None,
    ep: str | None = None,
    on_text: Callable[[str], None] | None = None,
) -> Reply:
    """One user turn through the chat template, greedy, streamed to on_text(str) when given."""
    session = ChatSession(Path(folder), ep)
    limit = max_length or session.context
    if max_new_tokens is not None:
        prompt_tokens = len(session.tokenizer.encode(session.rendered_prompt([{"role": "user", "content": prompt}])))
        limit = min(limit, prompt_tokens + max_new_tokens)
    session.set_settings({"max_length": limit, "do_sample": False})
    return session.send(prompt, on_text)
