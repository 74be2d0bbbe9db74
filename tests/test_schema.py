"""Schema inference rules (see the docstring of hf_synth.schema), persistence and validation."""

import math

import datasets
import pytest

from hf_synth.errors import SchemaError
from hf_synth.schema import (
    MAX_CATEGORY_CHARS,
    MAX_DISCRETE_NUMBERS,
    MAX_TEXT_CHARS,
    FieldSchema,
    RecordSchema,
    child_path,
    dataset_fingerprint,
    item_path,
    iter_paths,
    path_name,
    readable_path,
)

F = datasets.Features
V = datasets.Value


def infer(columns: dict, features: dict | None = None) -> RecordSchema:
    ds = datasets.Dataset.from_dict(columns, features=F(features) if features else None)
    return RecordSchema.from_dataset(ds)


def field(values: list, feature=None) -> FieldSchema:
    return infer({"c": values}, {"c": feature} if feature is not None else None).fields["c"]


# ---------------------------------------------------------------------------- numbers


@pytest.mark.parametrize("dtype", ["int64", "int32", "uint16"])
def test_ints_with_many_distinct_values_are_numeric(dtype):
    values = list(range(3, 3 + MAX_DISCRETE_NUMBERS + 1))
    fs = field(values, V(dtype))
    assert fs.kind == "numeric"
    assert fs.dtype == dtype
    assert (fs.minimum, fs.maximum) == (min(values), max(values))
    assert fs.decimals == 0 and not fs.scientific and fs.is_integer
    assert not fs.nullable and fs.missing_rate == 0


@pytest.mark.parametrize("dtype", ["int64", "float64"])
def test_numbers_with_few_distinct_values_are_categorical(dtype):
    # exactly MAX_DISCRETE_NUMBERS distinct values, with different frequencies
    values = [i for i in range(MAX_DISCRETE_NUMBERS) for _ in range(i % 3 + 1)]
    if dtype == "float64":
        values = [v + 0.5 for v in values]
    fs = field(values, V(dtype))
    assert fs.kind == "categorical"
    assert fs.dtype == dtype
    assert sorted(fs.categories) == sorted(set(values))
    # most frequent first, and counts match the data
    assert fs.counts == sorted(fs.counts, reverse=True)
    assert fs.counts == [values.count(c) for c in fs.categories]


def test_seventeen_distinct_numbers_switch_to_numeric():
    assert field(list(range(MAX_DISCRETE_NUMBERS)), V("int64")).kind == "categorical"
    assert field(list(range(MAX_DISCRETE_NUMBERS + 1)), V("int64")).kind == "numeric"


def test_negative_and_huge_ints():
    values = [-(10**18), 10**18] + list(range(-10, 10))
    fs = field(values, V("int64"))
    assert fs.kind == "numeric"
    assert fs.minimum == -(10**18) and fs.maximum == 10**18
    assert isinstance(fs.minimum, int) and isinstance(fs.maximum, int)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("decimals", [1, 2, 3])
def test_float_decimals_are_learned(dtype, decimals):
    # values written with exactly `decimals` decimals (the last digit non-zero for one of them)
    texts = [f"{i * 7 - 40}.{'0' * (decimals - 1)}{i % 9 + 1}" for i in range(20)]
    fs = field([float(t) for t in texts], V(dtype))
    assert fs.kind == "numeric"
    assert fs.decimals == decimals
    assert not fs.scientific
    assert fs.minimum == pytest.approx(min(float(t) for t in texts), abs=1e-5)
    assert fs.maximum == pytest.approx(max(float(t) for t in texts), abs=1e-5)


def test_float_decimals_take_the_most_precise_value():
    values = [float(i) for i in range(20)] + [0.125]
    assert field(values, V("float64")).decimals == 3


def test_integral_floats_have_zero_decimals():
    fs = field([float(i) * 3 for i in range(20)], V("float64"))
    assert fs.kind == "numeric" and fs.decimals == 0 and not fs.scientific
    assert fs.dtype == "float64"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("extreme", [1e20, 1e-30, -3e17])
def test_huge_or_tiny_magnitudes_use_scientific_notation(dtype, extreme):
    values = [float(i) + 0.5 for i in range(20)] + [extreme]
    fs = field(values, V(dtype))
    assert fs.kind == "numeric" and fs.scientific


