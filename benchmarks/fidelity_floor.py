"""The shape and trend errors of a perfect generator, and how far a report's pairs sit above them.

A generator that draws rows from the training table itself (a bootstrap resample of the same size)
still differs from it by sampling noise: that is the floor of the column shape and pair trend
errors on a dataset. With ``--reports``, each report's per-pair trend error is set against that
floor, and the excess is shown by pair and shared out between the pair's two columns.

    python benchmarks/fidelity_floor.py --dataset beijing --reports benchmarks/out/tables/beijing/difflm/report/report.json
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd

from hf_synth.evaluation.data import column_roles
from hf_synth.evaluation.fidelity import column_pair_trends, column_shapes
from hf_synth.schema import RecordSchema
from tables import DATA, DATASETS, column_kinds, datasets_from, load


def kinds_of(name: str, train: pd.DataFrame) -> dict[str, str]:
    """The column roles hf_synth.evaluate gives this dataset's columns (tables.py's overrides)."""
    return column_roles(RecordSchema.from_dataset(datasets_from(train)), column_kinds(name))


def pair_errors(scores: dict) -> dict[str, float]:
    return {pair: 100 * (1 - entry["score"]) for pair, entry in scores.items() if entry["score"] is not None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--resamples", type=int, default=3)
    parser.add_argument("--reports", nargs="*", default=[], help="report.json files of hf_synth.evaluate on this dataset")
    parser.add_argument("--top", type=int, default=10, help="pairs to list per report")
    args = parser.parse_args()
    train, _ = load(args.dataset, args.data)
    kinds = kinds_of(args.dataset, train)

    floors, shapes, trends = [], [], []
    for seed in range(args.resamples):
        resample = train.sample(len(train), replace=True, random_state=seed).reset_index(drop=True)
        shape, trend = column_shapes(train, resample, kinds), column_pair_trends(train, resample, kinds)
        shapes.append(shape["error"])
        trends.append(trend["error"])
        floors.append(pair_errors(trend["pairs"]))
    floor = {pair: float(np.mean([f[pair] for f in floors])) for pair in floors[0]}
    print(f"{args.dataset}: a bootstrap resample of the {len(train):,} training rows, {args.resamples} seeds: "
          f"shape error {min(shapes):.2f}-{max(shapes):.2f} %, trend error {min(trends):.2f}-{max(trends):.2f} %")
    print("  noisiest pairs:", ", ".join(f"{p} {e:.1f}" for p, e in sorted(floor.items(), key=lambda kv: -kv[1])[:args.top]))

    for path in args.reports:
        with open(path, encoding="utf-8") as f:
            report = json.load(f)
        excess = {pair: error - floor[pair] for pair, error in pair_errors(report["column_pair_trends"]["pairs"]).items()}
        by_column = dict.fromkeys(train.columns, 0.0)
        for pair, value in excess.items():
            for column in pair.split(" / "):
                by_column[column] += value / 2 / len(excess)
        print(f"\n{path}: trend error {report['trend_error']:.2f} %, {np.mean(list(excess.values())):.2f} above the floor")
        print("  above the floor, by column (points of the mean):",
              ", ".join(f"{c} {v:.2f}" for c, v in sorted(by_column.items(), key=lambda kv: -kv[1])))
        print("  pairs furthest above the floor:",
              ", ".join(f"{p} {e:.1f}" for p, e in sorted(excess.items(), key=lambda kv: -kv[1])[:args.top]))


if __name__ == "__main__":
    main()
