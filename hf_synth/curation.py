"""Curation: drop synthetic rows that are invalid, duplicated, too close to a training record or
below a quality threshold, and say what was removed and why.

Every step is a row filter usable three ways:

* with `datasets`: ``synthetic.filter(DropInvalid(schema), batched=True)``;
* in a pipeline that reports what each step removed: ``curate(synthetic, [step, ...])``;
* right after sampling, topping the sample back up: ``generator.sample(1000, curation=[...])``.

Steps that compare rows with each other (within-set duplicates) remember the rows they kept, so a
step instance filters one set in one process; :func:`curate` and ``sample`` call ``reset`` first.

Example:
    >>> from hf_synth.curation import DropInvalid, DropDuplicates, DropCloseToTraining, curate
    >>> curated, report = curate(synthetic, [DropInvalid(schema), DropDuplicates(reference=train),
    ...                                      DropCloseToTraining(train, quantile=0.05)])
    >>> print(report)
"""

from __future__ import annotations

import abc
import json
from dataclasses import dataclass, field
from typing import Any, Callable

import datasets
import numpy as np

from .errors import HFSynthError
from .io import load_input
from .schema import RecordSchema


class CurationStep(abc.ABC):
    """A row filter; subclasses implement :meth:`keep`."""

    #: Why a dropped row was dropped (shown in :class:`CurationReport`).
    reason: str = ""

    @abc.abstractmethod
    def keep(self, records: list[dict]) -> list[bool]:
        """One flag per record: ``True`` keeps it."""

    def reset(self) -> None:
        """Forget rows seen so far (for steps that compare rows with each other)."""

    def __call__(self, batch: dict[str, list]) -> list[bool]:
        """``Dataset.filter(step, batched=True)`` entry point: a batch is a dict of columns."""
        columns = list(batch)
        size = len(batch[columns[0]]) if columns else 0
        return self.keep([{c: batch[c][i] for c in columns} for i in range(size)])

    @property
    def name(self) -> str:
        return type(self).__name__


def _record_key(record: dict) -> str:
    return json.dumps(record, sort_keys=True, ensure_ascii=False, default=str)


def _reference_records(reference: Any) -> list[dict]:
    if isinstance(reference, list) and all(isinstance(r, dict) for r in reference):
        return reference
    return load_input(reference).to_list()


class DropInvalid(CurationStep):
    """Drop rows that violate ``schema`` (unknown categories, out-of-range numbers, missing keys)."""

    reason = "violates the schema"

    def __init__(self, schema: RecordSchema):
        if not isinstance(schema, RecordSchema):
            raise HFSynthError("DropInvalid needs a RecordSchema (e.g. generator.schema or RecordSchema.from_dataset(train))")
        self.schema = schema

    def keep(self, records: list[dict]) -> list[bool]:
        return [not self.schema.validate(record) for record in records]


class DropDuplicates(CurationStep):
    """Drop exact duplicates: of an earlier row of the same set (``within``) and of any row of
    ``reference`` (the training data: exact copies leak it)."""

    def __init__(self, reference: Any = None, *, within: bool = True):
        if reference is None and not within:
            raise HFSynthError("DropDuplicates with within=False needs a reference")
        self.within = within
        self.reference_keys = {_record_key(r) for r in _reference_records(reference)} if reference is not None else set()
        self.reason = " or ".join(filter(None, ["repeats an earlier row" if within else "", "copies a reference row" if reference is not None else ""]))
        self._seen: set[str] = set()

    def reset(self) -> None:
        self._seen = set()

    def keep(self, records: list[dict]) -> list[bool]:
        flags = []
        for record in records:
            key = _record_key(record)
            ok = key not in self.reference_keys and not (self.within and key in self._seen)
            if ok and self.within:
                self._seen.add(key)
            flags.append(ok)
        return flags


