"""Complexity proxies of rows, per row and summarised, after the complexity section of
"Surveying the Effects of Quality, Diversity, and Complexity in Synthetic Data From Large Language
Models" (arXiv 2412.02980), which measures complexity by cheap structural proxies:

* text: length in tokens (the tokenisation of :func:`hf_synth.evaluation.diversity.tokenize`) and
  characters;
* records (JSON values): nesting depth and total number of keys, string values that hold JSON
  (tool definitions, function-call arguments) counted as the value they encode, plus the tokens
  of the record's JSON text;
* Python code: number of nodes and maximum depth of the syntax tree (``ast.parse``: the source is
  parsed only, never compiled or run); sources that do not parse are counted in ``parse_rate``.

The summaries (``mean``, ``p50``, ``p95``, ``max``) are JSON-native; :func:`row_scores` gives the
per-row values as arrays, to set curation thresholds (e.g. keep the rows above the real p50).
"""

from __future__ import annotations

import ast
import json
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from ..code import is_code, parse_python
from .data import EvaluationError
from .diversity import as_texts, tokenize

#: Cap on JSON strings nested inside JSON strings, against adversarial inputs.
MAX_JSON_STRING_DEPTH = 8


def _summary(values: np.ndarray) -> dict[str, float | None]:
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if not values.size:
        return dict.fromkeys(("mean", "p50", "p95", "max"))
    return {
        "mean": float(values.mean()),
        "p50": float(np.percentile(values, 50)),
        "p95": float(np.percentile(values, 95)),
        "max": float(values.max()),
    }


# ----------------------------------------------------------------------------- JSON values
def _json_string(value: str) -> Any:
    """The value a string encodes when it holds a JSON object or array, else ``None``."""
    stripped = value.strip()
    if len(stripped) < 2 or (stripped[0], stripped[-1]) not in (("{", "}"), ("[", "]")):
        return None
    try:
        parsed = json.loads(stripped)
    except ValueError:
        return None
    return parsed if isinstance(parsed, (dict, list)) else None


def json_structure(value: Any, *, parse_strings: bool = True) -> tuple[int, int]:
    """``(depth, keys)`` of a JSON-like value.

    ``depth`` is 0 for a scalar and 1 + the largest depth of its items for a dict or list (1 when
    empty), so a flat record has depth 1; ``keys`` counts the keys of every dict at every level.
    With ``parse_strings``, a string holding a JSON object or array counts as that value (tools and
    arguments are often stored as JSON text). Iterative, so deep values cannot exhaust the stack.

    Example:
        >>> json_structure({"a": 1, "b": {"c": [1, {"d": 2}]}})
        (4, 4)
    """
    depth = keys = 0
    stack: list[tuple[Any, int, int]] = [(value, 0, 0)]  # (value, depth of its container, JSON-string nesting)
    while stack:
        item, level, strings = stack.pop()
        if isinstance(item, str) and parse_strings and strings < MAX_JSON_STRING_DEPTH:
            parsed = _json_string(item)
            if parsed is not None:
                item, strings = parsed, strings + 1
        if isinstance(item, dict):
            keys += len(item)
            depth = max(depth, level + 1)
            stack.extend((v, level + 1, strings) for v in item.values())
        elif isinstance(item, (list, tuple)):
            depth = max(depth, level + 1)
            stack.extend((v, level + 1, strings) for v in item)
    return depth, keys


# ----------------------------------------------------------------------------- Python code
def ast_size(tree: ast.AST) -> tuple[int, int]:
    """``(nodes, depth)`` of a syntax tree: every node ``ast.walk`` yields (contexts such as
    ``Load`` included), and the longest root-to-leaf chain counted in nodes (a bare module is 1)."""
    nodes = depth = 0
    stack = [(tree, 1)]
    while stack:
        node, level = stack.pop()
        nodes += 1
        depth = max(depth, level)
        stack.extend((child, level + 1) for child in ast.iter_child_nodes(node))
    return nodes, depth





