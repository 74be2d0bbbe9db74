"""Machine-learning efficacy: train on synthetic, test on real (TSTR), next to train on real.

For a ``target`` column, the same fixed procedure is applied twice, once to the synthetic rows and
once to the real training rows (the reference), and both models are scored on the same real test
rows:

1. **Task** from the target in the real training rows: a categorical target (or a numerical one
   with exactly 2 distinct values) with 2 classes is ``binary`` (primary metric ROC AUC, also
   accuracy), with more classes ``multiclass`` (macro-F1, also accuracy); any other numerical
   target is ``regression`` (RMSE, also R²).
2. **Features**: every other numerical and categorical column (text and nested columns are left
   out, and the result says so). Numbers stay as they are, missing values as NaN, which both
   backends route natively. Categories become integer codes fitted on the real training rows (most
   frequent first); values never seen there count as missing. The codes are declared categorical to
   the model (XGBoost ``enable_categorical`` / HistGradientBoosting ``categorical_features``), so
   trees split on sets of categories rather than on an arbitrary order; HistGradientBoosting takes
   at most 255 categories per column and treats codes of larger columns as ordered numbers.
3. **Search**: a seeded 20 % validation slice of the training rows (stratified by class for
   classification) scores the :data:`XGBOOST_GRID` / :data:`HIST_GRADIENT_BOOSTING_GRID` configs,
   each with up to :data:`MAX_TREES` boosting rounds (fewer for many classes, see
   :data:`TREE_BUDGET`) and early stopping after :data:`EARLY_STOPPING_ROUNDS` rounds without a
   better validation loss. The config with the best validation metric wins (ties:
   lower validation loss, then grid order).
4. **Refit** on all the training rows with the chosen config and the number of trees early stopping
   found, then score on the test rows.

``gap`` is ``real - synthetic`` for every metric: positive for AUC / F1 / accuracy / R² and negative
for RMSE when the synthetic rows train a worse model.

Unusual inputs give numbers where they still make sense, with a line in ``notes``: synthetic rows
that lack a class (their model never predicts it), a synthetic target with a single value (the
model predicts that value; a constant probability has an AUC of 0.5), rows with a missing target or
a class the real training rows do not have (left out and counted).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score, r2_score, roc_auc_score, root_mean_squared_error
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from .data import EvaluationError

BACKENDS = ("auto", "xgboost", "hist_gradient_boosting")
PRIMARY_METRIC = {"binary": "auc", "multiclass": "macro_f1", "regression": "rmse"}
VALIDATION_FRACTION = 0.2
MAX_TREES = 300
# a multiclass model grows one tree per class and round: at most this many trees per fit, i.e.
# max(MIN_ROUNDS, TREE_BUDGET // classes) rounds when that is below MAX_TREES (more than 5 classes)
TREE_BUDGET = 1500
MIN_ROUNDS = 50
EARLY_STOPPING_ROUNDS = 20
# below this many training rows a validation slice is too small to choose anything: no search,
# DEFAULT_CONFIG with DEFAULT_TREES trees
MIN_SEARCH_ROWS = 30
DEFAULT_TREES = 100
# 6 configs: tree depth x minimum leaf size, at a fixed learning rate (early stopping sets the
# number of trees). XGBoost's min_child_weight sums hessians (<= 0.25 a row for a log loss),
# HistGradientBoosting's min_samples_leaf counts rows, hence the different values.
XGBOOST_GRID = tuple({"max_depth": d, "min_child_weight": w, "learning_rate": 0.1} for d in (4, 6, 8) for w in (1, 10))
HIST_GRADIENT_BOOSTING_GRID = tuple({"max_depth": d, "min_samples_leaf": m, "learning_rate": 0.1} for d in (4, 6, 8) for m in (5, 50))
DEFAULT_CONFIG = 2  # index in the grid: depth 6, smaller leaves
_HGB_MAX_CATEGORIES = 255  # HistGradientBoosting's max_bins: codes must lie in [0, 254]


def utility(
    real_train: pd.DataFrame,
    synthetic: pd.DataFrame,
    test: pd.DataFrame,
    target: str,
    kinds: dict[str, str],
    *,
    seed: int = 0,
    backend: str = "auto",
    n_jobs: int = 1,
) -> dict[str, Any]:
    """Train-on-synthetic / test-on-real efficacy of predicting ``target``, next to train-on-real.

    Args:
        real_train: Real rows the reference model is trained on (and that fix the task, the classes
            and the category codes).
        synthetic: Synthetic rows the compared model is trained on.
        test: Real rows both models are scored on (normally a holdout never seen by the generator).
        target: The column to predict; numerical or categorical.
        kinds: Column roles as in :attr:`EvaluationData.kinds`.
        seed: Seed of the validation split and the models.
        backend: ``"auto"`` (XGBoost when installed, else scikit-learn's HistGradientBoosting),
            ``"xgboost"`` or ``"hist_gradient_boosting"``.
        n_jobs: Threads a model may use. One by default: with more OpenMP threads than idle cores
            (a busy or shared machine) gradient boosting can slow down a hundredfold.

    Returns:
        ``{"target", "task", "metric", "backend", "synthetic", "real", "gap", "params", "features",
        "classes", "rows", "notes"}``: ``synthetic`` / ``real`` map metric names to test scores
        (``None`` where undefined), ``gap`` is ``real - synthetic`` per metric, ``params`` the config
        each side's search chose, ``classes`` the class labels (``None`` for regression), ``rows``
        the rows used on each side.

    Raises:
        EvaluationError: unknown backend or target, a text/nested or constant target, no feature,
            or no usable row on a side.
    """
    backend = _resolve_backend(backend)
    for what, frame in (("real training", real_train), ("synthetic", synthetic), ("test", test)):
        if target not in frame.columns:
            raise EvaluationError(f"target {target!r} is not a column of the {what} rows; the columns are {list(frame.columns)}")
    kind = kinds.get(target)
    if kind not in ("numerical", "categorical"):
        raise EvaluationError(f"target {target!r} is a {kind or 'untyped'} column; utility needs a numerical or categorical target")
    notes: list[str] = []
    features = [c for c, k in kinds.items() if c != target and k in ("numerical", "categorical")]
    skipped = [c for c, k in kinds.items() if c != target and k not in ("numerical", "categorical")]
    if skipped:
        notes.append(f"text and nested columns are not used as features: {skipped}")
    if not features:
        raise EvaluationError(f"no numerical or categorical column besides the target {target!r} to predict it from")
    for what, frame in (("real training", real_train), ("synthetic", synthetic), ("test", test)):
        missing = [c for c in features if c not in frame.columns]
        if missing:
            raise EvaluationError(f"the {what} rows lack the feature columns {missing}")

    task, classes = _task(real_train[target], kind, target)
    coder = _FeatureCoder(real_train, features, kinds)
    sides = {}
    for name, what, frame in (("real", "real training", real_train), ("synthetic", "synthetic", synthetic), ("test", "test", test)):
        y, keep = _encode_target(frame[target], kind, classes, name, notes)
        if not keep.any():
            raise EvaluationError(f"no {what} row has a usable value of the target {target!r}")
        sides[name] = (coder.transform(frame.iloc[np.flatnonzero(keep)]), y[keep])
    if classes is not None:
        absent = [classes[i] for i in range(len(classes)) if not (sides["synthetic"][1] == i).any()]
        if absent:
            notes.append(f"the synthetic rows lack the classes {absent}: their model never predicts them")
    if coder.ordinal and backend == "hist_gradient_boosting":
        notes.append(f"columns with more than {_HGB_MAX_CATEGORIES} categories are used as ordered codes: {coder.ordinal}")

    n_classes = len(classes) if classes is not None else 0
    mask = coder.categorical_mask(backend)
    x_test, y_test = sides["test"]
    scores: dict[str, dict[str, Any]] = {}
    params: dict[str, dict[str, Any]] = {}
    with threadpool_limits(limits=max(1, n_jobs)):  # HistGradientBoosting's OpenMP threads
        for name in ("synthetic", "real"):
            x, y = sides[name]
            model, params[name] = _train(x, y, task, n_classes, backend, mask, seed, n_jobs, name, notes)
            scores[name] = _test_metrics(task, model.predict(x_test), y_test, name, notes)
    gap = {m: (None if scores["real"][m] is None or scores["synthetic"][m] is None else scores["real"][m] - scores["synthetic"][m]) for m in scores["real"]}
    return {
        "target": target,
        "task": task,
        "metric": PRIMARY_METRIC[task],
        "backend": backend,
        "synthetic": scores["synthetic"],
        "real": scores["real"],
        "gap": gap,
        "params": params,
        "features": features,
        "classes": classes,
        "rows": {name: int(len(sides[name][1])) for name in ("real", "synthetic", "test")},
        "notes": notes,
    }


# ---------------------------------------------------------------------- inputs


def _resolve_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise EvaluationError(f"unknown utility backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "hist_gradient_boosting":
        return backend
    try:
        import xgboost  # noqa: F401  (optional dependency)
    except ImportError:
        if backend == "xgboost":
            raise EvaluationError('the "xgboost" backend needs the xgboost package: pip install "hf_synth[xgboost]"') from None
        return "hist_gradient_boosting"
    return "xgboost"


def _task(column: pd.Series, kind: str, target: str) -> tuple[str, list | None]:
    """The task and, for classification, the sorted class labels of the real training target."""
    values = column.dropna()
    if kind == "numerical":
        values = pd.to_numeric(values, errors="coerce").dropna()
    distinct = pd.unique(values.astype(object))
    if len(distinct) < 2:
        raise EvaluationError(f"the target {target!r} takes {len(distinct)} distinct value(s) in the real training rows: there is nothing to predict")
    if kind == "numerical":
        if len(distinct) == 2:
            return "binary", sorted(float(v) for v in distinct)
        return "regression", None
    classes = sorted(distinct, key=str)  # positive class of a binary task: the last one
    return ("binary" if len(classes) == 2 else "multiclass"), [_native(c) for c in classes]


def _encode_target(column: pd.Series, kind: str, classes: list | None, side: str, notes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Target values (class indices, or floats for regression) and the mask of usable rows."""
    if kind == "numerical":
        values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        missing = np.isnan(values)
        if classes is None:
            if missing.any():
                notes.append(f"{side}: {int(missing.sum())} rows with a missing target are left out")
            return values, ~missing
        codes = pd.Series(values).map({c: i for i, c in enumerate(classes)})
    else:
        missing = column.isna().to_numpy()
        codes = column.astype(object).map({c: i for i, c in enumerate(classes)})
    codes = codes.to_numpy(dtype=float, na_value=np.nan)
    unseen = ~missing & np.isnan(codes)
    if missing.any():
        notes.append(f"{side}: {int(missing.sum())} rows with a missing target are left out")
    if unseen.any():
        labels = sorted({str(v) for v in np.asarray(column, dtype=object)[unseen]})[:5]
        notes.append(f"{side}: {int(unseen.sum())} rows whose target is a class absent from the real training rows are left out (e.g. {labels})")
    keep = ~np.isnan(codes)
    return np.where(keep, codes, -1).astype(np.int64), keep


class _FeatureCoder:
    """Numbers as floats, categories as integer codes fitted on the real training rows."""

    def __init__(self, frame: pd.DataFrame, features: list[str], kinds: dict[str, str]):
        self.features = features
        self.codes: dict[str, dict] = {}
        for name in features:
            if kinds[name] == "categorical":
                counts = frame[name].dropna().astype(object).value_counts()
                # most frequent first, ties by text: stable codes whatever the row order
                order = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))
                self.codes[name] = {value: code for code, (value, _) in enumerate(order)}
        self.ordinal = [c for c, m in self.codes.items() if len(m) > _HGB_MAX_CATEGORIES]

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        columns = []
        for name in self.features:
            if name in self.codes:
                columns.append(frame[name].astype(object).map(self.codes[name]).to_numpy(dtype=float, na_value=np.nan))
            else:
                values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
                columns.append(np.where(np.isinf(values), np.nan, values))  # the models refuse infinities
        return np.column_stack(columns) if columns else np.zeros((len(frame), 0))

    def categorical_mask(self, backend: str) -> np.ndarray:
        limit = _HGB_MAX_CATEGORIES if backend == "hist_gradient_boosting" else np.inf
        return np.array([name in self.codes and len(self.codes[name]) <= limit for name in self.features])


