"""What every generator shares: the fit / sample API, persistence, the Hub and the registry.

Subclasses implement ``fit``, ``_sample_rows``, ``_save_components`` and ``_load_components``;
this class gives them ``sample`` (conditions, seeding, output files), ``impute``,
``save_pretrained`` / ``from_pretrained`` / ``push_to_hub`` and the model card.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import os
import shutil
import tempfile
from typing import Any, ClassVar

import datasets

from .. import __version__
from ..conditions import condition_rows
from ..configuration import ConfigError, GeneratorConfig
from ..errors import GeneratorLoadError, HFSynthError
from ..hub import (
    GENERATOR_CONFIG_FILE,
    MODEL_CARD_FILE,
    SCHEMA_FILE,
    generator_fingerprint,
    hash_files,
    hub_commit,
    push_folder,
    read_json,
    replace_directory,
    resolve_generator_dir,
    verify_files,
    write_json,
)
from ..io import check_output_path, load_input, write_dataset
from ..sampling import SamplingReport
from ..schema import RecordSchema

logger = logging.getLogger(__name__)
GENERATORS: dict[str, type["BaseGenerator"]] = {}
FORMAT_VERSION = 1
#: Sub-folder of a saved generator holding its evaluation report (report.json, report.md, PNGs).
EVALUATION_DIR = "evaluation"


def register(cls: type["BaseGenerator"]) -> type["BaseGenerator"]:
    """Class decorator: make a generator loadable by :class:`AutoGenerator`."""
    GENERATORS[cls.__name__] = cls
    return cls


class BaseGenerator(abc.ABC):
    """Base class of hf_synth generators (SDV-like ``fit`` / ``sample`` in Hugging Face terms)."""

    config_class: ClassVar[type[GeneratorConfig]]
    method: ClassVar[str]
    #: Sampling options that hold one entry per row (DiffLM's ``latents``): sliced with the rows
    #: whenever only some of them are sampled again.
    row_options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: GeneratorConfig | None = None, **kwargs: Any):
        if config is None:
            known = {f.name for f in dataclasses.fields(self.config_class)}
            unknown = sorted(set(kwargs) - known)
            if unknown:
                raise ConfigError(f"unknown {self.config_class.__name__} fields: {', '.join(unknown)}")
            config = self.config_class(**kwargs)
        elif kwargs:
            config = config.replace(**kwargs)
        self.config = config
        self.schema: RecordSchema | None = None
        self.training_info: dict[str, Any] = {}
        #: The :class:`~hf_synth.evaluation.Report` saved with the generator and shown in its model card.
        self.evaluation: Any = None
        self.last_report: SamplingReport | None = None
        self.last_curation_report: Any = None
        #: Where a loaded or pushed generator lives: ``path_or_repo_id``, ``revision``, ``commit``
        #: (Hub), ``directory`` and ``fingerprint`` (of the saved files); ``None`` once (re)fitted.
        self.source: dict[str, Any] | None = None

    # ------------------------------------------------------------------ to implement
    @abc.abstractmethod
    def fit(self, dataset: Any, **load_kwargs: Any) -> "BaseGenerator":
        """Train on ``dataset`` (anything :func:`hf_synth.io.load_input` reads)."""

    @abc.abstractmethod
    def _sample_rows(self, rows: list[dict], *, seed: int, nonnull: list[tuple] | None, **options: Any) -> tuple[list[dict], SamplingReport]:
        """One record per entry of ``rows`` (the fixed values of that row)."""

    @abc.abstractmethod
    def _save_components(self, directory: str) -> dict[str, Any]:
        """Write the components into ``directory``; return extra metadata for generator_config.json."""

    @abc.abstractmethod
    def _load_components(self, directory: str, meta: dict[str, Any]) -> None:
        """Inverse of :meth:`_save_components` (the schema is already loaded)."""

    # ------------------------------------------------------------------ sampling
    def _check_fitted(self) -> None:
        if self.schema is None:
            raise HFSynthError(f"this {type(self).__name__} is not fitted; call fit() or from_pretrained() first")

    def sample(
        self,
        num_rows: int | None = None,
        *,
        conditions: Any = None,
        seed: int | None = None,
        output: str | None = None,
        overwrite: bool = False,
        curation: list | None = None,
        max_rounds: int = 10,
        **options: Any,
    ) -> datasets.Dataset:
        """Sample synthetic rows as a `datasets.Dataset` with the training data's Features.

        Args:
            num_rows: How many rows (not needed when ``conditions`` holds one row per sample).
            conditions: ``{"column": value}`` fixed for every row, or a Dataset / DataFrame / list of
                dicts with some columns, one sampled row per condition row (``None`` = free).
            seed: The same seed gives the same rows on the same machine (default: the config's seed).
            output: Also write the rows to this ``.csv`` / ``.jsonl`` / ``.parquet`` file.
            overwrite: Replace ``output`` if it exists.
            curation: :mod:`hf_synth.curation` steps applied to the sampled rows; rejected rows are
                sampled again (with their conditions) for up to ``max_rounds`` rounds, and
                ``last_curation_report`` says what was removed and why. Rows still rejected after
                the last round are left out, with a warning.
            max_rounds: Sampling rounds allowed when ``curation`` rejects rows, or when generated code
                (a text field the schema knows as Python) does not parse.
            **options: Decoding options of the generator (``batch_size``, ``temperature``, ...).

        Example:
            >>> synthetic = generator.sample(1000, conditions={"sex": "Female"}, seed=0)
        """
        self._check_fitted()
        if output is not None:
            check_output_path(output, overwrite)
        records = self.sample_records(num_rows, conditions=conditions, seed=seed, curation=curation,
                                      max_rounds=max_rounds, **options)
        return self._finish(records, output, overwrite)

    def sample_records(self, num_rows: int | None = None, *, conditions: Any = None, seed: int | None = None,
                       curation: list | None = None, max_rounds: int = 10, **options: Any) -> list[dict]:
        """What :meth:`sample` returns, as plain dicts with the columns in the dataset's order (streams and
        dataset builders use this to skip building an Arrow table per chunk)."""
        self._check_fitted()
        rows = condition_rows(self.schema, conditions, num_rows)
        seed = self.config.seed if seed is None else seed
        if curation:
            records, report = self._sample_curated(rows, seed, curation, max_rounds, options)
        else:
            records, report = self._sample_parsing_rows(rows, seed, max_rounds, options)
        self.last_report = report
        logger.info("sampling: %s", report)
        columns = self.schema.columns
        return [{c: r[c] for c in columns} for r in records]

    def as_iterable_dataset(self, num_rows: int | None = None, *, seed: int | None = None, conditions: Any = None,
                            batch_size: int | None = None, num_shards: int | None = None,
                            **options: Any) -> datasets.IterableDataset:
        """A `datasets.IterableDataset` that samples rows as they are read, for training loops.

        Rows are sampled in chunks of ``batch_size``, each with a seed derived from ``seed``. With
        ``num_rows`` the stream is bounded and holds the same rows as
        ``hf_synth.load_dataset(<this generator>, num_rows=num_rows, seed=seed, split="train",
        streaming=True)``; without it the stream is endless, cut into ``num_shards`` independent
        shards (default 16). torch DataLoader workers (and ``split_dataset_by_node``) each read
        their own shards, so no row is sampled twice.

        Example:
            >>> stream = generator.as_iterable_dataset(seed=0).shuffle(buffer_size=1000, seed=0)
            >>> loader = torch.utils.data.DataLoader(stream.with_format("torch"), batch_size=64, num_workers=2)
        """
        from ..streams import iterable_dataset

        return iterable_dataset(self, num_rows, seed=seed, conditions=conditions, batch_size=batch_size,
                                num_shards=num_shards, split="train", options=options)

    def _sample_parsing_rows(self, rows: list[dict], seed: int, max_rounds: int,
                             options: dict[str, Any]) -> tuple[list[dict], SamplingReport]:
        """:meth:`_sample_rows`, then rows whose code fields do not parse are sampled again (up to
        ``max_rounds`` rounds in all). Decoding guarantees everything else in the schema; Python
        syntax it cannot, so it is checked here. Rows that never parse are kept, with a warning,
        so the row count is always the one asked for."""
        records, report = self._sample_rows(rows, seed=seed, nonnull=None, **options)
        if not self.schema.has_code:
            return records, report
        from ..streams import derive_seed

        bad = [i for i, record in enumerate(records) if self.schema.validate(record)]
        for round_ in range(1, max_rounds):
            if not bad:
                break
            again, extra = self._sample_rows([rows[i] for i in bad], seed=derive_seed(seed, "code", round_), nonnull=None,
                                             **self._options_for(options, bad))
            report.retried += len(bad)
            report.seconds += extra.seconds
            for i, record in zip(bad, again):
                records[i] = record
            bad = [i for i in bad if self.schema.validate(records[i])]
        if bad:
            logger.warning("%d of %d sampled rows hold code that does not parse after %d rounds; they are kept "
                           "(drop them with curation=[DropInvalid(generator.schema)])", len(bad), len(rows), max_rounds)
        return records, report

    def _options_for(self, options: dict[str, Any], indices: list[int]) -> dict[str, Any]:
        """``options`` for the rows at ``indices``: per-row options (:attr:`row_options`) are sliced."""
        return {name: (value[list(indices)] if name in self.row_options and value is not None else value)
                for name, value in options.items()}

    def _sample_curated(self, rows: list[dict], seed: int, steps: list, max_rounds: int,
                        options: dict[str, Any]) -> tuple[list[dict], SamplingReport]:
        """Sample, curate, and sample again the rows curation rejected (round ``r`` uses ``seed + r``)."""
        from ..curation import CurationReport, check_steps, surviving

        steps = check_steps(steps)
        if max_rounds < 1:
            raise HFSynthError(f"max_rounds must be >= 1, got {max_rounds}")
        for step in steps:
            step.reset()
        curation_report = CurationReport()
        total = SamplingReport(len(rows), 0, 0, 0.0)
        found: list[dict | None] = [None] * len(rows)
        pending = list(range(len(rows)))
        for round_ in range(max_rounds):
            sampled, report = self._sample_parsing_rows([rows[i] for i in pending], seed + round_, max_rounds,
                                                        self._options_for(options, pending))
            total.produced += report.produced
            total.retried += report.retried
            total.seconds += report.seconds
            passed = set(surviving(sampled, steps, curation_report))
            for j in passed:
                found[pending[j]] = sampled[j]
            pending = [row for j, row in enumerate(pending) if j not in passed]
            if not pending:
                break
        if pending:
            logger.warning("curation rejected %d of %d rows in all %d rounds; returning %d rows",
                           len(pending), len(rows), max_rounds, len(rows) - len(pending))
        self.last_curation_report = curation_report
        return [r for r in found if r is not None], total

    def impute(self, dataset: Any, *, seed: int | None = None, output: str | None = None,
               overwrite: bool = False, **options: Any) -> datasets.Dataset:
        """Fill the missing cells of ``dataset``, conditioning each row on its present cells."""
        self._check_fitted()
        if output is not None:
            check_output_path(output, overwrite)
        data = load_input(dataset)
        unknown = [c for c in data.column_names if c not in self.schema.fields]
        if unknown:
            raise HFSynthError(f"unknown columns {unknown}; the generator knows {self.schema.columns}")
        rows = condition_rows(self.schema, data, None) if data.num_rows else []
        if not rows:
            raise HFSynthError("the dataset to impute is empty")
        nonnull = [tuple(c for c in self.schema.fields if c not in row and self.schema.fields[c].kind != "null") for row in rows]
        seed = self.config.seed if seed is None else seed
        todo = [i for i, row in enumerate(rows) if nonnull[i]]
        records = [dict(row) for row in rows]
        report = SamplingReport(0, 0, 0, 0.0)
        if todo:
            filled, report = self._sample_rows([rows[i] for i in todo], seed=seed, nonnull=[nonnull[i] for i in todo],
                                               **self._options_for(options, todo))
            for i, record in zip(todo, filled):
                records[i] = record
        self.last_report = report
        columns = self.schema.columns
        return self._finish([{c: r.get(c) for c in columns} for r in records], output, overwrite)

    def _finish(self, records: list[dict], output: str | None, overwrite: bool) -> datasets.Dataset:
        """``records`` (columns in the dataset's order) as a Dataset with the schema's Features, also
        written to ``output``."""
        columns = self.schema.columns
        if records:
            dataset = datasets.Dataset.from_list(records, features=self.schema.features)
        else:  # curation may reject every row; from_list cannot build an empty table
            dataset = datasets.Dataset.from_dict({c: [] for c in columns}, features=self.schema.features)
        if output is not None:
            write_dataset(dataset, output, overwrite)
        return dataset

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, real: Any, *, num_rows: int | None = None, holdout: Any = None, target: str | None = None,
                 seed: int | None = None, sample_options: dict[str, Any] | None = None, **evaluate_options: Any) -> Any:
        """Sample ``num_rows`` (default: as many as ``real`` has), evaluate them against ``real`` with
        :func:`hf_synth.evaluate`, and keep the report in :attr:`evaluation`, so that
        ``save_pretrained`` / ``push_to_hub`` publish it with the model card.

        Example:
            >>> report = generator.evaluate("adult_train.csv", holdout="adult_test.csv", target="income")
            >>> generator.push_to_hub("user/adult-generator")  # card with the evaluation section
        """
        from ..evaluation.report import evaluate

        self._check_fitted()
        real_data = load_input(real)
        synthetic = self.sample(num_rows or real_data.num_rows, seed=seed, **(sample_options or {}))
        self.evaluation = evaluate(real_data, synthetic, holdout=holdout, target=target, schema=self.schema,
                                   seed=self.config.seed if seed is None else seed, **evaluate_options)
        return self.evaluation

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, directory: str) -> str:
        """Save the generator (config, schema, components, model card) to ``directory``.

        The directory is written under a temporary name and renamed at the end.
        """
        self._check_fitted()
        parent = os.path.dirname(os.path.abspath(directory))
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".save-", dir=parent)
        try:
            with open(os.path.join(tmp, SCHEMA_FILE), "w", encoding="utf-8") as f:
                f.write(self.schema.to_json())
            extra = self._save_components(tmp)
            if self.evaluation is not None:
                os.makedirs(os.path.join(tmp, EVALUATION_DIR))
                self.evaluation.write_files(os.path.join(tmp, EVALUATION_DIR))
            meta = {
                "generator_class": type(self).__name__,
                "method": self.method,
                "format_version": FORMAT_VERSION,
                "hf_synth_version": __version__,
                "config": self.config.to_dict(),
                "training": self.training_info,
                "evaluation": self.evaluation.summary() if self.evaluation is not None else None,
                **extra,
                "files": hash_files(tmp),
            }
            write_json(os.path.join(tmp, GENERATOR_CONFIG_FILE), meta)
            with open(os.path.join(tmp, MODEL_CARD_FILE), "w", encoding="utf-8") as f:
                f.write(self.model_card())
            replace_directory(tmp, directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return directory

    @classmethod
    def from_pretrained(cls, path_or_repo_id: str, *, revision: str | None = None, token: str | bool | None = None) -> "BaseGenerator":
        """Load a generator from a directory or a Hub model repo (``revision`` pins a commit, tag or branch)."""
        directory = resolve_generator_dir(str(path_or_repo_id), revision=revision, token=token)
        meta = read_json(os.path.join(directory, GENERATOR_CONFIG_FILE), "generator config")
        name = meta.get("generator_class")
        if cls is not BaseGenerator and name != cls.__name__:
            raise GeneratorLoadError(f"{path_or_repo_id} holds a {name}, not a {cls.__name__}; use AutoGenerator")
        target = GENERATORS.get(name)
        if target is None:
            raise GeneratorLoadError(f"unknown generator class {name!r} in {path_or_repo_id}; known: {sorted(GENERATORS)}")
        if meta.get("format_version", 0) > FORMAT_VERSION:
            raise GeneratorLoadError(f"{path_or_repo_id} was saved by a newer hf_synth; upgrade to load it")
        verify_files(directory, meta.get("files", {}))
        generator = target(target.config_class.from_dict(meta.get("config", {})))
        try:
            generator.schema = RecordSchema.from_json(open(os.path.join(directory, SCHEMA_FILE), encoding="utf-8").read())
        except (KeyError, TypeError, ValueError) as err:
            raise GeneratorLoadError(f"corrupted {SCHEMA_FILE} in {path_or_repo_id}: {err}") from None
        generator.training_info = meta.get("training", {})
        if os.path.isfile(os.path.join(directory, EVALUATION_DIR, "report.json")):
            from ..evaluation.report import Report

            generator.evaluation = Report.load(os.path.join(directory, EVALUATION_DIR))
        generator._load_components(directory, meta)
        generator.source = {"path_or_repo_id": str(path_or_repo_id), "revision": revision,
                            "commit": hub_commit(directory), "directory": os.path.abspath(directory),
                            "fingerprint": generator_fingerprint(directory)}
        return generator

    def push_to_hub(self, repo_id: str, *, private: bool | None = None, token: str | bool | None = None,
                    commit_message: str = "Upload hf_synth generator") -> str:
        """Save and upload the generator as a Hub model repo; returns the commit URL."""
        self._check_fitted()
        previous = self.source
        self.source = {"path_or_repo_id": repo_id, "revision": None}  # the model card shows how to load it
        try:
            with tempfile.TemporaryDirectory() as tmp:
                folder = os.path.join(tmp, "generator")
                self.save_pretrained(folder)
                info = push_folder(folder, repo_id, private=private, token=token, commit_message=commit_message)
                # from now on this generator is that commit (a synthetic dataset card links to it)
                self.source.update(commit=getattr(info, "oid", None), directory=None,
                                   fingerprint=generator_fingerprint(folder))
        except BaseException:
            self.source = previous
            raise
        return getattr(info, "commit_url", str(info))

    def push_synthetic_dataset(self, repo_id: str, *, num_rows: int | dict[str, int], seed: int | None = None,
                               conditions: dict | None = None, batch_size: int | None = None,
                               private: bool | None = None, token: str | bool | None = None,
                               commit_message: str = "Upload synthetic data sampled with hf_synth", **options: Any) -> str:
        """Sample splits and push them as a Hub dataset repo that plain ``datasets.load_dataset`` reads.

        The rows are those of ``hf_synth.load_dataset(<this generator>, num_rows=num_rows, seed=seed)``.
        The dataset card names the generator and its revision (when it was loaded from or pushed to
        the Hub), the seed and split sizes, and shows the generator's evaluation when it has one.

        Example:
            >>> generator.push_synthetic_dataset("user/synthetic-adult", num_rows={"train": 30_000, "test": 5_000}, seed=0)
            >>> datasets.load_dataset("user/synthetic-adult")  # anywhere, no hf_synth needed
        """
        from ..publish import push_synthetic_dataset

        return push_synthetic_dataset(self, repo_id, num_rows=num_rows, seed=seed, conditions=conditions,
                                      batch_size=batch_size, private=private, token=token,
                                      commit_message=commit_message, options=options)

    # ------------------------------------------------------------------ model card
    def card_training_lines(self) -> list[str]:
        """What the model card says about the model and how it was trained (one bullet each)."""
        return []

    def model_card(self) -> str:
        """The README.md written next to the generator."""
        from ..model_card import generator_card

        return generator_card(self)


class AutoGenerator:
    """Loads any hf_synth generator by reading its saved ``generator_config.json``.

    Example:
        >>> generator = AutoGenerator.from_pretrained("user/adult-generator")
        >>> generator.sample(10, seed=0)
    """

    @staticmethod
    def from_pretrained(path_or_repo_id: str, *, revision: str | None = None, token: str | bool | None = None) -> BaseGenerator:
        return BaseGenerator.from_pretrained(path_or_repo_id, revision=revision, token=token)
