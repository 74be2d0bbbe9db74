"""Machine-learning efficacy (train on synthetic, test on real) on tasks with known answers."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest

from hf_synth.evaluation import utility as utility_module
from hf_synth.evaluation.data import EvaluationError

BACKENDS = ["xgboost", "hist_gradient_boosting"]
KINDS = {"x1": "numerical", "x2": "numerical", "c1": "categorical", "note": "text", "target": "categorical"}


def utility(*args, **kwargs):
    return utility_module.utility(*args, n_jobs=1, **kwargs)  # one thread: the test machine is shared


def _rows(n: int, seed: int, task: str = "binary") -> pd.DataFrame:
    """Features x1, x2 (noise), c1, a text column; the target is a deterministic function of x1 and c1."""
    rng = np.random.default_rng(seed)
    x1 = rng.uniform(0, 2, size=n)
    x2 = rng.normal(size=n)
    c1 = rng.choice(["a", "b", "c"], size=n)
    score = x1 + (c1 == "a")
    if task == "binary":
        target = pd.Series(np.where(score > 1.3, "yes", "no"), dtype=object)
    elif task == "multiclass":
        target = pd.Series(np.select([score < 0.9, score < 1.8], ["low", "mid"], "high"), dtype=object)
    else:
        target = 3 * x1 + 2 * (c1 == "a") + rng.normal(scale=0.05, size=n)
    return pd.DataFrame({"x1": x1, "x2": x2, "c1": pd.Series(c1, dtype=object), "note": pd.Series(["free text"] * n, dtype=object), "target": target})


def _kinds(task: str) -> dict[str, str]:
    return {**KINDS, "target": "numerical" if task == "regression" else "categorical"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_binary_deterministic_target(backend):
    real, synthetic, test = _rows(400, 0), _rows(400, 1), _rows(300, 2)
    result = utility(real, synthetic, test, "target", KINDS, backend=backend)
    assert result["task"] == "binary" and result["metric"] == "auc" and result["backend"] == backend
    assert result["classes"] == ["no", "yes"]
    assert result["real"]["auc"] > 0.97 and result["synthetic"]["auc"] > 0.97
    assert result["real"]["accuracy"] > 0.9
    assert abs(result["gap"]["auc"]) < 0.03
    assert result["gap"]["auc"] == pytest.approx(result["real"]["auc"] - result["synthetic"]["auc"])
    assert result["features"] == ["x1", "x2", "c1"]
    assert any("note" in line and "text" in line for line in result["notes"])  # the text column is not a feature
    assert result["rows"] == {"real": 400, "synthetic": 400, "test": 300}
    for side in ("real", "synthetic"):
        params = result["params"][side]
        grid = utility_module.XGBOOST_GRID if backend == "xgboost" else utility_module.HIST_GRADIENT_BOOSTING_GRID
        assert {k: v for k, v in params.items() if k != "n_trees"} in grid
        assert 1 <= params["n_trees"] <= utility_module.MAX_TREES
    json.dumps(result, allow_nan=False)


@pytest.mark.parametrize("backend", BACKENDS)
def test_shuffled_labels_leave_a_large_gap(backend):
    real, synthetic, test = _rows(400, 0), _rows(400, 1), _rows(300, 2)
    synthetic["target"] = synthetic["target"].to_numpy()[np.random.default_rng(3).permutation(len(synthetic))]
    result = utility(real, synthetic, test, "target", KINDS, backend=backend)
    assert result["real"]["auc"] > 0.97
    assert result["synthetic"]["auc"] < 0.7
    assert result["gap"]["auc"] > 0.3


@pytest.mark.parametrize("backend", BACKENDS)
def test_multiclass(backend):
    real, synthetic, test = _rows(450, 0, "multiclass"), _rows(450, 1, "multiclass"), _rows(300, 2, "multiclass")
    result = utility(real, synthetic, test, "target", KINDS, backend=backend)
    assert result["task"] == "multiclass" and result["metric"] == "macro_f1"
    assert result["classes"] == ["high", "low", "mid"]
    assert set(result["real"]) == {"macro_f1", "accuracy"}
    assert result["real"]["macro_f1"] > 0.85 and result["synthetic"]["macro_f1"] > 0.85


@pytest.mark.parametrize("backend", BACKENDS)
def test_regression(backend):
    kinds = _kinds("regression")
    real, synthetic, test = _rows(400, 0, "regression"), _rows(400, 1, "regression"), _rows(300, 2, "regression")
    result = utility(real, synthetic, test, "target", kinds, backend=backend)
    assert result["task"] == "regression" and result["metric"] == "rmse" and result["classes"] is None
    # the target spans ~8 units with a standard deviation of ~1.9: a good model is far below that
    assert result["real"]["rmse"] < 0.4 and result["synthetic"]["rmse"] < 0.4
    assert result["real"]["r2"] > 0.95 and result["synthetic"]["r2"] > 0.95
    # a synthetic target unrelated to the features is a much worse model
    synthetic["target"] = np.random.default_rng(4).permutation(synthetic["target"].to_numpy())
    shuffled = utility(real, synthetic, test, "target", kinds, backend=backend)
    assert shuffled["synthetic"]["rmse"] > 1.5 and shuffled["gap"]["rmse"] < -1.0
    assert shuffled["synthetic"]["r2"] < 0.2


def test_numerical_target_with_two_values_is_binary():
    real, synthetic, test = (_rows(300, s) for s in (0, 1, 2))
    for frame in (real, synthetic, test):
        frame["target"] = (frame["target"] == "yes").astype(float)
    result = utility(real, synthetic, test, "target", _kinds("regression"), backend="hist_gradient_boosting")
    assert result["task"] == "binary" and result["classes"] == [0.0, 1.0]
    assert result["synthetic"]["auc"] > 0.95


def test_deterministic_given_seed():
    real, synthetic, test = _rows(300, 0), _rows(300, 1), _rows(200, 2)
    for backend in BACKENDS:
        first = utility(real, synthetic, test, "target", KINDS, backend=backend, seed=5)
        assert utility(real, synthetic, test, "target", KINDS, backend=backend, seed=5) == first


def test_auto_backend_and_missing_xgboost(monkeypatch):
    real, synthetic, test = _rows(200, 0), _rows(200, 1), _rows(100, 2)
    assert utility(real, synthetic, test, "target", KINDS)["backend"] == "xgboost"
    monkeypatch.setitem(sys.modules, "xgboost", None)  # import xgboost now raises ImportError
    assert utility(real, synthetic, test, "target", KINDS)["backend"] == "hist_gradient_boosting"
    with pytest.raises(EvaluationError, match=r'pip install "hf_synth\[xgboost\]"'):
        utility(real, synthetic, test, "target", KINDS, backend="xgboost")
    with pytest.raises(EvaluationError, match="unknown utility backend"):
        utility(real, synthetic, test, "target", KINDS, backend="catboost")


def test_bad_targets():
    real, synthetic, test = _rows(100, 0), _rows(100, 1), _rows(50, 2)
    with pytest.raises(EvaluationError, match=r"not a column.*'x1', 'x2', 'c1', 'note', 'target'"):
        utility(real, synthetic, test, "income", KINDS)
    with pytest.raises(EvaluationError, match="numerical or categorical target"):
        utility(real, synthetic, test, "note", KINDS)
    constant = real.assign(target="yes")
    with pytest.raises(EvaluationError, match="nothing to predict"):
        utility(constant, synthetic, test, "target", KINDS)
    with pytest.raises(EvaluationError, match="no numerical or categorical column"):
        utility(real, synthetic, test, "target", {"note": "text", "target": "categorical"})
    with pytest.raises(EvaluationError, match="no test row"):
        utility(real, synthetic, test.assign(target=None), "target", KINDS)


@pytest.mark.parametrize("backend", BACKENDS)
def test_constant_synthetic_target_gives_the_trivial_model(backend):
    real, synthetic, test = _rows(300, 0), _rows(300, 1), _rows(200, 2)
    result = utility(real, synthetic.assign(target="no"), test, "target", KINDS, backend=backend)
    assert result["synthetic"]["auc"] == pytest.approx(0.5)  # a constant probability ranks nothing
    share_no = float((test["target"] == "no").mean())
    assert result["synthetic"]["accuracy"] == pytest.approx(share_no)
    assert result["params"]["synthetic"] == {"model": "constant"}
    assert any("lack the classes ['yes']" in line for line in result["notes"])
    assert any("single value" in line for line in result["notes"])
    assert result["gap"]["auc"] > 0.4


def test_missing_classes_unseen_labels_and_missing_targets():
    real, synthetic, test = _rows(450, 0, "multiclass"), _rows(450, 1, "multiclass"), _rows(300, 2, "multiclass")
    synthetic = synthetic[synthetic["target"] != "high"].reset_index(drop=True)  # a class the synthetic rows lack
    synthetic.loc[:9, "target"] = None  # missing targets
    synthetic.loc[10:14, "target"] = "bogus"  # a class the real rows do not have
    test.loc[:6, "target"] = "never seen"
    result = utility(real, synthetic, test, "target", KINDS, backend="xgboost")
    notes = " | ".join(result["notes"])
    assert "lack the classes ['high']" in notes
    assert "synthetic: 10 rows with a missing target" in notes
    assert "synthetic: 5 rows whose target is a class absent" in notes and "bogus" in notes
    assert "test: 7 rows whose target is a class absent" in notes
    assert result["rows"]["test"] == 293 and result["rows"]["synthetic"] == len(synthetic) - 15
    # the synthetic model never predicts "high": its test rows are all wrong, the rest mostly right
    share_high = float((test["target"].iloc[7:] == "high").mean())
    assert result["synthetic"]["accuracy"] <= 1 - share_high + 1e-9
    assert result["synthetic"]["accuracy"] > 1 - share_high - 0.1
    assert result["real"]["macro_f1"] > result["synthetic"]["macro_f1"]


def test_binary_synthetic_lacking_a_class_in_test_and_unknown_categories():
    real, synthetic, test = _rows(300, 0), _rows(300, 1), _rows(200, 2)
    synthetic["c1"] = synthetic["c1"].replace({"c": "zzz"})  # a category real_train never had: missing
    result = utility(real, synthetic, test[test["target"] == "yes"], "target", KINDS, backend="hist_gradient_boosting")
    assert result["real"]["auc"] is None and result["synthetic"]["auc"] is None and result["gap"]["auc"] is None
    assert any("single class" in line for line in result["notes"])
    assert result["real"]["accuracy"] > 0.9
    json.dumps(result, allow_nan=False)


def test_tiny_training_sets_skip_the_search():
    real, synthetic, test = _rows(200, 0), _rows(20, 1), _rows(100, 2)
    result = utility(real, synthetic, test, "target", KINDS, backend="xgboost")
    assert result["params"]["synthetic"]["n_trees"] == utility_module.DEFAULT_TREES
    assert any("too few for a validation slice" in line for line in result["notes"])
    assert result["synthetic"]["auc"] > 0.7
