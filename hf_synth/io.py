"""Reading training data and writing synthetic data.

Inputs: a `datasets.Dataset`, a pandas DataFrame, a list of dicts, a ``.csv`` / ``.jsonl`` /
``.json`` / ``.parquet`` file, a directory written by ``Dataset.save_to_disk``, or a Hub dataset id.
Outputs are written to a temporary name next to the target and renamed at the end, so a failed
write never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Any, Iterator

import datasets

from .errors import HFSynthError, OutputExistsError

FILE_BUILDERS = {".csv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}
OUTPUT_FORMATS = (".csv", ".jsonl", ".parquet")


def load_input(
    source: Any,
    *,
    config: str | None = None,
    split: str = "train",
    columns: list[str] | None = None,
    revision: str | None = None,
) -> datasets.Dataset:
    """Load training data from any supported source as a `datasets.Dataset`.

    Example:
        >>> ds = load_input("adult.csv", columns=["age", "sex", "income"])
    """
    if isinstance(source, datasets.DatasetDict):
        if split not in source:
            raise HFSynthError(f"no split {split!r}; the dataset has {sorted(source)}")
        dataset = source[split]
    elif isinstance(source, datasets.Dataset):
        dataset = source
    elif isinstance(source, list):
        dataset = _from_records(source)
    elif _is_dataframe(source):
        dataset = _from_pandas(source)
    elif isinstance(source, (str, os.PathLike)):
        dataset = _load_path(str(source), config=config, split=split, revision=revision)
    else:
        raise HFSynthError(
            f"cannot read training data from a {type(source).__name__}; give a datasets.Dataset, a pandas "
            "DataFrame, a list of dicts, a .csv/.jsonl/.parquet file, a saved dataset directory or a Hub id"
        )
    if columns:
        missing = [c for c in columns if c not in dataset.column_names]
        if missing:
            raise HFSynthError(f"unknown columns {missing}; the dataset has {dataset.column_names}")
        dataset = dataset.select_columns(list(columns))
    return dataset


def _is_dataframe(obj: Any) -> bool:
    return type(obj).__name__ == "DataFrame" and hasattr(obj, "dtypes")


def _from_pandas(frame: Any) -> datasets.Dataset:
    for name in frame.columns:
        if frame[name].dtype == object:
            _check_one_type(name, frame[name].dropna().tolist())
    try:
        return datasets.Dataset.from_pandas(frame, preserve_index=False)
    except (TypeError, ValueError) as err:  # pyarrow's conversion errors
        raise HFSynthError(f"cannot convert the DataFrame: {err}") from None


def _from_records(records: list) -> datasets.Dataset:
    if not records:
        raise HFSynthError("the dataset is empty: a generator needs at least one row")
    if not all(isinstance(r, dict) for r in records):
        raise HFSynthError("a list of records must hold dicts")
    names = dict.fromkeys(key for record in records for key in record)
    for name in names:
        _check_one_type(name, [r.get(name) for r in records if r.get(name) is not None])
    try:
        return datasets.Dataset.from_list(records)
    except Exception as err:  # pyarrow raises several unrelated types for inconsistent records
        raise HFSynthError(f"cannot build a dataset from the records: {err}") from None


def _check_one_type(name: str, values: list) -> None:
    kinds = {_json_kind(v) for v in values}
    if len(kinds) > 1 and kinds != {"int", "float"}:
        raise HFSynthError(f"column {name!r} mixes types ({', '.join(sorted(kinds))}); convert it to one type")


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "dict"
    if isinstance(value, (list, tuple)):
        return "list"
    return type(value).__name__


def _load_path(source: str, *, config: str | None, split: str, revision: str | None) -> datasets.Dataset:
    suffix = os.path.splitext(source)[1].lower()
    if suffix in FILE_BUILDERS:
        if not os.path.isfile(source):
            raise HFSynthError(f"no such file: {source}")
        if os.path.getsize(source) == 0:
            raise HFSynthError(f"{source} is empty")
        try:
            loaded = datasets.load_dataset(FILE_BUILDERS[suffix], data_files=source, split="train")
        except Exception as err:  # the packaged builders raise pyarrow / pandas errors
            raise HFSynthError(f"cannot read {source}: {err}") from None
        return loaded
    if os.path.isdir(source):
        if not (os.path.exists(os.path.join(source, "dataset_info.json")) or os.path.exists(os.path.join(source, "dataset_dict.json"))):
            raise HFSynthError(f"{source} is not a dataset saved with Dataset.save_to_disk")
        return load_input(datasets.load_from_disk(source), split=split)
    if os.path.exists(source):
        raise HFSynthError(f"unsupported file type {suffix or source!r}; use one of {', '.join(FILE_BUILDERS)}")
    try:
        return datasets.load_dataset(source, config, split=split, revision=revision)
    except Exception as err:  # network, missing repo, unknown config: all surface as one message
        raise HFSynthError(f"cannot load the Hub dataset {source!r}: {err}") from None


@contextlib.contextmanager
def atomic_path(path: str, overwrite: bool = False) -> Iterator[str]:
    """Yield a temporary path next to ``path``; rename it to ``path`` only if the block succeeds."""
    if os.path.exists(path) and not overwrite:
        raise OutputExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=directory)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def check_output_path(path: str, overwrite: bool = False) -> None:
    """Fail early (before sampling) on an unsupported extension or an existing file."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in OUTPUT_FORMATS:
        raise HFSynthError(f"unsupported output format {suffix or path!r}; use one of {', '.join(OUTPUT_FORMATS)}")
    if os.path.exists(path) and not overwrite:
        raise OutputExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")


def write_dataset(dataset: datasets.Dataset, path: str, overwrite: bool = False) -> str:
    """Write ``dataset`` as CSV, JSON lines or Parquet (by extension), atomically."""
    check_output_path(path, overwrite)
    suffix = os.path.splitext(path)[1].lower()
    with atomic_path(path, overwrite) as tmp:
        if suffix == ".csv":
            dataset.to_csv(tmp, index=False)
        elif suffix == ".jsonl":
            dataset.to_json(tmp, lines=True, force_ascii=False)
        else:
            dataset.to_parquet(tmp)
    return path
