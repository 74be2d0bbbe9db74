"""Alpha-precision, beta-recall and authenticity (Alaa et al., ICML 2022, "How Faithful is your
Synthetic Data? Sample-level Metrics for Evaluating and Auditing Generative Models").

These look at the rows as whole points instead of column by column, so they see higher-order
structure that marginals and pairs miss. This is the variant without a learnt embedding (the
authors' reference code on raw features, synthcity's ``AlphaPrecision`` "naive" scores, the
numbers TabSyn reports), on the :class:`~hf_synth.evaluation.encoding.RowEncoder` space:

* **alpha-precision**: the alpha-support of the real data is the ball around the real mean
  holding a share alpha of the real rows. For each alpha, the share of synthetic rows inside it
  should be alpha; the score is ``1 - 2 * area between that curve and the diagonal``, so 1 when
  synthetic rows are spread like real ones, low when they sit outside the real data (or all in its
  core);
* **beta-recall**: a real row counts as covered when its closest synthetic row is closer than its
  closest other real row, *and* that synthetic row lies in the synthetic data's own beta-support
  (ball around the synthetic mean, sized by the beta-quantile of those closest rows' distances);
  scored like alpha-precision from the curve over beta. Mode collapse leaves most real rows
  uncovered. Note that even a perfect generator scores about ``n_syn / (n_syn + n_real)``
  at beta = 1, so about 0.5 overall with equal-size sets (a real row's closest neighbour is as
  likely to be real as synthetic): compare generators at the same sizes, not against 1;
* **authenticity**: share of synthetic rows farther from their closest real row than that real
  row is from its own closest real neighbour: rows that are not (near-)copies. About 0.5 for
  independent samples of the same distribution, 0 for copies.

Distances are Euclidean, as in the reference code.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .data import EvaluationError
from .encoding import RowEncoder
from .privacy import nearest_neighbours


def alpha_precision_beta_recall(
    real_x: np.ndarray,
    synthetic_x: np.ndarray,
    *,
    steps: int = 30,
    max_rows: int = 10000,
    seed: int = 0,
) -> dict:
    """Alpha-precision, beta-recall and authenticity of encoded rows (see the module docstring).

    Args:
        real_x: ``(n, d)`` encoded real rows (at least 2).
        synthetic_x: ``(m, d)`` encoded synthetic rows.
        steps: Points of the alpha / beta grid, ``linspace(0, 1, steps)`` (30 in the reference code).
        max_rows: Each side is cut to this many rows (seeded subsample): the neighbour searches
            cost ``n * m``. Beta-recall depends on the ratio of the two sizes (see above).
        seed: Seed of the subsamples.

    Returns:
        ``{"alpha_precision", "beta_recall", "authenticity", "curves": {"alpha", "precision",
        "recall"}, "rows_per_side": {"real", "synthetic"}}``, JSON-native. The two scores are
        clipped to [0, 1]: the reference formula (a Riemann sum counting both ends of the grid)
        gives slightly below 0 for a curve stuck at 0 or 1.
    """
    real = _matrix(real_x, "real")
    synthetic = _matrix(synthetic_x, "synthetic")
    if real.shape[1] != synthetic.shape[1]:
        raise EvaluationError(f"real rows have {real.shape[1]} columns and synthetic rows {synthetic.shape[1]}")
    if real.shape[0] < 2:
        raise EvaluationError("alpha-precision needs at least 2 real rows (each real row's closest other real row)")
    if synthetic.shape[0] < 1:
        raise EvaluationError("the synthetic rows are empty")
    if steps < 2:
        raise EvaluationError("steps must be at least 2")
    if max_rows < 2:
        raise EvaluationError("max_rows must be at least 2")
    rng = np.random.default_rng(seed)
    real = real[_subsample(len(real), max_rows, rng)]
    synthetic = synthetic[_subsample(len(synthetic), max_rows, rng)]

    alphas = np.linspace(0.0, 1.0, steps)

    # alpha-precision: synthetic rows inside the real alpha-balls around the real mean
    real_centre = real.mean(axis=0)
    radii = np.quantile(_norms(real - real_centre), alphas)
    synthetic_to_centre = _norms(synthetic - real_centre)
    precision = (synthetic_to_centre[None, :] <= radii[:, None]).mean(axis=1)

    # beta-recall: real rows whose closest synthetic row beats their closest real row and lies
    # in the synthetic beta-ball
    real_to_real, _ = nearest_neighbours(real, real, exclude_self=True)
    real_to_synthetic, closest = nearest_neighbours(real, synthetic)
    closest_to_centre = _norms(synthetic[closest] - synthetic.mean(axis=0))
    closest_radii = np.quantile(closest_to_centre, alphas)
    beats_real = real_to_synthetic <= real_to_real
    recall = (beats_real[None, :] & (closest_to_centre[None, :] <= closest_radii[:, None])).mean(axis=1)

    # authenticity: synthetic rows farther from their closest real row than that row's own
    # closest real neighbour
    synthetic_to_real, nearest_real = nearest_neighbours(synthetic, real)
    authenticity = float(np.mean(real_to_real[nearest_real] < synthetic_to_real))

    return {
        "alpha_precision": _score(alphas, precision),
        "beta_recall": _score(alphas, recall),
        "authenticity": authenticity,
        "curves": {
            "alpha": [float(a) for a in alphas],
            "precision": [float(p) for p in precision],
            "recall": [float(r) for r in recall],
        },
        "rows_per_side": {"real": int(len(real)), "synthetic": int(len(synthetic))},
    }


def highorder(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    kinds: dict[str, str],
    *,
    seed: int = 0,
    max_rows: int = 10000,
) -> dict:
    """:func:`alpha_precision_beta_recall` of rows encoded by a :class:`RowEncoder` fitted on
    ``real`` (``EvaluationData.real`` / ``.synthetic`` / ``.kinds``)."""
    if not kinds:
        raise EvaluationError("no columns to compare")
    for what, frame in (("real", real), ("synthetic", synthetic)):
        if len(frame) == 0:
            raise EvaluationError(f"the {what} rows are empty")
        absent = [c for c in kinds if c not in frame.columns]
        if absent:
            raise EvaluationError(f"the {what} rows lack the columns {absent}")
    # Subsample the frames before encoding: the encoder is then fitted on the rows scored, and
    # encoding (text columns especially) costs no more than the rows kept.
    rng = np.random.default_rng(seed)
    real = real.iloc[_subsample(len(real), max_rows, rng)]
    synthetic = synthetic.iloc[_subsample(len(synthetic), max_rows, rng)]
    encoder = RowEncoder(seed=seed).fit(real, kinds)
    return alpha_precision_beta_recall(encoder.transform(real), encoder.transform(synthetic), max_rows=max_rows, seed=seed)


def _matrix(values: np.ndarray, what: str) -> np.ndarray:
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.ndim != 2:
        raise EvaluationError(f"the {what} rows must be a 2-D matrix, got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise EvaluationError(f"the {what} rows hold NaN or infinite values")
    return matrix


def _subsample(size: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted positions of a seeded subsample of ``cap`` rows out of ``size`` (all when fewer)."""
    if size <= cap:
        return np.arange(size)
    return np.sort(rng.choice(size, size=cap, replace=False))


def _norms(rows: np.ndarray) -> np.ndarray:
    return np.sqrt(np.einsum("ij,ij->i", rows, rows))


def _score(alphas: np.ndarray, curve: np.ndarray) -> float:
    """``1 - 2 * sum(|alpha - curve|) * step``, the reference definition, clipped to [0, 1]."""
    delta = 1.0 - 2.0 * float(np.sum(np.abs(alphas - curve))) * float(alphas[1] - alphas[0])
    return float(min(1.0, max(0.0, delta)))
