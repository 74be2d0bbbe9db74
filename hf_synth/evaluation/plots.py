"""The report's figures as PNG bytes (matplotlib, no pyplot: no global state, no display needed)."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd

REAL_COLOR = "#1f77b4"
SYNTHETIC_COLOR = "#ff7f0e"
MAX_MARGINALS = 30
MAX_BARS = 12


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=90, layout="constrained")


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def marginals(real: pd.DataFrame, synthetic: pd.DataFrame, kinds: dict[str, str]) -> bytes | None:
    """Real vs synthetic distribution of each numerical / categorical column, one panel per column."""
    columns = [c for c, k in kinds.items() if k in ("numerical", "categorical")][:MAX_MARGINALS]
    if not columns:
        return None
    ncols = min(3, len(columns))
    nrows = math.ceil(len(columns) / ncols)
    figure = _figure(4.2 * ncols, 2.8 * nrows)
    axes = figure.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, name in zip(axes, columns):
        if kinds[name] == "numerical":
            _numeric_panel(ax, real[name].to_numpy(dtype=float), synthetic[name].to_numpy(dtype=float))
        else:
            _categorical_panel(ax, real[name], synthetic[name])
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes[len(columns):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7)
    return _png(figure)


def _numeric_panel(ax, real: np.ndarray, synthetic: np.ndarray) -> None:
    real, synthetic = real[~np.isnan(real)], synthetic[~np.isnan(synthetic)]
    if real.size == 0:
        return
    low, high = np.percentile(real, [0.5, 99.5])
    if high <= low:
        low, high = real.min() - 0.5, real.max() + 0.5
    edges = np.linspace(low, high, 31)
    ax.hist(np.clip(real, low, high), bins=edges, density=True, alpha=0.55, color=REAL_COLOR, label="real")
    if synthetic.size:
        ax.hist(np.clip(synthetic, low, high), bins=edges, density=True, alpha=0.55, color=SYNTHETIC_COLOR, label="synthetic")


def _categorical_panel(ax, real: pd.Series, synthetic: pd.Series) -> None:
    real_share = real.fillna("(missing)").value_counts(normalize=True)
    synthetic_share = synthetic.fillna("(missing)").value_counts(normalize=True)
    shown = list(real_share.index[:MAX_BARS])
    positions = np.arange(len(shown))
    ax.bar(positions - 0.2, [real_share.get(c, 0.0) for c in shown], width=0.4, color=REAL_COLOR, label="real")
    ax.bar(positions + 0.2, [synthetic_share.get(c, 0.0) for c in shown], width=0.4, color=SYNTHETIC_COLOR, label="synthetic")
    ax.set_xticks(positions, [str(c)[:14] for c in shown], rotation=60, ha="right")


def pair_trend_errors(pairs: dict[str, dict], columns: list[str]) -> bytes | None:
    """Heat map of 1 - score per column pair (0 = the pair's trend is reproduced)."""
    used = [c for c in columns if any(c in p["columns"] for p in pairs.values())]
    if len(used) < 2:
        return None
    index = {c: i for i, c in enumerate(used)}
    matrix = np.full((len(used), len(used)), np.nan)
    for pair in pairs.values():
        if pair.get("score") is None:
            continue
        a, b = (index[c] for c in pair["columns"])
        matrix[a, b] = matrix[b, a] = 1.0 - pair["score"]
    np.fill_diagonal(matrix, 0.0)
    size = max(4.0, 0.38 * len(used) + 2)
    figure = _figure(size + 1, size)
    ax = figure.subplots()
    image = ax.imshow(matrix, cmap="Reds", vmin=0.0, vmax=max(0.2, float(np.nanmax(matrix))))
    ax.set_xticks(range(len(used)), [c[:16] for c in used], rotation=90, fontsize=7)
    ax.set_yticks(range(len(used)), [c[:16] for c in used], fontsize=7)
    ax.set_title("column pair trend error (1 - score)", fontsize=9)
    figure.colorbar(image, ax=ax, shrink=0.8)
    return _png(figure)


def dcr_histogram(synthetic_to_train: np.ndarray, holdout_to_train: np.ndarray | None) -> bytes | None:
    """Distances to the closest training record: synthetic rows vs genuinely unseen real rows."""
    if synthetic_to_train is None or len(synthetic_to_train) == 0:
        return None
    figure = _figure(6, 3.4)
    ax = figure.subplots()
    values = [synthetic_to_train] + ([holdout_to_train] if holdout_to_train is not None and len(holdout_to_train) else [])
    high = float(np.percentile(np.concatenate(values), 99)) or 1.0
    edges = np.linspace(0.0, high, 41)
    ax.hist(np.clip(synthetic_to_train, 0, high), bins=edges, density=True, alpha=0.55, color=SYNTHETIC_COLOR, label="synthetic -> train")
    if len(values) > 1:
        ax.hist(np.clip(holdout_to_train, 0, high), bins=edges, density=True, alpha=0.55, color=REAL_COLOR, label="holdout -> train")
    ax.set_xlabel("distance to the closest training record", fontsize=8)
    ax.set_title("distance to closest record (DCR)", fontsize=9)
    ax.legend(fontsize=7)
    return _png(figure)
