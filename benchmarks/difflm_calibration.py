"""Calibration of a fitted DiffLM generator, column by column.

For each categorical column, the total variation distance between the real share of its categories
in ``--rows`` training rows and:

* ``teacher-forced``: the decoder's mean predicted share at that column's position, reading the real
  record, with each row's own latent (encoder mean) and the calibrated logit offsets;
* ``without offsets``: the same with the offsets removed;
* ``slots only``: the frozen decoder alone (its ``<bos>`` slots instead of the soft prompt);
* ``decoded``: the share among rows sampled from those same latents.

It then prints, for integer columns, the TV distance of each digit position between the decoded
rows and the real ones.

    python benchmarks/difflm_calibration.py --generator benchmarks/out/tables/adult/difflm/generator
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tables import DATA, DATASETS, load  # noqa: E402

from hf_synth import AutoGenerator  # noqa: E402
from hf_synth.generators.difflm.vae import padded  # noqa: E402
from hf_synth.tokenizer import encode_record  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="adult")
    parser.add_argument("--generator", required=True)
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train, _ = load(args.dataset, args.data)
    generator = AutoGenerator.from_pretrained(args.generator)
    rows = train.sample(args.rows, random_state=1).to_dict(orient="records")
    vocab, schema, vae, decoder = generator.lm.vocab, generator.schema, generator.vae, generator.lm.model
    columns = {name: field.categories for name, field in schema.fields.items() if field.categories}
    token_ids = {name: torch.tensor([vocab.piece_ids(("cat", name, i))[0] for i in range(len(cats))])
                 for name, cats in columns.items()}
    means = generator.encode(rows)

    @torch.no_grad()
    def predicted_shares(mode: str) -> dict[str, np.ndarray]:
        sums = {name: np.zeros(len(cats)) for name, cats in columns.items()}
        for first in range(0, len(rows), 500):
            chunk = rows[first : first + 500]
            ids, mask = padded([encode_record(vocab, schema, r) for r in chunk], vocab.pad_id)
            batch = {"decoder_ids": ids, "decoder_mask": mask}
            z = means[first : first + 500]
            if mode == "teacher-forced":
                logits = vae.record_logits(decoder, z, batch)  # (B, T, V)
            elif mode == "without offsets":
                logits = vae.decoder_logits(decoder, z, batch)
            else:  # a zero projection: the soft prompt is the decoder's own slots
                projection = vae.injection.projection
                saved = projection.weight.clone(), projection.bias.clone()
                projection.weight.zero_()
                projection.bias.zero_()
                logits = vae.decoder_logits(decoder, z, batch)
                projection.weight.copy_(saved[0])
                projection.bias.copy_(saved[1])
            for name, cat_ids in token_ids.items():
                at = torch.isin(ids, cat_ids)  # the positions holding this column's value
                sums[name] += logits[at][:, cat_ids].softmax(-1).sum(0).numpy()
        return {name: total / len(rows) for name, total in sums.items()}

    real = {name: np.array([sum(r[name] == c for r in rows) for c in cats]) / len(rows) for name, cats in columns.items()}
    shares = {mode: predicted_shares(mode) for mode in ("teacher-forced", "without offsets", "slots only")}
    decoded = generator.sample(len(rows), latents=means, seed=0, progress=False).to_pandas()
    shares["decoded"] = {name: np.array([(decoded[name] == c).mean() for c in cats]) for name, cats in columns.items()}
    table = {name: {mode: round(0.5 * float(np.abs(shares[mode][name] - real[name]).sum()), 4) for mode in shares}
             for name in columns}
    print(json.dumps(table, indent=1))

    # numbers are digit tokens shared by all numeric columns: TV of each digit position, decoded vs real
    digits = {}
    for name, field in schema.fields.items():
        if field.categories or name not in decoded or not pd.api.types.is_integer_dtype(train[name]):
            continue
        real_text, fake_text = pd.Series([str(r[name]) for r in rows]), decoded[name].astype("int64").astype(str)
        digits[name] = [round(0.5 * float(real_text[real_text.str.len() > i].str[i].value_counts(normalize=True).sub(
            fake_text[fake_text.str.len() > i].str[i].value_counts(normalize=True), fill_value=0).abs().sum()), 4)
            for i in range(int(real_text.str.len().max()))]
    print("digit TV by position:", json.dumps(digits))


if __name__ == "__main__":
    sys.exit(main())
