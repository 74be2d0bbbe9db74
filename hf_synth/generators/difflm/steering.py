"""What DiffLM's latent tells its frozen decoder, column by column.

Each column's tokens of a set of records are read teacher-forced, with the calibrated offsets, by
the decoder steered by the soft prompt of the record's own latent mean and by that of another
record. The difference in cross-entropy, in nats per record, is what the latent knows of that
column of that record, beyond what the columns written before it tell the decoder. The decoder
alone (its plain input slots, as it was trained) is read too, for reference.

A column the latent leaves near zero is drawn by the decoder from the columns written before it.
On Beijing PM2.5 the calendar columns are such columns, and on Default of credit card clients, in
the ``"dependence"`` column order, the client's age, sex, education and marriage
(benchmarks/RESULTS.md).
"""

from __future__ import annotations

import collections

import torch

from ...schema import RecordSchema
from ...tokenizer import PieceVocab, encode_record_with_columns
from .vae import DiffLMVAE, padded, prompted_logits

#: Most logits (float32: 128 MiB) computed at once.
LOGITS_BUDGET = 2**25
#: A latent that saves less than this share of the decoder's own cross-entropy per record steers
#: almost nothing: the VAE has collapsed to one soft prompt for every record. (A working latent saved
#: 40 % on Beijing PM2.5, a collapsed one nothing; see benchmarks/RESULTS.md.)
COLLAPSED_SHARE = 0.001


def column_cross_entropy(logits: torch.Tensor, ids: torch.Tensor, columns: list[list[str]]) -> dict[str, float]:
    """Summed cross-entropy of each column's tokens ``ids`` ``(B, T)`` under ``logits`` ``(B, T, V)``,
    per record; ``columns[b][t]`` names the column of token ``t`` of record ``b`` (``""``: braces)."""
    log_probs = torch.log_softmax(logits.float(), -1).gather(2, ids.unsqueeze(2)).squeeze(2)  # (B, T)
    out: dict[str, float] = collections.defaultdict(float)
    for row, names in enumerate(columns):
        for position, name in enumerate(names):
            out[name] -= float(log_probs[row, position])
    return out


@torch.no_grad()
def latent_information(vae: DiffLMVAE, decoder: torch.nn.Module, vocab: PieceVocab, schema: RecordSchema,
                       records: list[dict], means: torch.Tensor, batch_size: int = 256) -> dict[str, dict[str, float]]:
    """Per column, in the decoder's order, the cross-entropy in nats per record of the decoder alone
    (``"decoder"``), of the decoder steered by another record's latent (``"other_latent"``) and by the
    record's own (``"latent"``), and what the record's own latent saves against another's
    (``"saved"``): what the latent knows of that record's column, apart from what any soft prompt
    and the offsets do to the decoder. ``means`` ``(N, d)`` are the records' latent means.
    """
    vae.eval()
    device = next(decoder.parameters()).device
    encoded = [encode_record_with_columns(vocab, schema, r) for r in records]
    if not encoded:
        return {}
    # a pretrained decoder's vocabulary makes each row's logits large: keep a batch's to LOGITS_BUDGET
    width = max(len(ids) for ids, _ in encoded)
    vocab_size = decoder.get_output_embeddings().weight.shape[0]
    batch_size = max(1, min(batch_size, LOGITS_BUDGET // (width * vocab_size)))
    own = means.float().to(device)
    other = own.roll(1, dims=0)  # each record is also read with its neighbour's latent
    totals: dict[str, dict[str, float]] = collections.defaultdict(lambda: collections.defaultdict(float))
    for first in range(0, len(records), batch_size):
        chunk = encoded[first : first + batch_size]
        ids, mask = (t.to(device) for t in padded([ids for ids, _ in chunk], vocab.pad_id))
        columns = [names for _, names in chunk]
        batch = {"decoder_ids": ids, "decoder_mask": mask}
        rows = slice(first, first + len(chunk))
        # the decoder alone reads its slots as they were while it trained
        slots = vae.injection.slot_embedding.expand(len(chunk), vae.injection.slots, -1)
        readers = {"decoder": lambda: prompted_logits(decoder, slots, ids, mask),
                   "other_latent": lambda: vae.record_logits(decoder, other[rows], batch),
                   "latent": lambda: vae.record_logits(decoder, own[rows], batch)}
        for kind, read in readers.items():  # one (B, T, V) tensor at a time
            for name, value in column_cross_entropy(read(), ids, columns).items():
                totals[name][kind] += value
    count = len(records)
    return {name: {**{kind: round(totals[name][kind] / count, 4) for kind in ("decoder", "other_latent", "latent")},
                   "saved": round((totals[name]["other_latent"] - totals[name]["latent"]) / count, 4)}
            for name in schema.fields if name in totals}


def latent_collapsed(information: dict[str, dict[str, float]]) -> bool:
    """Whether a :func:`latent_information` result says the latent steers almost nothing: a record's
    own latent saves less than ``COLLAPSED_SHARE`` of what the decoder alone needs for the record."""
    if not information:
        return False
    saved = sum(m["saved"] for m in information.values())
    return saved < COLLAPSED_SHARE * sum(m["decoder"] for m in information.values())