class DropNearDuplicates(CurationStep):
    """Drop near duplicates (MinHash Jaccard similarity of the row's text at least ``threshold``):
    of an earlier kept row (``within``) and of ``reference`` rows.

    Rows are compared through ``columns`` (text columns) joined, or their whole JSON text.
    """

    def __init__(self, reference: Any = None, *, within: bool = True, threshold: float = 0.8,
                 columns: list[str] | None = None, seed: int = 0):
        if not 0.0 < threshold <= 1.0:
            raise HFSynthError(f"threshold must be in (0, 1], got {threshold}")
        if reference is None and not within:
            raise HFSynthError("DropNearDuplicates with within=False needs a reference")
        self.threshold, self.columns, self.within, self.seed = threshold, columns, within, seed
        self.reference_index = None
        if reference is not None:
            self.reference_index = self._index([self._text(r) for r in _reference_records(reference)])
        self.reason = " or ".join(filter(None, [f"near-duplicates an earlier row (Jaccard >= {threshold})" if within else "",
                                                f"near-duplicates a reference row (Jaccard >= {threshold})" if reference is not None else ""]))
        self.reset()

    def _index(self, texts: list[str]):
        from .evaluation.diversity import NearDuplicateIndex  # datasketch loads only when used

        return NearDuplicateIndex(texts, threshold=self.threshold, seed=self.seed)

    def reset(self) -> None:
        self._kept = self._index([]) if self.within else None

    def _text(self, record: dict) -> str:
        if self.columns:
            return "\n".join(str(record.get(c) or "") for c in self.columns)
        return _record_key(record)

    def keep(self, records: list[dict]) -> list[bool]:
        texts = [self._text(r) for r in records]
        flags = [True] * len(texts)
        if self.reference_index is not None:
            flags = [not hit for hit in self.reference_index.query_many(texts)]
        if self._kept is not None:
            for i, text in enumerate(texts):
                if flags[i]:
                    flags[i] = not self._kept.query(text)
                    if flags[i]:
                        self._kept.add(text)
        return flags


class DropCloseToTraining(CurationStep):
    """The privacy filter: drop rows within a distance threshold of their closest training record.

    Distances are Euclidean in the evaluation's row encoding (numbers min-max scaled by the
    training range, categories one-hot; see :class:`hf_synth.evaluation.RowEncoder`). Rows at a
    distance ``<= min_distance`` are dropped (``min_distance=0`` drops exact copies only). Give the
    threshold as ``min_distance``, or as ``quantile``: the distance below which that share of
    training rows have their own nearest training neighbour (``quantile=0.05`` drops synthetic rows
    closer to a training record than 95 % of training records are to each other).
    """

    def __init__(self, train: Any, *, min_distance: float | None = None, quantile: float | None = None,
                 schema: RecordSchema | None = None, column_kinds: dict[str, str] | None = None, max_rows: int = 20_000, seed: int = 0):
        from .evaluation.data import column_roles, label_names
        from .evaluation.encoding import RowEncoder
        from .evaluation.privacy import nearest_distances

        if (min_distance is None) == (quantile is None):
            raise HFSynthError("DropCloseToTraining needs exactly one of min_distance or quantile")
        if quantile is not None and not 0.0 <= quantile < 1.0:
            raise HFSynthError(f"quantile must be in [0, 1), got {quantile}")
        if min_distance is not None and min_distance < 0:
            raise HFSynthError(f"min_distance must be >= 0, got {min_distance}")
        dataset = load_input(train)
        self.schema = schema or RecordSchema.from_dataset(dataset)
        self.columns = self.schema.columns
        self.kinds = column_roles(self.schema, column_kinds)
        self._names = label_names(self.schema)
        frame = self._frame(dataset.to_list())
        self.encoder = RowEncoder(seed=seed).fit(frame, self.kinds)
        self.train_x = self.encoder.transform(frame)
        if quantile is not None:
            rng = np.random.default_rng(seed)
            probe = self.train_x[rng.permutation(len(self.train_x))[:max_rows]]
            own = nearest_distances(probe, self.train_x, exclude_self=True) if len(self.train_x) > 1 else np.zeros(1)
            min_distance = float(np.quantile(own, quantile))
        self.min_distance = float(min_distance)
        self.reason = f"within {self.min_distance:.4g} of a training record"

    def _frame(self, records: list[dict]):
        from .evaluation.data import to_frame

        return to_frame(records, self.columns, self.kinds, self._names)

    def keep(self, records: list[dict]) -> list[bool]:
        from .evaluation.privacy import nearest_distances

        if not records:
            return []
        distances = nearest_distances(self.encoder.transform(self._frame(records)), self.train_x)
        return [bool(d > self.min_distance) for d in distances]


