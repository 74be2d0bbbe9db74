"""Privacy metrics: nearest-neighbour search, exact-copy keys, DCR and membership inference."""

import json

import numpy as np
import pandas as pd
import pytest

from hf_synth.evaluation.data import EvaluationError
from hf_synth.evaluation.privacy import (
    dcr_share,
    exact_copy_mask,
    nearest_distances,
    nearest_neighbours,
    privacy,
    row_keys,
)

KINDS = {"x": "numerical", "y": "numerical", "colour": "categorical"}


def _rows(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Continuous columns (no ties between independent draws) plus a category."""
    return pd.DataFrame({
        "x": rng.normal(size=n),
        "y": rng.gamma(2.0, size=n),
        "colour": pd.Series(rng.choice(["red", "green", "blue"], size=n), dtype=object),
    })


@pytest.fixture(scope="module")
def splits():
    rng = np.random.default_rng(7)
    return _rows(rng, 1000), _rows(rng, 1000), _rows(rng, 1000)  # train, holdout, fresh


# ----------------------------------------------------------------------------- nearest neighbours
def _brute(queries, reference):
    return np.sqrt(((queries[:, None, :].astype(float) - reference[None, :, :]) ** 2).sum(-1))


def test_nearest_distances_match_brute_force():
    rng = np.random.default_rng(0)
    queries, reference = rng.normal(size=(50, 6)).astype(np.float32), rng.normal(size=(80, 6)).astype(np.float32)
    full = _brute(queries, reference)
    distances, index = nearest_neighbours(queries, reference)
    np.testing.assert_allclose(distances, full.min(axis=1), rtol=1e-12)
    np.testing.assert_array_equal(index, full.argmin(axis=1))
    np.testing.assert_allclose(nearest_distances(queries, reference), full.min(axis=1), rtol=1e-12)


def test_exclude_self_takes_the_closest_other_row():
    rng = np.random.default_rng(1)
    points = rng.normal(size=(40, 3))
    points[7] = points[3]  # a duplicate: its closest other row is at distance exactly 0
    full = _brute(points, points)
    np.fill_diagonal(full, np.inf)
    distances, index = nearest_neighbours(points, points, exclude_self=True)
    np.testing.assert_allclose(distances, full.min(axis=1), rtol=1e-12)
    assert distances[3] == 0.0 and distances[7] == 0.0
    assert set(index[[3, 7]]) <= {3, 7}
    unique = np.setdiff1d(np.arange(40), [3, 7])
    np.testing.assert_array_equal(index[unique], full.argmin(axis=1)[unique])
    # queries that are a shuffled subsample of the reference (as the curation filter probes)
    probe = rng.permutation(40)[:15]
    np.testing.assert_allclose(nearest_distances(points[probe], points, exclude_self=True), full.min(axis=1)[probe], rtol=1e-12)


def test_duplicates_are_at_exactly_zero():
    # the matrix-product search alone gives ~1e-7 for a duplicate; the recomputation gives 0
    rng = np.random.default_rng(2)
    reference = (rng.random((300, 110)) * 3).astype(np.float32)
    assert (nearest_distances(reference[::-1].copy(), reference) == 0.0).all()


def test_nearest_neighbour_errors():
    with pytest.raises(EvaluationError):
        nearest_distances(np.zeros((3, 2)), np.zeros((3, 4)))
    with pytest.raises(EvaluationError):
        nearest_distances(np.zeros((1, 2)), np.zeros((1, 2)), exclude_self=True)
    with pytest.raises(EvaluationError):
        nearest_distances(np.zeros((3, 2)), np.zeros((0, 2)))
    with pytest.raises(EvaluationError):
        nearest_distances(np.array([[np.nan, 1.0]]), np.zeros((2, 2)))


# ----------------------------------------------------------------------------- exact copies
def test_row_keys_normalise_numbers_and_missing_values():
    left = pd.DataFrame({"n": [39.0, np.nan, 0.0, 1.5, 7.0], "c": pd.Series(["a", None, "b", "c", None], dtype=object)})
    right = pd.DataFrame({
        "n": pd.array([39, None, 0, 2, 7], dtype="Int64").astype("Float64") + pd.array([1e-12, None, -0.0, -0.5, 0], dtype="Float64"),
        "c": pd.Series(["a", np.nan, "b", "c", "None"], dtype=object),
    })
    keys_left, keys_right = row_keys(left), row_keys(right)
    # 39 ~ 39 + 1e-12; NaN/None ~ NA; 0.0 ~ -0.0; 1.5 == 2 - 0.5; missing != the text "None"
    assert list(keys_left == keys_right) == [True, True, True, True, False]
    assert keys_left.dtype == np.uint64 and len(set(keys_left)) == 5


def test_row_keys_tell_close_but_different_numbers_apart():
    left = pd.DataFrame({"n": [1.0, 1000.0]})
    right = pd.DataFrame({"n": [1.0 + 1e-6, 1000.001]})
    assert not (row_keys(left) == row_keys(right)).any()


def test_row_keys_column_order_and_missing_columns():
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": pd.Series(["x", "y"], dtype=object)})
    swapped = frame[["b", "a"]]
    assert (row_keys(frame, ["a", "b"]) == row_keys(swapped, ["a", "b"])).all()
    assert not (row_keys(frame) == row_keys(swapped)).any()
    with pytest.raises(EvaluationError):
        row_keys(frame, ["a", "zzz"])


def test_exact_copy_mask():
    reference = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": pd.Series(["x", "y", "z"], dtype=object)})
    queries = pd.DataFrame({"b": pd.Series(["y", "y", "z"], dtype=object), "a": [2.0, 3.0, 3.0]})
    assert list(exact_copy_mask(queries, reference)) == [True, False, True]


# ----------------------------------------------------------------------------- DCR and attack
def test_copy_of_train_is_flagged_everywhere(splits):
    train, holdout, _ = splits
    result = privacy(train, train.copy(), holdout, KINDS)
    assert result["exact_copy_rate"] == 1.0
    assert result["dcr_share"] == 1.0
    assert result["membership_inference"]["auc"] == 1.0
    assert result["dcr"]["synthetic_to_train"]["p95"] == 0.0
    assert result["dcr"]["holdout_to_train"]["p50"] > 0.0
    assert result["holdout_exact_copy_rate"] == 0.0


def test_fresh_rows_from_the_same_distribution_leak_nothing(splits):
    train, holdout, fresh = splits
    result = privacy(train, fresh, holdout, KINDS)
    assert result["exact_copy_rate"] == 0.0
    assert abs(result["dcr_share"] - 0.5) < 0.06  # standard error ~0.016 with 1000 rows
    assert abs(result["membership_inference"]["auc"] - 0.5) < 0.06
    # unseen real rows and fresh synthetic rows come as close to the training rows
    synthetic_median = result["dcr"]["synthetic_to_train"]["p50"]
    holdout_median = result["dcr"]["holdout_to_train"]["p50"]
    assert 0.75 < synthetic_median / holdout_median < 1.33
    assert result["rows"] == {"train": 1000, "synthetic": 1000, "holdout": 1000, "dcr_share_each": 1000, "membership_each": 1000}
    json.dumps(result, allow_nan=False)


def test_partial_copying_sits_in_between(splits):
    train, holdout, fresh = splits
    half = pd.concat([train.iloc[:500], fresh.iloc[500:]], ignore_index=True)
    result = privacy(train, half, holdout, KINDS)
    assert result["exact_copy_rate"] == 0.5
    assert abs(result["dcr_share"] - 0.75) < 0.05  # 500 copies (1.0) + 500 fresh rows (~0.5)
    assert 0.6 < result["membership_inference"]["auc"] < 0.9


def test_ties_count_half():
    assert dcr_share(np.array([1.0, 2.0, 3.0, 1.0]), np.array([1.0, 3.0, 2.0, 2.0])) == pytest.approx(0.625)
    # one numeric column scaled by the train range [0, 4]: the synthetic rows 1 and 5 are exactly
    # as far from a train row as from a holdout row, the row 0 is a train row
    kinds = {"v": "numerical"}
    train = pd.DataFrame({"v": [0.0, 4.0]})
    holdout = pd.DataFrame({"v": [2.0, 6.0]})
    synthetic = pd.DataFrame({"v": [1.0, 5.0, 0.0]})
    result = privacy(train, synthetic, holdout, kinds)
    assert result["dcr_share"] == pytest.approx(2 / 3)
    assert result["exact_copy_rate"] == pytest.approx(1 / 3)


def test_dcr_share_compares_equal_size_sets():
    # a large train split must not win the comparison just by being large: a fresh sample of the
    # same distribution still scores ~0.5 once train is cut to the holdout's size
    rng = np.random.default_rng(3)
    train, holdout, fresh = _rows(rng, 3000), _rows(rng, 600), _rows(rng, 600)
    result = privacy(train, fresh, holdout, KINDS)
    assert result["rows"]["dcr_share_each"] == 600 and result["membership_inference"]["members"] == 600
    assert abs(result["dcr_share"] - 0.5) < 0.08
    # holdout larger than train: the holdout is cut instead
    result = privacy(holdout, fresh, train, KINDS)
    assert result["rows"]["dcr_share_each"] == 600
    assert abs(result["dcr_share"] - 0.5) < 0.08


def test_without_holdout(splits):
    train, _, fresh = splits
    result = privacy(train, fresh, None, KINDS)
    assert result["dcr_share"] is None and result["membership_inference"] is None
    assert result["dcr"]["holdout_to_train"] is None and result["holdout_exact_copy_rate"] is None
    assert "holdout" in result["note"]
    assert result["exact_copy_rate"] == 0.0
    assert set(result["dcr"]["synthetic_to_train"]) == {"mean", "p5", "p25", "p50", "p75", "p95"}
    json.dumps(result, allow_nan=False)


def test_return_distances_and_determinism(splits):
    train, holdout, fresh = splits
    result, distances = privacy(train, fresh, holdout, KINDS, return_distances=True, max_rows=400, seed=5)
    assert result == privacy(train, fresh, holdout, KINDS, max_rows=400, seed=5)
    assert result["rows"]["train"] == result["rows"]["synthetic"] == result["rows"]["holdout"] == 400
    assert distances["synthetic_to_train"].shape == (400,) and distances["holdout_to_train"].shape == (400,)
    assert result["dcr"]["synthetic_to_train"]["p50"] == pytest.approx(np.median(distances["synthetic_to_train"]))
    assert result["dcr"]["holdout_to_train"]["mean"] == pytest.approx(distances["holdout_to_train"].mean())
    other = privacy(train, fresh, holdout, KINDS, max_rows=400, seed=6)
    assert other["dcr"]["synthetic_to_train"] != result["dcr"]["synthetic_to_train"]


def test_empty_or_mismatched_inputs_raise(splits):
    train, holdout, fresh = splits
    with pytest.raises(EvaluationError):
        privacy(train.iloc[:0], fresh, holdout, KINDS)
    with pytest.raises(EvaluationError):
        privacy(train, fresh.iloc[:0], holdout, KINDS)
    with pytest.raises(EvaluationError):
        privacy(train, fresh, holdout.iloc[:0], KINDS)
    with pytest.raises(EvaluationError):
        privacy(train, fresh.drop(columns="colour"), holdout, KINDS)
    with pytest.raises(EvaluationError):
        privacy(train, fresh, holdout, {})


def test_exact_copies_are_looked_up_in_every_training_row(splits):
    train, holdout, _ = splits
    # distances use 50 rows per side, but a copy is a copy of any training row
    result = privacy(train, train, holdout, KINDS, max_rows=50)
    assert result["exact_copy_rate"] == 1.0
    assert result["rows"]["train"] == 50
