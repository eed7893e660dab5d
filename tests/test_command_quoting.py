"""Copied command lines: each argument reaches the program unchanged, and nothing in one becomes a second command.

POSIX is checked for real, through `sh -c`. No cmd.exe or PowerShell runs here (and `pwsh` is not installed on the
test machines), so their lines are checked against the shells' documented rules, written out below as small
parsers: cmd.exe's `%` expansion and its quote/caret/operator scan (`cmd /?`, "How does the Windows Command
Interpreter parse scripts", SS64), the Microsoft C runtime's argument parser ("Parsing C command-line arguments",
checked here against CPython's own subprocess.list2cmdline), and PowerShell's single-quoted strings and the
command line its Legacy native-argument passing writes (about_Quoting_Rules, about_Parsing,
$PSNativeCommandArgumentPassing). A test fails if any metacharacter is left where the shell would act on it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.jobs import history
from app.jobs.history import SHELLS, default_shell, format_command, program_command

HOSTILE = [
    "plain",
    "with space",
    "R&D",
    "a&calc.exe",
    "x|y",
    "a;b",
    "$(touch pwned)",
    "`touch pwned`",
    "%PATH%",
    "!x!",
    "100%",
    "^caret^",
    "<in >out 2>&1",
    "(paren)",
    "it's",
    'say "hi"',
    '"',
    '""',
    "'",
    "\u2018curly\u2019 \u201aquotes\u201b",
    "back\\slash\\",
    "C:\\R&D\\models\\",
    'trail\\"quote\\\\"',
    "tab\there",
    "line\nbreak",
    "",
    " ",
    "-o",
    "--%",
    "--",
    "@splat",
    "#comment",
    "{block}",
    "a,b",
    "ünïcødé 模型 🙂",
    "precision=int4",
    "key=a&b|c;d$(e)`f`%g%!h!",
    ("&|;$`%!^\"'" * 400) + "x" * 28000,
]
ONE_LINE = [value for value in HOSTILE if "\n" not in value]
ENV = {"PATH": "C:\\Windows", "x": "EXPANDED", "g": "G", "h": "H"}


def test_the_default_shell_is_powershell_on_windows_and_posix_elsewhere(monkeypatch):
    monkeypatch.setattr(sys, "platform", "win32")
    assert default_shell() == "powershell"
    monkeypatch.setattr(sys, "platform", "linux")
    assert default_shell() == "posix"
    assert set(SHELLS) == {"powershell", "cmd", "posix"}


def test_a_frozen_app_copies_its_own_executable_and_a_checkout_copies_python_and_main_py(monkeypatch):
    monkeypatch.delattr(sys, "frozen", raising=False)
    python, script, verb = program_command("convert")
    assert (python, verb) == (sys.executable, "convert") and Path(script).name == "main.py" and Path(script).is_file()
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert program_command("convert", "demo") == [sys.executable, "convert", "demo"]


# --- POSIX: for real ---------------------------------------------------------------------------------------------


def test_posix_lines_round_trip_through_a_real_shell():
    printer = "import json, sys; sys.stdout.write(json.dumps(sys.argv[1:]))"
    line = format_command([sys.executable, "-c", printer, *HOSTILE], "posix")
    done = subprocess.run(["sh", "-c", line], capture_output=True, text=True, check=True, timeout=30)
    assert json.loads(done.stdout) == HOSTILE


# --- the Microsoft C runtime's argument parser -------------------------------------------------------------------


def msvc_parse(line: str) -> list[str]:
    """argv[1:] as the C runtime reads a command line (argv[0], the program, is parsed without escapes)."""
    args: list[str] = []
    index = _skip_program(line)
    while True:
        while index < len(line) and line[index] in " \t":
            index += 1
        if index >= len(line):
            return args
        current, quoted = [], False
        while index < len(line) and (quoted or line[index] not in " \t"):
            backslashes = 0
            while index < len(line) and line[index] == "\\":
                backslashes += 1
                index += 1
            if index < len(line) and line[index] == '"':
                current.append("\\" * (backslashes // 2))
                if backslashes % 2:
                    current.append('"')
                elif quoted and index + 1 < len(line) and line[index + 1] == '"':
                    current.append('"')  # `""` inside quotes: one literal quote, still quoted
                    index += 1
                else:
                    quoted = not quoted
                index += 1
            else:
                current.append("\\" * backslashes)
                if index < len(line) and (quoted or line[index] not in " \t"):
                    current.append(line[index])
                    index += 1
        args.append("".join(current))


def _skip_program(line: str) -> int:
    if line.startswith('"'):
        return line.index('"', 1) + 1
    return line.index(" ") if " " in line else len(line)


def test_the_runtime_parser_written_here_agrees_with_cpython_on_its_own_quoting():
    assert msvc_parse(subprocess.list2cmdline(["prog", *ONE_LINE])) == ONE_LINE


# --- cmd.exe: by its rules ---------------------------------------------------------------------------------------


def cmd_expand_percent(line: str, env: dict[str, str]) -> str:
    """Phase 1 at the prompt: %name% becomes its value when defined; an undefined one stays as typed."""
    out, index = [], 0
    while index < len(line):
        end = line.find("%", index + 1) if line[index] == "%" else -1
        if end > 0 and line[index + 1 : end] in env:
            out.append(env[line[index + 1 : end]])
            index = end + 1
        else:
            out.append(line[index])
            index += 1
    return "".join(out)


def cmd_scan(line: str) -> str:
    """Phase 2: quotes toggle (every `"`), a caret outside quotes makes the next character literal and goes.
    An operator (& | < >) or a parenthesis outside quotes would start a second command or a redirection."""
    out, quoted, index = [], False, 0
    while index < len(line):
        char = line[index]
        if char == '"':
            quoted = not quoted
        elif not quoted and char == "^":
            index += 1
            char = line[index]
        elif not quoted and char in "&|<>()":
            raise AssertionError(f"cmd.exe would act on {char!r} at {index} in {line[:200]!r}")
        out.append(char)
        index += 1
    assert not quoted, "the line ends inside quotes"
    return "".join(out)


@pytest.mark.parametrize("value", ONE_LINE, ids=[str(index) for index in range(len(ONE_LINE))])
def test_cmd_lines_keep_every_metacharacter_literal_and_every_argument_whole(value):
    args = ["C:\\Program Files\\ONNX Forge\\ONNX Forge.exe", "convert", value, "-o", "C:\\R&D\\out"]
    line = format_command(args, "cmd")
    assert line.startswith('"C:\\Program Files\\ONNX Forge\\ONNX Forge.exe" convert ')
    for index, char in enumerate(line):
        if char in "%!":  # expanded even inside quotes: only ever as `"^%"`, outside them
            assert line[index - 2 : index] == '"^' and line[index + 1] == '"', line
    program_line = cmd_scan(cmd_expand_percent(line, ENV))
    assert msvc_parse(program_line) == args[1:]


def test_cmd_doubles_embedded_quotes_and_the_backslashes_before_them():
    assert format_command(["p", 'say "hi"'], "cmd") == 'p "say ""hi"""'
    assert format_command(["p", 'a\\"b'], "cmd") == 'p "a\\\\""b"'
    assert format_command(["p", "dir\\ with\\"], "cmd") == 'p "dir\\ with\\\\"'
    assert format_command(["p", "%PATH%"], "cmd") == 'p ""^%"PATH"^%""'
    assert format_command(["p", "--preset", "int4"], "cmd") == "p --preset int4"


