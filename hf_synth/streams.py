"""Rows sampled in seeded chunks: the unit shared by ``load_dataset``, streams and sharding.

A split of ``n`` rows is cut into chunks of ``batch_size`` rows. Chunk ``i`` of split ``s`` is
sampled with its own seed, derived from ``(seed, s, i)``, so a chunk's rows do not depend on which
process samples it, in which order, or whether the split is streamed or written to the cache: the
same config always gives the same rows, with ``num_proc`` workers, DataLoader workers or neither.
An endless stream is a fixed number of shards, each an endless sequence of chunks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import re
import uuid
import weakref
from typing import TYPE_CHECKING, Any, Iterator

import datasets

from .conditions import condition_rows
from .errors import HFSynthError

if TYPE_CHECKING:
    from .generators.base import BaseGenerator
    from .schema import RecordSchema

#: Shards of an endless stream: enough for the DataLoader workers of one machine.
DEFAULT_STREAM_SHARDS = 16
DEFAULT_BATCH_SIZE = 512
_SPLIT_NAME = re.compile(r"^\w+(\.\w+)*$")


def derive_seed(seed: int, *parts: Any) -> int:
    """A seed for one chunk, independent of Python's hash randomisation and of the platform."""
    digest = hashlib.sha256(json.dumps([seed, *parts]).encode()).digest()
    return int.from_bytes(digest[:8], "big") % (2**63)


@dataclasses.dataclass(frozen=True)
class Chunk:
    """``rows`` rows of split ``split``, sampled together with one seed."""

    split: str
    index: int
    rows: int
    seed: int


def plan_chunks(split: str, num_rows: int, batch_size: int, seed: int) -> list[Chunk]:
    return [Chunk(split, index, min(batch_size, num_rows - first), derive_seed(seed, split, index))
            for index, first in enumerate(range(0, num_rows, batch_size))]


def sample_chunk(generator: "BaseGenerator", chunk: Chunk, conditions: dict | None,
                 options: dict[str, Any]) -> list[dict]:
    """The chunk's rows, decoded as one batch."""
    return generator.sample_records(chunk.rows, conditions=conditions, seed=chunk.seed,
                                    **{**options, "batch_size": chunk.rows})


def batch_size_for(generator_config: dict[str, Any], batch_size: Any) -> int:
    """``batch_size`` checked, or the generator's own sampling batch size."""
    if batch_size is not None:
        return check_positive_int("batch_size", batch_size)
    return int(generator_config.get("sample_batch_size") or DEFAULT_BATCH_SIZE)


def check_positive_int(name: str, value: Any, *, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        raise HFSynthError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} integer, got {value!r}")
    return value