def looks_like_code(texts: Sequence[str], *, sample: int = 200, share: float = 0.5, seed: int = 0) -> bool:
    """Whether a text column holds Python code: at least ``share`` of a seeded sample of its
    non-empty texts parse (see :func:`parse_python`) and contain a statement or a call."""
    texts = [t for t in as_texts(texts) if t.strip()]
    if not texts:
        return False
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(texts), size=min(sample, len(texts)), replace=False)
    return sum(is_code(parse_python(texts[i])) for i in chosen) >= share * len(chosen)


# ----------------------------------------------------------------------------- per row and summaries
def row_scores(items: Sequence[Any], *, kind: Literal["text", "code", "record"] = "text") -> dict[str, np.ndarray]:
    """Per-row complexity values, for curation thresholds.

    Returns:
        For ``"text"``: ``tokens`` and ``chars``. For ``"code"``: ``tokens``, ``parsed`` (bool),
        and ``nodes`` / ``depth`` of the syntax tree (NaN where the code does not parse). For
        ``"record"`` (dicts, or any JSON values): ``tokens`` (of the JSON text), ``depth`` and
        ``keys`` (see :func:`json_structure`). Arrays of floats, one value per row.
    """
    if kind == "record":
        depth, keys, tokens = [], [], []
        for record in items:
            d, k = json_structure(record)
            depth.append(d)
            keys.append(k)
            tokens.append(len(tokenize(json.dumps(record, ensure_ascii=False, default=str))))
        return {"tokens": np.asarray(tokens, dtype=float), "depth": np.asarray(depth, dtype=float), "keys": np.asarray(keys, dtype=float)}
    texts = as_texts(items)
    tokens = np.asarray([len(tokenize(t)) for t in texts], dtype=float)
    if kind == "text":
        return {"tokens": tokens, "chars": np.asarray([len(t) for t in texts], dtype=float)}
    if kind == "code":
        nodes = np.full(len(texts), np.nan)
        depth = np.full(len(texts), np.nan)
        for i, text in enumerate(texts):
            tree = parse_python(text)
            if tree is not None:
                nodes[i], depth[i] = ast_size(tree)
        return {"tokens": tokens, "parsed": ~np.isnan(nodes), "nodes": nodes, "depth": depth}
    raise EvaluationError(f"unknown complexity kind {kind!r}; choose text, code or record")


def text_complexity(texts: Sequence[str]) -> dict[str, Any]:
    """``{"rows", "tokens", "chars"}``: length summaries (mean, p50, p95, max) of free text."""
    scores = row_scores(texts, kind="text")
    return {"rows": len(scores["tokens"]), "tokens": _summary(scores["tokens"]), "chars": _summary(scores["chars"])}


def code_complexity(texts: Sequence[str]) -> dict[str, Any]:
    """``{"rows", "parse_rate", "nodes", "depth", "tokens"}`` of Python sources.

    ``nodes`` and ``depth`` summarise the sources that parse (``parse_rate`` of them); ``tokens``
    every row. With no source that parses their figures are ``None`` and ``note`` says why.
    """
    scores = row_scores(texts, kind="code")
    rows = len(scores["tokens"])
    result: dict[str, Any] = {
        "rows": rows,
        "parse_rate": float(scores["parsed"].mean()) if rows else None,
        "nodes": _summary(scores["nodes"]),
        "depth": _summary(scores["depth"]),
        "tokens": _summary(scores["tokens"]),
    }
    if not scores["parsed"].any():
        result["note"] = "no row parses as Python: no syntax tree figures" if rows else "no row"
    return result


def record_complexity(records: Sequence[Any]) -> dict[str, Any]:
    """``{"rows", "depth", "keys", "tokens"}``: summaries of the nesting depth and key count of
    records (see :func:`json_structure`) and of the tokens of their JSON text."""
    scores = row_scores(records, kind="record")
    return {"rows": len(scores["tokens"]), **{name: _summary(scores[name]) for name in ("depth", "keys", "tokens")}}