def test_ordinary_floats_are_not_scientific():
    values = [i / 4 for i in range(-20, 20)]
    fs = field(values, V("float64"))
    assert not fs.scientific and fs.decimals == 2


def test_non_finite_floats_are_refused_naming_the_column():
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(SchemaError, match="weird_col"):
            infer({"weird_col": [1.5, bad, 2.5] + [float(i) for i in range(20)]})


# ---------------------------------------------------------------------------- strings


def test_string_with_few_values_is_categorical():
    values = ["Male", "Female", "Male", "Male", None, "Female"]
    fs = field(values)
    assert fs.kind == "categorical"
    assert fs.categories == ["Male", "Female"]
    assert fs.counts == [3, 2]
    assert fs.nullable and fs.missing_rate == pytest.approx(1 / 6, abs=1e-6)


def test_string_canonical_ints_are_numeric():
    values = [str(i * 13 - 100) for i in range(MAX_DISCRETE_NUMBERS + 4)]
    fs = field(values)
    assert fs.kind == "numeric" and fs.dtype == "string"
    assert fs.decimals == 0
    assert (fs.minimum, fs.maximum) == (-100, (MAX_DISCRETE_NUMBERS + 3) * 13 - 100)


@pytest.mark.parametrize("odd", ["007", "+5", "1e3", "-0", "12.0"])
def test_non_canonical_int_strings_are_not_numeric(odd):
    values = [str(i * 13 - 100) for i in range(MAX_DISCRETE_NUMBERS + 4)] + [odd]
    assert field(values).kind != "numeric"


def test_string_decimals_with_same_places_are_numeric():
    values = [f"{i * 1.25 - 3:.2f}" for i in range(MAX_DISCRETE_NUMBERS + 4)]
    fs = field(values)
    assert fs.kind == "numeric" and fs.dtype == "string"
    assert fs.decimals == 2
    assert fs.minimum == pytest.approx(-3.0) and fs.maximum == pytest.approx(float(values[-1]))


def test_string_decimals_with_mixed_places_are_not_numeric():
    values = [f"{i * 1.25 - 3:.2f}" for i in range(MAX_DISCRETE_NUMBERS + 4)] + ["1.5"]
    assert field(values).kind != "numeric"


def test_few_distinct_numeric_strings_are_categorical():
    # the categorical rule comes first: at most MAX_DISCRETE_NUMBERS distinct values
    values = ["1", "2", "3", "1"]
    fs = field(values)
    assert fs.kind == "categorical" and fs.categories[0] == "1"


def test_medium_cardinality_short_strings_are_categorical():
    # more than MAX_DISCRETE_NUMBERS distinct values, but at most 50
    values = [f"city-{i}" for i in range(40)]
    fs = field(values)
    assert fs.kind == "categorical" and len(fs.categories) == 40


def test_many_short_strings_are_categorical_when_repeated_enough():
    # 60 distinct (> 50) values over 300 rows: 20 % of the rows -> categorical
    values = [f"code-{i % 60}" for i in range(300)]
    assert field(values).kind == "categorical"
    # 60 distinct values over 60 rows -> text
    values = [f"code-{i}" for i in range(60)]
    fs = field(values)
    assert fs.kind == "text"
    assert fs.max_chars == max(len(v) for v in values)


def test_long_high_cardinality_strings_are_text():
    values = [f"note {i}: " + "x" * (i * 7) for i in range(MAX_DISCRETE_NUMBERS + 4)]
    assert max(len(v) for v in values) > MAX_CATEGORY_CHARS
    fs = field(values)
    assert fs.kind == "text"
    assert fs.max_chars == max(len(v) for v in values)


def test_too_long_string_is_refused_naming_the_column():
    with pytest.raises(SchemaError, match="essay"):
        infer({"essay": ["short", "y" * (MAX_TEXT_CHARS + 1)]})
    # exactly the limit is fine
    assert infer({"essay": ["short", "y" * MAX_TEXT_CHARS]}).fields["essay"].kind == "text"


# ---------------------------------------------------------------------------- other types


def test_class_label():
    names = ["neg", "neutral", "pos", "never"]
    values = [0, 2, 2, 1, 2, None]
    fs = field(values, datasets.ClassLabel(names=names))
    assert fs.kind == "categorical" and fs.dtype == "class_label"
    assert fs.label_names == names
    assert fs.categories == ["pos", "neg", "neutral"]  # seen names only, most frequent first
    assert fs.counts == [3, 1, 1]
    assert fs.nullable and fs.missing_rate == pytest.approx(1 / 6, abs=1e-6)


