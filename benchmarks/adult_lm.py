"""Benchmark: the default LMGenerator on UCI Adult (official train split, TabSyn protocol).

Fits the default generator on the 32,561 training rows, samples as many rows, and reports fit time,
sampling speed, peak memory, validity and per-column marginal distances (total variation for
categorical columns, two-sample Kolmogorov-Smirnov for numeric ones).

    python benchmarks/adult_lm.py --data ../shared/data/adult/adult.data --out benchmarks/out/adult_lm

Writes ``results.json`` and the generator into ``--out``; paste the printed markdown into RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from datetime import date

import pandas as pd
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from marginals import marginal_distances  # noqa: E402

from hf_synth import LMGenerator  # noqa: E402


def machine_probe(seconds: float = 2.0) -> float:
    """fp32 matrix-multiply throughput (GFLOP/s) right now: the machine's speed varies from run to
    run, so results carry it to be comparable."""
    a, b = torch.randn(512, 512), torch.randn(512, 512)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return round(count * 2 * 512**3 / (time.perf_counter() - start) / 1e9, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/adult/adult.data")
    parser.add_argument("--out", default="benchmarks/out/adult_lm")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", type=int, default=None, help="rows to sample (default: as many as the train split)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="LMGeneratorConfig overrides")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    probe_before = machine_probe()
    real = pd.read_csv(args.data, header=0, skipinitialspace=True)
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    generator = LMGenerator(**overrides)

    start = time.perf_counter()
    generator.fit(real, checkpoint_dir=os.path.join(args.out, "checkpoints"))
    fit_seconds = time.perf_counter() - start

    n = args.rows or len(real)
    synthetic = generator.sample(n, seed=0)
    report = generator.last_report
    rows = synthetic.to_list()
    valid = sum(not generator.schema.validate(r) for r in rows)
    distances = marginal_distances(real, synthetic.to_pandas(), generator.schema)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    result = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch threads {args.threads}",
        "matmul_gflops_before_after": [probe_before, machine_probe()],
        "command": "python " + " ".join(sys.argv),
        "config": generator.config.to_dict(),
        "train_rows": len(real),
        "fit_seconds": round(fit_seconds, 1),
        "epochs": generator.training_info["epochs"],
        "best_validation_loss": generator.training_info["best_validation_loss"],
        "parameters": generator.training_info["parameters"],
        "sampled_rows": n,
        "sampling_seconds": round(report.seconds, 2),
        "rows_per_second": round(report.rows_per_second),
        "retried": report.retried,
        "validity": valid / n,
        "peak_memory_mb": round(peak_mb),
        "marginals": {k: round(v, 4) for k, v in distances.items()},
        "max_marginal_distance": round(max(distances.values()), 4),
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(result, f, indent=2)
    generator.save_pretrained(os.path.join(args.out, "generator"))
    print(json.dumps({k: v for k, v in result.items() if k != "config"}, indent=2))


if __name__ == "__main__":
    main()
