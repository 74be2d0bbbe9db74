"""Column shapes and column pair trends (SDMetrics QualityReport definitions) on cases with known answers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hf_synth.evaluation.data import EvaluationError
from hf_synth.evaluation.fidelity import column_pair_trends, column_shapes

NAN = float("nan")


def _frame(**columns) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(values, dtype=float if all(isinstance(v, (int, float)) for v in values) else object) for name, values in columns.items()})


def _correlated(n: int, seed: int) -> tuple[pd.DataFrame, dict[str, str]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    frame = pd.DataFrame(
        {
            "x": x,
            "y": x + rng.normal(scale=0.1, size=n),
            "z": -2 * x + rng.normal(scale=0.1, size=n),
            "sign": pd.Series(np.where(x > 0, "pos", "neg"), dtype=object),
            "size": pd.Series(np.where(np.abs(x) > 1, "big", "small"), dtype=object),
        }
    )
    return frame, {"x": "numerical", "y": "numerical", "z": "numerical", "sign": "categorical", "size": "categorical"}


def test_identical_data_scores_one():
    frame, kinds = _correlated(500, 0)
    shapes = column_shapes(frame, frame.copy(), kinds)
    trends = column_pair_trends(frame, frame.copy(), kinds)
    assert shapes["score"] == pytest.approx(1.0) and shapes["error"] == pytest.approx(0.0)
    assert trends["score"] == pytest.approx(1.0) and trends["error"] == pytest.approx(0.0)
    assert len(trends["pairs"]) == 10  # 5 columns -> 10 pairs
    assert {e["metric"] for e in shapes["columns"].values()} == {"KSComplement", "TVComplement"}


def test_ks_and_tv_complement_by_hand():
    # KS: ECDFs of {1,2,3,4} and {3,4,5,6} differ by at most 0.5 (at x in [2, 4]); the NaN is dropped
    # TV: real a .5 b .25 missing .25, synthetic a .25 b .5 c .25 -> |diffs| sum to 1 -> TV .5
    # KS of {0,0,0,1} vs {0,0,0,0}: F differs by .25 on [0, 1) -> .75
    real = _frame(num=[1, 2, 3, 4, NAN], cat=["a", "a", "b", None, "a"], other=[0, 0, 0, 1, 0])
    synthetic = _frame(num=[3, 4, 5, 6], cat=["a", "b", "b", "c"], other=[0, 0, 0, 0])
    kinds = {"num": "numerical", "cat": "categorical", "other": "numerical"}
    shapes = column_shapes(real.iloc[:4], synthetic, kinds)
    assert shapes["columns"]["num"] == {"metric": "KSComplement", "score": pytest.approx(0.5)}
    assert shapes["columns"]["cat"] == {"metric": "TVComplement", "score": pytest.approx(0.5)}
    assert shapes["columns"]["other"]["score"] == pytest.approx(0.75)
    assert shapes["score"] == pytest.approx((0.5 + 0.5 + 0.75) / 3)
    assert shapes["error"] == pytest.approx((1 - (0.5 + 0.5 + 0.75) / 3) * 100)
    # a missing numerical value is dropped, not compared: adding one to the real side changes nothing
    with_gap = column_shapes(_frame(num=[1, 2, 3, 4, NAN]), _frame(num=[3, 4, 5, 6]), {"num": "numerical"})
    assert with_gap["columns"]["num"]["score"] == pytest.approx(0.5)


def test_missing_is_a_category_of_its_own():
    # real: x .5, missing .5; synthetic: x 1.0 -> TV = .5
    shapes = column_shapes(_frame(c=["x", None]), _frame(c=["x", "x"]), {"c": "categorical"})
    assert shapes["columns"]["c"]["score"] == pytest.approx(0.5)


def test_numerical_column_missing_on_one_side_is_left_out():
    real = _frame(a=[1, 2, 3], b=[1, 2, 3])
    synthetic = _frame(a=[1, 2, 3], b=[NAN, NAN, NAN])
    shapes = column_shapes(real, synthetic, {"a": "numerical", "b": "numerical"})
    assert shapes["columns"]["b"]["score"] is None and "synthetic" in shapes["columns"]["b"]["note"]
    assert shapes["score"] == pytest.approx(1.0)  # the mean of the columns with a score


def test_contingency_similarity_by_hand():
    # real joint: 4 cells of .25; synthetic: (x,u) .5, (y,v) .5 -> |diffs| sum to 1 -> score .5
    real = _frame(a=["x", "x", "y", "y"], b=["u", "v", "u", "v"])
    synthetic = _frame(a=["x", "x", "y", "y"], b=["u", "u", "v", "v"])
    trends = column_pair_trends(real, synthetic, {"a": "categorical", "b": "categorical"})
    pair = trends["pairs"]["a / b"]
    assert pair["metric"] == "ContingencySimilarity" and pair["columns"] == ["a", "b"]
    assert pair["score"] == pytest.approx(0.5)
    assert pair["real"] is None and pair["synthetic"] is None


def test_contingency_bins_numbers_on_the_real_range():
    # bins=2 over the real range [0, 10]: edges 0, 5, 10. Real: (bin0,a) .5, (bin1,b) .5.
    # Synthetic: -5 clips into bin0, 5 opens bin1, 20 clips into bin1, NaN is its own bin:
    # (bin0,a) .25, (bin1,b) .5, (missing,a) .25 -> |diffs| .25 + 0 + .25 -> score .75
    real = _frame(n=[0, 1, 9, 10], c=["a", "a", "b", "b"])
    synthetic = _frame(n=[-5, 5, 20, NAN], c=["a", "b", "b", "a"])
    trends = column_pair_trends(real, synthetic, {"n": "numerical", "c": "categorical"}, bins=2)
    assert trends["pairs"]["n / c"]["score"] == pytest.approx(0.75)
    # with 4 bins (edges 0, 2.5, 5, 7.5, 10): real (0,a) .5 (3,b) .5, synthetic (0,a) .25 (2,b) .25 (3,b) .25 (missing,a) .25 -> 1.0 -> .5
    assert column_pair_trends(real, synthetic, {"n": "numerical", "c": "categorical"}, bins=4)["pairs"]["n / c"]["score"] == pytest.approx(0.5)


def test_correlation_similarity_by_hand():
    # real r = 1. Synthetic y = [1, 3, 2, 4]: deviations (-1.5, -.5, .5, 1.5) and (-1.5, .5, -.5, 1.5),
    # products sum to 4, squares to 5 each -> r = .8 -> score 1 - .2 / 2 = .9.
    # The last row has a gap: pairs use rows where both values are present.
    real = _frame(x=[1, 2, 3, 4, 5], y=[1, 2, 3, 4, NAN])
    synthetic = _frame(x=[1, 2, 3, 4, NAN], y=[1, 3, 2, 4, 7])
    pair = column_pair_trends(real, synthetic, {"x": "numerical", "y": "numerical"})["pairs"]["x / y"]
    assert pair["metric"] == "CorrelationSimilarity"
    assert pair["real"] == pytest.approx(1.0) and pair["synthetic"] == pytest.approx(0.8)
    assert pair["score"] == pytest.approx(0.9)
    reversed_pair = column_pair_trends(_frame(x=[1, 2, 3], y=[1, 2, 3]), _frame(x=[1, 2, 3], y=[3, 2, 1]), {"x": "numerical", "y": "numerical"})
    assert reversed_pair["pairs"]["x / y"]["score"] == pytest.approx(0.0)  # r 1 vs -1


def test_constant_column_makes_the_correlation_undefined():
    real = _frame(x=[1, 2, 3, 4], y=[1, 2, 3, 4], k=[1, 1, 1, 1])
    synthetic = _frame(x=[1, 2, 3, 4], y=[1, 2, 4, 3], k=[1, 1, 1, 1])
    trends = column_pair_trends(real, synthetic, {"x": "numerical", "y": "numerical", "k": "numerical"})
    for key in ("x / k", "y / k"):
        assert trends["pairs"][key]["score"] is None and "constant" in trends["pairs"][key]["note"]
    # only x / y counts: r real 1, synthetic .8 -> .9
    assert trends["score"] == pytest.approx(0.9)


def test_shuffling_columns_keeps_shapes_and_breaks_trends():
    frame, kinds = _correlated(2000, 1)
    rng = np.random.default_rng(2)
    shuffled = pd.DataFrame({c: frame[c].to_numpy()[rng.permutation(len(frame))] for c in frame.columns})
    assert column_shapes(frame, shuffled, kinds)["score"] == pytest.approx(1.0)
    trends = column_pair_trends(frame, shuffled, kinds)
    assert trends["score"] < 0.75
    assert trends["pairs"]["x / y"]["score"] < 0.6  # r ~.99 vs ~0
    # an independent draw of the same distribution keeps both high
    other, _ = _correlated(2000, 3)
    assert column_pair_trends(frame, other, kinds)["score"] > 0.95
    assert column_shapes(frame, other, kinds)["score"] > 0.95


def test_text_and_nested_columns_are_skipped_and_results_are_json():
    real = _frame(n=[1, 2, 3], c=["a", "b", "a"], t=["some text", "other", "words"], j=['{"a": 1}', "[]", None])
    kinds = {"n": "numerical", "c": "categorical", "t": "text", "j": "nested"}
    shapes = column_shapes(real, real, kinds)
    trends = column_pair_trends(real, real, kinds)
    assert set(shapes["columns"]) == {"n", "c"} and set(trends["pairs"]) == {"n / c"}
    json.dumps([shapes, trends], allow_nan=False)
    only_text = column_shapes(real, real, {"t": "text"})
    assert only_text["score"] is None and only_text["error"] is None and only_text["note"]


def test_bad_inputs():
    real = _frame(a=[1, 2], b=["x", "y"])
    with pytest.raises(EvaluationError, match="lack the columns"):
        column_shapes(real, real[["a"]], {"a": "numerical", "b": "categorical"})
    with pytest.raises(EvaluationError, match="empty"):
        column_pair_trends(real, real.iloc[:0], {"a": "numerical", "b": "categorical"})
    with pytest.raises(EvaluationError, match="bins"):
        column_pair_trends(real, real, {"a": "numerical"}, bins=0)


def test_associated_pairs_follow_the_sdmetrics_thresholds():
    # a and b determine each other (Cramér's V = 1); c is independent of both (V = 0 by construction)
    real = pd.DataFrame({
        "a": ["x", "x", "y", "y"] * 25,
        "b": ["p", "p", "q", "q"] * 25,
        "c": ["u", "v", "u", "v"] * 25,
    })
    kinds = {"a": "categorical", "b": "categorical", "c": "categorical"}
    # synthetic: a and b independent (half the cells swapped), c unchanged
    synthetic = real.assign(b=["p", "q", "q", "p"] * 25)
    trends = column_pair_trends(real, synthetic, kinds)
    pairs = trends["pairs"]
    assert pairs["a / b"]["real_association"] == pytest.approx(1.0)
    assert pairs["a / c"]["real_association"] == pytest.approx(0.0)
    assert [p["associated"] for p in pairs.values()] == [True, False, False]
    assert trends["associated_pairs"] == 1
    # a / b: real cells (x,p), (y,q) at 1/2 each; synthetic (x,p), (x,q), (y,q), (y,p) at 1/4 each: TV 1/2
    assert trends["associated_score"] == pytest.approx(0.5)
    assert trends["associated_error"] == pytest.approx(50.0)
    # all pairs: a / c keeps 1; b / c: real (p,u),(p,v),(q,u),(q,v) each 1/4 and so is synthetic
    assert trends["score"] == pytest.approx((0.5 + 1.0 + 1.0) / 3)
