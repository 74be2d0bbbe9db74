"""Detection: can a classifier tell synthetic rows from real ones? (C2ST, classifier two-sample test)

The protocol is SDMetrics' ``LogisticDetection``: as many real as synthetic rows, labelled 0 and 1,
a stratified k-fold cross-validation, the ROC AUC of each held-out fold, and

    score = 1 - mean over folds of (2 * max(AUC, 0.5) - 1)

so 1 means the classifier does no better than chance (indistinguishable data) and 0 means it
separates the two sets perfectly. :func:`c2st` runs it with two classifiers: a standardised
logistic regression (what SDMetrics reports; sees only linear differences) and histogram gradient
boosting (finds non-linear and interaction differences the linear model misses).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from .data import EvaluationError
from .encoding import RowEncoder

MODELS = ("logistic", "gradient_boosting")
DEFAULT_FOLDS = {"logistic": 3, "gradient_boosting": 5}  # 3 as in SDMetrics
MIN_ROWS = 10  # per side; below this a fold holds too few rows for an AUC that means anything
# Fixed gradient-boosting settings (no search: the detector only needs to be a reasonable, fixed
# yardstick). No early stopping, so that every fold trains the same model.
GRADIENT_BOOSTING_PARAMS = {"max_iter": 100, "learning_rate": 0.1, "max_leaf_nodes": 31, "min_samples_leaf": 20, "early_stopping": False}
LOGISTIC_MAX_ITER = 1000  # lbfgs converges well within this on standardised features


def detection_score(
    real_x: np.ndarray,
    synthetic_x: np.ndarray,
    *,
    model: str = "logistic",
    folds: int | None = None,
    max_rows: int = 20000,
    seed: int = 0,
    n_jobs: int = 1,
) -> dict[str, Any]:
    """Cross-validated detection score of encoded real vs synthetic rows.

    Args:
        real_x, synthetic_x: ``(rows, features)`` matrices in the same feature space (e.g. from
            :class:`~hf_synth.evaluation.encoding.RowEncoder`).
        model: ``"logistic"`` (standardised logistic regression) or ``"gradient_boosting"``
            (:class:`~sklearn.ensemble.HistGradientBoostingClassifier` with
            :data:`GRADIENT_BOOSTING_PARAMS`).
        folds: Cross-validation folds; default 3 for logistic (as SDMetrics), 5 for gradient boosting.
        max_rows: At most this many rows per side; both sides are subsampled (seeded) to the same
            size ``min(len(real_x), len(synthetic_x), max_rows)`` so the classes are balanced.
        seed: Seed of the subsampling, the fold split and the classifier.
        n_jobs: Threads the classifier may use. One by default: with more OpenMP threads than idle cores
            (a busy or shared machine) gradient boosting can slow down a hundredfold.

    Returns:
        ``{"score", "auc", "model", "folds", "rows_per_side"}``; ``score`` (1 = indistinguishable,
        0 = perfectly separable) and ``auc`` (mean held-out ROC AUC) are ``None`` with a ``note``
        when there are fewer than :data:`MIN_ROWS` rows per side or no features.
    """
    if model not in MODELS:
        raise EvaluationError(f"unknown detection model {model!r}; choose one of {', '.join(MODELS)}")
    folds = DEFAULT_FOLDS[model] if folds is None else int(folds)
    if folds < 2:
        raise EvaluationError(f"detection needs at least 2 folds, got {folds}")
    real_x, synthetic_x = np.asarray(real_x, dtype=float), np.asarray(synthetic_x, dtype=float)
    if real_x.ndim != 2 or synthetic_x.ndim != 2 or real_x.shape[1] != synthetic_x.shape[1]:
        raise EvaluationError(f"real and synthetic features differ in shape: {real_x.shape} vs {synthetic_x.shape}")
    n = min(len(real_x), len(synthetic_x), int(max_rows))
    result: dict[str, Any] = {"score": None, "auc": None, "model": model, "folds": folds, "rows_per_side": int(n)}
    if n < max(MIN_ROWS, folds):
        result["note"] = f"too few rows for detection: {n} per side (at least {max(MIN_ROWS, folds)} needed)"
        return result
    if real_x.shape[1] == 0:
        result["note"] = "no feature to compare"
        return result

    rng = np.random.default_rng(seed)
    # sorted indices keep the subsample's row order stable, whatever the draw order
    real_rows = np.sort(rng.choice(len(real_x), size=n, replace=False))
    synthetic_rows = np.sort(rng.choice(len(synthetic_x), size=n, replace=False))
    x = np.vstack([real_x[real_rows], synthetic_x[synthetic_rows]])
    y = np.concatenate([np.zeros(n, dtype=int), np.ones(n, dtype=int)])

    aucs = []
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with threadpool_limits(limits=max(1, n_jobs)):
        for train, test in splitter.split(x, y):
            classifier = _classifier(model, seed)
            classifier.fit(x[train], y[train])
            aucs.append(roc_auc_score(y[test], classifier.predict_proba(x[test])[:, 1]))
    aucs_arr = np.asarray(aucs, dtype=float)
    result["score"] = float(np.mean(1.0 - (2.0 * np.maximum(aucs_arr, 0.5) - 1.0)))
    result["auc"] = float(np.mean(aucs_arr))
    return result


def c2st(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    kinds: dict[str, str],
    *,
    seed: int = 0,
    max_rows: int = 20000,
    n_jobs: int = 1,
) -> dict[str, Any]:
    """Detection scores of both classifiers on rows encoded by a :class:`RowEncoder` fitted on ``real``.

    ``max_rows``, ``seed`` and ``n_jobs`` are passed to :func:`detection_score`.

    Returns:
        ``{"logistic": {...}, "gradient_boosting": {...}}``, each as :func:`detection_score` returns it.
    """
    missing = [c for c in kinds if c not in real.columns or c not in synthetic.columns]
    if missing:
        raise EvaluationError(f"columns {missing} are missing from the real or synthetic rows")
    if len(real) == 0 or len(synthetic) == 0:
        raise EvaluationError("detection needs real and synthetic rows; one side is empty")
    encoder = RowEncoder(seed=seed).fit(real, kinds)
    real_x, synthetic_x = encoder.transform(real), encoder.transform(synthetic)
    return {model: detection_score(real_x, synthetic_x, model=model, max_rows=max_rows, seed=seed, n_jobs=n_jobs) for model in MODELS}


def _classifier(model: str, seed: int):
    if model == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(solver="lbfgs", max_iter=LOGISTIC_MAX_ITER))
    return HistGradientBoostingClassifier(**GRADIENT_BOOSTING_PARAMS, random_state=seed)
