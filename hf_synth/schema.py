"""Record schema: what a valid record looks like, learned from a `datasets.Dataset`.

A :class:`RecordSchema` wraps the dataset's `datasets.Features` (so sampled rows come back with the
original types) and, for every field, a :class:`FieldSchema` that says how the field is modelled:

================  ==========================================================================
kind              values
================  ==========================================================================
``categorical``   one of a learned list of categories (strings, ints, floats or ClassLabel names)
``numeric``       a number with a learned range and decimal precision
``bool``          ``True`` / ``False``
``text``          free text
``null``          always missing (the column stays missing in synthetic rows)
``struct``        a nested dict with its own fields
``list``          a list (``List`` / ``Sequence``) of items of one schema
================  ==========================================================================

Inference rules (applied per column, recursively inside dicts and lists):

1. ``ClassLabel`` -> categorical over its names; ``Value("bool")`` -> bool.
2. Integer and float ``Value`` columns -> numeric, unless they hold at most
   :data:`MAX_DISCRETE_NUMBERS` distinct values, in which case they are categorical (a handful of
   codes is better modelled as one token each than as digits). The dtype is kept either way.
3. String columns (for example a CSV read as strings):
   - at most :data:`MAX_DISCRETE_NUMBERS` distinct values, each at most :data:`MAX_CATEGORY_CHARS`
     characters -> categorical;
   - every value is a canonical integer (``str(int(v)) == v``) or every value is a decimal with the
     same number of decimals -> numeric, written back as a string of the same form;
   - at most :data:`MAX_CATEGORIES` distinct values, each at most :data:`MAX_CATEGORY_CHARS`
     characters, and either at most 50 distinct values or at most 20 % of the non-missing rows
     distinct -> categorical;
   - anything else -> text.
4. A column whose values are all missing -> null.
5. Images, audio, arrays, dates and other feature types are refused with an error naming the column.

Learned per field: categories and their counts, numeric range and decimal precision, maximum text
length in characters, maximum list length, and the missing-value rate.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import random
import re
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Iterable

import datasets

from .errors import SchemaError

MAX_DISCRETE_NUMBERS = 16
MAX_CATEGORIES = 1000
MAX_CATEGORY_CHARS = 100
MAX_DECIMALS = 12
MAX_FIXED_MAGNITUDE = 1e16
MAX_TEXT_CHARS = 100_000
SCHEMA_VERSION = 1

_INT_DTYPES = {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"}
_FLOAT_DTYPES = {"float16", "float32", "float64", "double", "float", "halffloat"}
_STRING_DTYPES = {"string", "large_string"}
_CANONICAL_INT = re.compile(r"0|-?[1-9][0-9]*")
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)\.([0-9]+)")


@dataclass
class FieldSchema:
    """How one field (a column, or a nested field) is modelled.

    Attributes:
        kind: One of ``categorical``, ``numeric``, ``bool``, ``text``, ``null``, ``struct``, ``list``.
        dtype: The `datasets` dtype of the field (``"int64"``, ``"string"``, ``"class_label"``...),
            ``None`` for struct and list fields.
        nullable: Whether missing values occur (and may be sampled).
        missing_rate: Share of missing values in the training data.
        categories: Allowed values of a categorical field, most frequent first.
        counts: Training counts of ``categories`` (same order).
        minimum, maximum: Observed range of a numeric field.
        decimals: Decimal places a numeric field is written with (0 for integers).
        scientific: Numbers written in scientific notation (magnitudes beyond fixed notation).
        max_chars: Longest text value seen (characters).
        format: ``"python"`` for a text field whose training values are all Python code: sampled values
            must then parse (``ast.parse``; nothing is run).
        max_items: Longest list seen.
        fields: Sub-fields of a struct, in order.
        item: Schema of a list's items.
    """

    kind: str
    dtype: str | None = None
    nullable: bool = False
    missing_rate: float = 0.0
    categories: list | None = None
    counts: list | None = None
    minimum: float | int | None = None
    maximum: float | int | None = None
    decimals: int = 0
    scientific: bool = False
    max_chars: int = 0
    max_items: int = 0
    fields: dict[str, "FieldSchema"] | None = None
    item: "FieldSchema | None" = None
    label_names: list[str] | None = None
    format: str | None = None

    def to_dict(self) -> dict:
        data = {k: v for k, v in asdict(self).items() if v is not None}
        if self.fields is not None:
            data["fields"] = {name: sub.to_dict() for name, sub in self.fields.items()}
        if self.item is not None:
            data["item"] = self.item.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "FieldSchema":
        data = dict(data)
        if "fields" in data:
            data["fields"] = {name: cls.from_dict(sub) for name, sub in data["fields"].items()}
        if "item" in data:
            data["item"] = cls.from_dict(data["item"])
        return cls(**data)

    @property
    def is_integer(self) -> bool:
        return self.kind == "numeric" and self.decimals == 0 and not self.scientific


@dataclass
class RecordSchema:
    """The schema of a record: its `datasets.Features` plus a :class:`FieldSchema` per column."""

    features: datasets.Features
    fields: dict[str, FieldSchema]
    num_rows: int = 0
    fingerprint: str = ""
    version: int = SCHEMA_VERSION
    warnings: list[str] = field(default_factory=list)

    @property
    def has_code(self) -> bool:
        """Whether some field holds Python code that sampled values must parse as."""
        def code(fs: FieldSchema | None) -> bool:
            return fs is not None and (fs.format == "python" or code(fs.item)
                                       or any(code(sub) for sub in (fs.fields or {}).values()))

        return any(code(fs) for fs in self.fields.values())

    @property
    def columns(self) -> list[str]:
        """The columns in the dataset's order (``fields`` may hold them in another: see
        :meth:`with_columns_last`)."""
        return list(self.features)

    def with_columns_last(self, names: Iterable[str]) -> "RecordSchema":
        """The same schema with ``names`` moved to the end of ``fields``: the order in which a
        generator writes a record. The Features, and so the columns of sampled datasets, keep the
        dataset's order."""
        wanted = set(names)
        last = [name for name in self.fields if name in wanted]
        return self.with_order([name for name in self.fields if name not in wanted] + last)

    def with_order(self, names: Iterable[str]) -> "RecordSchema":
        """The same schema with ``fields`` in the order ``names`` (every top-level column once), the
        order in which a generator writes a record; the Features keep the dataset's order."""
        order = list(names)
        if sorted(order) != sorted(self.fields):
            raise SchemaError(f"a column order must name every column once; columns: {list(self.fields)}, got {order}")
        return replace(self, fields={name: self.fields[name] for name in order}, warnings=list(self.warnings))

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict:
        return {
            "version": self.version,
            "num_rows": self.num_rows,
            "fingerprint": self.fingerprint,
            "features": self.features.to_dict(),
            "fields": {name: f.to_dict() for name, f in self.fields.items()},
        }

    @classmethod
    def from_dict(cls, data: dict) -> "RecordSchema":
        return cls(
            features=datasets.Features.from_dict(data["features"]),
            fields={name: FieldSchema.from_dict(f) for name, f in data["fields"].items()},
            num_rows=data.get("num_rows", 0),
            fingerprint=data.get("fingerprint", ""),
            version=data.get("version", SCHEMA_VERSION),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> "RecordSchema":
        return cls.from_dict(json.loads(text))

    # ------------------------------------------------------------------ inference
    @classmethod
    def from_dataset(cls, dataset: datasets.Dataset) -> "RecordSchema":
        """Learn the schema of ``dataset`` (see the module docstring for the rules).

        Example:
            >>> import datasets
            >>> ds = datasets.Dataset.from_dict({"age": [39, 50, 38], "sex": ["Male", "Female", "Male"]})
            >>> RecordSchema.from_dataset(ds).fields["sex"].categories
            ['Male', 'Female']
        """
        if not isinstance(dataset, datasets.Dataset):
            raise SchemaError(f"expected a datasets.Dataset, got {type(dataset).__name__}")
        if dataset.num_rows == 0:
            raise SchemaError("the dataset is empty: a generator needs at least one row")
        if not dataset.features:
            raise SchemaError("the dataset has no columns")
        warnings: list[str] = []
        fields = {}
        table = _rows_table(dataset)
        for name, feature in dataset.features.items():
            values = table.column(name).to_pylist()
            fields[name] = _infer_field(name, feature, values, warnings)
        return cls(
            features=dataset.features.copy(),
            fields=fields,
            num_rows=dataset.num_rows,
            fingerprint=dataset_fingerprint(dataset),
            warnings=warnings,
        )

    # ------------------------------------------------------------------ validation
    def validate(self, record: dict) -> list[str]:
        """Return the reasons ``record`` violates the schema (empty when valid)."""
        problems: list[str] = []
        if not isinstance(record, dict):
            return [f"record is a {type(record).__name__}, not a dict"]
        extra = set(record) - set(self.fields)
        if extra:
            problems.append(f"unknown columns {sorted(extra)}")
        for name, fs in self.fields.items():
            if name not in record:
                problems.append(f"missing column {name!r}")
                continue
            _validate_value(name, fs, record[name], problems)
        return problems


def dataset_fingerprint(dataset: datasets.Dataset) -> str:
    """A content hash of the training data (columns, types and values), stable across runs."""
    import pyarrow as pa

    digest = hashlib.sha256()
    digest.update(json.dumps(dataset.features.to_dict(), sort_keys=True).encode())
    # IPC serialisation writes only the rows of a sliced batch (raw buffers of a slice would hash
    # the whole parent table, so different slices of one table would share a fingerprint).
    for batch in _rows_table(dataset).to_batches(max_chunksize=10_000):
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema) as writer:
            writer.write_batch(batch)
        digest.update(memoryview(sink.getvalue()))
    return digest.hexdigest()[:16]


