"""Alpha-precision, beta-recall and authenticity."""

import json

import numpy as np
import pandas as pd
import pytest

from hf_synth.evaluation.data import EvaluationError
from hf_synth.evaluation.highorder import alpha_precision_beta_recall, highorder


def test_hand_checked_curves():
    # real points -2..2 (mean 0, each 1 from its closest other real point); alphas 0, 0.5, 1
    real = np.array([[-2.0], [-1.0], [0.0], [1.0], [2.0]])
    synthetic = np.array([[-0.1], [0.4], [2.7], [-5.0]])
    result = alpha_precision_beta_recall(real, synthetic, steps=3)
    assert result["curves"]["alpha"] == [0.0, 0.5, 1.0]
    # real radii (quantiles of 2, 1, 0, 1, 2): 0, 1, 2; synthetic distances to 0: 0.1, 0.4, 2.7, 5
    assert result["curves"]["precision"] == [0.0, 0.5, 0.5]
    # closest synthetic rows of the real rows: -0.1 (d 1.9, 0.9, 0.1), 0.4 (d 0.6), 2.7 (d 0.7):
    # all but -2 beat their closest real row (1). Synthetic mean -0.5: those rows are 0.4, 0.4,
    # 0.4, 0.9, 3.2 from it, quantiles 0.4, 0.4, 3.2 -> real rows -1, 0 covered, then all four
    assert result["curves"]["recall"] == pytest.approx([0.4, 0.4, 0.8])
    assert result["alpha_precision"] == pytest.approx(1 - 2 * 0.5 * 0.5)
    assert result["beta_recall"] == pytest.approx(1 - 2 * (0.4 + 0.1 + 0.2) * 0.5)
    # only -5 is farther from its closest real row (-2) than that row from its neighbour
    assert result["authenticity"] == pytest.approx(0.25)
    assert result["rows_per_side"] == {"real": 5, "synthetic": 4}


def _gaussian(rng, n, scale=1.0, shift=0.0):
    return rng.normal(size=(n, 4)) * scale + shift


def test_same_distribution():
    rng = np.random.default_rng(0)
    real = _gaussian(rng, 1500)
    result = alpha_precision_beta_recall(real, _gaussian(rng, 1500))
    assert result["alpha_precision"] > 0.93
    # with equal sizes a real row's closest neighbour is synthetic half of the time: ~0.5 is the
    # ceiling of the estimator here, not a defect of the generator
    assert abs(result["beta_recall"] - 0.5) < 0.06
    assert abs(result["authenticity"] - 0.5) < 0.06
    # four times more synthetic rows: covered 4/5 of the time
    larger = alpha_precision_beta_recall(real, _gaussian(rng, 6000))
    assert abs(larger["beta_recall"] - 0.8) < 0.06
    json.dumps(result, allow_nan=False)


def test_copy_is_complete_but_not_authentic():
    rng = np.random.default_rng(1)
    real = _gaussian(rng, 800)
    result = alpha_precision_beta_recall(real, real[::-1].copy())
    assert result["alpha_precision"] > 0.99 and result["beta_recall"] > 0.99
    assert result["authenticity"] == 0.0


def test_mode_collapse_has_low_recall():
    rng = np.random.default_rng(2)
    real = _gaussian(rng, 1500)
    collapsed = _gaussian(rng, 1500, scale=0.1)
    result = alpha_precision_beta_recall(real, collapsed)
    assert result["beta_recall"] < 0.15
    # all synthetic rows sit in the real core: the precision curve jumps to 1 at once
    assert result["curves"]["precision"][3] == 1.0


def test_distant_synthetic_rows_have_low_precision():
    rng = np.random.default_rng(3)
    real = _gaussian(rng, 1000)
    result = alpha_precision_beta_recall(real, _gaussian(rng, 1000, shift=6.0))
    assert result["alpha_precision"] < 0.05 and result["beta_recall"] < 0.05
    assert result["authenticity"] == 1.0
    assert max(result["curves"]["precision"]) < 0.05


def test_subsampling_is_seeded():
    rng = np.random.default_rng(4)
    real, synthetic = _gaussian(rng, 700), _gaussian(rng, 900)
    first = alpha_precision_beta_recall(real, synthetic, max_rows=300, seed=1, steps=10)
    assert first == alpha_precision_beta_recall(real, synthetic, max_rows=300, seed=1, steps=10)
    assert first["rows_per_side"] == {"real": 300, "synthetic": 300}
    assert len(first["curves"]["alpha"]) == len(first["curves"]["recall"]) == 10
    assert first != alpha_precision_beta_recall(real, synthetic, max_rows=300, seed=2, steps=10)


def test_bad_inputs_raise():
    with pytest.raises(EvaluationError):
        alpha_precision_beta_recall(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(EvaluationError):
        alpha_precision_beta_recall(np.zeros((5, 3)), np.zeros((0, 3)))
    with pytest.raises(EvaluationError):
        alpha_precision_beta_recall(np.zeros((5, 3)), np.zeros((5, 2)))
    with pytest.raises(EvaluationError):
        alpha_precision_beta_recall(np.zeros((5, 3)), np.zeros((5, 3)), steps=1)


def _frame(rng, n, collapse=False):
    age = rng.normal(40, 12, size=n) if not collapse else rng.normal(40, 0.5, size=n)
    job = rng.choice(["a", "b", "c", "d"], size=n, p=[0.4, 0.3, 0.2, 0.1]) if not collapse else np.full(n, "a")
    return pd.DataFrame({"age": age, "hours": rng.gamma(4.0, 10.0, size=n), "job": pd.Series(job, dtype=object)})


def test_highorder_on_frames():
    rng = np.random.default_rng(5)
    kinds = {"age": "numerical", "hours": "numerical", "job": "categorical"}
    real = _frame(rng, 1200)
    good = highorder(real, _frame(rng, 1200), kinds)
    bad = highorder(real, _frame(rng, 1200, collapse=True), kinds)
    assert good["alpha_precision"] > 0.9 and abs(good["beta_recall"] - 0.5) < 0.08
    assert bad["beta_recall"] < good["beta_recall"] - 0.2
    assert set(good) == {"alpha_precision", "beta_recall", "authenticity", "curves", "rows_per_side"}
    assert highorder(real, _frame(rng, 1200), kinds, max_rows=500)["rows_per_side"] == {"real": 500, "synthetic": 500}
    with pytest.raises(EvaluationError):
        highorder(real.iloc[:0], real, kinds)
    with pytest.raises(EvaluationError):
        highorder(real, real.iloc[:0], kinds)
    with pytest.raises(EvaluationError):
        highorder(real, real.drop(columns="job"), kinds)
