"""The `ftkit` command: argument parsing only. Work is imported lazily inside each handler, so that
`ftkit --help`, `--version` and the config part of `ftkit check` never import torch or transformers.

Exit codes: 0 success, 2 user error (message, no traceback), 1 unexpected failure, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from ftkit import __version__
from ftkit.config.redact import redact_text
from ftkit.console import configure_logging, quiet_library_progress
from ftkit.errors import Interrupted, UserError

Handler = Callable[[argparse.Namespace], int | None]


def _train(args: argparse.Namespace) -> int:
    from ftkit.config import load_recipe
    from ftkit.launch import train

    # --nproc is an override like any other: validated with the recipe, and seen by every worker.
    overrides = [
        *args.overrides,
        *([f"distributed.nproc_per_node={args.nproc}"] if args.nproc is not None else []),
    ]
    recipe = load_recipe(args.recipe, overrides)
    return train(recipe, ["train", args.recipe, *overrides])


def _check(args: argparse.Namespace) -> int:
    from ftkit.check import check

    return check(args.recipe, args.overrides, show_recipe=not args.quiet, device=args.device)


def _export(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ftkit.export import ExportRequest, export

    flags = {
        "base": args.base,
        "revision": args.revision,
        "adapter": args.adapter,
        "out": args.out,
        "dtype": args.dtype,
        "shard_size": args.shard_size,
    }
    given = {name: value for name, value in flags.items() if value is not None}
    if args.allow_pickle:
        given["allow_pickle"] = True
    if args.no_verify:
        given["verify"] = False
    if args.recipe:
        from ftkit.config import load_recipe

        recipe = load_recipe(args.recipe, args.overrides)
        request = replace(ExportRequest.from_recipe(recipe, force=args.force), **given)
    else:
        if not (args.adapter and args.out):
            raise UserError(
                "ftkit export needs a recipe, or --adapter and --out (and --base unless recorded)"
            )
        request = ExportRequest(**{"base": None, **given}, force=args.force)
    quiet_library_progress()
    export(request)
    return 0


def _generation_options(args: argparse.Namespace) -> object:
    from ftkit.infer import GenerationOptions

    batch_size = getattr(args, "batch_size", GenerationOptions.batch_size)  # chat answers one at a time
    return GenerationOptions(args.max_new_tokens, args.temperature, args.top_p, batch_size, args.seed)


def _generate(args: argparse.Namespace) -> int:
    from ftkit.config import load_recipe
    from ftkit.infer import GenerationRequest, generate_file

    recipe = load_recipe(args.recipe, args.overrides)
    quiet_library_progress()
    generate_file(recipe, GenerationRequest(args.input, args.output, args.model, _generation_options(args)))
    return 0


def _chat(args: argparse.Namespace) -> int:
    from ftkit.config import load_recipe
    from ftkit.infer import chat

    recipe = load_recipe(args.recipe, args.overrides)
    quiet_library_progress()
    chat(recipe, args.model, _generation_options(args))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from ftkit.config import load_recipe
    from ftkit.evaluate import EvalRequest, evaluate, table

    if args.smoke:
        from ftkit.smoke import run_smoke

        quiet_library_progress()
        result = run_smoke(args.recipe, args.overrides)
        print(result.summary())
        return 0 if result.passed else 2
    recipe = load_recipe(args.recipe, args.overrides)
    quiet_library_progress()
    results = evaluate(recipe, EvalRequest(args.compare_base, args.model, args.max_samples))
    print(table(results))
    return 0


def _verify(args: argparse.Namespace) -> int:
    from ftkit.verify import verify

    quiet_library_progress()
    verify(
        args.run_dir,
        args.export,
        args.endpoint,
        args.prompts,
        args.count,
        args.max_new_tokens,
        args.tolerance,
        args.api_key,
    )
    print("verified: the served model answers as the trained one", file=sys.stderr)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from ftkit.serve import serve

    serve(args.target, args.host, args.port, args.api_key, args.engine)
    return 0


def _import(args: argparse.Namespace) -> int:
    from ftkit.atomic import atomic_write_text
    from ftkit.importers import IMPORTERS

    importer = IMPORTERS[args.tool]
    conversion = importer.import_config(args.config)
    if conversion.registry:
        # The config declared its datasets inline: they become a registry beside the recipe.
        if not args.output:
            raise UserError(
                f"this {args.tool} config declares its datasets inline: give -o RECIPE.yaml, and their "
                "registry is written beside it"
            )
        output = Path(args.output)
        dataset_dir = output.parent / f"{output.stem}_data"
        conversion.set("data.dataset_dir", str(dataset_dir))
        conversion.write_registry(dataset_dir)
        print(f"wrote {dataset_dir / 'dataset_info.json'}", file=sys.stderr)
    text = importer.render(conversion, args.config)
    if args.output:
        atomic_write_text(Path(args.output), text)
        print(f"wrote {args.output}; check it with: ftkit check {args.output}", file=sys.stderr)
    else:
        print(text, end="")
    for note in conversion.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def _datasets(args: argparse.Namespace) -> int:
    from ftkit.data.commands import list_datasets

    print(list_datasets(args.dir))
    return 0


def _data_preview(args: argparse.Namespace) -> int:
    from ftkit.config import load_recipe
    from ftkit.data.commands import preview

    recipe = load_recipe(args.recipe, args.overrides)
    quiet_library_progress()
    color = sys.stdout.isatty() and not args.json
    print(preview(recipe, args.n, args.json, color, args.split))
    return 0


def _data_stats(args: argparse.Namespace) -> int:
    from ftkit.config import load_recipe
    from ftkit.data.commands import stats

    recipe = load_recipe(args.recipe, args.overrides)
    quiet_library_progress()
    print(stats(recipe, args.json))
    return 0


def _template_list(args: argparse.Namespace) -> int:
    from ftkit.templates.commands import describe_templates

    print(describe_templates())
    return 0


def _template_render(args: argparse.Namespace) -> int:
    from ftkit.templates.commands import render_file, write_exact

    write_exact(render_file(args.name, args.messages, args.add_generation_prompt, args.set, args.tokenizer))
    return 0


def _env(args: argparse.Namespace) -> int:
    from ftkit.envinfo import describe

    print(describe())
    return 0


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ftkit",
        description="Fine-tune large language models from declarative YAML recipes.",
        epilog="Recipes: see recipes/ and examples/. Overrides use dotted keys, e.g. train.learning_rate=1e-4.",
    )
    parser.add_argument("--version", action="version", version=f"ftkit {__version__}")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    def command(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    def recipe_arguments(sub: argparse.ArgumentParser, required: bool = True) -> None:
        sub.add_argument("recipe", nargs=None if required else "?", help="recipe YAML file")
        sub.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.seed=1")

    sub = command("train", _train, "Train a recipe.")
    recipe_arguments(sub)
    sub.add_argument(
        "--nproc",
        type=int,
        metavar="N",
        help="processes on this machine (sets distributed.nproc_per_node); ftkit runs itself under torchrun",
    )

    sub = command("check", _check, "Validate a recipe and show what would run, without loading weights.")
    recipe_arguments(sub)
    sub.add_argument(
        "-q", "--quiet", action="store_true", help="print the summary without the resolved recipe"
    )
    sub.add_argument(
        "--device",
        choices=["cuda", "mps", "cpu"],
        help="check device and precision for this kind of machine instead of this one (e.g. a GPU recipe on a laptop)",
    )

    sub = command("export", _export, "Merge a trained LoRA adapter into its base model.")
    recipe_arguments(sub, required=False)
    sub.add_argument("--base", help="base model hub id or path (default: the one the adapter's run records)")
    sub.add_argument(
        "--revision", help="hub revision of the base (default: the one the adapter's run records)"
    )
    sub.add_argument("--adapter", help="adapter directory (without a recipe; with one it overrides it)")
    sub.add_argument("--out", help="output directory (without a recipe; with one it overrides it)")
    sub.add_argument(
        "--dtype", choices=["auto", "bfloat16", "float16", "float32"], help="dtype of the merged weights"
    )
    sub.add_argument("--shard-size", help="maximum safetensors shard size (default 5GB)")
    sub.add_argument("--force", action="store_true", help="replace an existing output directory")
    sub.add_argument(
        "--no-verify",
        action="store_true",
        help="skip comparing the export with the adapter on a few prompts (recorded in export.json)",
    )
    sub.add_argument(
        "--allow-pickle",
        action="store_true",
        help="allow a base stored in pickle (.bin) files, which can run code",
    )

    def generation_arguments(sub: argparse.ArgumentParser, max_new_tokens: int) -> None:
        sub.add_argument(
            "--model", help="model directory (default: the recipe's merged export, else base+adapter)"
        )
        sub.add_argument("--max-new-tokens", type=_positive, default=max_new_tokens)
        sub.add_argument(
            "--temperature", type=float, default=0.0, help="0: greedy decoding (default); >0 samples"
        )
        sub.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling threshold when sampling")
        sub.add_argument("--seed", type=int, default=0, help="seed of the sampling")

    sub = command("generate", _generate, "Generate responses for a file of prompts with a recipe's model.")
    recipe_arguments(sub)
    sub.add_argument("--input", required=True, help="JSONL file: one {prompt} or {messages} object per line")
    sub.add_argument("--output", help="write the results as JSONL here (default: print them)")
    generation_arguments(sub, 64)
    sub.add_argument("--batch-size", type=_positive, default=8, help="prompts generated together")

    sub = command("chat", _chat, "Chat with a recipe's model in the terminal (/reset, /exit).")
    recipe_arguments(sub)
    generation_arguments(sub, 256)

    sub = command("eval", _eval, "Loss, perplexity and task metrics on the eval data (eval_results.json).")
    recipe_arguments(sub)
    sub.add_argument("--compare-base", action="store_true", help="also score the base model, side by side")
    sub.add_argument(
        "--model", help="model directory (default: the recipe's merged export, else base+adapter)"
    )
    sub.add_argument("--max-samples", type=_positive, help="evaluate on at most this many examples")
    sub.add_argument(
        "--smoke",
        action="store_true",
        help="the pipeline's unit test: train the recipe briefly on 80 of its rows (in OUTPUT_DIR-smoke) and "
        "pass when the loss on 20 held-out rows fell by 1%% or more (exit 2 when it did not)",
    )

    sub = command("serve", _serve, "Serve a trained model over an OpenAI-compatible HTTP API.")
    sub.add_argument("target", help="a recipe, a run directory or a (merged) model directory")
    sub.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sub.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    sub.add_argument(
        "--api-key", help="require `Authorization: Bearer KEY` (needed to listen beyond this machine)"
    )
    sub.add_argument(
        "--engine",
        choices=["transformers", "vllm"],
        default="transformers",
        help="what generates: transformers (default) or vLLM (CUDA, a merged model; ftkit[vllm])",
    )

    sub = command("verify", _verify, "Check that an export or a server answers as the trained run does.")
    sub.add_argument("run_dir", help="the trained run's output_dir")
    sub.add_argument("--export", help="the merged model to compare (default: the run's export.output_dir)")
    sub.add_argument(
        "--endpoint", help="an OpenAI-compatible base URL to compare, e.g. http://127.0.0.1:8000/v1"
    )
    sub.add_argument("--api-key", help="the endpoint's key")
    sub.add_argument("--prompts", help="JSONL of {prompt} or {messages} (default: the run's eval data)")
    sub.add_argument("--count", type=_positive, default=4, help="how many prompts (default 4)")
    sub.add_argument("--max-new-tokens", type=_positive, default=16)
    sub.add_argument("--tolerance", type=float, default=1e-3, help="largest allowed log-probability gap")

    sub = command("import", _import, "Convert another tool's training config into an ftkit recipe.")
    sub.add_argument("tool", choices=["llamafactory", "axolotl"], help="the tool the config is for")
    sub.add_argument("config", help="its training YAML")
    sub.add_argument("-o", "--output", help="write the recipe here (default: print it)")

    sub = command("datasets", _datasets, "List the entries of a dataset registry (dataset_info.json).")
    sub.add_argument("--dir", default="data", help="the folder holding dataset_info.json (default: data)")

    data = commands.add_parser("data", help="Preview or count a recipe's processed training data.")
    data_commands = data.add_subparsers(title="data commands", metavar="COMMAND", required=True)
    sub = data_commands.add_parser(
        "preview", help="Show processed examples, trained and masked text told apart."
    )
    sub.set_defaults(handler=_data_preview)
    recipe_arguments(sub)
    sub.add_argument("-n", type=_positive, default=3, help="how many examples (default 3)")
    sub.add_argument(
        "--json", action="store_true", help="one JSON object per example: text, input_ids, labels"
    )
    sub.add_argument("--split", choices=["train", "eval"], default="train")
    sub = data_commands.add_parser(
        "stats", help="Examples, tokens, trained tokens, truncations, skips, lengths."
    )
    sub.set_defaults(handler=_data_stats)
    recipe_arguments(sub)
    sub.add_argument("--json", action="store_true", help="the full report as JSON")

    template = commands.add_parser("template", help="List chat templates, or render one.")
    template_commands = template.add_subparsers(title="template commands", metavar="COMMAND", required=True)
    sub = template_commands.add_parser("list", help="The built-in chat templates and what each is for.")
    sub.set_defaults(handler=_template_list)
    sub = template_commands.add_parser(
        "render", help="Print exactly what a template renders for a conversation (nothing else on stdout)."
    )
    sub.set_defaults(handler=_template_render)
    sub.add_argument("name", help="template name (see `ftkit template list`)")
    sub.add_argument("--messages", required=True, help='JSON file: a list of {"role", "content"} messages')
    sub.add_argument("--add-generation-prompt", action="store_true", help="end with the opening of an answer")
    sub.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help='template variable, e.g. date_string="26 Jul 2024" or enable_thinking=false',
    )
    sub.add_argument("--tokenizer", help="tokenizer path or hub id (needed by the `tokenizer` template)")

    command("env", _env, "Show versions, devices and optional features of this machine.")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse stops filling `overrides` at the first option: `ftkit check r.yaml -q train.seed=1`.
    if (
        extra
        and hasattr(args, "overrides")
        and all("=" in item and not item.startswith("-") for item in extra)
    ):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    configure_logging(args.log_level)
    # Messages are redacted where they are printed: a secret in the environment never reaches the terminal.
    try:
        return args.handler(args) or 0
    except UserError as exc:
        print(redact_text(f"error: {exc}"), file=sys.stderr)
        return exc.exit_code
    except Interrupted as exc:
        if str(exc):
            print(redact_text(str(exc)), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception:
        print(redact_text(traceback.format_exc()), end="", file=sys.stderr)
        print(
            "error: unexpected failure (a bug in ftkit or a library); the traceback is above", file=sys.stderr
        )
        return 1
