"""Which field a record's tokens are writing, read from the tokens themselves.

With the default vocabulary (:class:`~hf_synth.tokenizer.RecordTokenizer`) the first token of every
field names it: a key, a category, or a number's first digit (``<numkey:fnlwgt=1>``). The tokens
after it (``<num:75>``, text) are shared by every field, but belong to the field last named. So
*the latest naming token* of every position follows from a mask of the naming tokens and a forward
fill, the same way in a teacher-forced batch and one token at a time while sampling. It says which
field a shared token belongs to and, for a number, its first digit; the steps since it say where
in the field the token is.

A pretrained tokenizer writes keys and categories as text whose tokens many fields share; no token
names a field then, and every position's latest naming token is -1 (and its steps 0).
"""

from __future__ import annotations

import torch

from .schema import RecordSchema, iter_paths, path_name
from .tokenizer import NUMBER_START_CHARS, PieceVocab

#: Steps since the latest naming token are counted up to this (a long text value's later tokens share it).
MAX_STEPS = 15


def naming_tokens(vocab: PieceVocab, schema: RecordSchema) -> torch.Tensor:
    """``(vocab_size,)`` bool: the tokens that name a field (of any depth)."""
    naming = torch.zeros(vocab.vocab_size, dtype=torch.bool)
    if not vocab.single_token_pieces:
        return naming
    for path, fs in iter_paths(schema.fields):
        pieces = []
        if path_name(path) != "[]":
            pieces.append(("key", path, True))
            if fs.kind == "numeric" and vocab.keyed_categories:
                pieces += [("numkey", path, c) for c in NUMBER_START_CHARS]
        if fs.kind in ("categorical", "bool"):
            pieces += [("cat", path, i) for i in range(len(fs.categories))]
        for piece in pieces:
            naming[vocab.piece_ids(piece)[0]] = True
    return naming


def naming_context(ids: torch.Tensor, naming: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each position of ``ids`` ``(B, T)``: the latest naming token at or before it (-1 before
    the first), and how many tokens after it the position is (0 at the naming token and before
    any, at most :data:`MAX_STEPS`). The steps tell a number's second pair of digits from its
    first, which the tokens alone do not."""
    names = naming.to(ids.device)[ids.clamp(min=0)] & (ids >= 0)  # (B, T)
    positions = torch.arange(ids.shape[1], device=ids.device).expand_as(ids)
    latest = torch.where(names, positions, -1).cummax(dim=1).values  # (B, T) latest naming position
    named = torch.where(latest >= 0, ids.gather(1, latest.clamp(min=0)), -1)
    steps = torch.where(latest >= 0, positions - latest, 0).clamp(max=MAX_STEPS)
    return named, steps


def next_naming_context(last: torch.Tensor, named: torch.Tensor, steps: torch.Tensor,
                        naming: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of :func:`naming_context`: the context ``(named, steps)`` ``(B,)`` each after
    tokens ``last`` ``(B,)`` of rows whose context was ``(named, steps)``."""
    names = naming.to(last.device)[last]
    after = torch.where(named >= 0, steps + 1, 0).clamp(max=MAX_STEPS)
    return torch.where(names, last, named), torch.where(names, 0, after)