def test_bool():
    fs = field([True, False, False, None], V("bool"))
    assert fs.kind == "bool"
    assert fs.categories == [False, True] and fs.counts == [2, 1]
    assert fs.nullable


def test_nested_dict_is_struct():
    rows = [{"a": i, "b": f"name {i}", "c": {"d": i % 2 == 0}} for i in range(20)]
    fs = field(rows)
    assert fs.kind == "struct"
    assert list(fs.fields) == ["a", "b", "c"]
    assert fs.fields["a"].kind == "numeric"
    assert fs.fields["b"].kind == "categorical"
    assert fs.fields["c"].kind == "struct"
    assert fs.fields["c"].fields["d"].kind == "bool"


def test_missing_values_inside_structs():
    rows = [{"a": i, "b": None if i % 4 == 0 else "x"} for i in range(20)] + [None]
    fs = field(rows)
    assert fs.nullable and fs.missing_rate == pytest.approx(1 / 21, abs=1e-6)
    # a missing struct counts as missing for its sub-fields too
    assert fs.fields["b"].nullable
    assert fs.fields["b"].missing_rate == pytest.approx(6 / 21, abs=1e-6)
    assert fs.fields["a"].nullable
    assert fs.fields["a"].missing_rate == pytest.approx(1 / 21, abs=1e-6)


@pytest.mark.parametrize("wrap", [datasets.List, datasets.Sequence])
def test_lists(wrap):
    values = [[1, 2, 3], [], [4], None, list(range(20, 34))]
    fs = field(values, wrap(V("int64")))
    assert fs.kind == "list"
    assert fs.max_items == 14
    assert fs.nullable and fs.missing_rate == pytest.approx(1 / 5)
    assert fs.item.kind == "numeric"  # 18 distinct items
    assert fs.item.minimum == 1 and fs.item.maximum == 33


def test_list_items_follow_the_same_rules():
    few = field([[1, 2], [2, 3], [1]], datasets.List(V("int64")))
    assert few.item.kind == "categorical" and sorted(few.item.categories) == [1, 2, 3]
    dicts = field([[{"name": "a", "score": 0.5}], [{"name": "b", "score": 1.5}, {"name": "a", "score": None}]])
    assert dicts.kind == "list" and dicts.max_items == 2
    assert dicts.item.kind == "struct"
    assert dicts.item.fields["name"].categories == ["a", "b"]
    assert dicts.item.fields["score"].nullable


def test_all_null_column_is_null_with_warning():
    schema = infer({"x": [1, 2, 3], "empty": [None, None, None]}, {"x": V("int64"), "empty": V("string")})
    fs = schema.fields["empty"]
    assert fs.kind == "null" and fs.nullable and fs.missing_rate == 1.0
    assert any("empty" in w for w in schema.warnings)


@pytest.mark.parametrize(
    "feature",
    [V("int64"), V("float32"), V("bool"), datasets.ClassLabel(names=["a", "b"]),
     datasets.List(V("int64")), {"a": V("int64")}],
    ids=["int", "float", "bool", "classlabel", "list", "struct"],
)
def test_all_missing_columns_of_every_type_are_null(feature):
    schema = infer({"x": [1, 2], "gone": [None, None]}, {"x": V("int64"), "gone": feature})
    assert schema.fields["gone"].kind == "null"
    assert any("gone" in w for w in schema.warnings)


def test_single_value_column_warns():
    schema = infer({"same": ["a", "a", "a"], "varied": ["a", "b", "c"]})
    assert any("same" in w for w in schema.warnings)
    assert not any("varied" in w for w in schema.warnings)
    assert schema.fields["same"].kind == "categorical"


def test_missing_rate_and_nullable():
    values = [1.5, None, 2.5, None] + [float(i) for i in range(16)]
    fs = field(values, V("float64"))
    assert fs.nullable
    assert fs.missing_rate == pytest.approx(2 / 20)
    assert not field([1.5, 2.5], V("float64")).nullable


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "feature",
    [datasets.Image(), datasets.Audio(), datasets.Array2D(shape=(2, 2), dtype="int32"),
     V("timestamp[s]"), V("date32")],
    ids=["image", "audio", "array2d", "timestamp", "date"],
)
def test_unsupported_features_are_refused_naming_the_column(feature):
    ds = datasets.Dataset.from_dict({"ok": [1, 2], "bad_col": [None, None]}, features=F({"ok": V("int64"), "bad_col": feature}))
    with pytest.raises(SchemaError, match="bad_col"):
        RecordSchema.from_dataset(ds)