def test_cmd_refuses_a_line_break_in_one_sentence():
    with pytest.raises(ValueError, match="^cmd.exe cannot take an argument with a line break; copy the command"):
        format_command(["p", "line\nbreak"], "cmd")
    with pytest.raises(ValueError, match="^cmd.exe cannot"):
        format_command(["p", "cr\ronly"], "cmd")


# --- PowerShell: by its rules ------------------------------------------------------------------------------------

_LEGACY_OPEN = "& { $PSNativeCommandArgumentPassing = 'Legacy'; & "
_PS_QUOTES = "'\u2018\u2019\u201a\u201b"


def ps_tokens(text: str) -> list[str]:
    """Arguments as PowerShell reads them: single-quoted strings (a doubled quote is one quote, nothing else is
    special, line breaks included) and bare words, which may hold no character PowerShell acts on."""
    tokens, index = [], 0
    while index < len(text):
        if text[index] == " ":
            index += 1
            continue
        if text[index] in _PS_QUOTES:
            current, index = [], index + 1
            while True:
                assert index < len(text), "a single-quoted string never ends"
                if text[index] in _PS_QUOTES:
                    if index + 1 < len(text) and text[index + 1] in _PS_QUOTES:
                        current.append(text[index + 1])
                        index += 2
                        continue
                    index += 1
                    break
                current.append(text[index])
                index += 1
            assert index == len(text) or text[index] == " ", "a quoted string runs into a bare word"
            tokens.append("".join(current))
            continue
        end = text.find(" ", index)
        word = text[index : end if end >= 0 else len(text)]
        assert not set(word) & set("$`;&|(){}@#<>,\"'%!\u2018\u2019\u201a\u201b"), f"PowerShell acts on {word!r}"
        assert not word.startswith("--%"), "the stop-parsing token"
        tokens.append(word)
        index += len(word)
    return tokens


