"""Benchmark: the full evaluation report on UCI Adult (TabSyn protocol), for three synthetic sets.

* ``real train``: the training split itself (the upper bound of fidelity and utility, and what
  total leakage looks like: DCR 100 %, exact copies 100 %);
* ``independent columns``: each column sampled from its own marginal (the lower bound);
* ``LMGenerator``: the default generator of ``benchmarks/adult_lm.py``, loaded from its output.

Each is evaluated against the official train split with the official test split as holdout and
``income`` as target. The speed target (30,000 x 15 rows, every section but alpha/beta-recall and
embeddings, under 2 minutes on 2 CPU cores) is timed on the generator's rows.

    python benchmarks/adult_eval.py --data ../shared/data/adult --generator benchmarks/out/adult_lm/generator

Writes each report to ``--out/<name>/`` and prints the markdown table for RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import date

import numpy as np
import pandas as pd
import torch

from hf_synth import AutoGenerator, evaluate

LABEL = {"target": "income"}
SPEED_SECTIONS = ["fidelity", "detection", "utility", "privacy", "diversity", "complexity"]


def independent_columns(frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({c: frame[c].to_numpy()[rng.integers(0, len(frame), len(frame))] for c in frame.columns})


def row(name: str, report, seconds: float) -> str:
    r = report.to_dict()
    u = r.get("utility") or {}
    cells = [
        name,
        f"{(u.get('synthetic') or {}).get('auc', float('nan')):.3f}",
        f"{r.get('shape_error', float('nan')):.2f}",
        f"{r.get('trend_error', float('nan')):.2f}",
        f"{r.get('trend_error_associated', float('nan')):.2f}",
        f"{r['c2st']['logistic']:.3f}",
        f"{r['c2st']['gradient_boosting']:.3f}",
        f"{100 * r['dcr_share']:.1f}",
        f"{100 * r['exact_copy_rate']:.2f}",
        f"{r['membership_inference_auc']:.3f}",
        f"{r['alpha_precision']:.3f}",
        f"{r['beta_recall']:.3f}",
        f"{100 * r['validity']:.1f}",
        f"{seconds:.0f}",
    ]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/adult", help="folder with adult.data and adult.test")
    parser.add_argument("--generator", default="benchmarks/out/adult_lm/generator")
    parser.add_argument("--out", default="benchmarks/out/adult_eval")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    # these copies name the label column "target"; the report calls it by its usual name
    train = pd.read_csv(os.path.join(args.data, "adult.data"), header=0, skipinitialspace=True).rename(columns=LABEL)
    test = pd.read_csv(os.path.join(args.data, "adult.test"), header=0, skipinitialspace=True).rename(columns=LABEL)
    generator = AutoGenerator.from_pretrained(args.generator)
    start = time.perf_counter()
    lm_rows = generator.sample(len(train), seed=args.seed).to_pandas().rename(columns=LABEL)
    sample_seconds = time.perf_counter() - start

    candidates = {
        "real train (upper bound)": train,
        "independent columns (lower bound)": independent_columns(train, args.seed),
        "LMGenerator (default)": lm_rows,
    }
    header = ("| synthetic set | AUC | shape err % | trend err % (all pairs) | trend err % (associated) | C2ST logistic | C2ST boosted | DCR % | exact copies % "
              "| MIA AUC | alpha-precision | beta-recall | validity % | report s |")
    lines = [header, "|" + "---|" * 14]
    results = {}
    for name, synthetic in candidates.items():
        start = time.perf_counter()
        report = evaluate(train, synthetic, holdout=test, target="income", seed=args.seed)
        seconds = time.perf_counter() - start
        folder = os.path.join(args.out, name.split(" (")[0].replace(" ", "_"))
        report.save(folder, overwrite=True)
        results[name] = {"seconds": seconds, "timings": report["timings"], "report": folder}
        lines.append(row(name, report, seconds))
        print(lines[-1], flush=True)

    start = time.perf_counter()
    speed = evaluate(train, lm_rows.iloc[:30_000], holdout=test, target="income", metrics=SPEED_SECTIONS, seed=args.seed, plots=True)
    speed_seconds = time.perf_counter() - start
    results["speed"] = {"rows": 30_000, "seconds": speed_seconds, "timings": speed["timings"]}
    results["sample_seconds"] = sample_seconds
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)

    print()
    print(f"Date {date.today()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.threads} torch threads.")
    print("\n".join(lines))
    print(f"\nSpeed: 30,000 synthetic rows x 15 columns, sections {', '.join(SPEED_SECTIONS)}: {speed_seconds:.1f} s "
          f"({', '.join(f'{k} {v:.1f} s' for k, v in speed['timings'].items())}).")


if __name__ == "__main__":
    sys.exit(main())
