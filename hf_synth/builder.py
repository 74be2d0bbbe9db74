"""``load_dataset`` for synthetic data: a `datasets` builder whose rows a generator samples on the fly.

::

    from hf_synth import load_dataset
    ds = load_dataset("user/adult-generator", "synthetic", num_rows={"train": 10_000, "test": 2_000}, seed=0)
    stream = load_dataset("adult-generator", num_rows=1_000_000, split="train", streaming=True)

:class:`SyntheticBuilder` is a public `datasets.GeneratorBasedBuilder`: ``download_and_prepare(num_proc=)``
samples the chunks of each split (see :mod:`hf_synth.streams`) in parallel and writes them to
datasets' cache; ``as_streaming_dataset`` samples them lazily instead. The cache directory is keyed
on the config and on a fingerprint of the generator's files, so a re-saved generator or another
Hub revision never reuses stale rows.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from typing import Any, Iterator

import datasets
from datasets.builder import Key

from .errors import GeneratorLoadError, HFSynthError
from .hub import GENERATOR_CONFIG_FILE, SCHEMA_FILE, generator_fingerprint, read_json, resolve_generator_dir
from .schema import RecordSchema
from .streams import (
    Chunk,
    batch_size_for,
    check_conditions,
    check_positive_int,
    check_sample_options,
    check_split_rows,
    plan_chunks,
    sample_chunk,
)

CONFIG_NAME = "synthetic"


@dataclasses.dataclass
class SyntheticConfig(datasets.BuilderConfig):
    """What to sample.

    Args:
        generator: A saved generator: a local directory or a Hub model repo id.
        revision: Branch, tag or commit of the Hub repo.
        num_rows: Rows per split, ``{"train": 10_000, "test": 2_000}``, or one number for a ``train``
            split (default: as many rows as the generator was trained on).
        seed: The same seed gives the same rows (every split and chunk derives its own seed from it).
        conditions: ``{"column": value}`` fixed in every row.
        batch_size: Rows decoded together (default: the generator's ``sample_batch_size``); also the
            unit that ``num_proc`` workers and DataLoader workers share out.
        sample_options: Other decoding options of the generator (``temperature``, ``top_p``, ...).
    """

    generator: str | None = None
    revision: str | None = None
    num_rows: int | dict | None = None
    seed: int = 0
    conditions: dict | None = None
    batch_size: int | None = None
    sample_options: dict | None = None


#: The config fields given as keyword arguments (the generator and its revision have their own).
SAMPLING_FIELDS = ("num_rows", "seed", "conditions", "batch_size", "sample_options")


@dataclasses.dataclass(frozen=True)
class GeneratorSource:
    """A saved generator resolved to a local directory, read without loading its weights."""

    directory: str
    fingerprint: str
    schema: RecordSchema
    meta: dict

    @classmethod
    def resolve(cls, path_or_repo_id: Any, revision: str | None, token: str | bool | None) -> "GeneratorSource":
        if not isinstance(path_or_repo_id, (str, os.PathLike)):
            raise HFSynthError("generator must be the path of a saved generator or a Hub model repo id, "
                               f"got {type(path_or_repo_id).__name__}")
        if revision is not None and not isinstance(revision, str):
            raise HFSynthError(f"revision must be a string, got {revision!r}")
        directory = resolve_generator_dir(str(path_or_repo_id), revision=revision, token=token)
        meta = read_json(os.path.join(directory, GENERATOR_CONFIG_FILE), "generator config")
        fingerprint = generator_fingerprint(directory)
        with open(os.path.join(directory, SCHEMA_FILE), encoding="utf-8") as f:
            schema = RecordSchema.from_json(f.read())
        return cls(os.path.abspath(directory), fingerprint, schema, meta)

    def generator_class(self) -> type:
        from .generators import GENERATORS

        name = self.meta.get("generator_class")
        if name not in GENERATORS:
            raise GeneratorLoadError(f"unknown generator class {name!r} in {self.directory}; known: {sorted(GENERATORS)}")
        return GENERATORS[name]


@functools.lru_cache(maxsize=4)
def _load_generator(directory: str, fingerprint: str) -> Any:
    """One loaded generator per process (``num_proc`` workers each load their own)."""
    from .generators.base import AutoGenerator

    return AutoGenerator.from_pretrained(directory)


class SyntheticBuilder(datasets.GeneratorBasedBuilder):
    """A dataset whose rows a saved hf_synth generator samples.

    Use it like any builder (``download_and_prepare(num_proc=...)``, ``as_dataset``,
    ``as_streaming_dataset``), or through :func:`hf_synth.load_dataset`.

    Example:
        >>> builder = SyntheticBuilder(generator="adult-generator", num_rows={"train": 1000, "test": 200}, seed=0)
        >>> builder.download_and_prepare(num_proc=2)
        >>> train = builder.as_dataset(split="train")
    """

    BUILDER_CONFIG_CLASS = SyntheticConfig
    BUILDER_CONFIGS = [SyntheticConfig(name=CONFIG_NAME, description="Rows sampled from an hf_synth generator")]
    DEFAULT_CONFIG_NAME = CONFIG_NAME

    def __init__(self, *args: Any, generator: Any = None, revision: str | None = None, token: str | bool | None = None,
                 dataset_name: str | None = None, hash: str | None = None, features: datasets.Features | None = None,
                 data_files: Any = None, data_dir: str | None = None, **kwargs: Any):
        if data_files is not None or data_dir is not None:
            raise HFSynthError("a synthetic dataset is sampled, not read: data_files and data_dir do not apply")
        if generator is None:
            raise HFSynthError("name the generator to sample from: generator='<generator directory or Hub id>'")
        self.source = GeneratorSource.resolve(generator, revision, token)
        if features is not None and features != self.source.schema.features:
            raise HFSynthError("features must equal the generator's schema features; cast the loaded dataset instead")
        self._num_proc: int | None = None
        self._preparing_pid: int | None = None
        # the generator's fingerprint is the cache directory's hash: a changed generator never reuses rows
        super().__init__(*args, generator=str(generator), revision=revision, token=token,
                         dataset_name=dataset_name or "hf_synth", hash=self.source.fingerprint, **kwargs)
        self._check_config()

    def _check_config(self) -> None:
        config = self.config
        check_positive_int("seed", config.seed, allow_zero=True)
        self.batch_size()
        if config.sample_options is not None and not isinstance(config.sample_options, dict):
            raise HFSynthError(f"sample_options must be a dict, got {type(config.sample_options).__name__}")
        check_sample_options(self.source.generator_class(), config.sample_options)
        self.split_rows()
        check_conditions(self.source.schema, config.conditions)

    def split_rows(self) -> dict[str, int]:
        """``{split: rows}`` of this config."""
        num_rows = self.config.num_rows
        if num_rows is None:
            num_rows = self.source.meta.get("training", {}).get("rows") or 0
            if not num_rows:
                raise HFSynthError("num_rows is required: the generator does not record how many rows it was trained on")
        return check_split_rows(num_rows)

    def batch_size(self) -> int:
        return batch_size_for(self.source.meta.get("config", {}), self.config.batch_size)

    # ------------------------------------------------------------------ datasets.DatasetBuilder
    def _info(self) -> datasets.DatasetInfo:
        source = self.source.meta.get("training", {}).get("dataset")
        return datasets.DatasetInfo(
            description=f"Synthetic rows sampled by an hf_synth {self.source.meta.get('generator_class')}"
            + (f" trained on {source}" if source else ""),
            features=self.source.schema.features,
        )

    def download_and_prepare(self, *args: Any, num_proc: int | None = None, **kwargs: Any) -> None:
        self._num_proc, self._preparing_pid = num_proc, os.getpid()  # workers then use their share of the cores
        super().download_and_prepare(*args, num_proc=num_proc, **kwargs)

    def _split_generators(self, dl_manager: Any) -> list[datasets.SplitGenerator]:
        batch_size = self.batch_size()
        return [
            datasets.SplitGenerator(name=split, gen_kwargs={"chunks": plan_chunks(split, rows, batch_size, self.config.seed)})
            for split, rows in self.split_rows().items()
        ]

    def _generate_examples(self, chunks: list[Chunk]) -> Iterator[tuple[Key, dict]]:
        self._share_cores()
        generator = _load_generator(self.source.directory, self.source.fingerprint)
        options = {**(self.config.sample_options or {}), "progress": False}
        for shard, chunk in enumerate(chunks):
            for index, row in enumerate(sample_chunk(generator, chunk, self.config.conditions, options)):
                yield Key(shard, index), row

    def _share_cores(self) -> None:
        in_worker = self._preparing_pid is not None and os.getpid() != self._preparing_pid
        if in_worker and self._num_proc and self._num_proc > 1:
            import torch

            torch.set_num_threads(max(1, (os.cpu_count() or 1) // self._num_proc))


def split_names(split: Any) -> list[str]:
    """The split names a ``split`` argument reads (``"train[:10%]+test"`` -> ``["train", "test"]``)."""
    if split is None:
        return []
    return [re.sub(r"\[.*\]$", "", part.strip()) for part in str(split).split("+")]


def load_dataset(
    path: str,
    name: str | None = CONFIG_NAME,
    *,
    split: str | None = None,
    cache_dir: str | None = None,
    download_mode: str | None = None,
    verification_mode: str | None = None,
    keep_in_memory: bool | None = None,
    revision: str | None = None,
    token: str | bool | None = None,
    streaming: bool = False,
    num_proc: int | None = None,
    **config_kwargs: Any,
) -> datasets.Dataset | datasets.DatasetDict | datasets.IterableDataset | datasets.IterableDatasetDict:
    """Sample a synthetic dataset from a saved generator, with `datasets.load_dataset`'s signature.

    Args:
        path: A saved generator: a local directory or a Hub model repo id.
        name: The config name, ``"synthetic"``.
        split: Which split to return (``"train"``, ``"train[:10%]"``, ``"train+test"``); ``None``
            returns every split in a DatasetDict.
        revision: Branch, tag or commit of the generator's Hub repo.
        streaming: Return an IterableDataset that samples rows lazily as they are read.
        num_proc: Sample the chunks of each split in this many processes (non-streaming only).
        **config_kwargs: :class:`SyntheticConfig` fields: ``num_rows``, ``seed``, ``conditions``,
            ``batch_size``, ``sample_options``.

    Example:
        >>> ds = load_dataset("user/adult-generator", "synthetic", num_rows=1000, seed=0, split="train")
    """
    if name not in (None, CONFIG_NAME):
        raise HFSynthError(f"unknown config {name!r}; hf_synth datasets have one config, {CONFIG_NAME!r}")
    if "generator" in config_kwargs:
        raise HFSynthError("give the generator as the first argument (path)")
    unknown = sorted(set(config_kwargs) - set(SAMPLING_FIELDS))
    if unknown:
        raise HFSynthError(f"unknown arguments {unknown}; the synthetic config takes {', '.join(SAMPLING_FIELDS)}")
    if streaming and num_proc is not None:
        raise HFSynthError("num_proc is for non-streaming loading; to read a stream in parallel use DataLoader workers")
    if num_proc is not None:
        check_positive_int("num_proc", num_proc)
    builder = SyntheticBuilder(config_name=CONFIG_NAME, cache_dir=cache_dir, generator=path, revision=revision,
                               token=token, **config_kwargs)
    known = builder.split_rows()
    for split_name in split_names(split):
        if split_name not in known and split_name != "all":
            raise HFSynthError(f"unknown split {split_name!r}; this config samples {', '.join(known)}")
    if streaming:
        if split is not None and "[" in str(split):
            raise HFSynthError("a streamed split cannot be sliced; use .skip() and .take() on the stream")
        return builder.as_streaming_dataset(split=split)
    builder.download_and_prepare(download_mode=download_mode, verification_mode=verification_mode, num_proc=num_proc)
    return builder.as_dataset(split=split, in_memory=bool(keep_in_memory))