def test_unsupported_nested_feature_is_refused_naming_the_path():
    features = F({"outer": {"inner_img": datasets.Image(), "n": V("int64")}})
    ds = datasets.Dataset.from_dict({"outer": [{"inner_img": None, "n": 1}]}, features=features)
    with pytest.raises(SchemaError, match="outer.inner_img"):
        RecordSchema.from_dataset(ds)


def test_empty_dataset_is_refused():
    ds = datasets.Dataset.from_dict({"a": []}, features=F({"a": V("int64")}))
    with pytest.raises(SchemaError, match="empty"):
        RecordSchema.from_dataset(ds)


def test_not_a_dataset_is_refused():
    with pytest.raises(SchemaError):
        RecordSchema.from_dataset({"a": [1]})


# ---------------------------------------------------------------------------- views of a dataset


def test_inference_respects_an_indices_mapping():
    ds = datasets.Dataset.from_dict({"x": list(range(40))})
    small = ds.select([0, 2, 4, 6, 8] + list(range(10, 22)))
    schema = RecordSchema.from_dataset(small)
    assert schema.num_rows == 17
    assert schema.fields["x"].kind == "numeric"
    assert (schema.fields["x"].minimum, schema.fields["x"].maximum) == (0, 21)
    split = ds.train_test_split(test_size=0.5, seed=0)["train"]
    fs = RecordSchema.from_dataset(split).fields["x"]
    assert (fs.minimum, fs.maximum) == (min(split["x"]), max(split["x"]))


# ---------------------------------------------------------------------------- persistence


def mixed_schema() -> RecordSchema:
    n = 20
    return infer(
        {
            "age": [20 + i for i in range(n)],
            "sex": ["Male" if i % 3 else "Female" for i in range(n)],
            "score": [i * 0.25 - 1 if i % 5 else None for i in range(n)],
            "label": [i % 2 for i in range(n)],
            "flag": [i % 2 == 0 for i in range(n)],
            "meta": [{"k": i % 3, "tags": ["a", "b"][: i % 3]} for i in range(n)],
            "nothing": [None] * n,
        },
        {
            "age": V("int64"), "sex": V("string"), "score": V("float64"),
            "label": datasets.ClassLabel(names=["no", "yes"]), "flag": V("bool"),
            "meta": {"k": V("int32"), "tags": datasets.List(V("string"))}, "nothing": V("string"),
        },
    )


def test_to_dict_from_dict_round_trip():
    schema = mixed_schema()
    again = RecordSchema.from_dict(schema.to_dict())
    assert again.fields == schema.fields
    assert again.features == schema.features
    assert (again.num_rows, again.fingerprint, again.version) == (schema.num_rows, schema.fingerprint, schema.version)
    assert again.to_dict() == schema.to_dict()


def test_to_json_round_trip():
    schema = mixed_schema()
    again = RecordSchema.from_json(schema.to_json())
    assert again.fields == schema.fields
    assert again.features == schema.features
    assert again.to_json() == schema.to_json()


def test_columns_last_reorders_fields_not_features():
    schema = mixed_schema()
    names = list(schema.fields)
    moved = schema.with_columns_last(iter([names[0]]))
    assert list(moved.fields) == names[1:] + names[:1] and moved.columns == names == schema.columns
    assert list(schema.fields) == names  # the original is untouched
    again = RecordSchema.from_json(moved.to_json())
    assert list(again.fields) == list(moved.fields) and again.columns == names


def test_field_schema_round_trip_keeps_nesting():
    fs = mixed_schema().fields["meta"]
    again = FieldSchema.from_dict(fs.to_dict())
    assert again == fs
    assert isinstance(again.fields["tags"], FieldSchema)
    assert isinstance(again.fields["tags"].item, FieldSchema)


# ---------------------------------------------------------------------------- validation


def good_record() -> dict:
    return {"age": 25, "sex": "Male", "score": None, "label": 1, "flag": True,
            "meta": {"k": 2, "tags": ["a"]}, "nothing": None}


def test_validate_accepts_a_training_like_record():
    assert mixed_schema().validate(good_record()) == []


