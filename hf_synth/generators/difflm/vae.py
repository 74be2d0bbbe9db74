"""DiffLM's VAE: a record encoder, and the injection of its latent into a frozen causal LM.

::

    record tokens ─ encoder (BERT) ─ mean pool ─ Linear ─ (mu, logvar)           # (B, d) each
    z = mu + sigma * eps                                                           # (B, d)
    soft prompt = slot embeddings + Linear(d, k * hidden)(z).view(B, k, hidden)    # (B, k, H)
    decoder(inputs_embeds=[learned prefix | soft prompt | record tokens]).logits + output bias
        -> token cross-entropy

Only the encoder, its head, the projection, the learned prefix and the output bias train; the
decoder is frozen. The projection starts at zero, so the untrained VAE is exactly the frozen decoder
(its slots hold the ``<bos>`` embeddings it was trained with) and training only adds what the latent
knows.

The output bias (one logit offset per token, zero at first) is there because a soft prompt moves
the frozen decoder's average predictions: it lowers the cross-entropy by sharpening each record's
predictions while the share of every category drifts several points, and an input-side prompt has
no direct handle on the output's intercepts. With a free bias the optimum is calibrated in the
large (the mean predicted probability of each token equals its frequency), which
:func:`~hf_synth.generators.difflm.calibration.fit_output_bias` enforces after training, together
with offsets by context: the previous token, the latest token that names a field and the steps since
it (``context_table``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from ...naming_tokens import MAX_STEPS, naming_context


@dataclasses.dataclass
class LatentConfig:
    """Shapes of the trainable VAE parts (saved as ``latent/config.json``)."""

    encoder_hidden: int
    latent_dim: int
    num_virtual_tokens: int
    prefix_length: int
    decoder_hidden: int
    vocab_size: int


class RecordEncoder(nn.Module):
    """A Hugging Face encoder over a record's tokens, mean-pooled into the posterior's parameters."""

    def __init__(self, backbone: nn.Module, latent_dim: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.config.hidden_size, 2 * latent_dim)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, He)
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, He)
        mu, logvar = self.head(pooled).chunk(2, dim=-1)  # (B, d), (B, d)
        return mu, logvar.clamp(-20.0, 10.0)  # bounds keep exp(logvar) finite early in training


class LatentInjection(nn.Module):
    """``z`` -> ``k`` soft-prompt vectors, after an optional learned prefix (the decoder's input slots)."""

    def __init__(self, config: LatentConfig, slot_embedding: torch.Tensor):
        super().__init__()
        k, hidden = config.num_virtual_tokens, config.decoder_hidden
        self.num_virtual_tokens = k
        self.projection = nn.Linear(config.latent_dim, k * hidden)
        nn.init.zeros_(self.projection.weight)
        nn.init.zeros_(self.projection.bias)
        # what the slots held while the decoder trained: the soft prompt is a change from it
        self.register_buffer("slot_embedding", slot_embedding.detach().clone().reshape(1, 1, hidden))
        self.prefix = nn.Parameter(self.slot_embedding.expand(1, config.prefix_length, hidden).clone()) \
            if config.prefix_length else None

    @property
    def slots(self) -> int:
        """Input positions the latent takes: the learned prefix plus the soft prompt."""
        return self.num_virtual_tokens + (0 if self.prefix is None else self.prefix.shape[1])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        batch = z.shape[0]
        soft = self.slot_embedding + self.projection(z).view(batch, self.num_virtual_tokens, -1)  # (B, k, H)
        if self.prefix is None:
            return soft
        return torch.cat([self.prefix.expand(batch, -1, -1), soft], dim=1)  # (B, p + k, H)


class DiffLMVAE(nn.Module):
    """The trainable parts; the frozen decoder is passed to :meth:`loss`, never stored or saved here."""

    def __init__(self, encoder: RecordEncoder, injection: LatentInjection, vocab_size: int):
        super().__init__()
        self.encoder = encoder
        self.injection = injection
        self.output_bias = nn.Parameter(torch.zeros(vocab_size))  # added to the decoder's logits
        # offsets by context, set by calibration.py. A position's context is its previous token,
        # the latest token before it that names a field and the steps since that one
        # (hf_synth.naming_tokens, by the mask naming_tokens), numbered by context_key. For a
        # position whose context is context_keys[i], context_table[i, j] is added to the logit of
        # token context_tokens[j].
        self.register_buffer("naming_tokens", torch.zeros(vocab_size, dtype=torch.bool))
        self.register_buffer("context_keys", torch.zeros(0, dtype=torch.long))  # sorted
        self.register_buffer("context_tokens", torch.zeros(0, dtype=torch.long))
        self.register_buffer("context_table", torch.zeros((0, 0)))

    def set_context_bias(self, keys: torch.Tensor, tokens: torch.Tensor, table: torch.Tensor) -> None:
        """Offsets ``table`` ``(K, U)`` for the contexts ``keys`` ``(K,)`` (sorted) on ``tokens`` ``(U,)``."""
        device = self.output_bias.device
        self.context_keys, self.context_tokens, self.context_table = keys.to(device), tokens.to(device), table.to(device)

    def clear_context_bias(self) -> None:
        self.set_context_bias(self.context_keys[:0], self.context_tokens[:0], self.context_table[:0, :0])

    def add_bias(self, previous: torch.Tensor, named: torch.Tensor, steps: torch.Tensor,
                 logits: torch.Tensor) -> torch.Tensor:
        """``logits`` ``(B, V)`` of the next token plus the output bias and, for rows whose context
        (last token ``previous``, latest naming token ``named``, ``steps`` since it; ``(B,)`` each)
        has offsets, those."""
        logits = logits.float() + self.output_bias.detach().float().to(logits.device)
        if self.context_table.numel():
            rows = context_rows(self.context_keys, context_key(previous, named, steps, len(self.output_bias)))
            known = (rows >= 0).nonzero().squeeze(1)
            # the rows with offsets, added to column by column: a third of the time of indexing
            # logits[known rows, tokens] in place, per sampling step
            offset = logits.index_select(0, known).index_add_(1, self.context_tokens, self.context_table[rows[known]])
            logits.index_copy_(0, known, offset)
        return logits

    def contexts(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The context of each position of ``ids`` ``(B, T)``: the previous token, the latest naming
        token up to it and the steps since that one (``(B, T)`` each; -1, -1, 0 before the first)."""
        named, steps = naming_context(ids, self.naming_tokens)
        return (previous_tokens(ids), torch.cat([named.new_full((len(ids), 1), -1), named[:, :-1]], dim=1),
                torch.cat([steps.new_zeros((len(ids), 1)), steps[:, :-1]], dim=1))

    def decoder_logits(self, decoder: nn.Module, z: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Float32 logits, without offsets, at the positions that predict each record token: ``(B, T, V)``."""
        return prompted_logits(decoder, self.injection(z), batch["decoder_ids"], batch["decoder_mask"]).float()

    def record_logits(self, decoder: nn.Module, z: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """:meth:`decoder_logits` plus the output bias and the offsets by context: ``(B, T, V)``."""
        logits = self.decoder_logits(decoder, z, batch)
        if not self.context_table.numel():
            return logits + self.output_bias  # differentiable: the VAE trains the output bias
        previous, named, steps = (t.flatten() for t in self.contexts(batch["decoder_ids"]))
        return self.add_bias(previous, named, steps, logits.flatten(0, 1)).view_as(logits)

    def loss(self, decoder: nn.Module, batch: dict[str, torch.Tensor], beta: float,
             sample: bool = True) -> dict[str, torch.Tensor]:
        """Token cross-entropy of the record given its latent, and the KL averaged over latent dims."""
        mu, logvar = self.encoder(batch["encoder_ids"], batch["encoder_mask"])
        mu, logvar = mu.float(), logvar.float()  # the KL in full precision, also under bf16 autocast
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if sample else mu  # (B, d)
        logits = self.record_logits(decoder, z, batch)
        targets = batch["decoder_ids"].masked_fill(batch["decoder_mask"] == 0, -100)
        cross_entropy = nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).mean()
        return {"loss": cross_entropy + beta * kl, "cross_entropy": cross_entropy, "kl": kl}


def prompted_logits(decoder: nn.Module, prefix: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The decoder's logits at the positions that predict ``ids`` ``(B, T)`` (mask ``(B, T)``), read
    after ``prefix`` ``(B, P, H)``: ``(B, T, V)``."""
    tokens = decoder.get_input_embeddings()(ids)  # (B, T, H)
    embeds = torch.cat([prefix.to(tokens.dtype), tokens], dim=1)  # (B, P + T, H)
    attention = torch.cat([mask.new_ones((len(ids), prefix.shape[1])), mask], dim=1)
    return decoder(inputs_embeds=embeds, attention_mask=attention).logits[:, prefix.shape[1] - 1 : -1]


def context_key(previous: torch.Tensor, named: torch.Tensor, steps: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """One number per context (previous token, latest naming token or -1, steps since it): -1 where
    there is no previous token. With no naming token the key is the previous token."""
    return torch.where(previous >= 0, ((named + 1) * (MAX_STEPS + 1) + steps) * vocab_size + previous, -1)


def context_group(keys: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """The context of each of ``keys`` without its previous token: one number per (naming token,
    steps since it), -1 where there is no naming token."""
    group = keys // vocab_size
    return torch.where((keys >= 0) & (group > MAX_STEPS), group, -1)


def context_rows(keys: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """The index of each of ``query`` in the sorted ``keys``, -1 where it is not there."""
    if not len(keys):
        return torch.full_like(query, -1)
    index = torch.searchsorted(keys, query).clamp(max=len(keys) - 1)
    return torch.where((keys[index] == query) & (query >= 0), index, -1)


def upgraded_latent_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The saved VAE state in the current layout. Files saved when the offsets went by previous
    token alone hold ``context_rows`` ``(V,)`` (a row of ``context_table`` per previous token, or -1)
    and ``context_columns``; those contexts are the current ones with no naming token."""
    if "context_rows" not in state:
        return state
    state = dict(state)
    rows, tokens, table = state.pop("context_rows"), state.pop("context_columns"), state.pop("context_table")
    keys = (rows >= 0).nonzero().squeeze(1)  # previous tokens with offsets, sorted
    state["naming_tokens"] = torch.zeros(len(rows), dtype=torch.bool)
    state.update(context_keys=context_key(keys, torch.full_like(keys, -1), torch.zeros_like(keys), len(rows)),
                 context_tokens=tokens,
                 context_table=table[rows[keys]] if len(keys) else table[:0])
    return state


def previous_tokens(ids: torch.Tensor) -> torch.Tensor:
    """The token before each position of ``ids`` ``(B, T)``; -1 before the first (the soft prompt)."""
    return torch.cat([ids.new_full((ids.shape[0], 1), -1), ids[:, :-1]], dim=1)


def padded(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``(ids, mask)`` of token sequences."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
        mask[row, : len(sequence)] = 1
    return ids, mask


def state_dict_of(module: nn.Module) -> dict[str, Any]:
    return {name: tensor.detach().to("cpu").clone() for name, tensor in module.state_dict().items()}
