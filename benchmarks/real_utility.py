"""Benchmark: what the real-data utility reference rests on, by dropping feature columns.

Trains the evaluation report's utility model (XGBoost) on the real train split without the given
columns and scores it on the holdout, as ``tables.py``'s real-data reference does with all of them.

    python benchmarks/real_utility.py --dataset beijing --drop day --drop year,day --drop year,month,day
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tables import DATA, DATASETS, column_kinds, load  # noqa: E402

from hf_synth.evaluation.utility import utility  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--drop", action="append", default=[], help="comma-separated columns left out (repeatable)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    target = DATASETS[args.dataset][0]
    train, test = load(args.dataset, args.data)
    roles = column_kinds(args.dataset)
    for dropped in [""] + args.drop:
        columns = [c for c in train.columns if c not in dropped.split(",")]
        kinds = {c: roles.get(c, "numerical") for c in columns}
        result = utility(train[columns], train[columns], test[columns], target, kinds, seed=args.seed)
        print(json.dumps({"dropped": dropped.split(",") if dropped else [], "metric": result["metric"],
                          "real": result["real"]}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
