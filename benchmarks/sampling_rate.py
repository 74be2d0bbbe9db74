"""Benchmark: sampling rate of saved generators, with hf_synth's key/value cache or transformers' default.

Loads each generator, samples ``--rows`` rows (seed 0) after a short warm-up, and prints rows/s.
``--cache dynamic`` decodes with transformers' ``DynamicCache`` (``torch.cat`` at every step)
instead of :class:`hf_synth.kv_cache.BufferedCache`; the rows are the same either way, which the
script checks.

    python benchmarks/sampling_rate.py benchmarks/out/tables/default/difflm/generator --rows 27000 --cache buffered dynamic
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time

import torch
from transformers import DynamicCache

import hf_synth.sampling
from hf_synth import AutoGenerator
from hf_synth.kv_cache import BufferedCache

CACHES = {"buffered": BufferedCache, "dynamic": lambda config, **sizes: DynamicCache(config=config)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("generators", nargs="+")
    parser.add_argument("--rows", type=int, default=8192)
    parser.add_argument("--cache", nargs="+", choices=sorted(CACHES), default=["buffered", "dynamic"])
    parser.add_argument("--batch-size", type=int, default=None, help="rows decoded together (default: the generator's)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for path in args.generators:
        generator = AutoGenerator.from_pretrained(path)
        generator.sample(256, seed=1, progress=False)  # warm-up
        digests = set()
        for cache in args.cache:
            hf_synth.sampling.BufferedCache = CACHES[cache]
            start = time.perf_counter()
            rows = generator.sample(args.rows, seed=0, batch_size=args.batch_size, progress=False).to_list()
            seconds = time.perf_counter() - start
            digests.add(hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest())
            print(json.dumps({"generator": path, "cache": cache, "rows": args.rows, "batch_size": args.batch_size,
                              "seconds": round(seconds, 1), "rows_per_second": round(args.rows / seconds)}), flush=True)
        if len(digests) > 1:
            raise SystemExit(f"{path}: the caches sampled different rows")


if __name__ == "__main__":
    sys.exit(main())
