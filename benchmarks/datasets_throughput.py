"""Benchmark: what the datasets integration costs on top of ``generator.sample``.

* ``generator.sample(n)`` against reading every row of ``hf_synth.load_dataset(..., streaming=True)``
  for the same generator, row count, seed and batch size (the target: under 10 % overhead);
* non-streaming ``hf_synth.load_dataset`` (sampled into datasets' cache) with ``num_proc=1``
  against ``num_proc=2``.

Each measurement is repeated ``--repeats`` times, alternating, after a warm-up that fills the
grammar caches of both generator instances; medians are reported.

    python benchmarks/datasets_throughput.py --generator benchmarks/out/adult_lm/generator --rows 20000
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from datetime import datetime, timezone

import torch

import hf_synth
from hf_synth import AutoGenerator
from hf_synth.builder import GeneratorSource, _load_generator


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--generator", required=True)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    generator = AutoGenerator.from_pretrained(args.generator)
    batch_size = generator.config.sample_batch_size
    source = GeneratorSource.resolve(args.generator, None, None)
    streamed_generator = _load_generator(source.directory, source.fingerprint)  # the instance load_dataset uses
    for instance in (generator, streamed_generator):
        instance.sample(batch_size, seed=99, progress=False)

    def sample() -> None:
        assert generator.sample(args.rows, seed=0, batch_size=batch_size, progress=False).num_rows == args.rows

    def stream() -> None:
        ds = hf_synth.load_dataset(args.generator, num_rows=args.rows, seed=0, split="train", streaming=True)
        assert sum(1 for _ in ds) == args.rows

    def prepared(num_proc: int) -> float:
        with tempfile.TemporaryDirectory() as cache:
            return timed(lambda: hf_synth.load_dataset(args.generator, num_rows=args.rows, seed=0, split="train",
                                                       cache_dir=cache, num_proc=num_proc if num_proc > 1 else None))

    results: dict[str, list[float]] = {"sample": [], "stream": [], "num_proc=1": [], "num_proc=2": []}
    for _ in range(args.repeats):
        results["sample"].append(timed(sample))
        results["stream"].append(timed(stream))
        results["num_proc=1"].append(prepared(1))
        results["num_proc=2"].append(prepared(2))
        torch.set_num_threads(args.threads)  # the workers' share of cores does not leak back

    median = {name: statistics.median(times) for name, times in results.items()}
    print(f"# {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
          f"{args.threads} threads, {args.rows:,} rows, batch {batch_size}, {args.repeats} repeats (median)\n")
    print("| path | seconds | rows/s | vs generator.sample |")
    print("|---|---|---|---|")
    for name, seconds in median.items():
        print(f"| {name} | {seconds:.1f} | {args.rows / seconds:,.0f} | {seconds / median['sample'] - 1:+.1%} |")
    print("\nall runs:", {name: [round(t, 1) for t in times] for name, times in results.items()})


if __name__ == "__main__":
    main()
