"""Evaluation inputs: loading, validity, column roles and the row encoding."""

import json

import datasets
import numpy as np
import pandas as pd
import pytest

from hf_synth.evaluation.data import EvaluationError, column_roles, prepare
from hf_synth.evaluation.encoding import RowEncoder
from hf_synth.schema import RecordSchema


def _real(n=40):
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "age": rng.integers(18, 80, n),
        "income": rng.normal(50.0, 10.0, n).round(1),
        "sex": rng.choice(["Male", "Female"], n),
        "grade": rng.integers(1, 4, n),
    })


def test_identical_data_is_all_valid_and_typed():
    real = _real()
    data = prepare(real, real)
    assert data.validity == {"score": 1.0, "valid_rows": 40, "invalid_rows": 0, "total_rows": 40, "reasons": {}}
    assert data.kinds == {"age": "numerical", "income": "numerical", "sex": "categorical", "grade": "numerical"}
    assert data.synthetic["sex"].tolist() == real["sex"].tolist()
    assert data.synthetic["age"].dtype == float


def test_invalid_rows_are_counted_by_column_and_left_out():
    real = _real()
    synthetic = real.copy()
    synthetic.loc[0, "sex"] = "Other"      # unknown category
    synthetic.loc[1, "age"] = 500          # out of range
    synthetic.loc[2, "income"] = -1000.0   # out of range
    data = prepare(real, synthetic)
    assert data.validity["invalid_rows"] == 3
    assert data.validity["score"] == pytest.approx(37 / 40)
    assert data.validity["reasons"] == {"sex": 1, "age": 1, "income": 1}
    assert len(data.synthetic) == 37
    assert "Other" not in set(data.synthetic["sex"])
    assert [e["row"] for e in data.invalid_examples] == [0, 1, 2]


def test_raw_generations_count_unparsable_json_as_invalid(tmp_path):
    real = _real()
    lines = [json.dumps(r) for r in real.head(5).to_dict("records")]
    lines += ['{"age": 30, "income": 50.0, "sex": "Male"', "not json at all", '{"age": 30}']
    path = tmp_path / "raw.jsonl"
    path.write_text("\n".join(lines) + "\n")
    data = prepare(real, str(path))
    assert data.validity["total_rows"] == 8
    assert data.validity["valid_rows"] == 5
    assert data.validity["reasons"]["<json>"] == 2
    assert data.validity["reasons"]["<record>"] == 1  # the row with missing keys
    # the same, given as a list of strings
    assert prepare(real, lines).validity["valid_rows"] == 5


def test_whole_floats_in_integer_columns_are_valid():
    real = _real()
    synthetic = real.astype({"age": float})
    assert prepare(real, synthetic).validity["score"] == 1.0


def test_class_labels_compare_by_name():
    features = datasets.Features({"label": datasets.ClassLabel(names=["neg", "pos"]), "x": datasets.Value("float64")})
    real = datasets.Dataset.from_dict({"label": [0, 1, 1, 0], "x": [0.5, 1.5, 2.5, 3.5]}, features=features)
    data = prepare(real, real)
    assert data.kinds["label"] == "categorical"
    assert data.real["label"].tolist() == ["neg", "pos", "pos", "neg"]


@pytest.mark.parametrize(
    "synthetic, message",
    [
        (pd.DataFrame({"age": [30], "income": [1.0], "sex": ["Male"]}), "lacks \\['grade'\\]"),
        (pd.DataFrame({"age": [30], "income": [1.0], "sex": ["Male"], "grade": [1], "zip": ["x"]}), "extra columns \\['zip'\\]"),
        (pd.DataFrame({"a": [1], "b": [2]}), "share no column"),
        (pd.DataFrame({"age": [], "income": [], "sex": [], "grade": []}), "empty"),
    ],
)
def test_mismatched_or_empty_synthetic_data_is_a_clear_error(synthetic, message):
    with pytest.raises(EvaluationError, match=message):
        prepare(_real(), synthetic)


def test_all_invalid_rows_are_reported_not_raised():
    real = _real()
    synthetic = real.assign(sex="Unknown")
    data = prepare(real, synthetic)
    assert data.validity["score"] == 0.0 and len(data.synthetic) == 0


def test_holdout_must_have_the_columns():
    real = _real()
    with pytest.raises(EvaluationError, match="holdout data lacks"):
        prepare(real, real, holdout=real.drop(columns=["sex"]))


def test_column_kind_overrides_are_checked():
    schema = RecordSchema.from_dataset(datasets.Dataset.from_pandas(_real(), preserve_index=False))
    assert column_roles(schema, {"grade": "categorical"})["grade"] == "categorical"
    with pytest.raises(EvaluationError, match="unknown columns"):
        column_roles(schema, {"nope": "categorical"})
    with pytest.raises(EvaluationError, match="the kinds are"):
        column_roles(schema, {"grade": "ordinal"})


def test_row_encoder_scales_by_the_real_range_and_one_hots_categories():
    real = pd.DataFrame({"x": [0.0, 5.0, 10.0], "c": ["a", "b", "a"]})
    encoder = RowEncoder().fit(real, {"x": "numerical", "c": "categorical"})
    other = pd.DataFrame({"x": [20.0, np.nan], "c": ["b", "never seen"]})
    encoded = encoder.transform(other)
    # columns: x scaled, x missing, then slots a, b, other
    assert encoder.dim == 1 + 1 + 3 - 1  # no missing indicator: the real column has no gap
    np.testing.assert_allclose(encoded, [[2.0, 0, 1, 0], [0.0, 0, 0, 1]])


def test_row_encoder_handles_text_columns():
    real = pd.DataFrame({"t": [f"row number {i} says hello" for i in range(20)]})
    encoder = RowEncoder(text_dims=4).fit(real, {"t": "text"})
    encoded = encoder.transform(real)
    assert encoded.shape == (20, 4)
    np.testing.assert_allclose(np.linalg.norm(encoded, axis=1), 1.0, rtol=1e-5)
