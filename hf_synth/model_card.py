"""The model card (README.md) of a saved generator, rendered from ``model_cards/``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .hub import render_model_card
from .schema import readable_path

if TYPE_CHECKING:
    from .generators.base import BaseGenerator

METHOD_DESCRIPTIONS = {
    "lm": "a causal language model over records written as JSON, sampled with a schema constraint",
    "difflm": "DiffLM: a VAE encodes each record into a latent, which steers a frozen causal language model "
              "through a soft prompt; a latent diffusion model samples new latents, and decoding is constrained "
              "by the schema",
}


def _details(fs) -> str:
    if fs.kind in ("categorical", "bool"):
        shown = ", ".join(f"`{c}`" for c in fs.categories[:8])
        more = f" (+{len(fs.categories) - 8} more)" if len(fs.categories) > 8 else ""
        return f"{len(fs.categories)} values: {shown}{more}"
    if fs.kind == "numeric":
        return f"{fs.minimum} .. {fs.maximum}, {fs.decimals} decimals" + (" (scientific)" if fs.scientific else "")
    if fs.kind == "text":
        return f"free text, up to {fs.max_chars} characters"
    if fs.kind == "list":
        return f"list of {fs.item.kind}, up to {fs.max_items} items"
    if fs.kind == "struct":
        return "fields: " + ", ".join(f"`{k}`" for k in fs.fields)
    return "always missing"


def generator_card(generator: "BaseGenerator") -> str:
    schema = generator.schema
    config = generator.config.to_dict()
    training = {"rows": 0, "fingerprint": "", "dataset": None, "validation_rows": 0, **generator.training_info}
    source = getattr(generator, "source", None) or {}
    rows = [
        {"name": readable_path(name), "kind": fs.kind, "dtype": fs.dtype or "-", "details": _details(fs),
         "missing": f"{fs.missing_rate:.1%}"}
        for name, fs in schema.fields.items()
    ]
    dataset = training.get("dataset")
    return render_model_card(
        "generator_card.md",
        title=f"hf_synth {type(generator).__name__}" + (f" for {dataset}" if dataset else ""),
        generator_class=type(generator).__name__,
        method_description=METHOD_DESCRIPTIONS.get(generator.method, generator.method),
        data_kind="tabular" if all(fs.kind not in ("struct", "list", "text") for fs in schema.fields.values()) else "json",
        dataset_id=dataset if dataset and not any(dataset.endswith(s) for s in (".csv", ".jsonl", ".json", ".parquet")) and "/" in dataset and not dataset.startswith(("/", ".")) else None,
        repo_hint=source.get("path_or_repo_id") or "<user>/<generator>",
        num_columns=len(rows),
        schema_rows=rows,
        training=training,
        training_lines=generator.card_training_lines(),
        hyperparameters=[(k, v) for k, v in config.items() if v is not None],
        evaluation_section=evaluation_section(generator.evaluation),
    )


def evaluation_context(report: Any) -> dict[str, Any] | None:
    """What the cards show of an evaluation :class:`~hf_synth.evaluation.Report` (``None``: none)."""
    if report is None:
        return None
    from .evaluation.markdown import FIGURE_TITLES

    return {
        "headline": report.headline(),
        "rows": report.results.get("rows", {}),
        "target": report.get("settings.target"),
        "figures": [(FIGURE_TITLES.get(name, name), f"evaluation/{name}.png") for name in report.figures],
        "notes": report.results.get("notes", []),
        "skipped": sorted(report.results.get("skipped", {}).items()),
    }


def evaluation_section(report: Any) -> str:
    """The evaluation section shared by generator and dataset cards (markdown, no heading)."""
    return render_model_card("evaluation_section.md", evaluation=evaluation_context(report)).rstrip("\n")
