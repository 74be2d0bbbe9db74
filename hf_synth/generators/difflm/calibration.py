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
* ``"context"`` (the default): also one per (previous token, token) pair, so the second digit of
  ``age`` (after the token that holds ``age``'s first digit) is calibrated apart from ``fnlwgt``'s.
  The pair offsets have a N(0, 1) prior (an L2 penalty), so a context seen a few times moves little.

Only tokens that occur in the records are re-biased; the softmax still runs over the whole
vocabulary (the other tokens enter as one log-sum-exp per position), so a pretrained decoder's
large vocabulary costs memory only for the tokens the records use.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

import torch

from .vae import DiffLMVAE, previous_tokens

#: Most logits kept in memory for the fit (float32: 128 MiB; enough positions for every token of a table).
MAX_LOGITS = 32 * 2**20
#: Most (previous token, token) offsets; the most frequent previous tokens are kept.
MAX_CONTEXT_OFFSETS = 2**21
#: Standard deviation of the prior on (previous token, token) offsets.
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
                    device: torch.device, max_logits: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unbiased logits ``(N, V)``, target ids ``(N,)`` and previous ids ``(N,)`` of record tokens."""
    logits, targets, previous, kept = [], [], [], 0
    for batch in batches:
        batch = {name: tensor.to(device) for name, tensor in batch.items()}
        mu, _ = vae.encoder(batch["encoder_ids"], batch["encoder_mask"])
        scores = vae.decoder_logits(decoder, mu.float(), batch)  # (B, T, V)
        real = batch["decoder_mask"].bool()
        logits.append(scores[real].cpu())
        targets.append(batch["decoder_ids"][real].cpu())
        previous.append(previous_tokens(batch["decoder_ids"])[real].cpu())
        kept += logits[-1].numel()
        if kept >= max_logits:
            break
    positions = max(1, max_logits // logits[0].shape[1])
    return torch.cat(logits)[:positions], torch.cat(targets)[:positions], torch.cat(previous)[:positions]


def fit_output_bias(vae: DiffLMVAE, decoder: torch.nn.Module, batches: Iterable[dict[str, torch.Tensor]],
                    device: torch.device, kind: str = "context", max_logits: int = MAX_LOGITS,
                    max_iter: int = 100) -> CalibrationResult:
    """Fit ``vae``'s output offsets at the cross-entropy optimum on ``batches`` (``z = mu``)."""
    if kind not in KINDS:
        raise ValueError(f"calibration kind must be one of {KINDS}, got {kind!r}")
    vae.eval()
    logits, targets, previous = _teacher_forced(vae, decoder, batches, device, max_logits)  # (N, V), (N,), (N,)
    current = vae.output_bias.detach().float().cpu()
    used = torch.unique(targets)  # (U,) the tokens the records use
    column = torch.full((logits.shape[1],), -1, dtype=torch.long)
    column[used] = torch.arange(len(used))
    others = torch.ones(logits.shape[1], dtype=torch.bool)
    others[used] = False
    rest = torch.logsumexp(logits[:, others] + current[others], dim=1, keepdim=True) if others.any() else None  # (N, 1)
    used_logits = logits[:, used]  # (N, U)
    del logits
    target_column = column[targets].unsqueeze(1)  # (N, 1)

    token_bias = current[used].clone().requires_grad_(True)
    contexts = torch.zeros(0, dtype=torch.long)
    if kind == "context":
        seen, counts = torch.unique(previous[previous >= 0], return_counts=True)
        contexts = seen[counts.argsort(descending=True)][: max(1, MAX_CONTEXT_OFFSETS // len(used))]
    context_row = torch.full((len(current),), -1, dtype=torch.long)
    context_row[contexts] = torch.arange(len(contexts))
    row = torch.where(previous >= 0, context_row[previous.clamp(min=0)], -1)  # (N,)
    row = torch.where(row >= 0, row, len(contexts))  # positions without a context read a zero row
    table = torch.zeros((len(contexts), len(used)), requires_grad=True)
    prior = 0.5 / (CONTEXT_PRIOR_STD**2 * len(targets))

    def loss() -> torch.Tensor:
        offsets = torch.cat([table, table.new_zeros((1, len(used)))])[row]  # (N, U)
        scores = used_logits + token_bias + offsets
        total = torch.logsumexp(scores if rest is None else torch.cat([scores, rest], dim=1), dim=1)
        cross_entropy = (total - scores.gather(1, target_column).squeeze(1)).mean()
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
        vae.set_context_bias(context_row, used, table.detach().clone())
    else:
        vae.clear_context_bias()
    return CalibrationResult(kind=kind, positions=len(targets), tokens=len(used), contexts=len(contexts),
                             cross_entropy_before=round(before, 5), cross_entropy_after=round(after, 5))
