"""How well a generator predicts a classification target from the other columns, and what its rows inherit.

The AUC of a model trained on synthetic rows is bounded by how well the generator itself knows the
target given the features: its labels are drawn from that conditional. For each saved generator
(the LM generator, or DiffLM's decoder alone), on Adult or Default (target last in column order):

* ``decoder AUC, test`` / ``train``: the decoder's own probability of the positive class given the
  rest of the row (teacher-forced, ``<bos>`` slots in front), scored on the test split and on as
  many training rows: a gap between them is the conditional overfitting the training rows;
* ``relabelled real``: the evaluation's utility AUC for the real training features with labels drawn
  by the generator given them (``sample(conditions=...)``): the utility the rows would have if
  their features were exactly the real ones.

    python benchmarks/target_conditional.py --dataset default benchmarks/out/tables/default/lm/generator
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tables import DATA, DATASETS, column_kinds, load  # noqa: E402

from hf_synth import AutoGenerator, evaluate  # noqa: E402
from hf_synth.generators.difflm.vae import padded  # noqa: E402
from hf_synth.tokenizer import encode_record  # noqa: E402


@torch.no_grad()
def positive_probability(lm, frame, target: str, batch_size: int = 500) -> np.ndarray:
    """The decoder's probability of the target's last category at the target's position, per row."""
    vocab, schema, model = lm.vocab, lm.schema, lm.model
    categories = schema.fields[target].categories
    choices = torch.tensor([vocab.piece_ids(("cat", target, i))[0] for i in range(len(categories))])
    rows = frame.to_dict(orient="records")
    out = []
    for first in range(0, len(rows), batch_size):
        sequences = [[vocab.bos_id] * lm.config.prefix_slots + encode_record(vocab, schema, r)
                     for r in rows[first : first + batch_size]]
        ids, mask = padded(sequences, vocab.pad_id)
        logits = model(input_ids=ids, attention_mask=mask).logits  # (B, T, V)
        at = torch.isin(ids, choices).float().argmax(1) - 1  # the position that predicts the target token
        out.append(logits[torch.arange(len(ids)), at][:, choices].softmax(-1)[:, -1].numpy())
    return np.concatenate(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("generators", nargs="+")
    parser.add_argument("--dataset", choices=["adult", "default"], required=True)
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    target = DATASETS[args.dataset][0]
    train, test = load(args.dataset, args.data)
    if list(train.columns)[-1] != target:
        raise SystemExit(f"{target} must be the last column")
    kinds = column_kinds(args.dataset)

    def utility(frame) -> float:
        report = evaluate(train, frame, holdout=test, target=target, column_kinds=kinds, seed=args.seed,
                          metrics=["utility"], progress=False)
        return float(report.summary()["utility: AUC trained on synthetic"])

    print("real rows", json.dumps({"utility AUC": round(utility(train), 4)}), flush=True)
    sample = train.sample(len(test), random_state=args.seed)
    for path in args.generators:
        generator = AutoGenerator.from_pretrained(path)
        lm = getattr(generator, "lm", None) or generator  # DiffLM: its decoder alone
        positive = lm.schema.fields[target].categories[-1]
        figures = {f"decoder AUC, {name}": round(float(roc_auc_score(frame[target].astype(str) == str(positive),
                                                                       positive_probability(lm, frame, target))), 4)
                   for name, frame in (("test", test), ("train", sample))}
        relabelled = lm.sample(conditions=train.drop(columns=[target]), seed=args.seed, progress=False).to_pandas()
        figures["relabelled real: utility AUC"] = round(utility(relabelled), 4)
        print(path, json.dumps(figures), flush=True)


if __name__ == "__main__":
    sys.exit(main())
