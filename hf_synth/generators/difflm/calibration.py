"""Calibration of DiffLM's decoder: fit its output offsets once the VAE has trained.

A soft prompt sharpens each record's predictions but also moves the frozen decoder's *average*
prediction: on UCI Adult, decoding the training rows' own latents gave 51 % ``Married-civ-spouse``
for 45 % in the data. Cross-entropy training cannot see that drift well, because the offsets that
would undo it only move slowly under the VAE's optimiser. Here they are solved exactly: with the
encoder and the projection fixed, the cross-entropy is convex in additive logit offsets, so L-BFGS
on teacher-forced logits (``z`` = the encoder mean, as the prior samples) finds them.

Two kinds of offsets (``DiffLMGeneratorConfig.calibration``):

* ``"token"``: one per token. At the optimum the mean predicted probability of every token equals
  its frequency. Digits are shared by all numeric columns, so this cannot correct a digit's share
  in one column without moving it in the others.
* ``"context"`` (the default): also one per (context, token) pair. A position's context is its
  previous token and the latest token before it that names a field (:mod:`hf_synth.naming_tokens`):
  a two-digit token that every numeric column shares is a context apart in each column, and for
  each first digit. So the second digit of ``age`` is calibrated apart from ``fnlwgt``'s, and
  whether a number goes on after its second pair of digits apart for every first digit. The pair
  offsets have a N(0, 1) prior (an L2 penalty), so a context seen a few times moves little.

Only tokens that occur in the records are re-biased; the softmax still runs over the whole
vocabulary (the other tokens enter as one log-sum-exp per position), so a pretrained decoder's
large vocabulary costs memory only for the tokens the records use.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

import torch

from .vae import DiffLMVAE, context_key, context_rows

#: Most logits kept in memory for the fit (float32: 128 MiB; enough positions for every token of a table).
MAX_LOGITS = 32 * 2**20
#: Most (context, token) offsets; the most frequent contexts are kept.
MAX_CONTEXT_OFFSETS = 2**21
#: Standard deviation of the prior on (context, token) offsets.
CONTEXT_PRIOR_STD = 1.0
KINDS = ("context", "token")


@dataclasses.dataclass
class CalibrationResult:
    kind: str
    positions: int
    tokens: int
    contexts: int
    cross_entropy_before: float
    cross_entropy_after: float


@torch.no_grad()
def _teacher_forced(vae: DiffLMVAE, decoder: torch.nn.Module, batches: Iterable[dict[str, torch.Tensor]],
                    device: torch.device, max_logits: int) -> tuple[torch.Tensor, ...]:
    """Unbiased logits ``(N, V)``, target ids ``(N,)``, and the context of each target: the previous
    id ``(N,)`` and the latest naming token ``(N,)`` (see :meth:`DiffLMVAE.contexts`)."""
    logits, targets, previous, named, kept = [], [], [], [], 0
    for batch in batches:
        batch = {name: tensor.to(device) for name, tensor in batch.items()}
        mu, _ = vae.encoder(batch["encoder_ids"], batch["encoder_mask"])
        scores = vae.decoder_logits(decoder, mu.float(), batch)  # (B, T, V)
        real = batch["decoder_mask"].bool()
        logits.append(scores[real].cpu())
        targets.append(batch["decoder_ids"][real].cpu())
        before, name = vae.contexts(batch["decoder_ids"])
        previous.append(before[real].cpu())
        named.append(name[real].cpu())
        kept += logits[-1].numel()
        if kept >= max_logits:
            break
    positions = max(1, max_logits // logits[0].shape[1])
    return tuple(torch.cat(parts)[:positions] for parts in (logits, targets, previous, named))


def fit_output_bias(vae: DiffLMVAE, decoder: torch.nn.Module, batches: Iterable[dict[str, torch.Tensor]],
                    device: torch.device, kind: str = "context", max_logits: int = MAX_LOGITS,
                    max_iter: int = 100) -> CalibrationResult:
    """Fit ``vae``'s output offsets at the cross-entropy optimum on ``batches`` (``z = mu``)."""
    if kind not in KINDS:
        raise ValueError(f"calibration kind must be one of {KINDS}, got {kind!r}")
    vae.eval()
    logits, targets, previous, named = _teacher_forced(vae, decoder, batches, device, max_logits)  # (N, V), (N,) x 3
    current = vae.output_bias.detach().float().cpu()
    used = torch.unique(targets)  # (U,) the tokens the records use
    used_index = torch.full((logits.shape[1],), -1, dtype=torch.long)
    used_index[used] = torch.arange(len(used))
    others = torch.ones(logits.shape[1], dtype=torch.bool)
    others[used] = False
    rest = torch.logsumexp(logits[:, others] + current[others], dim=1, keepdim=True) if others.any() else None  # (N, 1)
    used_logits = logits[:, used]  # (N, U)
    del logits
    target_index = used_index[targets].unsqueeze(1)  # (N, 1)

    token_bias = current[used].clone().requires_grad_(True)
    key = context_key(previous, named, len(current))  # (N,)
    contexts = torch.zeros(0, dtype=torch.long)
    if kind == "context":
        seen, counts = torch.unique(key[key >= 0], return_counts=True)
        contexts = seen[counts.argsort(descending=True)][: max(1, MAX_CONTEXT_OFFSETS // len(used))].sort().values
    row = context_rows(contexts, key)  # (N,)
    row = torch.where(row >= 0, row, len(contexts))  # positions without offsets read a zero row
    table = torch.zeros((len(contexts), len(used)), requires_grad=True)
    prior = 0.5 / (CONTEXT_PRIOR_STD**2 * len(targets))

    def loss() -> torch.Tensor:
        offsets = torch.cat([table, table.new_zeros((1, len(used)))])[row]  # (N, U)
        scores = used_logits + token_bias + offsets
        total = torch.logsumexp(scores if rest is None else torch.cat([scores, rest], dim=1), dim=1)
        cross_entropy = (total - scores.gather(1, target_index).squeeze(1)).mean()
        return cross_entropy + prior * table.pow(2).sum()

    optimizer = torch.optim.LBFGS([token_bias, table], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        value = loss()
        value.backward()
        return value

    with torch.no_grad():
        before = float(loss())
    optimizer.step(closure)
    with torch.no_grad():
        after = float(loss() - prior * table.pow(2).sum())
        vae.output_bias[used.to(vae.output_bias.device)] = token_bias.detach().to(vae.output_bias.device)
    if len(contexts):
        vae.set_context_bias(contexts, used, table.detach().clone())
    else:
        vae.clear_context_bias()
    return CalibrationResult(kind=kind, positions=len(targets), tokens=len(used), contexts=len(contexts),
                             cross_entropy_before=round(before, 5), cross_entropy_after=round(after, 5))
