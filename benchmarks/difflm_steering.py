"""Diagnosis: which columns DiffLM's latent can steer through its frozen decoder.

For ``--rows`` training rows of a fitted DiffLM generator, prints per column:

* ``recon``: how often the row decoded from its own latent mean has the column's value (categories)
  or the correlation of decoded and real values (numbers), and what chance gives;
* the teacher-forced cross-entropy (nats per row) of the column's tokens read by the decoder with
  its ``<bos>`` slots (``plain``: no latent), with the soft prompt of the row's latent mean
  (``latent``), and with a soft prompt optimised freely for each row (``free``: what the frozen
  decoder could follow at best). A column the free prompt cannot move is one the decoder predicts
  without reading its context;
* ``saved``: what the row's own latent saves against another row's (``latent_information``, the
  figure the model card reports).

    python benchmarks/difflm_steering.py --dataset beijing --generator benchmarks/out/tables/beijing/difflm_tl/generator
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tables import DATA, DATASETS, load  # noqa: E402

from hf_synth import AutoGenerator  # noqa: E402
from hf_synth.generators.difflm.steering import column_cross_entropy, latent_information  # noqa: E402
from hf_synth.generators.difflm.vae import padded, prompted_logits  # noqa: E402
from hf_synth.tokenizer import encode_record_with_columns  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    parser.add_argument("--generator", required=True)
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--recon-rows", type=int, default=4000)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    train, _ = load(args.dataset, args.data)
    generator = AutoGenerator.from_pretrained(args.generator)
    lm, vae = generator.lm, generator.vae
    decoder = lm.model.float().eval()
    vae.float().eval()
    decoder.requires_grad_(False)

    real = train.iloc[: args.recon_rows].reset_index(drop=True)
    decoded = generator.sample(len(real), latents=generator.encode(real.to_dict(orient="records")), seed=0,
                               progress=False).to_pandas()
    recon = {}
    for name in real.columns:
        if generator.schema.fields[name].kind == "numeric" and real[name].nunique() > 31:
            recon[name] = f"r {np.corrcoef(real[name].astype(float), decoded[name].astype(float))[0, 1]:.3f}"
        else:
            shares = real[name].astype(str).value_counts(normalize=True)
            match = (real[name].astype(str) == decoded[name].astype(str)).mean()
            recon[name] = f"{match:.3f} (chance {float((shares ** 2).sum()):.3f})"

    rows = train.iloc[: args.rows].to_dict(orient="records")
    encoded = [encode_record_with_columns(lm.vocab, generator.schema, r) for r in rows]
    ids, mask = padded([e[0] for e in encoded], lm.vocab.pad_id)
    columns = [e[1] for e in encoded]
    previous, named, steps = (t.flatten() for t in vae.contexts(ids))

    def logits_of(prefix: torch.Tensor) -> torch.Tensor:
        logits = prompted_logits(decoder, prefix, ids, mask)
        return vae.add_bias(previous, named, steps, logits.flatten(0, 1)).view_as(logits)

    mu = generator.encode(rows)
    measured = latent_information(vae, decoder, lm.vocab, generator.schema, rows, mu)
    plain = {name: m["decoder"] for name, m in measured.items()}
    latent = {name: m["latent"] for name, m in measured.items()}
    with torch.no_grad():
        latent_prompt = vae.injection(mu)
    delta = torch.zeros_like(latent_prompt, requires_grad=True)
    optimizer = torch.optim.Adam([delta], lr=0.01)
    real_tokens = mask.float()
    for _ in range(args.steps):
        log_probs = torch.log_softmax(logits_of(latent_prompt + delta), -1).gather(2, ids.unsqueeze(2)).squeeze(2)
        loss = -(log_probs * real_tokens).sum() / len(rows)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        free = {name: value / len(rows) for name, value in
                column_cross_entropy(logits_of(latent_prompt + delta), ids, columns).items() if name in plain}

    saved = {name: m["saved"] for name, m in measured.items()}
    print(f"{'column':<28} {'recon':<22} {'plain':>7} {'latent':>7} {'free':>7} {'saved':>7}   (nats per row, {len(rows)} rows)")
    for name in plain:
        print(f"{name:<28} {recon.get(name, ''):<22} {plain[name]:7.3f} {latent[name]:7.3f} {free[name]:7.3f} {saved[name]:7.3f}")
    print(f"{'total':<28} {'':<22} {sum(plain.values()):7.2f} {sum(latent.values()):7.2f} {sum(free.values()):7.2f} "
          f"{sum(saved.values()):7.2f}")


if __name__ == "__main__":
    sys.exit(main())
