"""Inputs of an evaluation: load real / synthetic / holdout rows, check validity, type the columns.

Every metric module works on the :class:`EvaluationData` built here, so that loading, alignment
and the column roles are decided once:

* ``numerical`` columns: numbers (int / float dtypes, or strings the schema reads as numbers);
* ``categorical`` columns: strings with few values, booleans, ``ClassLabel``;
* ``text`` columns: free text (see :mod:`hf_synth.schema` for the inference rule);
* ``nested`` columns: dicts and lists, compared through their JSON text.

Invalid synthetic rows (unparsable JSON, unknown categories, out-of-range numbers, missing keys) are
counted in :attr:`EvaluationData.validity` and left out of every other metric.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import datasets
import numpy as np
import pandas as pd

from ..errors import HFSynthError
from ..io import load_input
from ..schema import RecordSchema

COLUMN_KINDS = ("numerical", "categorical", "text", "nested")
_NUMERIC_DTYPES = {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "float32", "float64", "double", "float"}


class EvaluationError(HFSynthError):
    """The inputs of an evaluation cannot be compared (mismatched columns, nothing to evaluate...)."""


@dataclass
class EvaluationData:
    """Aligned real / synthetic / holdout rows and what the metrics need to know about them.

    Attributes:
        schema: The schema rows are validated against (given, or learnt from ``real``).
        kinds: Role of each column, one of :data:`COLUMN_KINDS`.
        real, synthetic, holdout: The rows as pandas frames in the real data's column order;
            ``synthetic`` holds the valid rows only. Categorical values are strings (``ClassLabel``
            indices become their names), missing values are ``None`` / ``NaN``.
        real_records, synthetic_records, holdout_records: The same rows as dicts (nested values kept).
        validity: ``{"score", "valid_rows", "invalid_rows", "total_rows", "reasons"}``; ``reasons``
            counts invalid rows by the column at fault (``"<json>"``: not a JSON object;
            ``"<record>"``: missing or unknown keys).
        invalid_examples: Up to five invalid synthetic rows with their first violation.
    """

    schema: RecordSchema
    kinds: dict[str, str]
    real: pd.DataFrame
    synthetic: pd.DataFrame
    holdout: pd.DataFrame | None
    real_records: list[dict]
    synthetic_records: list[dict]
    holdout_records: list[dict] | None
    validity: dict[str, Any]
    invalid_examples: list[dict] = field(default_factory=list)

    def columns(self, *kinds: str) -> list[str]:
        """The columns of the given kinds, in table order."""
        return [c for c, k in self.kinds.items() if k in kinds]


def prepare(
    real: Any,
    synthetic: Any,
    *,
    holdout: Any = None,
    schema: RecordSchema | None = None,
    column_kinds: dict[str, str] | None = None,
) -> EvaluationData:
    """Load and align the inputs of :func:`hf_synth.evaluate` (see the module docstring)."""
    real_ds = _load("real", real)
    if real_ds.num_rows == 0:
        raise EvaluationError("the real data is empty")
    if schema is None:
        schema = RecordSchema.from_dataset(real_ds)
    columns = schema.columns
    missing = [c for c in columns if c not in real_ds.column_names]
    if missing:
        raise EvaluationError(f"the real data lacks the schema's columns {missing}")
    real_ds = real_ds.select_columns(columns)

    raw_synthetic = _load_synthetic(synthetic, columns)
    if not raw_synthetic:
        raise EvaluationError("the synthetic data is empty: there is nothing to evaluate")
    _check_columns(columns, raw_synthetic)

    holdout_ds = None
    if holdout is not None:
        holdout_ds = _load("holdout", holdout)
        missing = [c for c in columns if c not in holdout_ds.column_names]
        if missing:
            raise EvaluationError(f"the holdout data lacks the columns {missing}")
        holdout_ds = holdout_ds.select_columns(columns)
        if holdout_ds.num_rows == 0:
            raise EvaluationError("the holdout data is empty")

    kinds = column_roles(schema, column_kinds)
    valid, reasons, examples = _validate(schema, raw_synthetic)
    total = len(raw_synthetic)
    validity = {
        "score": len(valid) / total,
        "valid_rows": len(valid),
        "invalid_rows": total - len(valid),
        "total_rows": total,
        "reasons": dict(reasons.most_common()),
    }
    real_records = real_ds.to_list()
    holdout_records = holdout_ds.to_list() if holdout_ds is not None else None
    names = label_names(schema)
    return EvaluationData(
        schema=schema,
        kinds=kinds,
        real=to_frame(real_records, columns, kinds, names),
        synthetic=to_frame(valid, columns, kinds, names),
        holdout=to_frame(holdout_records, columns, kinds, names) if holdout_records is not None else None,
        real_records=real_records,
        synthetic_records=valid,
        holdout_records=holdout_records,
        validity=validity,
        invalid_examples=examples,
    )


def column_roles(schema: RecordSchema, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """The role of each column: numbers are numerical whatever their count of distinct values, as
    in the SDMetrics metadata the published tables use; ``overrides`` wins (e.g. codes stored as
    integers that are categories)."""
    overrides = dict(overrides or {})
    unknown = [c for c in overrides if c not in schema.fields]
    if unknown:
        raise EvaluationError(f"column_kinds names unknown columns {unknown}; the data has {schema.columns}")
    bad = {c: k for c, k in overrides.items() if k not in COLUMN_KINDS}
    if bad:
        raise EvaluationError(f"column_kinds {bad}: the kinds are {', '.join(COLUMN_KINDS)}")
    kinds = {}
    for name, fs in schema.fields.items():
        if name in overrides:
            kinds[name] = overrides[name]
        elif fs.kind in ("struct", "list"):
            kinds[name] = "nested"
        elif fs.kind == "text":
            kinds[name] = "text"
        elif fs.kind == "numeric" or (fs.kind == "categorical" and fs.dtype in _NUMERIC_DTYPES):
            kinds[name] = "numerical"
        else:  # categorical strings, bools, class labels, always-missing columns
            kinds[name] = "categorical"
    return kinds


def to_frame(records: list[dict], columns: list[str], kinds: dict[str, str], label_names: dict[str, list[str]]) -> pd.DataFrame:
    """Records as a frame the metrics can use: numbers as floats, categories as strings, nested
    values as canonical JSON text."""
    data = {}
    for name in columns:
        values = [r.get(name) for r in records]
        kind = kinds[name]
        if kind == "numerical":
            data[name] = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").astype(float)
        elif kind == "nested":
            data[name] = pd.Series([None if v is None else json.dumps(compact(v), sort_keys=True, ensure_ascii=False) for v in values], dtype=object)
        else:
            names = label_names.get(name)
            if names is not None:
                values = [names[v] if isinstance(v, int) and 0 <= v < len(names) else v for v in values]
            data[name] = pd.Series([None if v is None else str(v) for v in values], dtype=object)
    return pd.DataFrame(data, columns=columns)


def label_names(schema: RecordSchema) -> dict[str, list[str]]:
    """``{column: names}`` of the ClassLabel columns (their values are compared by name)."""
    return {name: fs.label_names for name, fs in schema.fields.items() if fs.dtype == "class_label" and fs.label_names}


def _load(what: str, source: Any) -> datasets.Dataset:
    try:
        return load_input(source)
    except HFSynthError as err:
        raise EvaluationError(f"{what} data: {err}") from None


def _load_synthetic(source: Any, columns: list[str]) -> list:
    """Synthetic rows as a list whose items are dicts, or the raw text of rows that are not.

    JSON-lines files are read line by line, and a list of strings (raw generations) is parsed
    item by item, so that rows that do not parse count as invalid instead of failing the load."""
    if isinstance(source, (str, os.PathLike)) and str(source).lower().endswith((".jsonl", ".json")) and os.path.isfile(source):
        with open(source, encoding="utf-8") as handle:
            text = handle.read()
        stripped = text.lstrip()
        if stripped.startswith("["):  # a JSON array of records
            try:
                items = json.loads(stripped)
            except json.JSONDecodeError as err:
                raise EvaluationError(f"cannot read {source}: {err}") from None
            return [_parse(item) for item in items]
        return [_parse(line) for line in text.splitlines() if line.strip()]
    if isinstance(source, list) and source and all(isinstance(item, str) for item in source):
        return [_parse(item) for item in source]
    dataset = _load("synthetic", source)
    if dataset.num_rows and set(dataset.column_names) != set(columns) and len(dataset.column_names) == 1:
        only = dataset.column_names[0]
        if dataset.features[only] == datasets.Value("string") and only not in columns:
            return [_parse(item) for item in dataset[only]]  # one column of JSON text
    return dataset.to_list()


def _parse(item: Any) -> Any:
    if isinstance(item, str):
        try:
            return json.loads(item)
        except json.JSONDecodeError:
            return item
    return item


def _check_columns(columns: list[str], rows: list) -> None:
    dicts = [r for r in rows if isinstance(r, dict)]
    if not dicts:
        return  # nothing parses: every row is invalid, reported as such
    seen = set().union(*(r.keys() for r in dicts[:1000]))
    missing = [c for c in columns if c not in seen]
    extra = sorted(seen - set(columns))
    if missing and len(missing) == len(columns):
        raise EvaluationError(f"the synthetic rows share no column with the real data; real has {columns}, synthetic has {sorted(seen)}")
    if missing or extra:
        if len(dicts) == len(rows) and all(set(r) == seen for r in dicts[:1000]):
            parts = []
            if missing:
                parts.append(f"lacks {missing}")
            if extra:
                parts.append(f"has extra columns {extra}")
            raise EvaluationError(f"the synthetic data {' and '.join(parts)}; real has {columns}")


def _validate(schema: RecordSchema, rows: list) -> tuple[list[dict], Counter, list[dict]]:
    valid: list[dict] = []
    reasons: Counter = Counter()
    examples: list[dict] = []
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            problems = ["<json>: not a JSON object"]
        else:
            row = _normalise(schema, row)
            problems = schema.validate(row)
        if problems:
            reasons.update({_where(problem) for problem in problems})
            if len(examples) < 5:
                examples.append({"row": index, "problem": problems[0]})
        else:
            valid.append(row)
    return valid, reasons, examples


def _where(problem: str) -> str:
    """The column a violation message names (``"<record>"`` for missing / unknown keys)."""
    if ":" not in problem:
        return "<record>"
    return problem.split(":", 1)[0].split("[", 1)[0].split(".", 1)[0]


def _normalise(schema: RecordSchema, row: dict) -> dict:
    """Whole floats in integer columns (pandas writes ``39.0`` once a column has a gap) count as
    integers; class labels given by name become their index."""
    out = dict(row)
    for name, fs in schema.fields.items():
        value = out.get(name)
        if value is None:
            continue
        if fs.dtype and fs.dtype.startswith(("int", "uint")) and isinstance(value, float) and np.isfinite(value) and value.is_integer():
            out[name] = int(value)
        elif fs.dtype == "class_label" and isinstance(value, str) and fs.label_names and value in fs.label_names:
            out[name] = fs.label_names.index(value)
    return out


def compact(value: Any) -> Any:
    """A nested value without its ``None`` dict entries.

    Arrow stores a list of dicts with the union of their keys, so a tool definition read through
    `datasets` carries every other tool's parameters as ``None``; metrics on the JSON text or
    structure must not count them."""
    if isinstance(value, dict):
        return {k: compact(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [compact(v) for v in value]
    return value


def compact_record(record: dict) -> dict:
    """A record with :func:`compact` nested values (top-level columns are all kept)."""
    return {k: compact(v) if isinstance(v, (dict, list)) else v for k, v in record.items()}

