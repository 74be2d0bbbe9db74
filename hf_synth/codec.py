"""Record <-> text codec.

A record is written as one line of JSON, keys in column order (or any permutation of it), numbers
at their column's precision and categories by value (a `ClassLabel` by its name)::

    {"age": 39, "workclass": "State-gov", "hours-per-week": 40, "note": null}

``decode(encode(r)) == r`` for every record that satisfies the schema (floats at the column's
precision), including missing values, unicode, quotes and newlines inside strings, negative, very
large and very small numbers, and nested dicts and lists. The same helpers format numbers and
categories for the token stream (:mod:`hf_synth.tokenizer`), so text and tokens agree.
"""

from __future__ import annotations

import json
import random
from decimal import Decimal
from typing import Any, Sequence

import numpy as np

from .errors import HFSynthError
from .schema import FieldSchema, RecordSchema

_FLOAT32 = {"float32", "float", "float16", "halffloat"}


def format_number(fs: FieldSchema, value: Any) -> str:
    """Write a numeric value the way its column is written (fixed decimals or scientific)."""
    if fs.dtype in ("string", "large_string"):
        if fs.decimals == 0:
            return str(int(value))
        # Decimal, not float: the string may hold more digits than a float keeps
        return f"{Decimal(value if isinstance(value, str) else repr(float(value))):.{fs.decimals}f}"
    if fs.scientific:
        if fs.dtype in _FLOAT32:
            return repr(float(np.float32(value)))
        return repr(float(value))
    if fs.decimals == 0:
        return str(int(value))
    return f"{float(value):.{fs.decimals}f}"


def parse_number(fs: FieldSchema, text: str) -> Any:
    """Inverse of :func:`format_number`: the value in the column's own type."""
    if fs.dtype in ("string", "large_string"):
        return format_number(fs, int(text) if fs.decimals == 0 else text)
    if fs.dtype and fs.dtype.startswith(("int", "uint")):
        return int(text)
    if fs.dtype in ("float16", "halffloat"):
        return float(np.float16(text))
    if fs.dtype in _FLOAT32:
        # the float32 nearest to the text, as the column holds it (float(text) would be float64)
        return float(np.float32(text))
    return float(text)


def category_text(fs: FieldSchema, value: Any) -> str:
    """The JSON text of a category (a `ClassLabel` category is its name)."""
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


class RecordCodec:
    """Turns records into text and back for a given :class:`RecordSchema`.

    Example:
        >>> codec = RecordCodec(schema)
        >>> text = codec.encode({"age": 39, "sex": "Male"})
        >>> codec.decode(text) == {"age": 39, "sex": "Male"}
        True
    """

    def __init__(self, schema: RecordSchema):
        self.schema = schema

    # ------------------------------------------------------------------ encode
    def encode(self, record: dict, order: Sequence[str] | None = None, *, partial: bool = False) -> str:
        """Write ``record`` as one JSON line, top-level keys in ``order`` (default: column order);
        with ``partial``, ``order`` may leave columns out."""
        order = list(self.schema.fields) if order is None else list(order)
        if partial:
            if len(set(order)) != len(order) or not set(order) <= set(self.schema.fields):
                raise HFSynthError(f"order must name distinct columns of {list(self.schema.fields)}")
        elif sorted(order) != sorted(self.schema.fields):
            raise HFSynthError(f"order must be a permutation of the columns {list(self.schema.fields)}")
        parts = [f"{json.dumps(name, ensure_ascii=False)}: {self._value(self.schema.fields[name], record.get(name))}" for name in order]
        return "{" + ", ".join(parts) + "}"

    def _value(self, fs: FieldSchema, value: Any) -> str:
        if value is None:
            return "null"
        if fs.kind == "struct":
            parts = [f"{json.dumps(k, ensure_ascii=False)}: {self._value(sub, value.get(k))}" for k, sub in fs.fields.items()]
            return "{" + ", ".join(parts) + "}"
        if fs.kind == "list":
            return "[" + ", ".join(self._value(fs.item, item) for item in value) + "]"
        if fs.kind == "numeric":
            return format_number(fs, value)
        if fs.kind in ("categorical", "bool"):
            if fs.dtype == "class_label":
                value = fs.label_names[value]
            return category_text(fs, value)
        return json.dumps(value, ensure_ascii=False)

    # ------------------------------------------------------------------ decode
    def decode(self, text: str) -> dict:
        """Parse a JSON line written by :meth:`encode` back into a record of the original types."""
        try:
            data = json.loads(text, parse_float=str, parse_int=str)
        except json.JSONDecodeError as err:
            raise HFSynthError(f"not a record: {err}") from None
        if not isinstance(data, dict):
            raise HFSynthError("not a record: the text is not a JSON object")
        return {name: self._restore(fs, data.get(name)) for name, fs in self.schema.fields.items()}

    def _restore(self, fs: FieldSchema, value: Any) -> Any:
        if value is None:
            return None
        if fs.kind == "struct":
            return {k: self._restore(sub, value.get(k)) for k, sub in fs.fields.items()}
        if fs.kind == "list":
            return [self._restore(fs.item, item) for item in value]
        if fs.kind == "numeric":
            return parse_number(fs, value)
        if fs.kind in ("categorical", "bool"):
            return self.category_from_json(fs, value)
        return value

    @staticmethod
    def category_from_json(fs: FieldSchema, value: Any) -> Any:
        """Map a JSON-decoded category (numbers arrive as text) to the column's value."""
        if fs.dtype == "class_label":
            return fs.label_names.index(value)
        if fs.kind == "bool" or isinstance(value, bool):
            return bool(value)
        if isinstance(value, str) and fs.dtype not in ("string", "large_string"):
            number = float(value) if fs.dtype in _FLOAT32 or (fs.dtype or "").startswith("float") else int(value)
            return number
        return value

    # ------------------------------------------------------------------ orders
    def training_order(self, rng: random.Random, permute_probability: float) -> list[str]:
        """A column order for one training example.

        With probability ``1 - permute_probability`` the natural column order; otherwise a random
        subset of columns first (in random order), then the rest in natural order. This is exactly
        the shape of a conditional sampling prompt (the given columns, then the others), so any
        subset of columns can later be given as a condition.
        """
        columns = list(self.schema.fields)
        if rng.random() >= permute_probability:
            return columns
        k = rng.randint(1, len(columns))
        first = rng.sample(columns, k)
        chosen = set(first)
        return first + [c for c in columns if c not in chosen]