def _rows_table(dataset: datasets.Dataset):
    """The Arrow table of the dataset's rows (``dataset.data`` ignores an indices mapping, as left
    by ``select``, ``filter``, ``shuffle`` or ``train_test_split``)."""
    return dataset.with_format("arrow")[:]


# ---------------------------------------------------------------------------- helpers


def _describe(feature: Any) -> str:
    return type(feature).__name__ if not isinstance(feature, datasets.Value) else f"Value({feature.dtype!r})"


def _infer_field(path: str, feature: Any, values: list, warnings: list[str]) -> FieldSchema:
    present = [v for v in values if v is not None]
    missing_rate = (len(values) - len(present)) / len(values) if values else 0.0
    base = dict(nullable=missing_rate > 0, missing_rate=round(missing_rate, 6))

    if isinstance(feature, dict):
        if not present:  # rule 4, after refusing unsupported nested types
            for key, sub in feature.items():
                _infer_field(f"{path}.{key}", sub, [None], [])
            return _always_missing(path, None, warnings)
        fields = {}
        for key, sub in feature.items():
            sub_values = [row.get(key) if row is not None else None for row in values]
            fields[key] = _infer_field(f"{path}.{key}", sub, sub_values, warnings)
        return FieldSchema(kind="struct", fields=fields, **base)

    if isinstance(feature, (datasets.List, datasets.LargeList)) or type(feature).__name__ == "Sequence":
        inner = feature.feature
        if not present:
            _infer_field(f"{path}[]", inner, [None], [])
            return _always_missing(path, None, warnings)
        lengths = [len(v) for v in present]
        items = [item for v in present for item in v]
        if not items:
            item = FieldSchema(kind="null", dtype=getattr(inner, "dtype", None), nullable=True, missing_rate=1.0)
        else:
            item = _infer_field(f"{path}[]", inner, items, warnings)
        return FieldSchema(kind="list", item=item, max_items=max(lengths, default=0), **base)

    if isinstance(feature, datasets.ClassLabel):
        present = [v for v in present if v >= 0]
        if not present:
            return _always_missing(path, "class_label", warnings)
        base = dict(nullable=len(present) < len(values), missing_rate=round(1 - len(present) / len(values), 6))
        counts = Counter(feature.int2str(v) for v in present)
        cats = [c for c, _ in counts.most_common()]
        return FieldSchema(
            kind="categorical", dtype="class_label", categories=cats, counts=[counts[c] for c in cats],
            label_names=list(feature.names), **base,
        )

    if not isinstance(feature, datasets.Value):
        raise SchemaError(
            f"column {path!r} has unsupported feature type {_describe(feature)}; supported: Value (ints, "
            "floats, bool, string), ClassLabel, nested dicts, List / Sequence"
        )

    dtype = feature.dtype
    if dtype == "null" or not present:
        if dtype not in _INT_DTYPES | _FLOAT_DTYPES | _STRING_DTYPES | {"bool", "null"}:
            raise SchemaError(f"column {path!r} has unsupported dtype {dtype!r}")
        return _always_missing(path, dtype, warnings)
    if dtype == "bool":
        counts = Counter(present)
        cats = [c for c, _ in counts.most_common()]
        return FieldSchema(kind="bool", dtype=dtype, categories=cats, counts=[counts[c] for c in cats], **base)
    if dtype in _INT_DTYPES | _FLOAT_DTYPES:
        return _numeric_or_discrete(path, dtype, present, base, warnings)
    if dtype in _STRING_DTYPES:
        return _infer_string(path, dtype, present, base, warnings)
    raise SchemaError(
        f"column {path!r} has unsupported dtype {dtype!r}; supported: ints, floats, bool, string"
    )