class Threshold(CurationStep):
    """Keep rows whose score lies in ``[min, max]``; the score is a numeric column or a function
    of the record (e.g. a quality classifier's probability, a length)."""

    def __init__(self, score: str | Callable[[dict], float], *, min: float | None = None, max: float | None = None, name: str | None = None):
        if min is None and max is None:
            raise HFSynthError("Threshold needs min, max or both")
        if not (isinstance(score, str) or callable(score)):
            raise HFSynthError("Threshold's score is a column name or a function of the record")
        self.score, self.min, self.max = score, min, max
        label = name or (score if isinstance(score, str) else getattr(score, "__name__", "score"))
        bounds = " and ".join(filter(None, [f">= {min}" if min is not None else "", f"<= {max}" if max is not None else ""]))
        self.reason = f"{label} not {bounds}"

    def _value(self, record: dict) -> float | None:
        if isinstance(self.score, str):
            if self.score not in record:
                raise HFSynthError(f"Threshold: no column {self.score!r}; the rows have {sorted(record)}")
            value = record[self.score]
        else:
            value = self.score(record)
        return None if value is None else float(value)

    def keep(self, records: list[dict]) -> list[bool]:
        flags = []
        for record in records:
            value = self._value(record)
            ok = value is not None and not np.isnan(value)
            ok = ok and (self.min is None or value >= self.min) and (self.max is None or value <= self.max)
            flags.append(bool(ok))
        return flags


@dataclass
class CurationReport:
    """What a curation removed, step by step (``removed`` per step, in the order the steps ran)."""

    input_rows: int = 0
    steps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def removed(self) -> int:
        return sum(s["removed"] for s in self.steps)

    @property
    def output_rows(self) -> int:
        return self.input_rows - self.removed

    def add(self, step: CurationStep, removed: int) -> None:
        for entry in self.steps:
            if entry["step"] == step.name and entry["reason"] == step.reason:
                entry["removed"] += removed
                return
        self.steps.append({"step": step.name, "reason": step.reason, "removed": removed})

    def to_dict(self) -> dict[str, Any]:
        return {"input_rows": self.input_rows, "output_rows": self.output_rows, "removed": self.removed, "steps": [dict(s) for s in self.steps]}

    def __str__(self) -> str:
        lines = [f"curation: kept {self.output_rows} of {self.input_rows} rows"]
        lines += [f"  {s['step']}: removed {s['removed']} ({s['reason']})" for s in self.steps]
        return "\n".join(lines)


def check_steps(steps: Any) -> list[CurationStep]:
    steps = list(steps or [])
    bad = [type(s).__name__ for s in steps if not isinstance(s, CurationStep)]
    if bad:
        raise HFSynthError(f"curation steps must be CurationStep instances, got {bad}")
    return steps


def surviving(records: list[dict], steps: list[CurationStep], report: CurationReport) -> list[int]:
    """Indices of the ``records`` that pass every step, in order (step state is kept across calls)."""
    report.input_rows += len(records)
    alive = list(range(len(records)))
    for step in steps:
        flags = step.keep([records[i] for i in alive])
        kept = [i for i, ok in zip(alive, flags) if ok]
        report.add(step, len(alive) - len(kept))
        alive = kept
    return alive


def curate(dataset: Any, steps: list[CurationStep], *, batch_size: int = 1000) -> tuple[datasets.Dataset, CurationReport]:
    """Run ``steps`` in order with ``Dataset.filter``; returns the kept rows and what was removed.

    Example:
        >>> curated, report = curate(synthetic, [DropInvalid(schema), DropDuplicates()])
        >>> report.to_dict()["steps"][1]["removed"]
    """
    steps = check_steps(steps)
    data = load_input(dataset)
    report = CurationReport(input_rows=data.num_rows)
    for step in steps:
        step.reset()
        before = data.num_rows
        data = data.filter(step, batched=True, batch_size=batch_size, load_from_cache_file=False, desc=step.name)
        report.add(step, before - data.num_rows)
    return data, report
