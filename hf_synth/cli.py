"""The ``hf-synth`` command line: fit, sample, push and an offline demo.

User errors (bad data, bad arguments, an existing output, a broken generator) print one line and
exit with status 2; the CLI calls only the public Python API.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any, Sequence

EXIT_USER_ERROR = 2


def _parse_value(text: str) -> Any:
    """``37`` -> 37, ``true`` -> True, ``Female`` -> "Female" (JSON when it parses, else a string)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _conditions(items: Sequence[str] | None) -> dict[str, Any] | None:
    if not items:
        return None
    conditions = {}
    for item in items:
        if "=" not in item:
            raise _UsageError(f"--condition expects column=value, got {item!r}")
        column, value = item.split("=", 1)
        conditions[column.strip()] = _parse_value(value)
    return conditions


class _UsageError(Exception):
    """A command-line argument the library never sees is wrong."""


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-synth", description="Train synthetic-data generators and sample from them.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", required=True)

    fit = commands.add_parser("fit", help="train a generator on a dataset")
    fit.add_argument("--dataset", required=True, help="Hub dataset id, saved dataset directory, or .csv/.jsonl/.parquet file")
    fit.add_argument("--config", default=None, help="dataset config name (Hub datasets)")
    fit.add_argument("--split", default="train")
    fit.add_argument("--columns", default=None, help="comma-separated columns to keep")
    fit.add_argument("--method", default="lm", choices=["lm"], help="generator type")
    fit.add_argument("--model", default=None, help="causal LM to fine-tune (Hub id or local path); default: small model from scratch")
    fit.add_argument("--lora", action="store_true", help="fine-tune --model with LoRA adapters")
    fit.add_argument("--epochs", type=int, default=None)
    fit.add_argument("--batch-size", type=int, default=None)
    fit.add_argument("--learning-rate", type=float, default=None)
    fit.add_argument("--seed", type=int, default=None)
    fit.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="other generator config fields")
    fit.add_argument("--out", required=True, help="directory to save the generator to")
    fit.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    fit.add_argument("--no-progress", action="store_true")

    sample = commands.add_parser("sample", help="sample synthetic rows from a generator")
    sample.add_argument("generator", help="generator directory or Hub model id")
    sample.add_argument("-n", "--num-rows", type=int, required=True)
    sample.add_argument("--seed", type=int, default=None)
    sample.add_argument("--condition", action="append", default=[], metavar="COLUMN=VALUE", help="fix a column (repeatable)")
    sample.add_argument("--revision", default=None, help="Hub revision of the generator")
    sample.add_argument("--batch-size", type=int, default=None)
    sample.add_argument("--temperature", type=float, default=None)
    sample.add_argument("--out", required=True, help="output file: .csv, .jsonl or .parquet")
    sample.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    sample.add_argument("--no-progress", action="store_true")

    push = commands.add_parser("push", help="upload a saved generator to the Hub")
    push.add_argument("directory")
    push.add_argument("repo_id")
    push.add_argument("--private", action="store_true")
    push.add_argument("--token", default=None, help="Hub token (default: the logged-in user's)")

    demo = commands.add_parser("demo", help="fit a generator on the bundled Adult sample and sample from it (offline)")
    demo.add_argument("--out", default="hf-synth-demo", help="directory to save the demo generator to")
    demo.add_argument("--rows", type=int, default=5, help="rows to sample and print")
    demo.add_argument("--epochs", type=int, default=None)
    demo.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    return parser


def _fit(args: argparse.Namespace) -> None:
    from . import LMGenerator

    if os.path.exists(args.out) and not args.overwrite:
        raise _UsageError(f"{args.out} exists; pass --overwrite to replace it")
    config: dict[str, Any] = {}
    for item in args.set:
        if "=" not in item:
            raise _UsageError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        config[key.replace("-", "_")] = _parse_value(value)
    for key in ("model", "epochs", "batch_size", "learning_rate", "seed"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    if args.lora:
        config["use_lora"] = True
    generator = LMGenerator(**config)
    columns = [c.strip() for c in args.columns.split(",")] if args.columns else None
    checkpoints = args.out.rstrip("/") + ".checkpoints"
    generator.fit(args.dataset, config=args.config, split=args.split, columns=columns,
                  checkpoint_dir=checkpoints, progress=not args.no_progress)
    generator.save_pretrained(args.out)
    import shutil

    shutil.rmtree(checkpoints, ignore_errors=True)
    info = generator.training_info
    print(f"saved the generator to {args.out} ({info['rows']} rows, {info['epochs']} epochs, "
          f"validation loss {info['best_validation_loss']}, {info['fit_seconds']} s)")


def _sample(args: argparse.Namespace) -> None:
    from . import AutoGenerator
    from .io import check_output_path

    check_output_path(args.out, args.overwrite)
    if args.num_rows <= 0:
        raise _UsageError(f"-n must be a positive number of rows, got {args.num_rows}")
    conditions = _conditions(args.condition)
    generator = AutoGenerator.from_pretrained(args.generator, revision=args.revision)
    options = {k: v for k, v in (("batch_size", args.batch_size), ("temperature", args.temperature)) if v is not None}
    generator.sample(args.num_rows, conditions=conditions, seed=args.seed, output=args.out,
                     overwrite=args.overwrite, progress=not args.no_progress, **options)
    print(f"wrote {args.out}: {generator.last_report}")


def _push(args: argparse.Namespace) -> None:
    from . import AutoGenerator

    generator = AutoGenerator.from_pretrained(args.directory)
    url = generator.push_to_hub(args.repo_id, private=args.private or None, token=args.token)
    print(f"pushed {args.directory} to {args.repo_id}: {url}")


def _demo(args: argparse.Namespace) -> None:
    from .demo import run_demo

    run_demo(args.out, rows=args.rows, epochs=args.epochs, overwrite=args.overwrite)


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from transformers.utils import logging as transformers_logging

    from .errors import HFSynthError

    transformers_logging.disable_progress_bar()  # weight loading / saving bars would drown ours
    handlers = {"fit": _fit, "sample": _sample, "push": _push, "demo": _demo}
    try:
        handlers[args.command](args)
    except (HFSynthError, _UsageError) as err:
        print(f"hf-synth {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"hf-synth {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
