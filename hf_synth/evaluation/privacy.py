"""Privacy of synthetic rows: exact copies, distance to the closest record, membership inference.

All three measures ask the same question from different angles: *does the synthetic data sit
closer to the rows the generator was trained on than to real rows it never saw?*

* ``exact_copy_rate``: share of synthetic rows identical (every column) to some training row;
* ``dcr_share``: DCR ("distance to closest record", as in TabSyn, Zhang et al. 2024): share of
  synthetic rows closer to the training split than to a holdout split of the same size. A generator
  that learnt the distribution without memorising scores about 0.5; one that copies scores 1.0;
* ``dcr``: the distribution of the distances themselves, next to the same distribution for the
  holdout rows, i.e. how close genuinely unseen real rows come to the training rows;
* ``membership_inference``: ROC AUC of a distance attack telling training rows (members) from
  holdout rows (non-members) by how close the synthetic data comes to them (0.5 = no leakage).

Distances are Euclidean in the :class:`~hf_synth.evaluation.encoding.RowEncoder` space fitted on the
training rows. TabSyn's DCR uses the L1 distance on the same encoding; L2 is used here because the
nearest-neighbour search then reduces to matrix products (``|q|^2 - 2 q.r + |r|^2``), which
scikit-learn runs chunked through BLAS: tens of thousands of rows on each side take seconds, where
an L1 search has no such shortcut. Every comparison made here (train vs holdout, member vs
non-member) uses the same distance on both sides, so the scores keep their meaning; the raw
distances in ``dcr`` are not on the scale of TabSyn's L1 values.

The helpers :func:`nearest_neighbours`, :func:`nearest_distances`, :func:`row_keys` and
:func:`exact_copy_mask` are public: curation (privacy filter, deduplication) reuses them.
"""

from __future__ import annotations

from typing import Literal, overload

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestNeighbors

from .data import EvaluationError
from .encoding import RowEncoder

QUANTILES = (5, 25, 50, 75, 95)
# Distances within this (absolute + relative) margin count as tied: they are recomputed exactly in
# float64 after the search, so only genuinely equal distances (duplicates, symmetric lattice points
# of one-hot encodings) fall inside it.
TIE_TOLERANCE = 1e-9
# Numbers are compared after rounding to 30 significant bits (about 1e-9 relative), so that values
# that went through arithmetic or a text round trip (39 vs 39.0000000001) still match.
_MANTISSA_BITS = 30


