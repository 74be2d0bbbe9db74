"""``evaluate``: one report of validity, fidelity, detection, utility, privacy, high-order fidelity
and quality / diversity / complexity for any synthetic split.

Each section runs on its own; a section that cannot run on the given data (no target, a constant
target, no sentence encoder, no valid row) is listed under ``skipped`` with the reason instead of
failing the whole report.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .. import __version__
from ..errors import OutputExistsError
from ..schema import RecordSchema
from .data import EvaluationData, EvaluationError, compact_record, prepare

logger = logging.getLogger(__name__)

REPORT_FORMAT_VERSION = 1
REPORT_FILE = "report.json"
MARKDOWN_FILE = "report.md"
SECTIONS = ("fidelity", "detection", "utility", "privacy", "highorder", "diversity", "complexity", "embeddings")
#: Headline figures: (key in report.json, label, ideal value, formatter).
HEADLINE = (
    ("validity", "validity", "100 %", "percent"),
    ("shape_error", "column shape error", "0 %", "percent_points"),
    ("trend_error", "column pair trend error, all pairs (TabSyn protocol)", "0 %", "percent_points"),
    ("trend_error_associated", "column pair trend error, associated pairs (SDMetrics QualityReport)", "0 %", "percent_points"),
    ("c2st.logistic", "detection (C2ST), logistic regression", "1", "score"),
    ("c2st.gradient_boosting", "detection (C2ST), gradient boosting", "1", "score"),
    ("utility.synthetic.{metric}", "utility: {metric} trained on synthetic", "as real", "score"),
    ("utility.real.{metric}", "utility: {metric} trained on real", "", "score"),
    ("utility.gap.{metric}", "utility gap (real - synthetic)", "0", "score"),
    ("dcr_share", "DCR: share closer to train than holdout", "50 %", "percent"),
    ("exact_copy_rate", "exact copies of training rows", "0 %", "percent"),
    ("membership_inference_auc", "membership inference AUC", "0.5", "score"),
    ("alpha_precision", "alpha-precision", "1", "score"),
    ("beta_recall", "beta-recall", "~0.5 (equal sizes)", "score"),
)


@dataclass
class Report:
    """The result of :func:`evaluate`: JSON-native figures plus PNG figures.

    ``report.to_dict()`` has stable keys (documented in the README): ``validity``, ``shape_error``,
    ``trend_error``, ``trend_error_associated``, ``c2st`` (``logistic``, ``gradient_boosting``), ``utility`` (``synthetic``,
    ``real``, ``gap``), ``dcr_share``, ``exact_copy_rate``, ``membership_inference_auc``,
    ``alpha_precision``, ``beta_recall``, the per-section details, ``skipped`` and ``notes``.
    """

    results: dict[str, Any]
    figures: dict[str, bytes] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.results[key]

    def get(self, path: str, default: Any = None) -> Any:
        """A value by dotted path, e.g. ``report.get("utility.synthetic.auc")``."""
        value: Any = self.results
        for part in path.split("."):
            if not isinstance(value, dict) or part not in value:
                return default
            value = value[part]
        return value

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(self.results))

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.results, indent=indent, ensure_ascii=False, allow_nan=False)

    def summary(self) -> dict[str, Any]:
        """The headline figures as ``{label: value}`` (what the model card's table shows)."""
        return {label: value for label, value, _ in self.headline()}

    def headline(self) -> list[tuple[str, str, str]]:
        """``(label, formatted value, ideal value)`` of each headline figure the report holds."""
        metric = self.get("utility.metric")
        rows = []
        for key, label, ideal, style in HEADLINE:
            if "{metric}" in key:
                if metric is None:
                    continue
                key, label = key.format(metric=metric), label.format(metric=metric.upper())
            value = self.get(key)
            if value is None:
                continue
            rows.append((label, _format(value, style), ideal))
        return rows

    def to_markdown(self, figure_dir: str = ".") -> str:
        """The report as markdown; figures are linked as ``<figure_dir>/<name>.png``."""
        from .markdown import render_markdown

        return render_markdown(self, figure_dir)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def __repr__(self) -> str:
        lines = [f"{label}: {value}" for label, value, _ in self.headline()]
        return "Report(\n  " + "\n  ".join(lines) + "\n)"

    def save(self, directory: str, *, overwrite: bool = False) -> str:
        """Write ``report.json``, ``report.md`` and the PNG figures to ``directory`` (atomically)."""
        if os.path.exists(directory) and not overwrite:
            raise OutputExistsError(f"{directory} exists; pass overwrite=True to replace it")
        parent = os.path.dirname(os.path.abspath(directory))
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".report-", dir=parent)
        try:
            self.write_files(tmp)
            from ..hub import replace_directory

            replace_directory(tmp, directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return directory

    def write_files(self, directory: str) -> None:
        with open(os.path.join(directory, REPORT_FILE), "w", encoding="utf-8") as f:
            f.write(self.to_json())
        with open(os.path.join(directory, MARKDOWN_FILE), "w", encoding="utf-8") as f:
            f.write(self.to_markdown())
        for name, png in self.figures.items():
            with open(os.path.join(directory, f"{name}.png"), "wb") as f:
                f.write(png)

    @classmethod
    def load(cls, directory: str) -> "Report":
        """Read a report written by :meth:`save` (its JSON and PNG files; nothing is executed)."""
        path = os.path.join(directory, REPORT_FILE)
        try:
            with open(path, encoding="utf-8") as f:
                results = json.load(f)
        except (OSError, json.JSONDecodeError) as err:
            raise EvaluationError(f"cannot read the report {path}: {err}") from None
        figures = {}
        for name in results.get("figures", []):
            png = os.path.join(directory, f"{name}.png")
            if os.path.isfile(png):
                with open(png, "rb") as f:
                    figures[name] = f.read()
        return cls(results, figures)


def _format(value: Any, style: str) -> str:
    if not isinstance(value, (int, float)):
        return str(value)
    if style == "percent":
        return f"{100 * value:.2f} %"
    if style == "percent_points":
        return f"{value:.2f} %"
    return f"{value:.4f}"


def evaluate(
    real: Any,
    synthetic: Any,
    *,
    holdout: Any = None,
    target: str | None = None,
    schema: RecordSchema | None = None,
    column_kinds: dict[str, str] | None = None,
    metrics: list[str] | tuple[str, ...] | None = None,
    encoder: str | None = None,
    seed: int = 0,
    max_rows: int = 20_000,
    plots: bool = True,
    progress: bool = True,
) -> Report:
    """Measure what a synthetic split is worth against the real data it imitates.

    Args:
        real: The real rows the generator was trained on (``datasets.Dataset``, pandas DataFrame,
            list of dicts, or a .csv / .jsonl / .parquet file, saved dataset or Hub id).
        synthetic: The synthetic rows, in any of the same forms; also a list of JSON strings or a
            .jsonl file of raw generations (lines that do not parse count as invalid).
        holdout: Real rows the generator never saw (the test split): needed for DCR and
            membership inference, and the test set of the utility section. Without it the utility
            section trains the real reference on 80 % of ``real`` and tests on the rest.
        target: Column to predict in the utility section (skipped when ``None``).
        schema: Schema to validate synthetic rows against (default: learned from ``real``).
        column_kinds: Override column roles (``{"EDUCATION": "categorical"}``), see
            :func:`hf_synth.evaluation.data.column_roles`.
        metrics: Sections to run (default: all of :data:`SECTIONS`).
        encoder: Sentence encoder (Hub id or local path) for the embedding section.
        seed: Seeds every subsample, split and model.
        max_rows: Cap on rows per side for the detection, privacy and high-order sections.
        plots: Draw the PNG figures.
        progress: Show a progress bar over the sections.

    Example:
        >>> report = hf_synth.evaluate("adult_train.csv", synthetic, holdout="adult_test.csv", target="income")
        >>> report["shape_error"], report.get("utility.synthetic.auc")
        >>> report.save("report/")
    """
    chosen = list(SECTIONS if metrics is None else metrics)
    unknown = [m for m in chosen if m not in SECTIONS]
    if unknown:
        raise EvaluationError(f"unknown metrics {unknown}; choose from {', '.join(SECTIONS)}")
    data = prepare(real, synthetic, holdout=holdout, schema=schema, column_kinds=column_kinds)
    if target is not None and target not in data.kinds:
        raise EvaluationError(f"target {target!r} is not a column; the data has {list(data.kinds)}")

    results: dict[str, Any] = {
        "format_version": REPORT_FORMAT_VERSION,
        "hf_synth_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "settings": {"target": target, "seed": seed, "max_rows": max_rows, "encoder": encoder, "metrics": chosen},
        "rows": {
            "real": len(data.real),
            "synthetic": data.validity["total_rows"],
            "synthetic_valid": data.validity["valid_rows"],
            "holdout": None if data.holdout is None else len(data.holdout),
        },
        "columns": dict(data.kinds),
        "validity": data.validity["score"],
        "validity_details": {**data.validity, "examples": data.invalid_examples},
        "skipped": {},
        "notes": [],
        "timings": {},
    }
    if data.validity["invalid_rows"]:
        results["notes"].append(
            f"{data.validity['invalid_rows']} of {data.validity['total_rows']} synthetic rows are invalid; "
            f"every other metric uses the {data.validity['valid_rows']} valid rows"
        )
        if schema is None:
            results["notes"].append(
                "validity uses a schema learned from the real rows: categories, keys and numbers outside what the "
                "real rows hold count as invalid; pass schema= (e.g. generator.schema) to check against another"
            )
    figures: dict[str, bytes] = {}
    context = _Context(data=data, target=target, seed=seed, max_rows=max_rows, encoder=encoder, plots=plots, figures=figures)

    from tqdm.auto import tqdm

    bar = tqdm(chosen, desc="evaluating", unit="section", disable=not progress)
    for section in bar:
        bar.set_postfix_str(section)
        if not len(data.synthetic):
            results["skipped"][section] = "no valid synthetic row"
            continue
        start = time.perf_counter()
        try:
            _RUNNERS[section](context, results)
        except EvaluationError as err:
            results["skipped"][section] = str(err)
        except Exception as err:  # one failing metric must not cost the rest of the report
            logger.exception("evaluation section %s failed", section)
            results["skipped"][section] = f"failed: {type(err).__name__}: {err}"
        results["timings"][section] = round(time.perf_counter() - start, 3)
    results["figures"] = list(figures)  # in section order
    return Report(_json_safe(results), figures)


@dataclass
class _Context:
    data: EvaluationData
    target: str | None
    seed: int
    max_rows: int
    encoder: str | None
    plots: bool
    figures: dict[str, bytes]
    cache: dict[str, Any] = field(default_factory=dict)

    def table_columns(self) -> list[str]:
        return self.data.columns("numerical", "categorical")


def _fidelity(ctx: _Context, results: dict) -> None:
    from . import plots
    from .fidelity import column_pair_trends, column_shapes

    data = ctx.data
    if not ctx.table_columns():
        raise EvaluationError("no numerical or categorical column: column shapes and pair trends need table columns")
    shapes = column_shapes(data.real, data.synthetic, data.kinds)
    results["shape_error"] = shapes["error"]
    results["column_shapes"] = shapes
    if len(ctx.table_columns()) >= 2:
        trends = column_pair_trends(data.real, data.synthetic, data.kinds)
        results["trend_error"] = trends["error"]
        results["trend_error_associated"] = trends["associated_error"]
        results["column_pair_trends"] = trends
    else:
        results["notes"].append("one table column only: no column pair trends")
    if ctx.plots:
        _add_figure(ctx, "marginals", plots.marginals(data.real, data.synthetic, data.kinds))
        if "column_pair_trends" in results:
            _add_figure(ctx, "pair_trends", plots.pair_trend_errors(results["column_pair_trends"]["pairs"], ctx.table_columns()))


def _detection(ctx: _Context, results: dict) -> None:
    from .detection import c2st

    data = ctx.data
    details = c2st(data.real, data.synthetic, data.kinds, seed=ctx.seed, max_rows=ctx.max_rows)
    results["c2st"] = {name: part.get("score") for name, part in details.items()}
    results["detection"] = details


def _utility(ctx: _Context, results: dict) -> None:
    from .utility import utility

    if ctx.target is None:
        raise EvaluationError("no target column given (target=...)")
    data = ctx.data
    train, test = data.real, data.holdout
    if test is None:
        train, test = _split(data.real, ctx.seed)
        results["notes"].append(
            "utility: no holdout given, so the real reference trains on 80 % of the real rows and both models "
            "are tested on the other 20 %, which the generator may have seen"
        )
    results["utility"] = utility(train, data.synthetic, test, ctx.target, data.kinds, seed=ctx.seed)


def _split(frame, seed: int):
    order = np.random.default_rng(seed).permutation(len(frame))
    cut = int(round(0.8 * len(frame)))
    return frame.iloc[order[:cut]].reset_index(drop=True), frame.iloc[order[cut:]].reset_index(drop=True)


def _privacy(ctx: _Context, results: dict) -> None:
    from . import plots
    from .privacy import privacy

    data = ctx.data
    details, distances = privacy(data.real, data.synthetic, data.holdout, data.kinds, seed=ctx.seed,
                                 max_rows=ctx.max_rows, return_distances=True)
    results["dcr_share"] = details.get("dcr_share")
    results["exact_copy_rate"] = details.get("exact_copy_rate")
    results["membership_inference_auc"] = (details.get("membership_inference") or {}).get("auc")
    results["privacy"] = details
    if ctx.plots:
        _add_figure(ctx, "dcr", plots.dcr_histogram(distances.get("synthetic_to_train"), distances.get("holdout_to_train")))


def _highorder(ctx: _Context, results: dict) -> None:
    from .highorder import highorder

    data = ctx.data
    details = highorder(data.real, data.synthetic, data.kinds, seed=ctx.seed, max_rows=min(ctx.max_rows, 10_000))
    results["alpha_precision"] = details["alpha_precision"]
    results["beta_recall"] = details["beta_recall"]
    results["highorder"] = details


def _texts(ctx: _Context) -> dict[str, tuple[list[str], list[str]]]:
    """What the text metrics look at, as (real, synthetic) texts: each text column, and whole
    records as JSON lines (built once, shared by the diversity, complexity and embedding sections)."""
    if "texts" not in ctx.cache:
        data = ctx.data
        texts = {}
        for name in data.columns("text"):
            texts[name] = ([v for v in data.real[name] if v is not None], [v for v in data.synthetic[name] if v is not None])
        texts["<record>"] = (
            [json.dumps(compact_record(r), ensure_ascii=False, default=str) for r in data.real_records],
            [json.dumps(compact_record(r), ensure_ascii=False, default=str) for r in data.synthetic_records],
        )
        ctx.cache["texts"] = texts
    return ctx.cache["texts"]


def _diversity(ctx: _Context, results: dict) -> None:
    from .diversity import text_diversity

    results["diversity"] = {
        name: text_diversity(synthetic, reference=real, seed=ctx.seed)
        for name, (real, synthetic) in _texts(ctx).items()
        if synthetic
    }


def _complexity(ctx: _Context, results: dict) -> None:
    from .complexity import code_complexity, looks_like_code, record_complexity, text_complexity

    data = ctx.data
    section: dict[str, Any] = {"<record>": {"synthetic": record_complexity([compact_record(r) for r in data.synthetic_records]),
                                            "real": record_complexity([compact_record(r) for r in data.real_records])}}
    texts = _texts(ctx)
    for name in data.columns("text"):
        real, synthetic = texts[name]
        measure = code_complexity if looks_like_code(real) else text_complexity
        section[name] = {"synthetic": measure(synthetic), "real": measure(real), "measure": measure.__name__}
    results["complexity"] = section


def _embeddings(ctx: _Context, results: dict) -> None:
    from .embeddings import SentenceEncoder, embedding_metrics

    if ctx.encoder is None:
        raise EvaluationError("no sentence encoder given (encoder=<Hub id or local path>)")
    encoder = SentenceEncoder(ctx.encoder)
    texts = _texts(ctx)
    name = ctx.data.columns("text")[0] if ctx.data.columns("text") else "<record>"
    real, synthetic = texts[name]
    limit = min(ctx.max_rows, 5_000)
    rng = np.random.default_rng(ctx.seed)
    real = [real[i] for i in sorted(rng.permutation(len(real))[:limit])]
    synthetic = [synthetic[i] for i in sorted(rng.permutation(len(synthetic))[:limit])]
    results["embeddings"] = {"encoder": ctx.encoder, "column": name,
                             **embedding_metrics(encoder.encode(real), encoder.encode(synthetic), seed=ctx.seed)}


def _add_figure(ctx: _Context, name: str, png: bytes | None) -> None:
    if png is not None:
        ctx.figures[name] = png


_RUNNERS: dict[str, Callable[[_Context, dict], None]] = {
    "fidelity": _fidelity,
    "detection": _detection,
    "utility": _utility,
    "privacy": _privacy,
    "highorder": _highorder,
    "diversity": _diversity,
    "complexity": _complexity,
    "embeddings": _embeddings,
}


def _json_safe(value: Any) -> Any:
    """NaN / inf become None and numpy scalars plain Python, so report.json is strict JSON."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    return value
