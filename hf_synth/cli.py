"""The ``hf-synth`` command line: fit, sample, evaluate, curate, push, push-dataset and an offline demo.

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
    fit.add_argument("--method", default="lm", choices=["lm", "difflm"],
                     help="generator type: a causal LM over records, or DiffLM (VAE + latent diffusion + frozen LM)")
    fit.add_argument("--model", default=None, help="causal LM to fine-tune (Hub id or local path); default: small model from scratch")
    fit.add_argument("--lora", action="store_true", help="fine-tune --model with LoRA adapters")
    fit.add_argument("--epochs", type=int, default=None)
    fit.add_argument("--batch-size", type=int, default=None)
    fit.add_argument("--learning-rate", type=float, default=None)
    fit.add_argument("--seed", type=int, default=None)
    fit.add_argument("--target-columns", default=None, type=_column_list,
                     help="comma-separated columns a downstream model will predict (e.g. a label): written last, "
                          "categorical ones weighed more in the training loss; DiffLM also keeps them out of its "
                          "latent and redraws them")
    fit.add_argument("--column-order", default=None, type=_column_order,
                     help="order the model writes columns in: natural (the data's), dependence (the columns most tied "
                          "to the others first) or a comma-separated list of every column")
    fit.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="other generator config fields")
    difflm = fit.add_argument_group("DiffLM (--method difflm; --epochs counts VAE epochs)")
    difflm.add_argument("--decoder", default=None, help="frozen causal LM decoder (Hub id or path); default: trained from scratch")
    difflm.add_argument("--encoder", default=None, help="encoder (Hub id or path, e.g. a BERT); default: trained from scratch")
    difflm.add_argument("--latent-dim", type=int, default=None, help="size d of the latent")
    difflm.add_argument("--virtual-tokens", type=int, default=None, help="k: soft-prompt vectors made from the latent")
    difflm.add_argument("--prefix-length", type=int, default=None, help="learned prefix vectors before the soft prompt")
    difflm.add_argument("--beta-max", type=float, default=None)
    difflm.add_argument("--beta-min", type=float, default=None)
    difflm.add_argument("--diffusion-steps", type=int, default=None, help="training steps of the latent diffusion model")
    difflm.add_argument("--sampling-steps", type=int, default=None, help="Heun steps of the diffusion sampler")
    difflm.add_argument("--prior", default=None, choices=["diffusion", "normal"])
    difflm.add_argument("--calibration", default=None, choices=["context", "token", "none"],
                        help="logit offsets fitted after the prior (default: context)")
    difflm.add_argument("--calibration-rounds", type=int, default=None,
                        help="rounds that correct the offsets on sampled rows (default: 6; 0: none)")
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
    _add_curation_arguments(sample, after_sampling=True)

    evaluate = commands.add_parser("evaluate", help="measure a synthetic split against real data (report.json, report.md, PNGs)")
    evaluate.add_argument("--real", required=True, help="the real (training) data: Hub dataset id, saved dataset directory or file")
    evaluate.add_argument("--synthetic", required=True, help="the synthetic data, in any of the same forms (or a .jsonl of raw generations)")
    evaluate.add_argument("--holdout", default=None, help="real rows the generator never saw (test split): DCR, membership inference, utility test set")
    evaluate.add_argument("--target", default=None, help="column to predict for the utility section")
    evaluate.add_argument("--metrics", default=None, help="comma-separated sections (default: all)")
    evaluate.add_argument("--encoder", default=None, help="sentence encoder (Hub id or local path) for the embedding metrics")
    evaluate.add_argument("--column-kind", action="append", default=[], metavar="COLUMN=KIND",
                          help="override a column's role: numerical, categorical, text or nested (repeatable)")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--max-rows", type=int, default=20_000, help="rows per side for detection, privacy and high-order metrics")
    evaluate.add_argument("--no-plots", action="store_true")
    evaluate.add_argument("--attach-to", default=None, metavar="GENERATOR_DIR",
                          help="also save the report into this generator directory (its model card gets the evaluation section)")
    evaluate.add_argument("--out", required=True, help="directory for report.json, report.md and the figures")
    evaluate.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    evaluate.add_argument("--no-progress", action="store_true")

    curate = commands.add_parser("curate", help="drop invalid, duplicate, too-close-to-training or low-scoring synthetic rows")
    curate.add_argument("--synthetic", required=True, help="the synthetic rows (dataset id, directory or file)")
    curate.add_argument("--out", required=True, help="output file: .csv, .jsonl or .parquet")
    curate.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    curate.add_argument("--schema-from", default=None, metavar="DATA_OR_GENERATOR",
                        help="for --drop-invalid: a generator directory / Hub id, or data to learn the schema from (default: --train)")
    _add_curation_arguments(curate, after_sampling=False)

    push = commands.add_parser("push", help="upload a saved generator to the Hub")
    push.add_argument("directory")
    push.add_argument("repo_id")
    push.add_argument("--private", action="store_true")
    push.add_argument("--token", default=None, help="Hub token (default: the logged-in user's)")

    push_dataset = commands.add_parser("push-dataset", help="sample splits and push them as a Hub dataset repo "
                                       "(loadable with plain datasets.load_dataset)")
    push_dataset.add_argument("generator", help="generator directory or Hub model id")
    push_dataset.add_argument("repo_id", help="the dataset repo to create or update")
    push_dataset.add_argument("--rows", action="append", required=True, metavar="[SPLIT=]N",
                              help="rows of a split, e.g. --rows train=10000 --rows test=2000 (a bare N is the train split)")
    push_dataset.add_argument("--seed", type=int, default=None)
    push_dataset.add_argument("--condition", action="append", default=[], metavar="COLUMN=VALUE", help="fix a column (repeatable)")
    push_dataset.add_argument("--revision", default=None, help="Hub revision of the generator")
    push_dataset.add_argument("--private", action="store_true")
    push_dataset.add_argument("--token", default=None, help="Hub token (default: the logged-in user's)")

    demo = commands.add_parser("demo", help="fit a generator on the bundled Adult sample and sample from it (offline)")
    demo.add_argument("--out", default="hf-synth-demo", help="directory to save the demo generator to")
    demo.add_argument("--rows", type=int, default=5, help="rows to sample and print")
    demo.add_argument("--epochs", type=int, default=None)
    demo.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    return parser


def _add_curation_arguments(parser: argparse.ArgumentParser, *, after_sampling: bool) -> None:
    group = parser.add_argument_group("curation" + (" (rejected rows are sampled again)" if after_sampling else ""))
    if not after_sampling:
        group.add_argument("--drop-invalid", action="store_true", help="drop rows that violate the schema")
    group.add_argument("--train", default=None, help="training data: duplicates of it and rows too close to it are dropped")
    group.add_argument("--drop-duplicates", action="store_true", help="drop exact duplicates (within the set and of --train)")
    group.add_argument("--near-duplicates", type=float, default=None, metavar="JACCARD",
                       help="drop near duplicates at this MinHash similarity (within the set and of --train)")
    group.add_argument("--min-distance", type=float, default=None, help="drop rows this close to a --train record (or closer)")
    group.add_argument("--distance-quantile", type=float, default=None,
                       help="drop rows closer to a --train record than this quantile of train-to-train distances")
    group.add_argument("--min", action="append", default=[], metavar="COLUMN=VALUE", help="keep rows with COLUMN >= VALUE (repeatable)")
    group.add_argument("--max", action="append", default=[], metavar="COLUMN=VALUE", help="keep rows with COLUMN <= VALUE (repeatable)")
    group.add_argument("--curation-report", default=None, metavar="FILE", help="write what curation removed as JSON")


def _bounds(items: Sequence[str], flag: str) -> dict[str, float]:
    bounds = {}
    for item in items:
        column, _, value = item.partition("=")
        try:
            bounds[column.strip()] = float(value)
        except ValueError:
            raise _UsageError(f"{flag} expects COLUMN=NUMBER, got {item!r}") from None
    return bounds


def _curation_steps(args: argparse.Namespace, schema: Any = None) -> list:
    from .curation import DropCloseToTraining, DropDuplicates, DropInvalid, DropNearDuplicates, Threshold

    steps: list = []
    if getattr(args, "drop_invalid", False):
        steps.append(DropInvalid(schema))
    if args.drop_duplicates:
        steps.append(DropDuplicates(reference=args.train))
    if args.near_duplicates is not None:
        steps.append(DropNearDuplicates(reference=args.train, threshold=args.near_duplicates))
    if args.min_distance is not None or args.distance_quantile is not None:
        if args.train is None:
            raise _UsageError("--min-distance / --distance-quantile need --train")
        steps.append(DropCloseToTraining(args.train, min_distance=args.min_distance, quantile=args.distance_quantile, schema=schema))
    lower, upper = _bounds(args.min, "--min"), _bounds(args.max, "--max")
    for column in dict.fromkeys([*lower, *upper]):
        steps.append(Threshold(column, min=lower.get(column), max=upper.get(column)))
    return steps


def _write_curation_report(path: str | None, report: Any) -> None:
    if path is None or report is None:
        return
    from .io import atomic_path

    with atomic_path(path, overwrite=True) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(report.to_dict(), f, indent=2)


DIFFLM_FLAGS = {"decoder": "decoder", "encoder": "encoder", "latent_dim": "latent_dim", "virtual_tokens": "num_virtual_tokens",
                "prefix_length": "prefix_length", "beta_max": "beta_max", "beta_min": "beta_min",
                "diffusion_steps": "diffusion_steps", "sampling_steps": "sampling_steps", "prior": "prior",
                "calibration": "calibration", "calibration_rounds": "calibration_rounds"}


def _column_list(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


def _column_order(text: str) -> str | list[str]:
    return text if text in ("natural", "dependence") else _column_list(text)


def _fit(args: argparse.Namespace) -> None:
    from . import DiffLMGenerator, LMGenerator

    if os.path.exists(args.out) and not args.overwrite:
        raise _UsageError(f"{args.out} exists; pass --overwrite to replace it")
    config: dict[str, Any] = {}
    for item in args.set:
        if "=" not in item:
            raise _UsageError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        config[key.replace("-", "_")] = _parse_value(value)
    difflm_given = [flag for flag in DIFFLM_FLAGS if getattr(args, flag) is not None]
    if args.method == "lm":
        if difflm_given:
            raise _UsageError(f"--{difflm_given[0].replace('_', '-')} is a DiffLM option; add --method difflm")
        for key in ("model", "epochs", "batch_size", "learning_rate", "seed", "target_columns", "column_order"):
            if getattr(args, key) is not None:
                config[key] = getattr(args, key)
        if args.lora:
            config["use_lora"] = True
        generator: Any = LMGenerator(**config)
    else:
        if args.model is not None or args.lora:
            raise _UsageError("DiffLM takes its causal LM as --decoder (kept frozen); --model and --lora are LM options")
        for flag in difflm_given:
            config[DIFFLM_FLAGS[flag]] = getattr(args, flag)
        for flag, key in (("epochs", "vae_epochs"), ("batch_size", "batch_size"), ("learning_rate", "learning_rate"),
                          ("seed", "seed"), ("target_columns", "target_columns"), ("column_order", "column_order")):
            if getattr(args, flag) is not None:
                config[key] = getattr(args, flag)
        generator = DiffLMGenerator(**config)
    columns = _column_list(args.columns) if args.columns else None
    checkpoints = args.out.rstrip("/") + ".checkpoints"
    options = {"checkpoint_dir": checkpoints} if args.method == "lm" else {}
    generator.fit(args.dataset, config=args.config, split=args.split, columns=columns, progress=not args.no_progress,
                  **options)
    generator.save_pretrained(args.out)
    import shutil

    shutil.rmtree(checkpoints, ignore_errors=True)
    info = generator.training_info
    if args.method == "lm":
        detail = f"{info['epochs']} epochs, validation loss {info['best_validation_loss']}, {info['fit_seconds']} s"
    else:
        vae = info["vae"]
        detail = f"VAE {vae['epochs']} epochs, validation cross-entropy {vae['best_validation_cross_entropy']}"
    print(f"saved the generator to {args.out} ({info['rows']} rows, {detail})")


def _sample(args: argparse.Namespace) -> None:
    from . import AutoGenerator
    from .io import check_output_path

    check_output_path(args.out, args.overwrite)
    if args.num_rows <= 0:
        raise _UsageError(f"-n must be a positive number of rows, got {args.num_rows}")
    conditions = _conditions(args.condition)
    generator = AutoGenerator.from_pretrained(args.generator, revision=args.revision)
    options = {k: v for k, v in (("batch_size", args.batch_size), ("temperature", args.temperature)) if v is not None}
    steps = _curation_steps(args, generator.schema)
    generator.sample(args.num_rows, conditions=conditions, seed=args.seed, output=args.out,
                     overwrite=args.overwrite, progress=not args.no_progress, curation=steps or None, **options)
    print(f"wrote {args.out}: {generator.last_report}")
    if steps:
        print(generator.last_curation_report)
        _write_curation_report(args.curation_report, generator.last_curation_report)


def _evaluate(args: argparse.Namespace) -> None:
    from . import evaluate

    if os.path.exists(args.out) and not args.overwrite:
        raise _UsageError(f"{args.out} exists; pass --overwrite to replace it")
    kinds = {}
    for item in args.column_kind:
        column, sep, kind = item.partition("=")
        if not sep:
            raise _UsageError(f"--column-kind expects COLUMN=KIND, got {item!r}")
        kinds[column.strip()] = kind.strip()
    metrics = [m.strip() for m in args.metrics.split(",")] if args.metrics else None
    generator = None
    if args.attach_to is not None:
        from . import AutoGenerator

        generator = AutoGenerator.from_pretrained(args.attach_to)  # fail before the long work
    report = evaluate(args.real, args.synthetic, holdout=args.holdout, target=args.target, metrics=metrics,
                      encoder=args.encoder, column_kinds=kinds or None, seed=args.seed, max_rows=args.max_rows,
                      plots=not args.no_plots, progress=not args.no_progress)
    report.save(args.out, overwrite=args.overwrite)
    print(repr(report))
    print(f"wrote {args.out}/report.json, report.md" + (f" and {len(report.figures)} figures" if report.figures else ""))
    if generator is not None:
        generator.evaluation = report
        generator.save_pretrained(args.attach_to)
        print(f"attached the report to {args.attach_to}")


def _curate(args: argparse.Namespace) -> None:
    from .curation import curate
    from .io import check_output_path, load_input, write_dataset

    check_output_path(args.out, args.overwrite)
    schema = None
    if args.drop_invalid:
        source = args.schema_from or args.train
        if source is None:
            raise _UsageError("--drop-invalid needs --schema-from or --train")
        schema = _schema_from(source)
    steps = _curation_steps(args, schema)
    if not steps:
        raise _UsageError("no curation step chosen (--drop-invalid, --drop-duplicates, --near-duplicates, --min-distance, ...)")
    curated, report = curate(load_input(args.synthetic), steps)
    write_dataset(curated, args.out, args.overwrite)
    print(report)
    _write_curation_report(args.curation_report, report)


def _schema_from(source: str) -> Any:
    """The schema of a saved generator directory, or learnt from data."""
    from . import AutoGenerator
    from .io import load_input
    from .schema import RecordSchema

    if os.path.isdir(source) and os.path.isfile(os.path.join(source, "generator_config.json")):
        return AutoGenerator.from_pretrained(source).schema
    return RecordSchema.from_dataset(load_input(source))


def _push(args: argparse.Namespace) -> None:
    from . import AutoGenerator

    generator = AutoGenerator.from_pretrained(args.directory)
    url = generator.push_to_hub(args.repo_id, private=args.private or None, token=args.token)
    print(f"pushed {args.directory} to {args.repo_id}: {url}")


def _split_rows(items: Sequence[str]) -> dict[str, int]:
    rows: dict[str, int] = {}
    for item in items:
        split, _, count = item.rpartition("=")
        try:
            rows[split.strip() or "train"] = int(count)
        except ValueError:
            raise _UsageError(f"--rows expects SPLIT=N or N, got {item!r}") from None
    return rows


def _push_dataset(args: argparse.Namespace) -> None:
    from . import AutoGenerator

    generator = AutoGenerator.from_pretrained(args.generator, revision=args.revision, token=args.token)
    url = generator.push_synthetic_dataset(args.repo_id, num_rows=_split_rows(args.rows), seed=args.seed,
                                           conditions=_conditions(args.condition), private=args.private or None,
                                           token=args.token)
    print(f"pushed synthetic splits of {args.generator} to the dataset repo {args.repo_id}: {url}")


def _demo(args: argparse.Namespace) -> None:
    from .demo import run_demo

    run_demo(args.out, rows=args.rows, epochs=args.epochs, overwrite=args.overwrite)


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from transformers.utils import logging as transformers_logging

    from .errors import HFSynthError

    transformers_logging.disable_progress_bar()  # weight loading / saving bars would drown ours
    handlers = {"fit": _fit, "sample": _sample, "evaluate": _evaluate, "curate": _curate, "push": _push,
                "push-dataset": _push_dataset, "demo": _demo}
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
