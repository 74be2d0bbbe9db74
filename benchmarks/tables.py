"""Benchmark: DiffLM against the LM generator and the real data on Adult, Default and Beijing.

TabSyn protocol splits (``../shared/data/NOTES.md``): Adult uses the official train / test files;
Default and Beijing are shuffled with numpy seed 1234 into 90 % train / 10 % test, the seed
redrawn (+1) until every category of a conventional categorical column appears in train; Beijing
first drops rows with any missing value. Each generator is fitted on train, samples as many rows
as train has, and is evaluated by ``hf_synth.evaluate`` with test as the holdout. Both generators
are told the dataset's target (``target_columns``), as a user training a downstream model would.

    python benchmarks/tables.py --dataset adult --methods difflm lm --out benchmarks/out/tables

Writes ``<out>/<dataset>/<method>/`` (generator, report) and ``<out>/<dataset>/results.json``, and
prints a markdown table for RESULTS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import sys
import time
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import torch

from hf_synth import AutoGenerator, DiffLMGenerator, LMGenerator, evaluate
from hf_synth.precision import cpu_has_native_bf16

DATA = "../shared/data"
#: target, task, conventional categorical columns (integers that name categories)
DATASETS = {
    "adult": ("income", "classification", []),
    "default": ("default payment next month", "classification",
                ["SEX", "EDUCATION", "MARRIAGE", "PAY_0", "PAY_2", "PAY_3", "PAY_4", "PAY_5", "PAY_6"]),
    "beijing": ("pm2.5", "regression", ["year", "month", "day", "hour", "cbwd"]),
}


def load(name: str, data_dir: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) of a dataset under the TabSyn protocol."""
    if name == "adult":
        read = lambda f: pd.read_csv(os.path.join(data_dir, "adult", f), header=0, skipinitialspace=True)  # noqa: E731
        return read("adult.data").rename(columns={"target": "income"}), read("adult.test").rename(columns={"target": "income"})
    if name == "default":
        frame = pd.read_csv(os.path.join(data_dir, "default", "default of credit card clients.csv"), skiprows=[0],
                            lineterminator="\r").drop(columns=["ID"])
        frame.columns = [c.strip().lstrip("\ufeff") for c in frame.columns]
    else:
        frame = pd.read_csv(os.path.join(data_dir, "beijing", "PRSA_data_2010.1.1-2014.12.31.csv")).drop(columns=["No"])
        frame = frame.dropna().reset_index(drop=True)
    return tabsyn_split(frame, DATASETS[name][2])


def column_kinds(name: str) -> dict[str, str]:
    """Evaluation roles that differ from the default: integer-coded categories, and a class target."""
    target, task, categorical = DATASETS[name]
    return {c: "categorical" for c in categorical} | ({target: "categorical"} if task == "classification" else {})


def tabsyn_split(frame: pd.DataFrame, categorical: list[str], seed: int = 1234) -> tuple[pd.DataFrame, pd.DataFrame]:
    while True:
        order = _numpy_shuffle(len(frame), seed)
        cut = int(len(frame) * 0.9)
        train, test = frame.iloc[order[:cut]], frame.iloc[order[cut:]]
        if all(set(test[c]) <= set(train[c]) for c in categorical):
            return train.reset_index(drop=True), test.reset_index(drop=True)
        seed += 1


def _numpy_shuffle(n: int, seed: int) -> np.ndarray:
    np.random.seed(seed)  # the protocol's legacy global shuffle, so the split matches the published one
    order = np.arange(n)
    np.random.shuffle(order)
    return order


def options_of(method: str, args: argparse.Namespace) -> dict:
    """Config fields given for ``method``; both generators are told the dataset's target
    (``target_columns``) unless the options set it (``null`` turns it off)."""
    options = args.lm_options if method == "lm" else args.difflm_options
    return {"target_columns": [DATASETS[args.dataset][0]], **json.loads(options)}