def ps_legacy_command_line(args: list[str]) -> str:
    """What Legacy passing writes: an argument with whitespace outside (unescaped) quotes is wrapped in quotes,
    anything else goes as it is; empty arguments are dropped."""
    return " ".join(f'"{arg}"' if _legacy_needs_quotes(arg) else arg for arg in args if arg)


def _legacy_needs_quotes(arg: str) -> bool:
    quotes, after_backslash = 0, False
    for char in arg:
        if char == '"' and not after_backslash:
            quotes += 1
        elif char.isspace() and quotes % 2 == 0:
            return True
        after_backslash = char == "\\"
    return False


def ps_run(line: str) -> list[str]:
    """The arguments (after the program) the program receives, on PowerShell 7.3+ and on Windows PowerShell 5.1."""
    if line.startswith(_LEGACY_OPEN):
        assert line.endswith(" }")
        program, *rest = ps_tokens(line[len(_LEGACY_OPEN) : -2])
        return msvc_parse(f'"{program}" {ps_legacy_command_line(rest)}')
    body = line[2:] if line.startswith("& ") else line
    program, *rest = ps_tokens(body)
    assert all(arg and '"' not in arg and not (arg.endswith("\\") and " " in arg) for arg in rest)
    assert msvc_parse(f'"{program}" {ps_legacy_command_line(rest)}') == rest, "5.1 would read it differently"
    return rest


@pytest.mark.parametrize("value", HOSTILE, ids=[str(index) for index in range(len(HOSTILE))])
def test_powershell_lines_keep_every_metacharacter_quoted_and_every_argument_whole(value):
    args = ["C:\\Program Files\\ONNX Forge\\ONNX Forge.exe", "convert", value, "-o", "C:\\R&D\\out"]
    line = format_command(args, "powershell")
    assert ps_run(line) == args[1:]


def test_powershell_writes_ordinary_commands_plainly():
    args = ["C:\\Program Files\\Forge\\forge.exe", "convert", "C:\\R&D\\m", "-o", "C:\\out", "--set", "a=$(x)"]
    assert format_command(args, "powershell") == (
        "& 'C:\\Program Files\\Forge\\forge.exe' convert 'C:\\R&D\\m' -o C:\\out --set 'a=$(x)'"
    )
    assert format_command(["python", "it's"], "powershell") == "python 'it''s'"
    assert format_command(["p", 'say "hi"'], "powershell") == _LEGACY_OPEN + 'p \'"say \\"hi\\""\' }'


def test_pwsh_itself_when_it_is_installed():
    pwsh = shutil.which("pwsh")
    if pwsh is None:
        pytest.skip("pwsh is not installed here; the PowerShell lines are checked against its rules above")
    printer = "import json, sys; sys.stdout.write(json.dumps(sys.argv[1:]))"
    line = format_command([sys.executable, "-c", printer, *HOSTILE], "powershell")
    done = subprocess.run([pwsh, "-NoProfile", "-Command", line], capture_output=True, text=True, timeout=60)
    assert json.loads(done.stdout) == HOSTILE


# --- refusals and records ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("shell", SHELLS)
def test_no_shell_is_asked_to_carry_a_nul(shell):
    with pytest.raises(ValueError, match="^an argument holds a NUL character"):
        format_command(["p", "a\0b"], shell)


def test_an_unknown_shell_is_named():
    with pytest.raises(ValueError, match="^unknown shell 'fish'; use one of powershell, cmd, posix$"):
        format_command(["p"], "fish")


def test_a_record_keeps_its_arguments_and_an_old_record_loads_without_them(tmp_path):
    args = program_command("report", "C:\\R&D")
    fields = history.command_fields(args)
    assert fields == {"command_args": args, "command_line": format_command(args)}
    assert history.command_fields(["p", "a\0b"]) == {"command_args": ["p", "a\0b"], "command_line": ""}
    old = history.JobRecord.from_dict(
        {"id": "1", "title": "t", "model": "m", "preset": "p", "ep": "cpu", "output": "o", "plan": {}}
    )
    assert old.command_args == [] and old.command_line == ""