@pytest.mark.parametrize(
    "column,value",
    [
        ("age", 5),  # below the range
        ("age", 100),  # above the range
        ("age", 25.5),  # not an integer
        ("age", "25"),  # not a number
        ("age", None),  # never missing in training
        ("age", math.inf),
        ("sex", "Other"),  # unknown category
        ("label", 7),  # not a class index
        ("label", "yes"),  # a name, not an index
        ("flag", "yes"),
        ("nothing", "x"),  # a null column keeps missing
        ("meta", "not a dict"),
        ("meta", {"k": 99, "tags": []}),  # unknown nested category
        ("meta", {"k": 1, "tags": "a"}),  # not a list
        ("meta", {"k": 1, "tags": ["zzz"]}),  # unknown list item
        ("score", math.nan),
    ],
)
def test_validate_catches_bad_values(column, value):
    record = good_record()
    record[column] = value
    problems = mixed_schema().validate(record)
    assert problems, f"{column}={value!r} should be invalid"
    assert any(column in p for p in problems)


def test_validate_catches_missing_and_unknown_columns():
    schema = mixed_schema()
    record = good_record()
    del record["sex"]
    record["extra"] = 1
    problems = schema.validate(record)
    assert any("sex" in p for p in problems)
    assert any("extra" in p for p in problems)
    assert schema.validate(["not", "a", "dict"])


def test_validate_numeric_strings():
    schema = infer({"n": [str(i - 5) for i in range(20)], "d": [f"{i / 4:.2f}" for i in range(20)]})
    assert schema.validate({"n": "3", "d": "1.25"}) == []
    assert schema.validate({"n": "30", "d": "1.25"})  # out of range
    assert schema.validate({"n": "03", "d": "1.25"})  # not canonical
    assert schema.validate({"n": "3", "d": "1.2"})  # wrong number of decimals
    assert schema.validate({"n": "3", "d": "abc"})


# ---------------------------------------------------------------------------- fingerprint


def test_fingerprint_is_stable_and_content_sensitive():
    cols = {"a": [1, 2, 3], "b": ["x", "y", "z"]}
    fp = dataset_fingerprint(datasets.Dataset.from_dict(cols))
    assert fp == dataset_fingerprint(datasets.Dataset.from_dict({k: list(v) for k, v in cols.items()}))
    assert fp == RecordSchema.from_dataset(datasets.Dataset.from_dict(cols)).fingerprint
    changed = dataset_fingerprint(datasets.Dataset.from_dict({"a": [1, 2, 4], "b": ["x", "y", "z"]}))
    renamed = dataset_fingerprint(datasets.Dataset.from_dict({"a": [1, 2, 3], "c": ["x", "y", "z"]}))
    text_changed = dataset_fingerprint(datasets.Dataset.from_dict({"a": [1, 2, 3], "b": ["x", "y", "zz"]}))
    retyped = dataset_fingerprint(datasets.Dataset.from_dict(cols, features=F({"a": V("int32"), "b": V("string")})))
    assert len({fp, changed, renamed, text_changed, retyped}) == 5


def test_fingerprint_distinguishes_views_of_one_table():
    ds = datasets.Dataset.from_dict({"a": list(range(40))})
    first, second = ds.select(range(20)), ds.select(range(20, 40))
    picked = ds.select(list(range(20, 40)) + [0])
    fps = {dataset_fingerprint(d) for d in (ds, first, second, picked)}
    assert len(fps) == 4
    # the same rows give the same fingerprint however they are reached
    assert dataset_fingerprint(ds.select(range(20, 40))) == dataset_fingerprint(second)


# ---------------------------------------------------------------------------- path helpers


def test_path_helpers():
    path = item_path(child_path("tools", "a.b"))
    assert path_name(child_path("tools", "a.b")) == "a.b"  # dots in names are kept
    assert path_name(path) == "[]"
    assert readable_path(child_path(item_path("tools"), "name")) == "tools[].name"
    schema = mixed_schema()
    paths = dict(iter_paths(schema.fields))
    assert child_path("meta", "tags") in paths
    assert item_path(child_path("meta", "tags")) in paths
    assert paths[item_path(child_path("meta", "tags"))] is schema.fields["meta"].fields["tags"].item
    # depth first, columns in order
    top = [p for p in paths if "\x1f" not in p]
    assert top == schema.columns
