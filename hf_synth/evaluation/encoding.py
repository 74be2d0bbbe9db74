"""Rows as numeric vectors, for the metrics that need distances or a classifier.

The encoding follows the convention of the tabular-synthesis literature (TabSyn's DCR): numbers
min-max scaled by the real data's range, categories one-hot. It is fitted on the real rows only,
so that every set is placed in the same space:

* numerical columns: ``(x - min) / (max - min)`` of the real column, plus a 0/1 "missing" column
  when the real column has gaps (missing cells sit at 0);
* categorical columns: one-hot over the real column's most frequent ``max_categories`` values, the
  others (and values never seen in the real data) share one "other" slot;
* text and nested (JSON) columns: TF-IDF of hashed character n-grams, reduced by a truncated SVD to
  ``text_dims`` dimensions and scaled to unit length, so one text column weighs like one category.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

OTHER = "\x00other"


class RowEncoder:
    """Fit on the real rows, then ``transform`` any set of rows with the same columns.

    Example:
        >>> encoder = RowEncoder().fit(data.real, data.kinds)
        >>> real_x, synthetic_x = encoder.transform(data.real), encoder.transform(data.synthetic)
    """

    def __init__(self, max_categories: int = 100, text_dims: int = 32, seed: int = 0):
        self.max_categories = max_categories
        self.text_dims = text_dims
        self.seed = seed
        self._numeric: dict[str, tuple[float, float, bool]] = {}
        self._categories: dict[str, dict[str, int]] = {}
        self._text: dict[str, tuple] = {}
        self.kinds: dict[str, str] = {}

    def fit(self, frame: pd.DataFrame, kinds: dict[str, str]) -> "RowEncoder":
        self.kinds = dict(kinds)
        for name, kind in kinds.items():
            column = frame[name]
            if kind == "numerical":
                values = column.to_numpy(dtype=float)
                present = values[~np.isnan(values)]
                low, high = (float(present.min()), float(present.max())) if present.size else (0.0, 1.0)
                self._numeric[name] = (low, high - low if high > low else 1.0, bool(np.isnan(values).any()))
            elif kind == "categorical":
                counts = column.fillna(OTHER + "missing").value_counts()
                keep = list(counts.index[: self.max_categories])
                slots = {value: i for i, value in enumerate(keep)}
                slots[OTHER] = len(slots)
                self._categories[name] = slots
            else:
                self._text[name] = self._fit_text(column)
        return self

    @property
    def dim(self) -> int:
        width = sum(2 if missing else 1 for _, _, missing in self._numeric.values())
        width += sum(len(slots) for slots in self._categories.values())
        width += sum(parts[2].n_components for parts in self._text.values())
        return width

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """``(rows, dim)`` float32 matrix."""
        blocks = []
        for name, kind in self.kinds.items():
            column = frame[name]
            if kind == "numerical":
                low, span, has_missing = self._numeric[name]
                values = column.to_numpy(dtype=float)
                missing = np.isnan(values)
                scaled = np.where(missing, 0.0, (values - low) / span)
                blocks.append(scaled[:, None])
                if has_missing:
                    blocks.append(missing[:, None].astype(float))
            elif kind == "categorical":
                slots = self._categories[name]
                index = column.fillna(OTHER + "missing").map(slots).fillna(slots[OTHER]).to_numpy(dtype=np.int64)
                onehot = np.zeros((len(frame), len(slots)), dtype=np.float32)
                onehot[np.arange(len(frame)), index] = 1.0
                blocks.append(onehot)
            else:
                blocks.append(self._transform_text(name, column))
        if not blocks:
            return np.zeros((len(frame), 0), dtype=np.float32)
        return np.hstack(blocks).astype(np.float32)

    # ------------------------------------------------------------------ text
    def _fit_text(self, column: pd.Series) -> tuple:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer

        hasher = HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5), n_features=2**16, alternate_sign=False, norm=None)
        counts = hasher.transform(column.fillna("").astype(str))
        tfidf = TfidfTransformer().fit(counts)
        weighted = tfidf.transform(counts)
        dims = max(1, min(self.text_dims, weighted.shape[0] - 1, weighted.shape[1] - 1))
        svd = TruncatedSVD(n_components=dims, random_state=self.seed).fit(weighted)
        return hasher, tfidf, svd

    def _transform_text(self, name: str, column: pd.Series) -> np.ndarray:
        hasher, tfidf, svd = self._text[name]
        reduced = svd.transform(tfidf.transform(hasher.transform(column.fillna("").astype(str))))
        norms = np.linalg.norm(reduced, axis=1, keepdims=True)
        return reduced / np.where(norms > 0, norms, 1.0)