def check_sample_options(generator_class: type, options: dict[str, Any] | None) -> dict[str, Any]:
    """Decoding options the generator class accepts (checked here rather than inside a worker)."""
    import inspect

    options = dict(options or {})
    for name in ("seed", "num_rows", "conditions", "batch_size"):
        if name in options:
            raise HFSynthError(f"give {name} as its own argument, not among the sampling options")
    accepted = set(inspect.signature(generator_class._sample_rows).parameters) - {"self", "rows", "seed", "nonnull"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise HFSynthError(f"unknown sampling options {unknown} for {generator_class.__name__}; "
                           f"it takes {', '.join(sorted(accepted - {'batch_size'}))}")
    return options


def check_split_rows(num_rows: Any) -> dict[str, int]:
    """``{split: rows}`` from ``num_rows`` given as one number (a ``train`` split) or per split."""
    if not isinstance(num_rows, dict):
        num_rows = {"train": num_rows}
    if not num_rows:
        raise HFSynthError("num_rows names no split")
    for split, rows in num_rows.items():
        if not isinstance(split, str) or not _SPLIT_NAME.match(split):
            raise HFSynthError(f"invalid split name {split!r}: use letters, digits and underscores")
        check_positive_int(f"num_rows[{split!r}]", rows)
    return dict(num_rows)


def sample_splits(generator: "BaseGenerator", num_rows: Any, *, seed: int, conditions: Any, batch_size: int | None,
                  options: dict[str, Any]) -> datasets.DatasetDict:
    """Every split in this process: the same rows as ``hf_synth.load_dataset`` with the same config."""
    splits = check_split_rows(num_rows)
    check_positive_int("seed", seed, allow_zero=True)
    conditions = check_conditions(generator.schema, conditions)
    batch_size = batch_size_for(generator.config.to_dict(), batch_size)
    options = {**check_sample_options(type(generator), options), "progress": False}
    return datasets.DatasetDict({
        split: datasets.Dataset.from_list([row for chunk in plan_chunks(split, rows, batch_size, seed)
                                           for row in sample_chunk(generator, chunk, conditions, options)],
                                          features=generator.schema.features)
        for split, rows in splits.items()
    })


def check_conditions(schema: "RecordSchema", conditions: Any) -> dict | None:
    """Fixed column values for every row: a dict checked against the schema (a clear error now,
    rather than one inside a worker)."""
    if conditions is None:
        return None
    if not isinstance(conditions, dict):
        raise HFSynthError(f"conditions must be a dict of column values, got {type(conditions).__name__}")
    condition_rows(schema, conditions, 1)
    return dict(conditions)


# ---------------------------------------------------------------------------- generator handles
_LIVE: "weakref.WeakValueDictionary[str, BaseGenerator]" = weakref.WeakValueDictionary()


class GeneratorRef:
    """A handle on a generator that pickles as a few strings.

    ``Dataset.map`` hashes its function to name the cache file and sends it to ``num_proc``
    workers; torch's DataLoader copies its dataset into worker processes. Pickling the whole model
    would be slow for a large LM, so the handle pickles its key and the directory the generator
    was loaded from. Forked workers find the generator in this process-wide table; a spawned worker
    loads it again from the directory.
    """

    def __init__(self, generator: "BaseGenerator"):
        source = generator.source or {}
        # a saved generator is named by its files (so datasets' cache can be reused); one that only
        # lives in memory by a fresh name each time (so a refitted generator never hits a stale cache)
        fingerprint = source.get("fingerprint")
        self.key = f"generator-{fingerprint}" if fingerprint else f"memory-{uuid.uuid4().hex}"
        self.directory = source.get("directory")
        self._generator: BaseGenerator | None = generator
        _LIVE[self.key] = generator

    def __getstate__(self) -> dict[str, Any]:
        return {"key": self.key, "directory": self.directory}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.key, self.directory, self._generator = state["key"], state["directory"], None

    def get(self) -> "BaseGenerator":
        if self._generator is None:
            generator = _LIVE.get(self.key)
            if generator is None:
                if self.directory is None or not os.path.isdir(self.directory):
                    raise HFSynthError(
                        "this worker process cannot reach the generator: it was never saved, and the worker was "
                        "not forked from the process that holds it. Save it with save_pretrained and load it with "
                        "from_pretrained before using it in worker processes"
                    )
                from .generators.base import AutoGenerator

                generator = AutoGenerator.from_pretrained(self.directory)
                _LIVE[self.key] = generator
            self._generator = generator
        return self._generator


# ---------------------------------------------------------------------------- streams
class _ChunkRows:
    """The example function of :func:`iterable_dataset` (picklable, see :class:`GeneratorRef`)."""

    def __init__(self, ref: GeneratorRef, conditions: dict | None, options: dict[str, Any], batch_size: int, seed: int):
        self.ref, self.conditions, self.options = ref, conditions, options
        self.batch_size, self.seed = batch_size, seed

    def __call__(self, shards: list) -> Iterator[dict]:
        generator = self.ref.get()
        for shard in shards:
            chunks = [shard] if isinstance(shard, Chunk) else self._endless(shard)
            for chunk in chunks:
                yield from sample_chunk(generator, chunk, self.conditions, self.options)

    def _endless(self, stream: int) -> Iterator[Chunk]:
        for index in itertools.count():
            yield Chunk(f"stream-{stream}", index, self.batch_size, derive_seed(self.seed, "stream", stream, index))


def iterable_dataset(generator: "BaseGenerator", num_rows: int | None, *, seed: int | None, conditions: Any,
                     batch_size: int | None, num_shards: int | None, split: str, options: dict[str, Any],
                     ) -> datasets.IterableDataset:
    """See :meth:`BaseGenerator.as_iterable_dataset`."""
    generator._check_fitted()
    seed = generator.config.seed if seed is None else seed
    check_positive_int("seed", seed, allow_zero=True)
    batch_size = batch_size_for(generator.config.to_dict(), batch_size)
    conditions = check_conditions(generator.schema, conditions)
    if num_rows is None:
        shards: list = list(range(check_positive_int("num_shards", num_shards or DEFAULT_STREAM_SHARDS)))
    else:
        if num_shards is not None:
            raise HFSynthError("num_shards is only for endless streams; a bounded stream has one shard per chunk "
                               "of batch_size rows")
        shards = plan_chunks(split, check_positive_int("num_rows", num_rows), batch_size, seed)
    options = check_sample_options(type(generator), options)
    rows = _ChunkRows(GeneratorRef(generator), conditions, {**options, "progress": False}, batch_size, seed)
    return datasets.IterableDataset.from_generator(rows, features=generator.schema.features,
                                                   gen_kwargs={"shards": shards}, split=datasets.NamedSplit(split))
