"""The command line: the same engine the window drives, headless.

Errors print one line, `error: <what is wrong and what to do>`, on stderr and exit with code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from . import options
from .errors import ForgeError

EXIT_INPUT = 2
EXIT_INTERRUPTED = 130


class Parser(argparse.ArgumentParser):
    """argparse's refusals as one `error:` line (no usage block), like every other refusal; sub-parsers are made
    of the same class, so this holds for every command."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"error: {message}", file=sys.stderr)
        sys.exit(EXIT_INPUT)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "handler", None):
            parser.print_help()
            return 0
        sweep_staging()
        return args.handler(args)
    except ForgeError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        # A job's own runner handles Ctrl+C while it runs; this is Ctrl+C while planning, before anything is written.
        print("cancelled (Ctrl+C); nothing was written.", file=sys.stderr)
        return EXIT_INTERRUPTED


def sweep_staging() -> None:
    """What killed runs left (their staging; an old output they had moved aside goes back) goes before anything new."""
    from .staging import sweep

    try:
        sweep()
    except OSError as error:
        print(f"warning: could not tidy up after earlier runs ({error}).", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="main.py",
        description="ONNX Forge: turn Hugging Face LLM checkpoints into ONNX Runtime GenAI models. "
        "Without a command, the window opens.",
    )
    commands = parser.add_subparsers(metavar="COMMAND")

    inspect = commands.add_parser("inspect", help="describe a checkpoint folder or hub id without loading weights")
    inspect.add_argument("path", help="a checkpoint folder, a hub id (org/name), or 'demo'")
    inspect.add_argument("--json", action="store_true", help="print JSON")
    inspect.set_defaults(handler=cmd_inspect)

    presets = commands.add_parser("presets", help="list the conversion presets and recommendations")
    presets.add_argument("--json", action="store_true", help="print JSON")
    presets.set_defaults(handler=cmd_presets)

    convert = commands.add_parser("convert", help="convert a checkpoint into an ONNX Runtime GenAI model")
    convert.add_argument("source", help="a checkpoint folder, a hub id (org/name), or 'demo'")
    convert.add_argument("-o", "--output", required=True, help="output folder (one sub-folder per preset with several)")
    convert.add_argument(
        "--preset",
        action="append",
        default=None,
        type=options.comma_list("preset"),
        help="preset id, or several separated by commas (default int4); see `presets`",
    )
    convert.add_argument(
        "--ep",
        choices=["cpu", "cuda", "dml", "webgpu", "trt-rtx"],
        help="execution provider to build for (default: the best one this machine runs)",
    )
    convert.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="builder option, e.g. int4_block_size=64 or precision=fp32 (repeatable)",
    )
    convert.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    convert.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow the checkpoint's own Python code to run (only for checkpoints you trust)",
    )
    convert.add_argument("--revision", help="hub revision (branch, tag or commit) for a hub id")
    convert.add_argument("--no-check", action="store_true", help="skip loading and test-running the output")
    convert.add_argument(
        "--report", action="store_true", help="measure quality and speed when done, for the report card (`report`)"
    )
    convert.set_defaults(handler=cmd_convert)

    quantize = commands.add_parser(
        "quantize", help="quantize an ONNX model (ModelOpt, ONNX Runtime) or a checkpoint (Quark)"
    )
    quantize.add_argument("input", help="an ONNX GenAI folder, an .onnx model, or a checkpoint folder for quark-awq")
    quantize.add_argument("-o", "--output", required=True, help="output folder")
    how = quantize.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--algo", help="awq_lite, awq_clip, rtn, rtn_dq, fp16, q8, s8s8, s8u8, u8u8, q4, q4f16, bnb4 or quark-awq"
    )
    how.add_argument(
        "--variants",
        type=options.comma_list("variant"),
        help="several ONNX Runtime variants into one folder, e.g. fp16,q8,q4",
    )
    quantize.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="algorithm option (repeatable)"
    )
    quantize.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    quantize.add_argument("--no-eval", action="store_true", help="skip measuring perplexity against the input")
    quantize.add_argument("--options", action="store_true", help="list the algorithm's options and exit")
    quantize.add_argument(
        "--report", action="store_true", help="measure quality and speed when done, for the report card (`report`)"
    )
    quantize.set_defaults(handler=cmd_quantize)

    from .chat_repl import add_arguments as add_chat_arguments

    chat = commands.add_parser("chat", help="chat with a converted model (one reply with --prompt)")
    add_chat_arguments(chat)
    chat.set_defaults(handler=cmd_chat)

    evaluate = commands.add_parser("eval", help="perplexity of a converted model over a text")
    evaluate.add_argument("model", help="an ONNX Runtime GenAI model folder")
    evaluate.add_argument("--text", help="a UTF-8 text file (default: held-out stories matching the demo model)")
    evaluate.add_argument(
        "--max-tokens", type=options.TOKENS_TO_SCORE, default=20000, help="score at most this many tokens"
    )
    evaluate.add_argument(
        "--against",
        metavar="SOURCE",
        help="the Hugging Face checkpoint the model was made from ('demo' for the demo): also report top-1 "
        "agreement and mean KL divergence of the next-token distributions against PyTorch's",
    )
    evaluate.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="with --against: allow the checkpoint's own Python code to run (only for checkpoints you trust)",
    )
    evaluate.add_argument("--json", action="store_true", help="print JSON")
    evaluate.set_defaults(handler=cmd_eval)

    bench = commands.add_parser("bench", help="prompt and generation speed, time to first token, peak memory")
    bench.add_argument("model", help="an ONNX Runtime GenAI model folder")
    bench.add_argument("--prompt-tokens", type=options.PROMPT_TOKENS, default=128)
    bench.add_argument("--gen-tokens", type=options.GEN_TOKENS, default=64)
    bench.add_argument("--repeats", type=options.REPEATS, default=5)
    bench.add_argument("--ep", choices=["cpu", "cuda", "dml", "webgpu", "trt-rtx"], help="run on this provider")
    bench.add_argument(
        "--device-id", type=options.DEVICE_ID, help="which GPU, as `hardware` numbers them (DXGI adapter or NVML index)"
    )
    bench.add_argument("--json", action="store_true", help="print JSON")
    bench.set_defaults(handler=cmd_bench)

    report = commands.add_parser(
        "report", help="the report card of a model and its variants: size, perplexity, speed, drift, the pick"
    )
    report.add_argument("folders", nargs="+", metavar="FOLDER", help="ONNX Runtime GenAI model folders")
    report.add_argument("--no-measure", action="store_true", help="show cached figures only; measure nothing")
    report.add_argument("--text", help="eval text for what gets measured (default: the held-out demo text)")
    report.add_argument(
        "--max-tokens", type=options.TOKENS_TO_SCORE, default=20000, help="score at most this many tokens"
    )
    report.add_argument("--repeats", type=options.REPEATS, default=5, help="bench repeats after the warm-up")
    report.add_argument("--no-drift", action="store_true", help="do not load the source checkpoint in PyTorch")
    report.add_argument("--json", action="store_true", help="print JSON")
    report.set_defaults(handler=cmd_report)

    from .serve.cli import add_serve_command

    add_serve_command(commands)

    hardware = commands.add_parser("hardware", help="GPUs and the execution providers this machine can use")
    hardware.add_argument("--json", action="store_true", help="print JSON")
    hardware.set_defaults(handler=cmd_hardware)
    return parser


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def cmd_inspect(args: argparse.Namespace) -> int:
    from .checkpoints import inspect_checkpoint
    from .convert import resolve_source

    local, hub_id = resolve_source(args.path)
    if hub_id:
        from .hub import hub_model_summary, hub_token

        data = hub_model_summary(hub_id, token=hub_token()).to_dict()
    else:
        data = inspect_checkpoint(local).to_dict()
    if args.json:
        _print_json(data)
    else:
        for key, value in data.items():
            print(f"{key:>18}: {value}")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    from . import presets
    from .builder_info import builder_info

    info = builder_info()
    data = {
        "builder": {"version": info.version, "options": presets.settable_options(info)},
        "presets": [
            {**preset.to_dict(), "valid_eps": presets.valid_eps(preset, info)} for preset in presets.PRESETS.values()
        ],
        "recommendations": {
            "by_family": presets.BY_FAMILY,
            "by_hardware": presets.BY_HARDWARE,
            "by_use_case": presets.BY_USE_CASE,
        },
    }
    if args.json:
        _print_json(data)
        return 0
    for preset in data["presets"]:
        low, high = preset["size_percent_of_fp32"]
        size = f"{low}%" if low == high else f"{low}-{high}%"
        print(f"{preset['id']:<10} {preset['title']:<34} {size:>8} of FP32   eps: {', '.join(preset['valid_eps'])}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluate import drift, perplexity
    from .model_folder import check_model_folder

    check_model_folder(Path(args.model))

    if args.against:
        from .convert import resolve_source

        source, _hub_id = resolve_source(args.against)
        if source is None:
            raise ForgeError(f"{args.against} is not a local folder; --against needs the checkpoint on this disk.")
        text = Path(args.text) if args.text else None
        found = drift(Path(args.model), source, text, args.max_tokens, trust_remote_code=args.trust_remote_code)
        if args.json:
            _print_json(found.to_dict())
        else:
            print(
                f"perplexity {found.onnx_perplexity:.4f} (PyTorch {found.torch_perplexity:.4f}), top-1 agreement "
                f"{found.top1_agreement:.2%}, mean KL {found.mean_kl:.3g} nats (max {found.max_kl:.3g}) over "
                f"{found.tokens} tokens ({found.windows} windows of {found.text}); {found.tokenization_note}"
            )
        return 0
    result = perplexity(Path(args.model), Path(args.text) if args.text else None, args.max_tokens)
    if args.json:
        _print_json(result.to_dict())
    else:
        print(
            f"perplexity {result.perplexity:.4f} over {result.tokens} tokens "
            f"({result.windows} windows of {result.text})"
        )
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .benchmark import benchmark
    from .model_folder import check_model_folder

    check_model_folder(Path(args.model))

    speed = benchmark(Path(args.model), args.prompt_tokens, args.gen_tokens, args.repeats, args.ep, args.device_id)
    if args.json:
        _print_json(speed.to_dict())
    else:
        print(
            f"prompt {speed.prompt_tokens_per_second:,.0f} tok/s, generation {speed.generation_tokens_per_second:,.1f} "
            f"tok/s, first token {speed.time_to_first_token_seconds * 1000:.1f} ms, "
            f"peak memory {speed.peak_memory_bytes / 2**20:,.0f} MB (median of {speed.repeats})"
        )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .jobs.runner import run_job
    from .model_folder import check_model_folder
    from .report import MeasureSettings, recommend, rows

    folders = [Path(folder).expanduser().resolve() for folder in args.folders]
    for folder in folders:
        check_model_folder(folder)

    def gather() -> list:
        found: dict[str, Any] = {}
        for folder in folders:
            found |= {row.folder: row for row in rows(folder)}
        return list(found.values())

    table = gather()
    missing = [row.folder for row in table if row.kind == "onnx" and not row.measured]
    if missing and not args.no_measure:
        settings = MeasureSettings(
            text=str(Path(args.text).resolve()) if args.text else None,
            max_tokens=args.max_tokens,
            repeats=args.repeats,
            against_source=not args.no_drift,
        )
        outcome = run_job("report", {"folders": missing, "settings": settings.to_dict()}, _print_progress)
        if not outcome.ok:
            print(f"error: {outcome.message}", file=sys.stderr)
            return 1
        table = gather()
    pick = recommend(table)
    if args.json:
        _print_json(
            {
                "rows": [row.to_dict() for row in table],
                "recommended": pick[0].folder if pick else None,
                "reason": pick[1] if pick else None,
            }
        )
        return 0
    print_report(table, pick)
    return 0


def _print_progress(message: Any) -> None:
    from .jobs.protocol import Log, Progress

    if isinstance(message, Progress):
        print(f"[{message.percent:5.1f}%] {message.stage}: {message.detail}", file=sys.stderr, flush=True)
    elif isinstance(message, Log) and message.stream == "report":
        print(f"  {message.text}", file=sys.stderr, flush=True)


def print_report(table: list, pick: tuple | None) -> None:
    from rich.console import Console
    from rich.table import Table

    def number(value: Any, form: str, scale: float = 1.0) -> str:
        return "-" if value is None else format(value * scale, form)

    view = Table(title="Report card")
    for column in (
        "",
        "variant",
        "made as",
        "size MB",
        "perplexity",
        "gen tok/s",
        "prompt tok/s",
        "TTFT ms",
        "peak MB",
    ):
        view.add_column(column, justify="left" if column in ("", "variant", "made as") else "right")
    view.add_column("top-1 / KL")
    for row in table:
        drift = "-" if row.top1_agreement is None else f"{row.top1_agreement:.2%} / {row.mean_kl:.2g}"
        view.add_row(
            "*" if pick and row is pick[0] else ("stale" if row.stale else ""),
            row.name,
            row.label,
            number(row.size_bytes, ",.1f", 2**-20),
            number(row.perplexity, ".4f"),
            number(row.generation_tps, ",.1f"),
            number(row.prompt_tps, ",.0f"),
            number(row.ttft_seconds, ",.1f", 1000),
            number(row.peak_memory_bytes, ",.0f", 2**-20),
            drift,
        )
    Console(width=max(120, Console().width)).print(view)
    print(f"recommended: {pick[0].name}: {pick[1]}" if pick else "recommended: - (nothing measured yet)")


def cmd_hardware(args: argparse.Namespace) -> int:
    from .hardware import format_report, probe_hardware

    report = probe_hardware()
    if args.json:
        _print_json(report.to_dict())
    else:
        from .flavors import FLAVORS, advise

        advice = advise(report)
        print(format_report(report))
        installed = ", ".join(FLAVORS[key].label for key in advice.installed) or "none"
        print(f"Runtime flavor: {installed}; best here: {FLAVORS[advice.best].label} ({advice.why}). {advice.how}.")
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from .chat_repl import cmd_chat as chat
    from .model_folder import check_model_folder

    check_model_folder(Path(args.model))
    return chat(args)


def parse_sets(pairs: list[str]) -> dict[str, str]:
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ForgeError(f"--set takes KEY=VALUE, not '{pair}'.")
        overrides[key.strip()] = value.strip()
    return overrides


def cmd_quantize(args: argparse.Namespace) -> int:
    from .jobs.console import run_in_terminal
    from .quantize import QuantizeRequest, options_for, plan_quantization

    algo = args.algo or "variants"
    overrides = parse_sets(args.set)
    for key in ("calibration_data", "calibration_text"):
        # The worker may run elsewhere than this folder: a relative file path is made absolute here.
        if key in overrides and Path(overrides[key]).is_file():
            overrides[key] = str(Path(overrides[key]).resolve())
    if args.variants:
        overrides["variants"] = ",".join(args.variants)
    if args.options:
        for option in options_for(algo):
            choices = f" ({'/'.join(option.choices)})" if option.choices else ""
            print(f"{option.name:<28} {option.kind:<7} default {option.default!r}{choices}: {option.help}")
        return 0
    request = QuantizeRequest(
        args.input,
        args.output,
        algo,
        overrides,
        args.overwrite,
        evaluate=not args.no_eval,
        report={} if args.report else None,
    )
    plan_quantization(request)
    outcome, code = run_in_terminal("quantize", request.to_dict(), algo, [])
    if outcome.ok:
        print(f"quality: {outcome.result['manifest']['quality'].get('verdict', '-')}")
    return code


def usable_providers_in_child() -> set[str]:
    """The hardware report, probed in a child: in this process onnxruntime would hold ~90 MB for the whole build."""
    import subprocess

    from .hardware import HardwareReport
    from .jobs.runner import app_command

    probe = subprocess.run(app_command("hardware", "--json"), capture_output=True, text=True, timeout=120)
    if probe.returncode != 0:
        raise ForgeError(f"the hardware probe failed ({probe.stderr.strip()[-200:]}); pass --ep to skip it.")
    return HardwareReport.from_dict(json.loads(probe.stdout)).usable_providers()


def cmd_convert(args: argparse.Namespace) -> int:
    from .convert import ConvertRequest, plan_conversion, resolve_output
    from .jobs.console import convert_all

    preset_ids = options.no_repeats(args.preset or [["int4"]], "--preset")
    output = resolve_output(args.output)  # before it becomes a Path: Path("") is the current folder
    usable = None if args.ep else usable_providers_in_child()
    plans = []
    for preset_id in preset_ids:
        request = ConvertRequest(
            source=args.source,
            output=str(output / preset_id if len(preset_ids) > 1 else output),
            preset=preset_id,
            ep=args.ep,
            overrides=parse_sets(args.set),
            overwrite=args.overwrite,
            trust_remote_code=args.trust_remote_code,
            revision=args.revision,
            check=not args.no_check,
            report={} if args.report else None,
        )
        plans.append(plan_conversion(request, usable))
    return convert_all(plans)
