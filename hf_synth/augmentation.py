"""Augment a dataset with synthetic rows: ``Dataset.map``-style functions and class balancing.

::

    ds = ds.map(hf_synth.augment(generator, k=2, condition_on=["label"]), batched=True)
    balanced = hf_synth.balance(generator, ds, "label", target="uniform")

Synthetic rows carry ``is_synthetic=True`` (the column name is configurable) so that training code
can weight or filter them.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import datasets

from .errors import HFSynthError
from .io import load_input
from .streams import GeneratorRef, check_positive_int, check_sample_options, derive_seed

if TYPE_CHECKING:
    from .generators.base import BaseGenerator

SYNTHETIC_COLUMN = "is_synthetic"


class Augmenter:
    """The function :func:`augment` returns: a batch in, the batch plus ``k`` synthetic rows per row out.

    Seeds come from the batch itself (its indices when ``map`` passes them with
    ``with_indices=True``, else its content), so a map gives the same rows every time it runs.
    Pickles as a handle on the generator (see :class:`~hf_synth.streams.GeneratorRef`), which
    keeps ``Dataset.map``'s fingerprint cheap and works with ``num_proc``.
    """

    def __init__(self, generator: "BaseGenerator", k: int, condition_on: list[str], seed: int,
                 synthetic_column: str, options: dict[str, Any]):
        self.ref = GeneratorRef(generator)
        self.k, self.condition_on, self.seed = k, condition_on, seed
        self.synthetic_column, self.options = synthetic_column, options
        self.columns = generator.schema.columns

    def __call__(self, batch: Mapping[str, list], indices: list[int] | None = None) -> dict[str, list]:
        batch = dict(batch)  # datasets passes a lazy mapping
        if any(not isinstance(v, list) for v in batch.values()):
            raise HFSynthError("hf_synth.augment works on batches: call ds.map(fn, batched=True)")
        if self.synthetic_column in batch:
            raise HFSynthError(f"the dataset already has a {self.synthetic_column!r} column; augment it once, "
                               "or pass synthetic_column= another name")
        size = len(next(iter(batch.values()), []))
        missing = [c for c in self.condition_on if c not in batch]
        if missing:
            raise HFSynthError(f"condition_on names columns the dataset lacks: {missing}")
        conditions = [{c: batch[c][i] for c in self.condition_on} for i in range(size) for _ in range(self.k)]
        seed = derive_seed(self.seed, "augment", indices[0] if indices else _content_key(batch))
        generator = self.ref.get()
        if conditions:
            synthetic = generator.sample(conditions=conditions, seed=seed, progress=False, **self.options).to_dict()
        else:
            synthetic = {c: [] for c in self.columns}
        out: dict[str, list] = {}
        for i in range(size):
            for column in batch:
                out.setdefault(column, []).append(batch[column][i])
            for j in range(i * self.k, (i + 1) * self.k):
                for column in batch:
                    out[column].append(synthetic[column][j] if column in synthetic else None)
        out[self.synthetic_column] = [j % (self.k + 1) != 0 for j in range(size * (self.k + 1))]
        return out


def _content_key(batch: dict[str, list]) -> str:
    return hashlib.sha256(json.dumps(batch, sort_keys=True, default=str).encode()).hexdigest()[:16]


def augment(generator: "BaseGenerator", k: int = 1, condition_on: list[str] | str | None = None, *,
            seed: int | None = None, synthetic_column: str = SYNTHETIC_COLUMN, **options: Any) -> Augmenter:
    """A function for ``ds.map(fn, batched=True)``: each input row is followed by ``k`` synthetic rows
    sampled with the values of its ``condition_on`` columns fixed, plus a boolean ``synthetic_column``.

    Columns the generator does not know are ``None`` in synthetic rows. Works with ``num_proc`` and on
    an IterableDataset; pass ``with_indices=True`` to seed each batch by its position.

    Example:
        >>> augmented = ds.map(augment(generator, k=2, condition_on=["label"]), batched=True)
        >>> augmented.filter(lambda row: row["is_synthetic"]).num_rows == 2 * ds.num_rows
    """
    generator._check_fitted()
    check_positive_int("k", k)
    condition_on = [condition_on] if isinstance(condition_on, str) else list(condition_on or [])
    unknown = [c for c in condition_on if c not in generator.schema.fields]
    if unknown:
        raise HFSynthError(f"condition_on names columns the generator does not know: {unknown}; "
                           f"it knows {', '.join(generator.schema.columns)}")
    seed = generator.config.seed if seed is None else check_positive_int("seed", seed, allow_zero=True)
    return Augmenter(generator, k, condition_on, seed, synthetic_column, check_sample_options(type(generator), options))


def balance(generator: "BaseGenerator", dataset: Any, column: str, target: str | dict = "uniform", *,
            seed: int | None = None, synthetic_column: str = SYNTHETIC_COLUMN, **options: Any) -> datasets.Dataset:
    """Top up the classes of ``column`` with synthetic rows conditioned on the class.

    Args:
        target: ``"uniform"`` (every class as large as the largest) or ``{value: share}``: the class
            shares to reach (they are normalised; classes left out keep their rows and get none). Only
            rows are added, never removed: the result is the smallest dataset with those shares.

    Returns:
        The original rows followed by the synthetic ones, with a boolean ``synthetic_column``.

    Example:
        >>> balanced = balance(generator, ds, "income", target={">50K": 0.5, "<=50K": 0.5}, seed=0)
    """
    generator._check_fitted()
    data = load_input(dataset)
    if column not in data.column_names:
        raise HFSynthError(f"unknown column {column!r}; the dataset has {', '.join(data.column_names)}")
    if column not in generator.schema.fields:
        raise HFSynthError(f"the generator does not know column {column!r}")
    if synthetic_column in data.column_names:
        raise HFSynthError(f"the dataset already has a {synthetic_column!r} column")
    seed = generator.config.seed if seed is None else check_positive_int("seed", seed, allow_zero=True)
    options = check_sample_options(type(generator), options)
    counts: dict[Any, int] = {}
    for value in data[column]:
        counts[value] = counts.get(value, 0) + 1
    wanted = _class_sizes(counts, target, data.features[column])
    parts = [data.add_column(synthetic_column, [False] * data.num_rows)]
    for value, rows in wanted.items():
        extra = rows - counts.get(value, 0)
        if extra <= 0:
            continue
        feature = data.features[column]
        label = feature.int2str(value) if isinstance(feature, datasets.ClassLabel) else value  # either schema reads names
        sampled = generator.sample(extra, conditions={column: label}, seed=derive_seed(seed, "balance", str(label)),
                                   progress=False, **options)
        parts.append(_aligned(sampled, data.features).add_column(synthetic_column, [True] * extra))
    return datasets.concatenate_datasets(parts)


def _class_sizes(counts: dict[Any, int], target: str | dict, feature: Any) -> dict[Any, int]:
    if target == "uniform":
        largest = max(counts.values())
        return {value: largest for value in counts}
    if not isinstance(target, dict) or not target:
        raise HFSynthError(f"target must be 'uniform' or a dict of class shares, got {target!r}")
    shares = {}
    for value, share in target.items():
        if isinstance(feature, datasets.ClassLabel) and isinstance(value, str):
            value = feature.str2int(value)
        if isinstance(share, bool) or not isinstance(share, (int, float)) or share <= 0:
            raise HFSynthError(f"the share of {value!r} must be a positive number, got {share!r}")
        shares[value] = float(share)
    total = sum(shares.values())
    shares = {value: share / total for value, share in shares.items()}
    # the smallest total that no class has to shrink to reach
    size = max(counts.get(value, 0) / share for value, share in shares.items())
    return {value: max(counts.get(value, 0), math.ceil(share * size - 1e-9)) for value, share in shares.items()}


def _aligned(sampled: datasets.Dataset, features: datasets.Features) -> datasets.Dataset:
    """``sampled`` with the columns and Features of the dataset being balanced."""
    for name in features:
        if name not in sampled.column_names:
            sampled = sampled.add_column(name, [None] * sampled.num_rows)
    sampled = sampled.select_columns(list(features))
    return sampled.cast(features) if sampled.features != features else sampled
