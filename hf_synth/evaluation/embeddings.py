"""Semantic diversity and detectability of texts in a sentence encoder's embedding space.

* :class:`SentenceEncoder`: any Hugging Face encoder (local path or Hub id), mean-pooled over the
  attention mask and L2-normalised, as sentence-transformers models are used;
* dispersion: mean pairwise cosine distance between embeddings (0 = all the same direction);
* Vendi score (Friedman & Dieng, 2023): ``exp`` of the Shannon entropy of the eigenvalues of
  ``K / n``, ``K`` the cosine-similarity kernel: the effective number of distinct items, from 1
  (all identical) to ``n`` (all orthogonal);
* C2ST on the embeddings: can a logistic regression tell synthetic from real embeddings
  (:func:`hf_synth.evaluation.detection.detection_score`; 1 = indistinguishable, 0 = separable).

These follow the embedding-based diversity measures of arXiv 2412.02980.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .data import EvaluationError

#: Rows per side the Vendi score is computed on (its eigendecomposition grows with the rows).
VENDI_MAX_ROWS = 2000


class SentenceEncoder:
    """Embed texts with a transformers encoder: mean of the last hidden states over the real
    (non-padding) tokens, scaled to unit length.

    Args:
        model: Local directory or Hub id of a model with safetensors weights. Remote code is never
            run (``trust_remote_code=False``).
        device: Torch device, e.g. ``"cpu"`` or ``"cuda"``.
        batch_size: Texts per forward pass.
        max_length: Tokens per text; longer texts are truncated.

    Raises:
        EvaluationError: The tokenizer or model cannot be loaded (offline, missing path, no
            safetensors weights...); the message is one line, for the report to show.

    Example:
        >>> encoder = SentenceEncoder("sentence-transformers/all-MiniLM-L6-v2")
        >>> vectors = encoder.encode(["a first text", "a second one"])  # (2, 384), unit rows
    """

    def __init__(self, model: str, *, device: str = "cpu", batch_size: int = 64, max_length: int = 256):
        import torch
        from transformers import AutoModel, AutoTokenizer

        if batch_size < 1 or max_length < 1:
            raise EvaluationError(f"batch_size and max_length must be positive, got {batch_size} and {max_length}")
        self.name, self.batch_size, self.max_length = str(model), batch_size, max_length
        if _looks_like_path(self.name) and not os.path.isdir(os.path.expanduser(self.name)):
            # transformers would call it an invalid Hub id, which hides the real problem
            raise EvaluationError(f"cannot load the sentence encoder {self.name!r}: no such directory")
        try:
            self.device = torch.device(device)
            source = os.path.expanduser(self.name) if _looks_like_path(self.name) else self.name
            self.tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
            network = AutoModel.from_pretrained(source, trust_remote_code=False, use_safetensors=True)
        except Exception as err:  # any load failure (OSError offline, ValueError bad id, ...) is one line in the report
            raise EvaluationError(f"cannot load the sentence encoder {self.name!r}: {_first_line(err)}") from None
        if getattr(network.config, "is_encoder_decoder", False) and hasattr(network, "get_encoder"):
            network = network.get_encoder()  # T5-style models: the encoder alone embeds
        if self.tokenizer.pad_token is None:  # decoder-only tokenizers: padding is masked out anyway
            fallback = self.tokenizer.eos_token or self.tokenizer.unk_token
            if fallback is None:
                raise EvaluationError(f"the tokenizer of {self.name!r} has no padding, end or unknown token to pad batches with")
            self.tokenizer.pad_token = fallback
        self.model = network.to(self.device).eval()
        self._inputs = set(inspect.signature(self.model.forward).parameters)  # DistilBERT takes no token_type_ids

    @property
    def dim(self) -> int:
        """Size of the embeddings."""
        return int(self.model.config.hidden_size)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32 embeddings with unit L2 norm (``None`` counts as ``""``;
        a text with no token at all embeds as zeros)."""
        import torch

        texts = ["" if t is None else str(t) for t in texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # batches of similar lengths pad less; the order is restored below
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                rows = order[start:start + self.batch_size]
                batch = self.tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt")
                inputs = {k: v.to(self.device) for k, v in batch.items() if k in self._inputs}
                hidden = self.model(**inputs).last_hidden_state
                mask = batch["attention_mask"].to(self.device).unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
                pooled = torch.nn.functional.normalize(pooled.float(), p=2, dim=1)
                out[rows] = pooled.cpu().numpy()
        return out


def _looks_like_path(name: str) -> bool:
    # a Hub id is "name" or "namespace/name"; anything else with a separator is meant as a path
    return os.path.isdir(os.path.expanduser(name)) or name.startswith((".", "~", os.sep)) or name.count("/") > 1 or "\\" in name


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    line = text[0] if text else type(err).__name__
    return line if len(line) <= 300 else line[:297] + "..."


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise EvaluationError(f"embeddings must be a (rows, dim) matrix, got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)  # a zero row stays zero: similar to nothing, itself included


def dispersion(embeddings: np.ndarray) -> float | None:
    """Mean cosine distance ``1 - cos`` over all pairs of distinct rows (``None`` below two rows).

    Exact over every row, in ``O(rows * dim)``: the sum of all pairwise similarities of unit
    vectors is ``|sum of the vectors|^2``, so no pairwise matrix is built (hence no sampling).
    """
    x = _unit(embeddings)
    n = len(x)
    if n < 2:
        return None
    total = float(np.square(x.sum(axis=0)).sum())
    self_similarity = float(np.square(x).sum())  # n, less the zero rows
    return 1.0 - (total - self_similarity) / (n * (n - 1))


def vendi_score(embeddings: np.ndarray, *, max_rows: int = VENDI_MAX_ROWS, seed: int = 0) -> float | None:
    """Vendi score of the rows (on a seeded sample of ``max_rows`` when there are more).

    ``exp(-sum(l * ln l))`` over the eigenvalues ``l`` of ``K / n``, ``K = X X^T`` the cosine
    kernel of the ``n`` unit rows ``X``; the eigenvalues come from the ``dim x dim`` matrix
    ``X^T X / n`` when it is smaller (same non-zero spectrum). It grows with ``n`` until the rows
    stop adding directions, so compare sets at the same ``n``. ``None`` for no row.
    """
    x = _unit(embeddings)
    if not len(x):
        return None
    if len(x) > max_rows:
        x = x[np.sort(np.random.default_rng(seed).choice(len(x), size=max_rows, replace=False))]
    n = len(x)
    gram = (x.T @ x) if x.shape[1] < n else (x @ x.T)
    eigenvalues = np.linalg.eigvalsh(gram / n)
    eigenvalues = eigenvalues[eigenvalues > 1e-12]  # round-off negatives and zeros: 0 * ln 0 = 0
    return float(np.exp(-(eigenvalues * np.log(eigenvalues)).sum()))


def embedding_metrics(real_emb: np.ndarray, synthetic_emb: np.ndarray, *, seed: int = 0,
                      vendi_rows: int = VENDI_MAX_ROWS, max_rows: int = 20000) -> dict[str, Any]:
    """Dispersion, Vendi score and C2ST of synthetic vs real embeddings (e.g. from :class:`SentenceEncoder`).

    Returns:
        ``{"rows": {"real", "synthetic"}, "dim", "dispersion": {"synthetic", "real"},
        "vendi_score": {"synthetic", "real"}, "vendi_rows", "c2st": {...}}``. The Vendi score of
        both sides is taken on the same number of rows, ``vendi_rows`` (at most ``vendi_rows``,
        seeded samples), since it grows with the rows. ``c2st`` is
        :func:`~hf_synth.evaluation.detection.detection_score` with a logistic regression and 3
        stratified folds (``score`` = mean of ``1 - (2 * max(AUC, 0.5) - 1)``). A figure that
        cannot be computed is ``None`` and ``notes`` says why.
    """
    from .detection import detection_score

    real, synthetic = _unit(real_emb), _unit(synthetic_emb)
    if real.shape[1] != synthetic.shape[1]:
        raise EvaluationError(f"real and synthetic embeddings differ in size: {real.shape[1]} vs {synthetic.shape[1]}")
    common = min(len(real), len(synthetic), vendi_rows)
    result: dict[str, Any] = {
        "rows": {"real": len(real), "synthetic": len(synthetic)},
        "dim": int(real.shape[1]),
        "dispersion": {"synthetic": dispersion(synthetic), "real": dispersion(real)},
        "vendi_score": {
            "synthetic": vendi_score(synthetic, max_rows=common, seed=seed) if common else None,
            "real": vendi_score(real, max_rows=common, seed=seed) if common else None,
        },
        "vendi_rows": common,
        "c2st": detection_score(real, synthetic, model="logistic", folds=3, max_rows=max_rows, seed=seed),
    }
    notes = []
    if result["dispersion"]["synthetic"] is None or result["dispersion"]["real"] is None:
        notes.append("dispersion needs at least two rows per side")
    if not common:
        notes.append("the Vendi score needs rows on both sides")
    if result["c2st"].get("note"):
        notes.append(f"c2st: {result['c2st']['note']}")
    if notes:
        result["notes"] = notes
    return result