def new_generator(method: str, args: argparse.Namespace):
    if method == "lm":
        return LMGenerator(seed=args.seed, **options_of(method, args))
    return DiffLMGenerator(seed=args.seed, **options_of(method, args))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    parser.add_argument("--methods", nargs="+", default=["difflm", "lm"], choices=["difflm", "lm"])
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--out", default="benchmarks/out/tables")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--difflm-options", default="{}",
                        help="JSON object of DiffLMGeneratorConfig fields (target_columns defaults to the dataset's target)")
    parser.add_argument("--lm-options", default="{}",
                        help="JSON object of LMGeneratorConfig fields (target_columns defaults to the dataset's target)")
    parser.add_argument("--tag", default="", help="suffix of the result names (keeps runs with other options apart)")
    parser.add_argument("--skip-real", action="store_true", help="do not evaluate the real train split as a reference")
    parser.add_argument("--resample", action="store_true",
                        help="load each method's saved generator instead of fitting it (to measure a change in "
                             "sampling); the options' sampling-time fields apply to it")
    parser.add_argument("--load-tag", default=None,
                        help="with --resample: load the generators saved under this tag (default: --tag)")
    parser.add_argument("--recalibrate", action="store_true",
                        help="with --resample: fit DiffLM's output offsets again on the train split (to "
                             "measure a change in calibration) and save the generator under --tag")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    target = DATASETS[args.dataset][0]
    train, test = load(args.dataset, args.data)
    kinds = column_kinds(args.dataset)
    folder = os.path.join(args.out, args.dataset)
    os.makedirs(folder, exist_ok=True)
    results_path = os.path.join(folder, "results.json")
    results = json.load(open(results_path)) if os.path.exists(results_path) else {}

    def record(name: str, synthetic: pd.DataFrame, extra: dict) -> None:
        start = time.perf_counter()
        report = evaluate(train, synthetic, holdout=test, target=target, column_kinds=kinds, seed=args.seed,
                          metrics=["fidelity", "detection", "utility", "privacy"])
        report.save(os.path.join(folder, name, "report"), overwrite=True)
        results[name] = {**extra, "evaluate_seconds": round(time.perf_counter() - start, 1), **report.summary(),
                         "date": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"}
        with open(results_path, "w") as f:
            json.dump(results, f, indent=2)
        print(name, json.dumps(results[name]), flush=True)

    if not args.skip_real:
        record("real", train, {})
    for method in args.methods:
        name = method + args.tag
        if args.resample:
            loaded = method + (args.tag if args.load_tag is None else args.load_tag)
            generator = AutoGenerator.from_pretrained(os.path.join(folder, loaded, "generator"))
            # sampling-time fields (target_columns, temperature, ...) apply to the saved generator
            generator.config = generator.config.replace(**options_of(method, args))
            fit_seconds = results.get(loaded, {}).get("fit_seconds", math.nan)
            if args.recalibrate:
                recalibrate(generator, train)
                generator.save_pretrained(os.path.join(folder, name, "generator"))
        else:
            generator = new_generator(method, args)
            start = time.perf_counter()
            generator.fit(datasets_from(train), progress=False)
            fit_seconds = time.perf_counter() - start
            generator.save_pretrained(os.path.join(folder, name, "generator"))
        start = time.perf_counter()
        synthetic = generator.sample(len(train), seed=args.seed, progress=False).to_pandas()
        sample_seconds = time.perf_counter() - start
        record(name, synthetic, {"fit_seconds": round(fit_seconds, 1), "rows_per_second": round(len(train) / sample_seconds),
                                   "native_bf16": cpu_has_native_bf16(),
                                   "training": {k: v for k, v in generator.training_info.items() if k != "history"}})
    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.threads} threads, "
          f"native bf16 (bf16 training and sampling): {cpu_has_native_bf16()}")


def recalibrate(generator: DiffLMGenerator, train: pd.DataFrame) -> None:
    """Fit the output offsets again on the rows the generator trained on (its fit's split of train)."""
    from hf_synth.generators.lm import split_records
    from hf_synth.io import load_input

    config = generator.config
    rows, _ = split_records(load_input(datasets_from(train)).to_list(), config.seed, config.validation_size,
                            config.max_validation_rows)
    start = time.perf_counter()
    result = generator._calibrate(rows)
    generator.training_info["calibration"] = dataclasses.asdict(result)
    print(f"calibration: {result} in {time.perf_counter() - start:.0f} s", flush=True)


def datasets_from(frame: pd.DataFrame):
    import datasets

    return datasets.Dataset.from_pandas(frame, preserve_index=False)


if __name__ == "__main__":
    sys.exit(main())
