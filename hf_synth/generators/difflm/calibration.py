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
  previous token, the latest token before it that names a field and the steps since that one
  (:mod:`hf_synth.naming_tokens`): a two-digit token that every numeric column shares is a context
  apart in each column, for each first digit and at each place in the number. So the second digit
  of ``age`` is calibrated apart from ``fnlwgt``'s, and whether a number goes on after its second
  pair of digits apart for every first digit. The pair
  offsets have a N(0, 1) prior (an L2 penalty), so a context seen a few times moves little.

Teacher forcing reads every record from its true beginning, but a sampled record goes on from what
was sampled before, where a latent and a prefix that never met in training can meet: on UCI Adult,
after the exact fit, 1.2 % of sampled ``fnlwgt`` values had five digits and a first digit 1, for
0.08 % in the data. So :func:`refine_by_sampling` then corrects the (context, token) offsets on
sampled rows, round by round: it samples rows as ``sample`` does, counts which token follows each
context in them and in the training rows, and adds the log ratio of the two frequencies to the
offsets (four rounds: 0.2 %). Contexts too rare to count alone are counted together with the other
rare ones that have the same naming token and steps: six-digit ``fnlwgt`` values with a first digit
5-9 were 3.2 % of sampled rows (1.1 % in the data) while each of their contexts was too rare;
counted together, 2.1 %.

Only tokens that occur in the records are re-biased; the softmax still runs over the whole
vocabulary (the other tokens enter as one log-sum-exp per position), so a pretrained decoder's
large vocabulary costs memory only for the tokens the records use.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterable, Iterator

import torch

from .vae import DiffLMVAE, context_group, context_key, context_rows

#: Most logits kept in memory for the fit (float32: 128 MiB; enough positions for every token of a table).
MAX_LOGITS = 32 * 2**20
#: Most (context, token) offsets; the contexts the training rows visit most are kept.
MAX_CONTEXT_OFFSETS = 2**21
#: Standard deviation of the prior on (context, token) offsets.
CONTEXT_PRIOR_STD = 1.0
KINDS = ("context", "token")
#: A context seen fewer times than this, in the training rows or in a round's samples, keeps its
#: offsets in that round: its frequencies are mostly noise.
MIN_CONTEXT_COUNT = 30
#: Added to every count of a context's tokens before the frequencies are compared.
PSEUDO_COUNT = 0.5
#: Most an offset moves in one round (nats).
MAX_ROUND_STEP = 2.0


@dataclasses.dataclass
class CalibrationResult:
    kind: str
    positions: int
    tokens: int
    contexts: int
    cross_entropy_before: float
    cross_entropy_after: float
    #: Before each round of :func:`refine_by_sampling`, how far the sampled rows' next tokens are
    #: from the training rows': the total variation distance of each context's next token, averaged
    #: over the contexts weighted by how often the training rows visit them.
    sampled_gaps: list[float] = dataclasses.field(default_factory=list)
    #: Rows sampled in each of those rounds.
    samples: int = 0


