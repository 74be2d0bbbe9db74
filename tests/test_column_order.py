"""The order generators write columns in: mutual information and the dependence order."""

from __future__ import annotations

import random

import datasets
import numpy as np
import pytest

from hf_synth.column_order import dependence_order, mutual_information
from hf_synth.errors import SchemaError
from hf_synth.schema import RecordSchema


def test_mutual_information_of_independent_and_identical_columns():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, 20_000)
    b = rng.integers(0, 4, 20_000)
    assert mutual_information(a, b) < 0.002
    entropy = -sum(p * np.log(p) for p in np.bincount(a) / len(a))
    assert mutual_information(a, a) == pytest.approx(entropy, rel=1e-9)
    assert mutual_information(a, (a + 1) % 4) == pytest.approx(entropy, rel=1e-9)  # a relabelling


def _records(n: int = 2_000) -> list[dict]:
    rng = random.Random(0)
    rows = []
    for _ in range(n):
        hour = rng.randrange(24)
        temperature = round(10 + 8 * np.sin(hour / 24 * 2 * np.pi) + rng.gauss(0, 2), 1)
        rows.append({
            "day": rng.randrange(1, 29),  # independent of everything
            "note": rng.choice(["a quiet day", "rain later", "clear skies", "windy"]) + f" #{rng.randrange(999)}",
            "hour": hour,
            "temperature": temperature,
            "warm": "yes" if temperature > 12 else ("no" if rng.random() > 0.05 else None),
        })
    return rows


def test_dependence_order_puts_independent_and_unscored_columns_last():
    records = _records()
    schema = RecordSchema.from_dataset(datasets.Dataset.from_list(records))
    assert schema.fields["note"].kind == "text" and schema.fields["day"].kind == "numeric"
    order = dependence_order(schema, records)
    assert sorted(order) == sorted(schema.fields)
    assert order[-2:] == ["day", "note"]  # the independent column, then the text column
    assert order.index("temperature") < order.index("hour")  # temperature is tied to both others
    assert dependence_order(schema, records) == order  # deterministic
    # a sample of the rows gives the same ranking on data this clear
    assert dependence_order(schema, records, max_rows=1_000) == order


def test_schema_with_order_reorders_fields_only():
    records = _records(50)
    schema = RecordSchema.from_dataset(datasets.Dataset.from_list(records))
    order = ["warm", "temperature", "hour", "day", "note"]
    moved = schema.with_order(order)
    assert list(moved.fields) == order and moved.columns == schema.columns == list(records[0])
    with pytest.raises(SchemaError, match="every column once"):
        schema.with_order(order[:-1])
    with pytest.raises(SchemaError, match="every column once"):
        schema.with_order(order + ["hour"])