def _always_missing(path: str, dtype: str | None, warnings: list[str]) -> FieldSchema:
    warnings.append(f"column {path!r} is always missing; synthetic rows keep it missing")
    return FieldSchema(kind="null", dtype=dtype, nullable=True, missing_rate=1.0)


def _single_value_warning(path: str, counts: Counter, warnings: list[str]) -> None:
    if len(counts) == 1:
        warnings.append(f"column {path!r} holds a single value; synthetic rows repeat it")


def _numeric_or_discrete(path: str, dtype: str, present: list, base: dict, warnings: list[str]) -> FieldSchema:
    is_float = dtype in _FLOAT_DTYPES
    if is_float:
        bad = [v for v in present if not math.isfinite(v)]
        if bad:
            raise SchemaError(f"column {path!r} holds non-finite numbers ({bad[0]!r}); replace them with missing values")
    counts = Counter(present)
    _single_value_warning(path, counts, warnings)
    if len(counts) <= MAX_DISCRETE_NUMBERS:
        cats = [c for c, _ in counts.most_common()]
        return FieldSchema(kind="categorical", dtype=dtype, categories=cats, counts=[counts[c] for c in cats], **base)
    decimals, scientific = 0, False
    if is_float:
        decimals = max(_decimals(_shortest_repr(v, dtype)) for v in counts)
        magnitude = max(abs(v) for v in counts)
        if decimals > MAX_DECIMALS or magnitude >= MAX_FIXED_MAGNITUDE:
            scientific, decimals = True, 0
    return FieldSchema(
        kind="numeric", dtype=dtype, minimum=min(counts), maximum=max(counts), decimals=decimals,
        scientific=scientific, **base,
    )


