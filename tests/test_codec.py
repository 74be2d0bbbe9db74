"""RecordCodec: record <-> one JSON line, for every supported kind of field."""

import json
import random

import datasets
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hf_synth.codec import RecordCodec, category_text, format_number, parse_number
from hf_synth.errors import HFSynthError
from hf_synth.schema import RecordSchema
from record_strategies import EXPECTED_KINDS, all_kinds_dataset, all_kinds_schema, record_strategy

SETTINGS = settings(max_examples=150, deadline=None)


def codec() -> RecordCodec:
    return RecordCodec(all_kinds_schema())


def test_fixture_schema_covers_every_kind():
    schema = all_kinds_schema()
    assert {name: fs.kind for name, fs in schema.fields.items()} == EXPECTED_KINDS
    assert schema.fields["tiny_huge"].scientific and schema.fields["sci32"].scientific
    assert schema.fields["price"].decimals == 2 and schema.fields["ratio32"].decimals == 1
    assert schema.fields["sdec"].decimals == 3
    assert schema.fields["calls"].item.kind == "struct"
    assert schema.fields["ids"].item.kind == "numeric"


def test_training_rows_round_trip():
    c = codec()
    for row in all_kinds_dataset():
        text = c.encode(row)
        assert "\n" not in text  # one line
        assert c.decode(text) == row


@SETTINGS
@given(data=st.data())
def test_decode_encode_round_trip(data):
    schema = all_kinds_schema()
    record = data.draw(record_strategy(schema))
    assert schema.validate(record) == []
    c = RecordCodec(schema)
    text = c.encode(record)
    assert "\n" not in text
    json.loads(text)  # plain JSON
    assert c.decode(text) == record


@SETTINGS
@given(data=st.data())
def test_any_column_order_decodes_to_the_same_record(data):
    schema = all_kinds_schema()
    record = data.draw(record_strategy(schema))
    order = data.draw(st.permutations(schema.columns))
    text = RecordCodec(schema).encode(record, order=order)
    assert list(json.loads(text)) == list(order)
    assert RecordCodec(schema).decode(text) == record


def test_encode_writes_keys_in_column_order_and_missing_as_null():
    c = codec()
    row = dict(all_kinds_dataset()[7])
    data = json.loads(c.encode(row))
    assert list(data) == all_kinds_schema().columns
    assert data["note"] is None and data["gone"] is None


def test_encode_rejects_an_order_that_is_not_a_permutation():
    c = codec()
    row = all_kinds_dataset()[0]
    columns = all_kinds_schema().columns
    for bad in (columns[:-1], columns + ["count"], ["nope"] + columns[1:]):
        with pytest.raises(HFSynthError):
            c.encode(row, order=bad)


def test_decode_rejects_non_records():
    c = codec()
    for bad in ("not json", "[1, 2]", '{"count": 1', "42"):
        with pytest.raises(HFSynthError):
            c.decode(bad)


def test_class_label_is_written_by_name():
    schema = all_kinds_schema()
    row = dict(all_kinds_dataset()[1])  # label index 2
    assert row["label"] == 2
    data = json.loads(RecordCodec(schema).encode(row))
    assert data["label"] == schema.fields["label"].label_names[2]


def test_numbers_are_written_at_the_column_precision():
    schema = all_kinds_schema()
    price = schema.fields["price"]
    assert format_number(price, 3.5) == "3.50"
    assert format_number(price, -10.0) == "-10.00"
    assert format_number(schema.fields["count"], 10**18) == str(10**18)
    assert format_number(schema.fields["ratio32"], schema.fields["ratio32"].maximum) == "3.7"
    # strings keep their exact digits, even beyond float precision
    sdec = schema.fields["sdec"]
    assert format_number(sdec, "12345678901234567.125") == "12345678901234567.125"
    assert parse_number(sdec, "12345678901234567.125") == "12345678901234567.125"
    assert parse_number(schema.fields["sint"], "-5000") == "-5000"


def test_parse_number_returns_the_column_type():
    schema = all_kinds_schema()
    assert type(parse_number(schema.fields["count"], "12")) is int
    assert type(parse_number(schema.fields["price"], "1.25")) is float
    ratio = schema.fields["ratio32"]
    # a float32 column holds the float32 nearest to the text
    import numpy as np

    assert parse_number(ratio, "0.1") == float(np.float32(0.1))
    assert parse_number(ratio, format_number(ratio, float(np.float32(0.1)))) == float(np.float32(0.1))


def test_category_text_is_json():
    schema = all_kinds_schema()
    for name in ("city", "code", "weight", "flag"):
        fs = schema.fields[name]
        for cat in fs.categories:
            assert json.loads(category_text(fs, cat)) == cat


def test_float32_round_trip_through_a_dataset():
    """Decoded float32 values equal the values a float32 column holds."""
    schema = all_kinds_schema()
    c = RecordCodec(schema)
    rows = [c.decode(c.encode(row)) for row in all_kinds_dataset()]
    again = datasets.Dataset.from_list(rows, features=schema.features)
    assert again["ratio32"] == all_kinds_dataset()["ratio32"]
    assert again["sci32"] == all_kinds_dataset()["sci32"]


# ---------------------------------------------------------------------------- orders


def small_codec() -> RecordCodec:
    ds = datasets.Dataset.from_dict({c: [1, 2] for c in "abcdef"})
    return RecordCodec(RecordSchema.from_dataset(ds))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), p=st.floats(0, 1))
def test_training_order_is_a_permutation_ending_in_natural_order(seed, p):
    c = small_codec()
    columns = c.schema.columns
    order = c.training_order(random.Random(seed), p)
    assert sorted(order) == sorted(columns) and len(order) == len(columns)
    # some prefix of chosen columns, then the rest in natural order
    assert any(
        order[k:] == [col for col in columns if col not in order[:k]] for k in range(len(columns) + 1)
    )


def test_training_order_probabilities():
    c = small_codec()
    columns = c.schema.columns
    rng = random.Random(0)
    assert all(c.training_order(rng, 0.0) == columns for _ in range(200))
    orders = [c.training_order(rng, 1.0) for _ in range(400)]
    # with p=1 every column is sometimes given first
    assert {o[0] for o in orders} == set(columns)
    assert sum(o != columns for o in orders) > 300
    mixed = [c.training_order(rng, 0.5) for _ in range(1000)]
    natural = sum(o == columns for o in mixed)
    assert 400 < natural < 650  # about 0.5 plus the permutations that happen to be natural
