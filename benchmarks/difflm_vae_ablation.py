"""Ablation of DiffLM's VAE stage: retrain only the VAE against a fitted generator's frozen decoder.

Each run trains a new encoder, projection and output bias (``--options``: DiffLMGeneratorConfig
fields, 2 VAE epochs unless set) against the decoder of ``--generator``, which is reused so that
runs differ only in the VAE. It then decodes ``--rows`` rows from the encoder means of as many
training rows (a perfect prior) and from z ~ N(0, I), and prints the fidelity of both and what the
latent tells the decoder per column (``latent_information``) as one JSON line.

    python benchmarks/difflm_vae_ablation.py --generator benchmarks/out/tables/adult/difflm/generator \\
        --tag "beta 1.0" --options '{"beta_max": 1.0, "beta_min": 1.0}'

``--permute P`` changes the share of records the VAE reads in a random column order (the decoder's
``permute_probability``); ``--freeze bias`` keeps the output bias out of the VAE's optimiser, so
that it comes from the calibration step alone; ``--freeze prefix`` keeps the learned prefix at the
decoder's ``<bos>`` slot embedding, so that ``{"num_virtual_tokens": 1, "prefix_length": 3}`` is a
soft prompt of k = 1 in a decoder trained with 4 slots (the k ablation without retraining it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tables import DATA, DATASETS, column_kinds, load  # noqa: E402

from hf_synth import AutoGenerator, DiffLMGenerator, evaluate  # noqa: E402
from hf_synth.generators.difflm import vae as vae_module  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="adult")
    parser.add_argument("--generator", required=True, help="a fitted DiffLM generator whose decoder is reused")
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--options", default="{}", help="JSON object of DiffLMGeneratorConfig fields")
    parser.add_argument("--permute", type=float, default=None)
    parser.add_argument("--freeze", nargs="*", default=[], choices=["bias", "prefix"],
                        help="VAE parameters kept at their initial value")
    parser.add_argument("--rows", type=int, default=8000)
    parser.add_argument("--tag", default="")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    target, kinds = DATASETS[args.dataset][0], column_kinds(args.dataset)
    train, _ = load(args.dataset, args.data)

    lm = AutoGenerator.from_pretrained(args.generator).lm
    if args.permute is not None:
        lm.config.permute_probability = args.permute
    lm.fit = lambda data, progress=True: lm  # already trained: only the VAE stage runs
    if args.freeze:
        build = vae_module.DiffLMVAE.__init__

        def frozen(self, *a, **k):
            build(self, *a, **k)
            if "bias" in args.freeze:
                self.output_bias.requires_grad_(False)
            if "prefix" in args.freeze and self.injection.prefix is not None:
                self.injection.prefix.requires_grad_(False)

        vae_module.DiffLMVAE.__init__ = frozen
    options = {"vae_epochs": 2, "prior": "normal", **json.loads(args.options)}
    generator = DiffLMGenerator(**options)
    generator._decoder_generator = lambda: lm
    start = time.perf_counter()
    generator.fit(train, progress=False)
    fit_seconds = time.perf_counter() - start

    examples = train.sample(args.rows, random_state=0).to_dict(orient="records")
    sources = {"posterior means": generator.encode(examples), "N(0, I)": None}
    result = {"tag": args.tag, "options": options, "permute": args.permute, "freeze": args.freeze,
              "vae_seconds": round(fit_seconds), "vae": generator.training_info["vae"]["history"][-1],
              "calibration": generator.training_info.get("calibration"),
              "latent_saves": {name: m["saved"] for name, m in generator.training_info["latent_information"].items()}}
    for name, latents in sources.items():
        rows = generator.sample(args.rows, latents=latents, seed=0, progress=False).to_pandas()
        report = evaluate(train, rows, target=target, column_kinds=kinds, seed=0, metrics=["fidelity"], progress=False)
        result[name] = {key: report.get(key) for key in ("shape_error", "trend_error", "trend_error_associated")}
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(main())
