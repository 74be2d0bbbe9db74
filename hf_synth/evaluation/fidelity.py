"""Statistical fidelity: the SDMetrics ``QualityReport`` protocol of the TabSyn and DiffLM papers.

Two scores in [0, 1] (1 = the synthetic data matches the real data), each also reported as an
error ``(1 - score) * 100`` as in the papers' tables:

* **column shapes** (:func:`column_shapes`), one number per column, averaged:
  numerical columns use ``KSComplement = 1 - KS statistic`` on the non-missing values, categorical
  columns ``TVComplement = 1 - total variation distance`` with missing as a category of its own;
* **column pair trends** (:func:`column_pair_trends`), one number per pair of columns, averaged:
  two numerical columns use ``CorrelationSimilarity = 1 - |r_real - r_synthetic| / 2`` (Pearson, on
  rows where both values are present), any other pair ``ContingencySimilarity = 1 - total variation
  distance`` between the joint frequency tables, numerical columns cut into equal-width bins of the
  real column's range (missing values in a bin of their own).

Pair trends also come restricted to the pairs that are associated in the real data (``|r| > 0.5``
for two numerical columns, Cramér's V > 0.3 otherwise), which is how SDMetrics' ``QualityReport``
averages them since version 0.2x (``associated_score`` / ``associated_error``); the papers' tables
average every pair (``score`` / ``error``). Independent columns show the difference: on Adult they
lose little on average over all pairs but a lot on the associated ones.

Text and nested columns take part in neither. A score that cannot be computed (a column with no
values on one side, a constant column in a correlation) is ``None`` with a ``note`` and is left out
of the average.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp
from scipy.stats.contingency import association

from .data import EvaluationError

_TABULAR = ("numerical", "categorical")
# above this many cells a joint table is built from the codes that occur instead of a dense bincount
_DENSE_TABLE_LIMIT = 4_000_000
#: SDMetrics' defaults for a pair to count as associated in the real data.
REAL_CORRELATION_THRESHOLD = 0.5
REAL_ASSOCIATION_THRESHOLD = 0.3


def column_shapes(real: pd.DataFrame, synthetic: pd.DataFrame, kinds: dict[str, str]) -> dict[str, Any]:
    """Per-column marginal similarity (KSComplement / TVComplement) and their mean.

    Returns:
        ``{"score", "error", "columns": {column: {"metric", "score"[, "note"]}}}``; ``score`` is the
        mean over the columns with a score (``None`` with a ``note`` when there is none) and
        ``error = (1 - score) * 100``.
    """
    columns = _tabular_columns(real, synthetic, kinds)
    results: dict[str, dict[str, Any]] = {}
    for name in columns:
        if kinds[name] == "numerical":
            results[name] = _ks_complement(_floats(real[name]), _floats(synthetic[name]))
        else:
            real_codes, synthetic_codes, size = _category_codes(real[name], synthetic[name])
            results[name] = {"metric": "TVComplement", "score": _tv_complement(real_codes, synthetic_codes, size)}
    return _summary(results, "columns")


def column_pair_trends(real: pd.DataFrame, synthetic: pd.DataFrame, kinds: dict[str, str], bins: int = 10) -> dict[str, Any]:
    """Per-pair dependence similarity (CorrelationSimilarity / ContingencySimilarity) and their mean.

    Args:
        bins: Number of equal-width bins numerical columns are cut into for a contingency table;
            the edges span the real column's range and synthetic values outside it go to the end bins.

    Returns:
        ``{"score", "error", "associated_score", "associated_error", "associated_pairs", "pairs":
        {"a / b": {"columns": [a, b], "metric", "score", "real", "synthetic", "real_association",
        "associated"[, "note"]}}}``; ``real`` / ``synthetic`` are the Pearson correlations of a pair
        of numerical columns (``None`` for the other pairs); ``real_association`` is ``|r|`` or
        Cramér's V of the real pair.
    """
    if bins < 1:
        raise EvaluationError(f"bins must be at least 1, got {bins}")
    columns = _tabular_columns(real, synthetic, kinds)
    # every column is integer-coded once, so that each contingency table is one bincount
    codes: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}
    values: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in columns:
        if kinds[name] == "numerical":
            values[name] = (_floats(real[name]), _floats(synthetic[name]))
            codes[name] = _bin_codes(*values[name], bins)
        else:
            codes[name] = _category_codes(real[name], synthetic[name])
    pairs: dict[str, dict[str, Any]] = {}
    for i, a in enumerate(columns):
        for b in columns[i + 1 :]:
            entry: dict[str, Any] = {"columns": [a, b]}
            if kinds[a] == kinds[b] == "numerical":
                entry.update(_correlation_similarity(values[a], values[b]))
                strength = None if entry["real"] is None else abs(entry["real"])
                entry.update(real_association=strength, associated=strength is not None and strength > REAL_CORRELATION_THRESHOLD)
            else:
                entry.update(metric="ContingencySimilarity", score=_contingency_similarity(codes[a], codes[b]), real=None, synthetic=None)
                strength = _cramers_v(codes[a], codes[b])
                entry.update(real_association=strength, associated=strength is not None and strength > REAL_ASSOCIATION_THRESHOLD)
            pairs[f"{a} / {b}"] = entry
    summary = _summary(pairs, "pairs")
    associated = [e["score"] for e in pairs.values() if e["associated"] and e["score"] is not None]
    score = float(np.mean(associated)) if associated else None
    summary.update(associated_score=score, associated_error=None if score is None else (1.0 - score) * 100.0,
                   associated_pairs=len(associated))
    return summary


# ---------------------------------------------------------------------- metrics


def _ks_complement(real: np.ndarray, synthetic: np.ndarray) -> dict[str, Any]:
    real, synthetic = real[~np.isnan(real)], synthetic[~np.isnan(synthetic)]
    if not real.size or not synthetic.size:
        side = "real" if not real.size else "synthetic"
        return {"metric": "KSComplement", "score": None, "note": f"no {side} values"}
    return {"metric": "KSComplement", "score": 1.0 - float(ks_2samp(real, synthetic).statistic)}


def _tv_complement(real: np.ndarray, synthetic: np.ndarray, size: int) -> float:
    p_real = np.bincount(real, minlength=size) / len(real)
    p_synthetic = np.bincount(synthetic, minlength=size) / len(synthetic)
    return 1.0 - 0.5 * float(np.abs(p_real - p_synthetic).sum())


def _contingency_similarity(a: tuple[np.ndarray, np.ndarray, int], b: tuple[np.ndarray, np.ndarray, int]) -> float:
    real_a, synthetic_a, size_a = a
    real_b, synthetic_b, size_b = b
    real, synthetic = real_a * size_b + real_b, synthetic_a * size_b + synthetic_b
    size = size_a * size_b
    if size > _DENSE_TABLE_LIMIT:  # two high-cardinality columns: only the cells that occur
        cells, inverse = np.unique(np.concatenate([real, synthetic]), return_inverse=True)
        real, synthetic, size = inverse[: len(real)], inverse[len(real) :], len(cells)
    return _tv_complement(real, synthetic, size)


def _cramers_v(a: tuple[np.ndarray, np.ndarray, int], b: tuple[np.ndarray, np.ndarray, int]) -> float | None:
    """Cramér's V of the real pair's contingency table (codes that never occur in real dropped)."""
    real_a, real_b = a[0], b[0]
    _, ia = np.unique(real_a, return_inverse=True)
    _, ib = np.unique(real_b, return_inverse=True)
    rows, cols = ia.max() + 1, ib.max() + 1
    if min(rows, cols) < 2:
        return None
    table = np.bincount(ia * cols + ib, minlength=rows * cols).reshape(rows, cols)
    return float(association(table, method="cramer"))


def _correlation_similarity(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    r_real, why_real = _pearson(a[0], b[0])
    r_synthetic, why_synthetic = _pearson(a[1], b[1])
    entry: dict[str, Any] = {"metric": "CorrelationSimilarity", "score": None, "real": r_real, "synthetic": r_synthetic}
    if r_real is None or r_synthetic is None:
        entry["note"] = f"correlation undefined: {why_real or why_synthetic}"
    else:
        entry["score"] = 1.0 - abs(r_real - r_synthetic) / 2.0
    return entry


def _pearson(x: np.ndarray, y: np.ndarray) -> tuple[float | None, str | None]:
    both = np.isfinite(x) & np.isfinite(y)  # an infinity has no place in a correlation: like a gap
    x, y = x[both], y[both]
    if x.size < 2:
        return None, "fewer than 2 rows with both values"
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return None, "a column is constant"
    r = float(np.corrcoef(x, y)[0, 1])
    return min(1.0, max(-1.0, r)), None  # rounding can step just outside [-1, 1]


# ---------------------------------------------------------------------- coding


def _category_codes(real: pd.Series, synthetic: pd.Series) -> tuple[np.ndarray, np.ndarray, int]:
    """Codes over the categories of both sides; missing values share the last code."""
    codes, uniques = pd.factorize(pd.concat([real.astype(object), synthetic.astype(object)], ignore_index=True))
    missing = len(uniques)
    codes = np.where(codes < 0, missing, codes).astype(np.int64)
    return codes[: len(real)], codes[len(real) :], missing + 1


def _bin_codes(real: np.ndarray, synthetic: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Equal-width bins of the real range (as SDMetrics' discretisation); values outside it clip into
    the end bins and missing values get the code ``bins``."""
    present = real[np.isfinite(real)]  # infinities clip into the end bins like any outlier
    edges = np.histogram_bin_edges(present, bins=bins)
    inner = edges[1:-1]

    def code(values: np.ndarray) -> np.ndarray:
        # side="right": a value on an edge goes to the bin it opens, as in np.histogram
        out = np.searchsorted(inner, values, side="right").astype(np.int64)
        out[np.isnan(values)] = bins
        return out

    return code(real), code(synthetic), bins + 1


def _floats(column: pd.Series) -> np.ndarray:
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


# ---------------------------------------------------------------------- helpers


def _tabular_columns(real: pd.DataFrame, synthetic: pd.DataFrame, kinds: dict[str, str]) -> list[str]:
    columns = [c for c, k in kinds.items() if k in _TABULAR]
    for what, frame in (("real", real), ("synthetic", synthetic)):
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise EvaluationError(f"the {what} rows lack the columns {missing}; they have {list(frame.columns)}")
        if len(frame) == 0:
            raise EvaluationError(f"the {what} rows are empty: there is nothing to compare")
    return columns


def _summary(entries: dict[str, dict[str, Any]], key: str) -> dict[str, Any]:
    scores = [e["score"] for e in entries.values() if e["score"] is not None]
    if not scores:
        why = "no numerical or categorical column" if key == "columns" else "no pair of numerical or categorical columns with a score"
        return {"score": None, "error": None, "note": why, key: entries}
    score = float(np.mean(scores))
    return {"score": score, "error": (1.0 - score) * 100.0, key: entries}