def _infer_string(path: str, dtype: str, present: list, base: dict, warnings: list[str]) -> FieldSchema:
    longest = max(len(v) for v in present)
    if longest > MAX_TEXT_CHARS:
        raise SchemaError(
            f"column {path!r} holds a string of {longest:,} characters; the limit is {MAX_TEXT_CHARS:,} "
            "(drop the column or truncate its values)"
        )
    counts = Counter(present)
    _single_value_warning(path, counts, warnings)
    cats = [c for c, _ in counts.most_common()]
    if len(counts) <= MAX_DISCRETE_NUMBERS and longest <= MAX_CATEGORY_CHARS:
        return FieldSchema(kind="categorical", dtype=dtype, categories=cats, counts=[counts[c] for c in cats], **base)
    if all(_CANONICAL_INT.fullmatch(v) for v in counts):
        numbers = [int(v) for v in counts]
        return FieldSchema(kind="numeric", dtype=dtype, minimum=min(numbers), maximum=max(numbers), **base)
    decimal_places = {len(m.group(2)) if m else -1 for m in map(_DECIMAL.fullmatch, counts)}
    if len(decimal_places) == 1 and -1 not in decimal_places and min(decimal_places) <= MAX_DECIMALS:
        numbers = [float(v) for v in counts]
        return FieldSchema(
            kind="numeric", dtype=dtype, minimum=min(numbers), maximum=max(numbers),
            decimals=decimal_places.pop(), **base,
        )
    few = len(counts) <= 50 or len(counts) <= 0.2 * len(present)
    if len(counts) <= MAX_CATEGORIES and longest <= MAX_CATEGORY_CHARS and few:
        return FieldSchema(kind="categorical", dtype=dtype, categories=cats, counts=[counts[c] for c in cats], **base)
    return FieldSchema(kind="text", dtype=dtype, max_chars=longest, format=_text_format(present), **base)


def _text_format(texts: list[str], sample: int = 200) -> str | None:
    """``"python"`` when every text of a seeded sample parses as Python and most of them are code
    (statements or calls), else ``None``."""
    from .code import is_code, parse_python

    rng = random.Random(0)
    chosen = rng.sample(texts, min(sample, len(texts)))
    trees = [parse_python(t) for t in chosen]
    if all(tree is not None for tree in trees) and sum(map(is_code, trees)) >= 0.5 * len(trees):
        return "python"
    return None


