"""Sampling conditions: fixed values for some columns, checked against the schema before sampling.

``conditions`` may be

* a dict ``{"sex": "Female", "age": 37}``: the same values for every sampled row;
* a `datasets.Dataset`, a pandas DataFrame or a list of dicts holding some columns: one sampled row
  per condition row; a missing (``None``) cell leaves that column free.
"""

from __future__ import annotations

from typing import Any

import datasets

from .errors import ConditionError
from .schema import FieldSchema, RecordSchema, _validate_value

MAX_LISTED_CHOICES = 25


def condition_rows(schema: RecordSchema, conditions: Any, num_rows: int | None) -> list[dict]:
    """One dict of fixed values per row to sample (empty dicts for unconditional rows)."""
    if conditions is None or (isinstance(conditions, dict) and not conditions):
        count = _check_count(num_rows)
        return [{} for _ in range(count)]
    if isinstance(conditions, dict):
        count = _check_count(num_rows)
        fixed = {name: check_value(schema, name, value) for name, value in conditions.items()}
        return [dict(fixed) for _ in range(count)]
    rows = _rows_of(conditions)
    if not rows:
        raise ConditionError("the conditions hold no rows")
    if num_rows is not None and num_rows != len(rows):
        raise ConditionError(f"num_rows={num_rows} but the conditions hold {len(rows)} rows; give one or the other")
    for name in rows[0]:
        _check_column(schema, name)
    return [{k: check_value(schema, k, v) for k, v in row.items() if v is not None} for row in rows]


def _rows_of(conditions: Any) -> list[dict]:
    if isinstance(conditions, datasets.Dataset):
        return conditions.to_list()
    if type(conditions).__name__ == "DataFrame":
        frame = conditions.astype(object).where(conditions.notna(), None)
        return frame.to_dict(orient="records")
    if isinstance(conditions, (list, tuple)) and all(isinstance(r, dict) for r in conditions):
        return list(conditions)
    raise ConditionError(
        f"conditions must be a dict of column values, a datasets.Dataset, a DataFrame or a list of dicts, "
        f"not {type(conditions).__name__}"
    )


def _check_count(num_rows: int | None) -> int:
    if num_rows is None:
        raise ConditionError("num_rows is required unless conditions give one row per sample")
    if isinstance(num_rows, bool) or not isinstance(num_rows, int) or num_rows <= 0:
        raise ConditionError(f"num_rows must be a positive integer, got {num_rows!r}")
    return num_rows


def _check_column(schema: RecordSchema, name: str) -> FieldSchema:
    if name not in schema.fields:
        raise ConditionError(f"unknown column {name!r} in conditions; valid columns: {', '.join(schema.columns)}")
    return schema.fields[name]


def check_value(schema: RecordSchema, name: str, value: Any) -> Any:
    """The value in the column's own type, or a :class:`ConditionError` listing the valid choices."""
    fs = _check_column(schema, name)
    if value is None:
        if not fs.nullable:
            raise ConditionError(f"column {name!r} is never missing in the training data; give a value")
        return None
    if fs.kind in ("categorical", "bool"):
        return _category(name, fs, value)
    if fs.kind == "numeric":
        return _number(name, fs, value)
    if fs.kind == "null":
        raise ConditionError(f"column {name!r} is always missing; it cannot be given a value")
    problems: list[str] = []
    _validate_value(name, fs, value, problems)
    if problems:
        raise ConditionError("; ".join(problems))
    return value


def _category(name: str, fs: FieldSchema, value: Any) -> Any:
    choices = fs.categories
    if fs.dtype == "class_label":
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(fs.label_names):
            value = fs.label_names[value]
        if value in choices:
            return fs.label_names.index(value)
    else:
        for choice in choices:
            if choice == value and isinstance(choice, bool) == isinstance(value, bool):
                return choice
    listed = ", ".join(repr(c) for c in choices[:MAX_LISTED_CHOICES])
    more = f" and {len(choices) - MAX_LISTED_CHOICES} more" if len(choices) > MAX_LISTED_CHOICES else ""
    raise ConditionError(f"{value!r} is not a known value of column {name!r}; valid choices: {listed}{more}")


def _number(name: str, fs: FieldSchema, value: Any) -> Any:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConditionError(f"column {name!r} holds numbers; {value!r} is not one") from None
    if fs.decimals == 0 and not fs.scientific and number != int(number):
        raise ConditionError(f"column {name!r} holds integers; {value!r} is not one")
    if not fs.scientific and not fs.minimum <= number <= fs.maximum:
        raise ConditionError(f"{value!r} is outside the range of column {name!r}: [{fs.minimum}, {fs.maximum}]")
    if fs.dtype in ("string", "large_string"):
        return str(int(number)) if fs.decimals == 0 else f"{number:.{fs.decimals}f}"
    if fs.dtype.startswith(("int", "uint")):
        return int(number)
    return round(number, fs.decimals) if not fs.scientific else number