# ---------------------------------------------------------------------- models


class _Model:
    """A fitted estimator (or a constant), predicting in the task's full class space."""

    def __init__(self, task: str, n_classes: int, estimator: Any = None, present: np.ndarray | None = None, constant: Any = None, trees: int | None = None):
        self.task, self.n_classes, self.estimator = task, n_classes, estimator
        self.present, self.constant, self.trees = present, constant, trees

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities ``(rows, n_classes)``, or values for a regression."""
        if self.task == "regression":
            if self.estimator is None:
                return np.full(len(x), self.constant, dtype=float)
            return self._staged(x, "staged_predict") if self._truncate else self.estimator.predict(x)
        proba = np.zeros((len(x), self.n_classes))
        if self.estimator is None:
            proba[:, self.constant] = 1.0
        else:
            proba[:, self.present] = self._staged(x, "staged_predict_proba") if self._truncate else self.estimator.predict_proba(x)
        return proba

    @property
    def _truncate(self) -> bool:
        # HistGradientBoosting keeps the rounds after its best one: predict with the best prefix
        return self.trees is not None and getattr(self.estimator, "n_iter_", self.trees) > self.trees

    def _staged(self, x: np.ndarray, method: str) -> np.ndarray:
        for i, out in enumerate(getattr(self.estimator, method)(x), start=1):
            if i == self.trees:
                return out
        return out


def _train(x, y, task, n_classes, backend, mask, seed, n_jobs, side, notes) -> tuple[_Model, dict[str, Any]]:
    """The search on a validation slice, then the refit on all rows (see the module docstring)."""
    grid = XGBOOST_GRID if backend == "xgboost" else HIST_GRADIENT_BOOSTING_GRID
    constant = _constant(task, n_classes, y)
    if constant is not None:
        notes.append(f"{side}: the target has a single value; the model always predicts it")
        return constant, {"model": "constant"}
    if len(y) < MIN_SEARCH_ROWS:
        notes.append(f"{side}: {len(y)} training rows are too few for a validation slice; default config, {DEFAULT_TREES} trees")
        config, trees = grid[DEFAULT_CONFIG], DEFAULT_TREES
    else:
        rounds = MAX_TREES if task != "multiclass" else min(MAX_TREES, max(MIN_ROUNDS, TREE_BUDGET // n_classes))
        fit_rows, val_rows = _split(y, task, seed)
        best = None
        for index, config in enumerate(grid):
            model, trees, loss = _fit(backend, task, n_classes, config, x[fit_rows], y[fit_rows], mask, seed, n_jobs, (x[val_rows], y[val_rows]), trees=rounds)
            score = _validation_score(task, model.predict(x[val_rows]), y[val_rows])
            key = (score if np.isfinite(score) else -np.inf, -loss, -index)
            if best is None or key > best[0]:
                best = (key, config, trees)
        _, config, trees = best
        if trees >= rounds:
            notes.append(f"{side}: the validation loss still fell at the cap of {rounds} rounds (as it does when rows repeat across the fit and validation slices)")
    model, _, _ = _fit(backend, task, n_classes, config, x, y, mask, seed, n_jobs, None, trees=trees)
    return model, {**config, "n_trees": int(trees)}


def _constant(task: str, n_classes: int, y: np.ndarray) -> _Model | None:
    if task == "regression":
        return _Model(task, 0, constant=float(y[0])) if np.ptp(y) == 0 else None
    present = np.unique(y)
    return _Model(task, n_classes, constant=int(present[0])) if len(present) == 1 else None


def _split(y: np.ndarray, task: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rows = np.arange(len(y))
    if task != "regression" and np.unique(y, return_counts=True)[1].min() >= 2:
        try:
            return tuple(train_test_split(rows, test_size=VALIDATION_FRACTION, random_state=seed, stratify=y))
        except ValueError:  # more classes than validation rows: fall back to a plain split
            pass
    return tuple(train_test_split(rows, test_size=VALIDATION_FRACTION, random_state=seed))


def _fit(backend, task, n_classes, config, x, y, mask, seed, n_jobs, validation, trees: int = MAX_TREES) -> tuple[_Model, int, float]:
    """Fit one config; with ``validation`` early-stop on it. Returns the model, the number of trees
    kept and the validation loss (``inf`` without validation)."""
    constant = _constant(task, n_classes, y)
    if constant is not None:  # a fit slice that happens to hold one class / value
        return constant, 1, np.inf
    present = None
    if task != "regression":
        present = np.unique(y)
        y = np.searchsorted(present, y)  # the estimators want labels 0..k-1
    if validation is not None:
        x_val, y_val = validation
        if present is not None:
            known = np.isin(y_val, present)
            x_val, y_val = x_val[known], np.searchsorted(present, y_val[known])
        if len(y_val) == 0:
            validation = None
        else:
            validation = (x_val, y_val)
    early = validation is not None
    classify = task != "regression"
    if backend == "xgboost":
        import xgboost

        estimator_type = xgboost.XGBClassifier if classify else xgboost.XGBRegressor
        estimator = estimator_type(
            n_estimators=trees,
            tree_method="hist",
            enable_categorical=True,
            feature_types=["c" if m else "q" for m in mask],
            n_jobs=n_jobs,
            random_state=seed,
            early_stopping_rounds=EARLY_STOPPING_ROUNDS if early else None,
            **config,
        )
        if early:
            estimator.fit(x, y, eval_set=[validation], verbose=False)
            return _Model(task, n_classes, estimator, present), int(estimator.best_iteration) + 1, float(estimator.best_score)
        estimator.fit(x, y, verbose=False)
        return _Model(task, n_classes, estimator, present), trees, np.inf

    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    estimator_type = HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor
    estimator = estimator_type(
        max_iter=trees,
        max_leaf_nodes=None,  # depth-limited trees, as XGBoost grows them
        categorical_features=mask if mask.any() else None,
        early_stopping=early,
        n_iter_no_change=EARLY_STOPPING_ROUNDS,
        scoring="loss",
        random_state=seed,
        **config,
    )
    if early:
        estimator.fit(x, y, X_val=validation[0], y_val=validation[1])
        # validation_score_[0] is before the first tree; scores are negated losses
        best = int(np.argmax(estimator.validation_score_))
        kept = max(1, best)
        return _Model(task, n_classes, estimator, present, trees=kept), kept, float(-estimator.validation_score_[kept])
    estimator.fit(x, y)
    return _Model(task, n_classes, estimator, present), trees, np.inf


# ---------------------------------------------------------------------- metrics


def _validation_score(task: str, prediction: np.ndarray, y: np.ndarray) -> float:
    """The task's metric on the validation slice, higher is better; NaN when undefined."""
    if task == "regression":
        return -root_mean_squared_error(y, prediction)
    if task == "binary":
        return float(roc_auc_score(y, prediction[:, 1])) if len(np.unique(y)) == 2 else np.nan
    return float(f1_score(y, prediction.argmax(axis=1), average="macro", zero_division=0))


def _test_metrics(task: str, prediction: np.ndarray, y: np.ndarray, side: str, notes: list[str]) -> dict[str, float | None]:
    if task == "regression":
        r2 = None
        if len(y) >= 2 and np.ptp(y) > 0:
            r2 = float(r2_score(y, prediction))
        elif side == "real":  # one note for both sides
            notes.append("test: the target is constant, R² is undefined")
        return {"rmse": float(root_mean_squared_error(y, prediction)), "r2": r2}
    labels = prediction.argmax(axis=1)
    accuracy = float(accuracy_score(y, labels))
    if task == "multiclass":
        return {"macro_f1": float(f1_score(y, labels, average="macro", zero_division=0)), "accuracy": accuracy}
    auc = None
    if len(np.unique(y)) == 2:
        auc = float(roc_auc_score(y, prediction[:, 1]))
    elif side == "real":
        notes.append("test: the rows hold a single class, AUC is undefined")
    return {"auc": auc, "accuracy": accuracy}


def _native(value: Any) -> Any:
    """A JSON-native copy of a label (numpy scalars become Python ones)."""
    return value.item() if isinstance(value, np.generic) else value