def _shortest_repr(value: float, dtype: str) -> str:
    if dtype in ("float32", "float", "float16", "halffloat"):
        import numpy as np

        # str() of a numpy scalar is the shortest text that round-trips at that precision
        # (repr(float(...)) would print the float64 expansion, e.g. 0.10000000149011612)
        return str(np.float32(value)) if dtype not in ("float16", "halffloat") else str(np.float16(value))
    return repr(float(value))


def _decimals(text: str) -> int:
    if "e" in text or "E" in text:
        mantissa, exponent = re.split("[eE]", text)
        return max(0, _decimals(mantissa) - int(exponent))
    if "." not in text:
        return 0
    frac = text.split(".", 1)[1].rstrip("0")
    return len(frac)


def _validate_value(path: str, fs: FieldSchema, value: Any, problems: list[str]) -> None:
    if value is None:
        if not fs.nullable and fs.kind != "null":
            problems.append(f"{path}: missing value in a column that is never missing")
        return
    kind = fs.kind
    if kind == "null":
        problems.append(f"{path}: expected a missing value, got {value!r}")
    elif kind in ("categorical", "bool"):
        if fs.dtype == "class_label":
            if not isinstance(value, numbers.Integral) or isinstance(value, bool):
                problems.append(f"{path}: expected a class index, got {value!r}")
            elif not 0 <= value < len(fs.label_names) or fs.label_names[value] not in fs.categories:
                problems.append(f"{path}: {value!r} is not the index of a known category")
            return
        if value not in fs.categories:
            problems.append(f"{path}: {value!r} is not one of the known categories")
    elif kind == "numeric":
        if fs.dtype in _STRING_DTYPES:
            match = isinstance(value, str) and (_DECIMAL if fs.decimals else _CANONICAL_INT).fullmatch(value)
            if not match or (fs.decimals and len(match.group(2)) != fs.decimals):
                problems.append(f"{path}: {value!r} is not a number written with {fs.decimals} decimals")
                return
            number = float(value) if fs.decimals else int(value)
        elif isinstance(value, numbers.Real) and not isinstance(value, bool):
            number = value
        else:
            problems.append(f"{path}: {value!r} is not a number")
            return
        if not isinstance(number, numbers.Integral) and not math.isfinite(number):
            problems.append(f"{path}: {value!r} is not a finite number")
            return
        if fs.dtype in _INT_DTYPES and number != int(number):
            problems.append(f"{path}: {value!r} is not an integer")
            return
        if not fs.scientific and not (fs.minimum <= number <= fs.maximum):
            problems.append(f"{path}: {value!r} is outside [{fs.minimum}, {fs.maximum}]")
    elif kind == "text":
        if not isinstance(value, str):
            problems.append(f"{path}: expected text, got {type(value).__name__}")
        elif fs.format == "python":
            from .code import parse_python

            if parse_python(value) is None:
                problems.append(f"{path}: is not valid Python (it does not parse)")
    elif kind == "struct":
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a dict, got {type(value).__name__}")
            return
        for key, sub in fs.fields.items():
            _validate_value(f"{path}.{key}", sub, value.get(key), problems)
    elif kind == "list":
        if not isinstance(value, (list, tuple)):
            problems.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            _validate_value(f"{path}[{i}]", fs.item, item, problems)


#: Joins the parts of a field path; a control character, so column names may contain dots.
PATH_SEP = "\x1f"


def child_path(path: str, key: str) -> str:
    return f"{path}{PATH_SEP}{key}"


def item_path(path: str) -> str:
    return f"{path}{PATH_SEP}[]"


def path_name(path: str) -> str:
    """The key a path ends with."""
    return path.rsplit(PATH_SEP, 1)[-1]


def readable_path(path: str) -> str:
    """``"tools[].name"`` for display."""
    return path.replace(PATH_SEP + "[]", "[]").replace(PATH_SEP, ".")


def iter_paths(fields: dict[str, FieldSchema]) -> Iterable[tuple[str, FieldSchema]]:
    """Yield ``(path, field)`` for every field, depth first (see :func:`child_path`)."""
    for name, fs in fields.items():
        yield from _walk(name, fs)


def _walk(path: str, fs: FieldSchema) -> Iterable[tuple[str, FieldSchema]]:
    yield path, fs
    if fs.kind == "struct":
        for key, sub in fs.fields.items():
            yield from _walk(child_path(path, key), sub)
    elif fs.kind == "list":
        yield from _walk(item_path(path), fs.item)
