"""Ablation: where DiffLM's latents come from, for one fitted DiffLM generator.

Decodes as many rows as the training split has from three latent sources and evaluates each with
``hf_synth.evaluate`` (TabSyn protocol, as ``benchmarks/tables.py``):

* ``posterior means``: the encoder means of training rows, drawn with replacement: what the VAE and
  the decoder can do with a perfect prior (and a privacy risk: these are training rows' latents);
* ``diffusion``: the generator's EDM prior, refitted here with the current defaults when
  ``--refit-prior`` is given (``--prior-options``: DiffusionConfig fields);
* ``normal``: z ~ N(0, I), the VAE's nominal prior.

    python benchmarks/difflm_prior.py --dataset adult --generator benchmarks/out/tables/adult/difflm/generator --refit-prior
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tables import DATASETS, column_kinds, load  # noqa: E402

from hf_synth import AutoGenerator, evaluate  # noqa: E402
from hf_synth.generators.difflm.diffusion import DiffusionConfig, LatentDiffusion  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    parser.add_argument("--generator", required=True)
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--refit-prior", action="store_true")
    parser.add_argument("--prior-options", default="{}", help="JSON object of DiffusionConfig fields for --refit-prior")
    parser.add_argument("--sources", nargs="+", default=["posterior", "diffusion", "normal"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    target, kinds = DATASETS[args.dataset][0], column_kinds(args.dataset)
    train, test = load(args.dataset, args.data)
    generator = AutoGenerator.from_pretrained(args.generator)
    n = len(train)
    start = time.perf_counter()
    means = generator.encode(train.to_dict(orient="records"))
    print(f"encoded {n} rows in {time.perf_counter() - start:.1f} s", flush=True)
    if args.refit_prior:
        diffusion = LatentDiffusion(DiffusionConfig(latent_dim=generator.config.latent_dim, seed=args.seed,
                                                    **json.loads(args.prior_options)))
        history = diffusion.fit(means)
        generator.diffusion = diffusion
        print(f"prior refitted: {history['seconds']:.1f} s, final loss {history.get('final_train_loss')}", flush=True)
    rng = torch.Generator().manual_seed(args.seed)
    sources = {
        "posterior": lambda: means[torch.randint(0, n, (n,), generator=rng)],
        "diffusion": lambda: generator.sample_latents(n, args.seed),
        "normal": lambda: torch.randn((n, generator.config.latent_dim), generator=rng),
    }
    results = {}
    for name in args.sources:
        start = time.perf_counter()
        rows = generator.sample(n, latents=sources[name](), seed=args.seed, progress=False).to_pandas()
        seconds = time.perf_counter() - start
        report = evaluate(train, rows, holdout=test, target=target, column_kinds=kinds, seed=args.seed,
                          metrics=["fidelity", "detection", "utility", "privacy"], progress=False)
        results[name] = {"sample_seconds": round(seconds, 1), **report.summary()}
        print(name, json.dumps(results[name]), flush=True)
    out = os.path.join(os.path.dirname(args.generator.rstrip("/")), "prior_ablation.json")
    with open(out, "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