# ----------------------------------------------------------------------------- nearest neighbours
def nearest_neighbours(queries: np.ndarray, reference: np.ndarray, *, exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Distance from each query row to its closest reference row, and that row's index.

    The search is scikit-learn's brute-force ``NearestNeighbors``: it computes the distances
    through chunked matrix products (a few MB at a time), so 30,000 x 30,000 rows of ~110 columns
    fit in little memory and take seconds. The matrix-product form loses precision for very close
    pairs (a duplicate comes out at ~1e-7 instead of 0), so the distance to the neighbour found is
    then recomputed directly in float64: duplicates are at exactly 0 and equal distances compare
    equal, which the tie rules of :func:`privacy` and the ``<=`` tests of alpha-precision rely on.

    Args:
        queries: ``(n, d)`` matrix.
        reference: ``(m, d)`` matrix with the same number of columns.
        exclude_self: Every query row is itself one of the reference rows (the whole set, or a
            subsample in any order): the answer is its 2nd closest reference row, i.e. its closest
            *other* row. A duplicate of the row still counts, at distance 0 (the index may then
            point at either copy).

    Returns:
        ``(distances, indices)``: float64 ``(n,)`` Euclidean distances and int64 ``(n,)`` row
        indices into ``reference``.
    """
    queries = _as_matrix(queries, "queries")
    reference = _as_matrix(reference, "reference")
    if queries.shape[1] != reference.shape[1]:
        raise EvaluationError(f"queries have {queries.shape[1]} columns and the reference {reference.shape[1]}")
    wanted = 2 if exclude_self else 1
    if reference.shape[0] < wanted:
        raise EvaluationError(f"the reference has {reference.shape[0]} rows; at least {wanted} are needed")
    if queries.shape[0] == 0:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    search = NearestNeighbors(n_neighbors=wanted, algorithm="brute", metric="euclidean").fit(reference)
    _, found = search.kneighbors(queries)
    exact = np.stack([_row_distances(queries, reference[found[:, j]]) for j in range(wanted)], axis=1)
    # Without exclude_self the one neighbour is the answer. With it, the row itself is one of the
    # two closest (at 0) and the other is the answer: the farther of the two, whichever order the
    # approximate search put them in (both at 0 when the row has a duplicate).
    pick = np.argmax(exact, axis=1) if exclude_self else np.zeros(len(found), dtype=np.int64)
    rows = np.arange(len(found))
    return exact[rows, pick], found[rows, pick].astype(np.int64)


def nearest_distances(queries: np.ndarray, reference: np.ndarray, *, exclude_self: bool = False) -> np.ndarray:
    """Euclidean distance from each query row to its closest reference row, float64 ``(n,)``.

    See :func:`nearest_neighbours` (same arguments) for how the search runs and ``exclude_self``."""
    return nearest_neighbours(queries, reference, exclude_self=exclude_self)[0]


def _row_distances(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Euclidean distance between matching rows, in float64."""
    difference = left.astype(np.float64) - right.astype(np.float64)
    return np.sqrt(np.einsum("ij,ij->i", difference, difference))


def _as_matrix(values: np.ndarray, what: str) -> np.ndarray:
    matrix = np.asarray(values)
    if matrix.ndim != 2:
        raise EvaluationError(f"{what} must be a 2-D matrix, got shape {matrix.shape}")
    if matrix.dtype not in (np.float32, np.float64):
        matrix = matrix.astype(np.float64)
    if not np.isfinite(matrix).all():
        raise EvaluationError(f"{what} holds NaN or infinite values")
    return matrix


# ----------------------------------------------------------------------------- exact copies
def row_keys(frame: pd.DataFrame, columns: list[str] | None = None) -> np.ndarray:
    """A 64-bit hash per row of its normalised values, for exact-copy detection.

    Two rows get the same key when every column matches: numbers (numeric dtypes, booleans
    included) after rounding to about 1e-9 relative (so ``39``, ``39.0`` and ``39.0000000001``
    match, ``39.00001`` does not); other values compared as text (``str(value)``); missing values (``None``,
    ``NaN``) match only missing values. Rows of different frames are comparable when ``columns``
    (default: the frame's own order) names the same columns in the same order. Hash collisions are
    possible in principle (1 in 2^64 per pair).

    Returns:
        uint64 ``(len(frame),)``.
    """
    columns = list(frame.columns) if columns is None else list(columns)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise EvaluationError(f"the rows lack the columns {missing}")
    if not columns:
        raise EvaluationError("rows without columns cannot be compared")
    normalised: dict[str, np.ndarray] = {}
    for position, name in enumerate(columns):
        column = frame[name]
        key = f"c{position}"  # positions, not names: names may be non-strings
        if pd.api.types.is_numeric_dtype(column.dtype):
            normalised[key] = _round_numbers(column.to_numpy(dtype=np.float64, na_value=np.nan))
        else:
            text = np.empty(len(column), dtype=object)
            text[:] = [None if _missing(v) else str(v) for v in column.to_numpy(dtype=object)]
            normalised[key] = text
    # pandas hashes each column (missing values to a reserved hash) and combines them row-wise
    return pd.util.hash_pandas_object(pd.DataFrame(normalised), index=False).to_numpy(dtype=np.uint64)


def exact_copy_mask(queries: pd.DataFrame, reference: pd.DataFrame, columns: list[str] | None = None) -> np.ndarray:
    """Which query rows equal (see :func:`row_keys`) some reference row; bool ``(len(queries),)``.

    ``columns`` defaults to the reference's columns, which both frames must have."""
    columns = list(reference.columns) if columns is None else list(columns)
    if len(queries) == 0:
        return np.zeros(0, dtype=bool)
    if len(reference) == 0:
        return np.zeros(len(queries), dtype=bool)
    return np.isin(row_keys(queries, columns), row_keys(reference, columns))


def _round_numbers(values: np.ndarray) -> np.ndarray:
    mantissa, exponent = np.frexp(values)
    # Rounding the mantissa then rebuilding the float gives one canonical value per bucket, also
    # across a power of two (0.99999999999 * 2^k and 0.5 * 2^(k+1) both become 2^k); "+ 0.0" turns
    # -0.0 into 0.0, and every NaN becomes the same NaN.
    rounded = np.ldexp(np.round(mantissa * 2.0**_MANTISSA_BITS), exponent - _MANTISSA_BITS) + 0.0
    rounded[np.isnan(values)] = np.nan
    return rounded


def _missing(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, (float, np.floating)) and bool(np.isnan(value))


# ----------------------------------------------------------------------------- the metrics
@overload
def privacy(
    train: pd.DataFrame, synthetic: pd.DataFrame, holdout: pd.DataFrame | None, kinds: dict[str, str], *,
    seed: int = 0, max_rows: int | None = None, return_distances: Literal[False] = False,
) -> dict: ...


@overload
def privacy(
    train: pd.DataFrame, synthetic: pd.DataFrame, holdout: pd.DataFrame | None, kinds: dict[str, str], *,
    seed: int = 0, max_rows: int | None = None, return_distances: Literal[True],
) -> tuple[dict, dict[str, np.ndarray | None]]: ...


def privacy(
    train: pd.DataFrame,
    synthetic: pd.DataFrame,
    holdout: pd.DataFrame | None,
    kinds: dict[str, str],
    *,
    seed: int = 0,
    max_rows: int | None = None,
    return_distances: bool = False,
) -> dict | tuple[dict, dict[str, np.ndarray | None]]:
    """Exact copies, DCR and a membership-inference attack (see the module docstring).

    Args:
        train: The rows the generator was trained on (``EvaluationData.real``).
        synthetic: The valid synthetic rows.
        holdout: Real rows the generator never saw, from the same distribution, or ``None``:
            ``dcr_share`` and ``membership_inference`` are then ``None`` and ``note`` says why.
        kinds: Column roles (``EvaluationData.kinds``); the rows are encoded by a
            :class:`RowEncoder` fitted on ``train``.
        seed: Seed of every subsample (``max_rows``, equal-size splits).
        max_rows: Cap on the rows used from each frame for distances (seeded subsample); ``None``
            uses all. Exact copies are always looked up among every training row.
        return_distances: Also return the distance arrays behind ``dcr``, e.g. for a histogram.

    Returns:
        A JSON-native dict:

        * ``exact_copy_rate``: share of synthetic rows equal to a training row in every column;
        * ``holdout_exact_copy_rate``: the same share for the holdout rows (real duplicates give
          the baseline), ``None`` without a holdout;
        * ``dcr_share``: share of synthetic rows closer to the training rows than to the holdout
          rows, both sets cut (seeded) to the smaller one's size; ties count half;
        * ``dcr``: ``{"synthetic_to_train": stats, "holdout_to_train": stats | None}`` with
          ``stats = {"mean", "p5", "p25", "p50", "p75", "p95"}``: the distance from each synthetic
          (holdout) row to its closest training row;
        * ``membership_inference``: ``{"auc", "members", "non_members"}`` or ``None``;
        * ``rows``: ``{"train", "synthetic", "holdout", "dcr_share_each", "membership_each"}``,
          the rows used;
        * ``note`` (only when something is ``None``): why.

        With ``return_distances=True``: ``(result, distances)`` where ``distances`` is
        ``{"synthetic_to_train": array, "holdout_to_train": array | None}`` (float64), the values
        the ``dcr`` statistics summarise.
    """
    frames = {"train": train, "synthetic": synthetic}
    if holdout is not None:
        frames["holdout"] = holdout
    columns = list(kinds)
    if not columns:
        raise EvaluationError("no columns to compare")
    for what, frame in frames.items():
        if len(frame) == 0:
            raise EvaluationError(f"the {what} rows are empty")
        absent = [c for c in columns if c not in frame.columns]
        if absent:
            raise EvaluationError(f"the {what} rows lack the columns {absent}")
    if max_rows is not None and max_rows < 1:
        raise EvaluationError("max_rows must be at least 1")

    # exact copies are a hash lookup: always against every training row, whatever max_rows
    exact_copy_rate = float(exact_copy_mask(synthetic, train, columns).mean())
    holdout_exact_copy_rate = None if holdout is None else float(exact_copy_mask(holdout, train, columns).mean())
    rng = np.random.default_rng(seed)
    if max_rows is not None:
        frames = {what: frame.iloc[_subsample(len(frame), max_rows, rng)] for what, frame in frames.items()}
    train, synthetic, holdout = frames["train"], frames["synthetic"], frames.get("holdout")

    encoder = RowEncoder(seed=seed).fit(train, kinds)
    train_x, synthetic_x = encoder.transform(train), encoder.transform(synthetic)
    if train_x.shape[1] == 0:
        raise EvaluationError("the rows encode to no dimension")

    result: dict = {
        "exact_copy_rate": exact_copy_rate,
        "holdout_exact_copy_rate": holdout_exact_copy_rate,
        "dcr_share": None,
        "dcr": {"synthetic_to_train": None, "holdout_to_train": None},
        "membership_inference": None,
        "rows": {"train": len(train), "synthetic": len(synthetic), "holdout": None, "dcr_share_each": None, "membership_each": None},
    }
    synthetic_to_train = nearest_distances(synthetic_x, train_x)
    result["dcr"]["synthetic_to_train"] = _summary(synthetic_to_train)
    distances: dict[str, np.ndarray | None] = {"synthetic_to_train": synthetic_to_train, "holdout_to_train": None}

    if holdout is None:
        result["note"] = "no holdout rows given: dcr_share and membership_inference need real rows the generator never saw"
    else:
        holdout_x = encoder.transform(holdout)
        result["rows"]["holdout"] = len(holdout)
        holdout_to_train = nearest_distances(holdout_x, train_x)
        result["dcr"]["holdout_to_train"] = _summary(holdout_to_train)
        distances["holdout_to_train"] = holdout_to_train

        # DCR share: equal-size train and holdout sets, so that a generator that does not
        # memorise is as likely to land near either (0.5).
        each = min(len(train_x), len(holdout_x))
        train_part = _subsample(len(train_x), each, rng)
        holdout_part = _subsample(len(holdout_x), each, rng)
        to_train = synthetic_to_train if len(train_part) == len(train_x) else nearest_distances(synthetic_x, train_x[train_part])
        to_holdout = nearest_distances(synthetic_x, holdout_x[holdout_part])
        result["dcr_share"] = dcr_share(to_train, to_holdout)
        result["rows"]["dcr_share_each"] = each

        # Membership inference: members are the training rows the split above kept, non-members
        # the holdout rows; the closer the synthetic data comes to a row, the likelier a member.
        member_scores = -nearest_distances(train_x[train_part], synthetic_x)
        non_member_scores = -nearest_distances(holdout_x[holdout_part], synthetic_x)
        labels = np.r_[np.ones(each), np.zeros(each)]
        auc = roc_auc_score(labels, np.r_[member_scores, non_member_scores])  # ties count half
        result["membership_inference"] = {"auc": float(auc), "members": each, "non_members": each}
        result["rows"]["membership_each"] = each
    if return_distances:
        return result, distances
    return result


def dcr_share(to_train: np.ndarray, to_holdout: np.ndarray) -> float:
    """Share of rows closer to the training set than to the holdout set, ties counting half.

    Args:
        to_train, to_holdout: Each row's distance to its closest training / holdout row.
    """
    to_train, to_holdout = np.asarray(to_train, dtype=np.float64), np.asarray(to_holdout, dtype=np.float64)
    if to_train.shape != to_holdout.shape or to_train.size == 0:
        raise EvaluationError("dcr_share needs two non-empty distance arrays of the same length")
    tied = np.abs(to_train - to_holdout) <= TIE_TOLERANCE * (1.0 + np.maximum(to_train, to_holdout))
    closer = (to_train < to_holdout) & ~tied
    return float(closer.mean() + 0.5 * tied.mean())


def _summary(distances: np.ndarray) -> dict:
    summary = {"mean": float(distances.mean())}
    for q, value in zip(QUANTILES, np.percentile(distances, QUANTILES)):
        summary[f"p{q}"] = float(value)
    return summary


def _subsample(size: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted positions of a seeded subsample of ``cap`` rows out of ``size`` (all when fewer)."""
    if size <= cap:
        return np.arange(size)
    return np.sort(rng.choice(size, size=cap, replace=False))
