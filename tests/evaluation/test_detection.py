"""Detection (C2ST): indistinguishable data scores near 1, separable data near 0."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hf_synth.evaluation import detection
from hf_synth.evaluation.data import EvaluationError


def detection_score(*args, **kwargs):
    return detection.detection_score(*args, n_jobs=1, **kwargs)  # one thread: the test machine is shared


def c2st(*args, **kwargs):
    return detection.c2st(*args, n_jobs=1, **kwargs)


@pytest.mark.parametrize("model", ["logistic", "gradient_boosting"])
def test_same_distribution_is_indistinguishable(model):
    rng = np.random.default_rng(0)
    real, synthetic = rng.normal(size=(800, 3)), rng.normal(size=(800, 3))
    result = detection_score(real, synthetic, model=model, seed=0)
    assert result["score"] > 0.8
    assert 0.35 < result["auc"] < 0.65
    assert result["model"] == model and result["rows_per_side"] == 800
    assert result["folds"] == (3 if model == "logistic" else 5)


@pytest.mark.parametrize("model", ["logistic", "gradient_boosting"])
def test_separated_distributions_are_detected(model):
    rng = np.random.default_rng(1)
    real, synthetic = rng.normal(size=(400, 3)), rng.normal(loc=4.0, size=(400, 3))
    result = detection_score(real, synthetic, model=model)
    assert result["score"] < 0.05 and result["auc"] > 0.97


def test_perfect_separation_scores_exactly_zero():
    # one feature, real all below 0, synthetic all above: every fold's AUC is 1 -> 1 - (2 * 1 - 1) = 0
    real = np.linspace(-2, -1, 60)[:, None]
    synthetic = np.linspace(1, 2, 60)[:, None]
    result = detection_score(real, synthetic, model="logistic")
    assert result["auc"] == pytest.approx(1.0) and result["score"] == pytest.approx(0.0)


def test_boosting_sees_what_the_linear_model_cannot():
    # same mean, three times the spread: no linear boundary, an easy one for trees
    rng = np.random.default_rng(2)
    real, synthetic = rng.normal(size=(600, 2)), rng.normal(scale=3.0, size=(600, 2))
    linear = detection_score(real, synthetic, model="logistic")
    boosted = detection_score(real, synthetic, model="gradient_boosting")
    assert linear["score"] > 0.8
    assert boosted["score"] < linear["score"] - 0.3


def test_subsampling_balances_and_caps_the_sides():
    rng = np.random.default_rng(3)
    result = detection_score(rng.normal(size=(500, 2)), rng.normal(size=(120, 2)), max_rows=100, folds=4)
    assert result["rows_per_side"] == 100 and result["folds"] == 4
    assert detection_score(rng.normal(size=(500, 2)), rng.normal(size=(120, 2)))["rows_per_side"] == 120


def test_deterministic_given_seed():
    rng = np.random.default_rng(4)
    real, synthetic = rng.normal(size=(300, 3)), rng.normal(loc=0.3, size=(300, 3))
    for model in ("logistic", "gradient_boosting"):
        assert detection_score(real, synthetic, model=model, seed=7) == detection_score(real, synthetic, model=model, seed=7)


def test_too_few_rows_or_features_give_none_with_a_note():
    few = detection_score(np.zeros((5, 2)), np.ones((50, 2)))
    assert few["score"] is None and few["auc"] is None and "too few rows" in few["note"]
    empty = detection_score(np.zeros((50, 0)), np.ones((50, 0)))
    assert empty["score"] is None and "no feature" in empty["note"]


def test_bad_arguments():
    with pytest.raises(EvaluationError, match="unknown detection model"):
        detection_score(np.zeros((20, 1)), np.zeros((20, 1)), model="svm")
    with pytest.raises(EvaluationError, match="shape"):
        detection_score(np.zeros((20, 1)), np.zeros((20, 2)))
    with pytest.raises(EvaluationError, match="folds"):
        detection_score(np.zeros((20, 1)), np.zeros((20, 1)), folds=1)


def _frame(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    x = rng.normal(loc=shift, size=n)
    words = np.array(["red", "green", "blue", "cat", "dog", "fish"])
    return pd.DataFrame(
        {
            "x": x,
            "y": rng.uniform(size=n),
            "c": pd.Series(np.where(rng.uniform(size=n) < 0.3 + shift / 10, "a", "b"), dtype=object),
            "t": pd.Series([" ".join(rng.choice(words, size=3)) for _ in range(n)], dtype=object),
        }
    )


def test_c2st_on_frames():
    rng = np.random.default_rng(5)
    real = _frame(rng, 400)
    # the text column "t" is left out: RowEncoder's text SVD takes seconds, and is tested with the encoder
    tabular = {"x": "numerical", "y": "numerical", "c": "categorical"}
    same = c2st(real, _frame(rng, 400), tabular, seed=0)
    assert set(same) == {"logistic", "gradient_boosting"}
    assert same["logistic"]["score"] > 0.8 and same["gradient_boosting"]["score"] > 0.8
    shifted = c2st(real, _frame(rng, 400, shift=3.0), tabular, seed=0)
    assert shifted["logistic"]["score"] < 0.1 and shifted["gradient_boosting"]["score"] < 0.1
    json.dumps([same, shifted], allow_nan=False)
    with pytest.raises(EvaluationError, match="missing"):
        c2st(real, real.drop(columns=["c"]), tabular)
