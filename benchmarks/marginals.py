"""Per-column distance between real and synthetic marginals, for the benchmarks.

Total variation distance for categorical columns, two-sample Kolmogorov-Smirnov statistic for
numeric ones. Missing values count as their own category / are left out of the KS statistic.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hf_synth.schema import RecordSchema


def total_variation(real: pd.Series, synthetic: pd.Series) -> float:
    p = real.astype(str).value_counts(normalize=True)
    q = synthetic.astype(str).value_counts(normalize=True)
    keys = p.index.union(q.index)
    return 0.5 * float(np.abs(p.reindex(keys, fill_value=0) - q.reindex(keys, fill_value=0)).sum())


def kolmogorov_smirnov(real: pd.Series, synthetic: pd.Series) -> float:
    a = np.sort(pd.to_numeric(real, errors="coerce").dropna().to_numpy(dtype=float))
    b = np.sort(pd.to_numeric(synthetic, errors="coerce").dropna().to_numpy(dtype=float))
    if len(a) == 0 or len(b) == 0:
        return 1.0
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side="right") / len(a)
    cdf_b = np.searchsorted(b, grid, side="right") / len(b)
    return float(np.max(np.abs(cdf_a - cdf_b)))


def marginal_distances(real: pd.DataFrame, synthetic: pd.DataFrame, schema: RecordSchema) -> dict[str, float]:
    out = {}
    for name, fs in schema.fields.items():
        if fs.kind == "numeric":
            out[name] = kolmogorov_smirnov(real[name], synthetic[name])
        else:
            out[name] = total_variation(real[name], synthetic[name])
    return out
