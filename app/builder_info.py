"""What the installed onnxruntime-genai model builder can do, read from its own source.

The builder is a Python module inside onnxruntime-genai. Importing it pulls in torch, so instead we
parse its source: the architectures its `create_model` dispatches on, the precisions and execution
providers its command line accepts, the extra options its help text documents, and the
"Valid precision + execution provider combinations" sentence it prints. A newer onnxruntime-genai
therefore changes what the studio offers without anyone editing a list here.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import importlib.util
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

from .errors import ForgeError

# The builder's own spelling of an execution provider -> the short name the studio uses.
_EP_ALIASES = {"NvTensorRtRtx": "trt-rtx", "trt-rtx": "trt-rtx"}
_COMBO_SENTENCE = "Valid precision + execution provider combinations are:"


@dataclass(frozen=True)
class BuilderOption:
    name: str
    help: str


@dataclass(frozen=True)
class BuilderInfo:
    version: str
    source: Path
    architectures: tuple[str, ...]
    precisions: tuple[str, ...]
    execution_providers: tuple[str, ...]
    """Short names: cpu, cuda, dml, webgpu, trt-rtx."""
    cli_execution_providers: dict[str, str]
    """Short name -> the value the builder's -e flag takes."""
    options: tuple[BuilderOption, ...]
    valid_combinations: frozenset[tuple[str, str]]
    """(precision, short execution provider) pairs the builder declares valid."""
    boolean_options: frozenset[str]
    distribution: str = "onnxruntime-genai"
    """The installed onnxruntime-genai flavor's distribution (onnxruntime-genai-directml, -cuda, -winml, ...)."""

    def option_names(self) -> list[str]:
        return [option.name for option in self.options]

    def supports_architecture(self, architecture: str) -> bool:
        return architecture in self.architectures


class BuilderNotInstalled(ForgeError):
    pass


@functools.lru_cache(maxsize=1)
def builder_info() -> BuilderInfo:
    spec = importlib.util.find_spec("onnxruntime_genai")
    if spec is None or not spec.submodule_search_locations:
        raise BuilderNotInstalled("onnxruntime-genai is not installed; run the README's set-up command to install it.")
    source = Path(spec.submodule_search_locations[0]) / "models" / "builder.py"
    distribution = _genai_distribution()
    return parse_builder(source, importlib.metadata.version(distribution), distribution)


def _genai_distribution() -> str:
    for name in (
        "onnxruntime-genai",
        "onnxruntime-genai-directml",
        "onnxruntime-genai-cuda",
        "onnxruntime-genai-winml",
    ):
        try:
            importlib.metadata.version(name)
            return name
        except importlib.metadata.PackageNotFoundError:
            continue
    raise BuilderNotInstalled("no onnxruntime-genai distribution is installed.")


def parse_builder(source: Path, version: str, distribution: str = "onnxruntime-genai") -> BuilderInfo:
    tree = ast.parse(source.read_text(encoding="utf-8"))
    choices = _argparse_choices(tree)
    cli_eps = {_EP_ALIASES.get(ep, ep): ep for ep in choices.get("--execution_provider", [])}
    return BuilderInfo(
        version=version,
        source=source,
        architectures=tuple(sorted(_dispatched_architectures(tree))),
        precisions=tuple(choices.get("--precision", [])),
        execution_providers=tuple(cli_eps),
        cli_execution_providers=cli_eps,
        options=tuple(_extra_options(tree)),
        valid_combinations=frozenset(_valid_combinations(tree)),
        boolean_options=frozenset(_boolean_options(tree)),
        distribution=distribution,
    )


def _dispatched_architectures(tree: ast.AST) -> set[str]:
    """Every string compared against `config.architectures[0]` in the builder."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare) or not _is_architectures_subscript(node.left):
            continue
        for comparator in node.comparators:
            if isinstance(comparator, ast.Constant) and isinstance(comparator.value, str):
                found.add(comparator.value)
    return found


def _is_architectures_subscript(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "architectures"
    )


def _argparse_choices(tree: ast.AST) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for call in _add_argument_calls(tree):
        flags = [arg.value for arg in call.args if isinstance(arg, ast.Constant)]
        for keyword in call.keywords:
            if keyword.arg == "choices" and isinstance(keyword.value, (ast.List, ast.Tuple)):
                values = [elt.value for elt in keyword.value.elts if isinstance(elt, ast.Constant)]
                for flag in flags:
                    result[flag] = values
    return result


def _add_argument_calls(tree: ast.AST) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument"
    ]


_OPTION_LINE = re.compile(r"^ {4}(?P<name>[a-z0-9_]+) = (?P<help>.*)$")


def _extra_options(tree: ast.AST) -> list[BuilderOption]:
    """Options documented in the help text of --extra_options, with their first help line."""
    help_text = ""
    for call in _add_argument_calls(tree):
        if any(isinstance(arg, ast.Constant) and arg.value == "--extra_options" for arg in call.args):
            help_text = _help_string(call)
    lines = help_text.splitlines()
    options: list[BuilderOption] = []
    for index, line in enumerate(lines):
        match = _OPTION_LINE.match(line)
        if not match:
            continue
        detail = [match["help"]]
        for follow in lines[index + 1 :]:
            if not follow.startswith(" " * 8):
                break
            detail.append(follow.strip())
        options.append(BuilderOption(match["name"], " ".join(detail)))
    return options


def _help_string(call: ast.Call) -> str:
    for keyword in call.keywords:
        if keyword.arg != "help":
            continue
        for node in ast.walk(keyword.value):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                return textwrap.dedent(node.value)
    return ""


def _valid_combinations(tree: ast.AST) -> set[tuple[str, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and _COMBO_SENTENCE in node.value:
            listed = node.value.split(_COMBO_SENTENCE, 1)[1]
            pairs = set()
            for item in listed.split(","):
                precision, _, provider = item.strip().partition(" ")
                pairs.add((precision.lower(), provider.strip().lower()))
            return pairs
    return set()


def _boolean_options(tree: ast.AST) -> set[str]:
    """The `bools = [...]` list the builder's check_extra_options converts from true/false."""
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(target, ast.Name) and target.id == "bools" for target in node.targets)
            and isinstance(node.value, ast.List)
        ):
            return {elt.value for elt in node.value.elts if isinstance(elt, ast.Constant)}
    return set()