@torch.no_grad()
def _teacher_forced(vae: DiffLMVAE, decoder: torch.nn.Module, batches: Iterable[dict[str, torch.Tensor]],
                    device: torch.device, max_logits: int) -> tuple[torch.Tensor, ...]:
    """Unbiased logits ``(N, V)``, target ids ``(N,)``, and the context of each target: the previous
    id, the latest naming token and the steps since it (``(N,)`` each; see :meth:`DiffLMVAE.contexts`)."""
    logits, targets, previous, named, steps, kept = [], [], [], [], [], 0
    for batch in batches:
        batch = {name: tensor.to(device) for name, tensor in batch.items()}
        mu, _ = vae.encoder(batch["encoder_ids"], batch["encoder_mask"])
        scores = vae.decoder_logits(decoder, mu.float(), batch)  # (B, T, V)
        real = batch["decoder_mask"].bool()
        logits.append(scores[real].cpu())
        targets.append(batch["decoder_ids"][real].cpu())
        for parts, part in zip((previous, named, steps), vae.contexts(batch["decoder_ids"])):
            parts.append(part[real].cpu())
        kept += logits[-1].numel()
        if kept >= max_logits:
            break
    positions = max(1, max_logits // logits[0].shape[1])
    return tuple(torch.cat(parts)[:positions] for parts in (logits, targets, previous, named, steps))


def fit_output_bias(vae: DiffLMVAE, decoder: torch.nn.Module, batches: Iterable[dict[str, torch.Tensor]],
                    device: torch.device, kind: str = "context", max_logits: int = MAX_LOGITS,
                    max_iter: int = 100, visits: tuple[torch.Tensor, torch.Tensor] | None = None) -> CalibrationResult:
    """Fit ``vae``'s output offsets at the cross-entropy optimum on ``batches`` (``z = mu``).

    ``visits`` (:func:`visited_contexts` of all the training rows) chooses which contexts get
    offsets: the most visited ones. Without it they are chosen by their visits in ``batches``,
    of which the fit reads at most ``max_logits`` logits: on a vocabulary of a few hundred tokens,
    2,000-5,000 rows of a table.
    """
    if kind not in KINDS:
        raise ValueError(f"calibration kind must be one of {KINDS}, got {kind!r}")
    vae.eval()
    logits, targets, previous, named, steps = _teacher_forced(vae, decoder, batches, device, max_logits)
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
    key = context_key(previous, named, steps, len(current))  # (N,)
    contexts = torch.zeros(0, dtype=torch.long)
    if kind == "context":
        seen, counts = visits if visits is not None else torch.unique(key[key >= 0], return_counts=True)
        contexts = seen[counts.argsort(descending=True, stable=True)][: max(1, MAX_CONTEXT_OFFSETS // len(used))]
        contexts = contexts.sort().values
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


def _keyed_positions(vae: DiffLMVAE, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The context key and the token of every real position of ``batches`` of ``(ids, mask)``
    ``(B, T)`` each: ``(P,)`` and ``(P,)`` per batch."""
    for ids, mask in batches:
        previous, named, steps = vae.contexts(ids.to(vae.naming_tokens.device))
        real = mask.bool()
        yield context_key(previous, named, steps, len(vae.output_bias)).cpu()[real], ids[real]


def visited_contexts(vae: DiffLMVAE, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """The contexts ``batches`` of ``(ids, mask)`` visit, sorted, and how often: ``(K,)`` each."""
    keys = torch.cat([key for key, _ in _keyed_positions(vae, batches)])
    return torch.unique(keys[keys >= 0], return_counts=True)


def context_counts(vae: DiffLMVAE, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """``(K, U)``: how often token ``vae.context_tokens[j]`` follows context ``vae.context_keys[i]``
    in ``batches`` of ``(ids, mask)`` ``(B, T)`` each."""
    token_index = torch.full((len(vae.output_bias),), -1, dtype=torch.long)
    token_index[vae.context_tokens.cpu()] = torch.arange(len(vae.context_tokens))
    keys = vae.context_keys.cpu()
    counts = torch.zeros(vae.context_table.shape)
    for key, ids in _keyed_positions(vae, batches):
        rows, tokens = context_rows(keys, key), token_index[ids]
        counted = (rows >= 0) & (tokens >= 0)
        counts.index_put_((rows[counted], tokens[counted]), torch.ones(int(counted.sum())), accumulate=True)
    return counts


def refine_by_sampling(vae: DiffLMVAE, records: Iterable[tuple[torch.Tensor, torch.Tensor]],
                       sampled: Callable[[int], Iterable[tuple[torch.Tensor, torch.Tensor]]],
                       rounds: int) -> list[float]:
    """Move ``vae``'s (context, token) offsets so that sampled rows follow each context with the
    tokens the training rows follow it with (see the module docstring).

    ``records`` are the training rows' ``(ids, mask)`` batches; ``sampled(round)`` samples rows
    with the current offsets and gives theirs. Returns the gap before each round (see
    :attr:`CalibrationResult.sampled_gaps`).
    """
    if not vae.context_table.numel():
        return []
    target = context_counts(vae, records)
    groups = context_group(vae.context_keys.cpu(), len(vae.output_bias))
    gaps = []
    for round_ in range(rounds):
        counts = context_counts(vae, sampled(round_))
        step, gap = _frequency_step(target, counts, groups)
        with torch.no_grad():
            vae.context_table += step.to(vae.context_table.device)
        gaps.append(round(gap, 5))
    return gaps


def _frequency_step(target: torch.Tensor, counts: torch.Tensor, groups: torch.Tensor) -> tuple[torch.Tensor, float]:
    """The change of each offset that makes ``counts`` ``(K, U)`` follow ``target``'s frequencies
    (the log ratio), and the gap between the two (see :attr:`CalibrationResult.sampled_gaps`).

    A context seen too rarely to be corrected alone takes the step of the rare contexts of its
    group (``groups`` ``(K,)``, :func:`~.vae.context_group`: the same naming token and steps, any
    previous token) counted together, where those are seen often enough, for the tokens that
    follow them often enough: whether a number goes on after its second pair of digits is one
    question for every pair, and asked a hundred times less often of each.
    """
    step, seen = _log_ratio_step(target, counts)
    target_total, total = target.sum(1), counts.sum(1)  # (K,)
    distance = 0.5 * (target / target_total.clamp(min=1).unsqueeze(1)
                      - counts / total.clamp(min=1).unsqueeze(1)).abs().sum(1)  # (K,)
    weight = target_total * seen
    gap = float((distance * weight).sum() / weight.sum().clamp(min=1))
    pooled = ~seen & (groups >= 0)
    if pooled.any():
        members, group = torch.unique(groups[pooled], return_inverse=True)

        def pool(table: torch.Tensor) -> torch.Tensor:  # the rare contexts' rows summed by group
            return table.new_zeros((len(members), table.shape[1])).index_add_(0, group, table[pooled])

        pooled_target, pooled_counts = pool(target), pool(counts)
        # a group spreads its visits over many tokens (a hundred pairs of digits): only the tokens
        # it is followed by often enough move, or the noise of the rest moves every context
        frequent = pooled_target + pooled_counts >= MIN_CONTEXT_COUNT
        step[pooled] = torch.where(frequent, _log_ratio_step(pooled_target, pooled_counts)[0], 0.0)[group]
    return step, gap


def _log_ratio_step(target: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each context (row) of ``target`` and ``counts`` ``(K, U)`` seen often enough on both
    sides, the log ratio of its tokens' smoothed frequencies, bounded: ``(K, U)``, zero elsewhere;
    and which contexts those are: ``(K,)``."""
    target_total, total = target.sum(1, keepdim=True), counts.sum(1, keepdim=True)  # (K, 1)
    smoothing = PSEUDO_COUNT * target.shape[1]
    log_ratio = (torch.log((target + PSEUDO_COUNT) / (target_total + smoothing))
                 - torch.log((counts + PSEUDO_COUNT) / (total + smoothing)))
    seen = (target_total >= MIN_CONTEXT_COUNT) & (total >= MIN_CONTEXT_COUNT)  # (K, 1)
    step = torch.where(seen & (target + counts > 0), log_ratio.clamp(-MAX_ROUND_STEP, MAX_ROUND_STEP), 0.0)
    return step, seen.squeeze(1)
