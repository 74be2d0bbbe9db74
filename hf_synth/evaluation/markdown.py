"""The markdown view of a :class:`~hf_synth.evaluation.report.Report`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .report import Report

FIGURE_TITLES = {
    "marginals": "Real vs synthetic marginals",
    "pair_trends": "Column pair trend errors",
    "dcr": "Distance to the closest training record",
}
WORST_PAIRS = 10


def render_markdown(report: "Report", figure_dir: str = ".") -> str:
    r = report.results
    rows = r.get("rows", {})
    out = ["# Synthetic data evaluation", ""]
    holdout = f", {rows['holdout']:,} holdout rows" if rows.get("holdout") else ""
    out.append(f"{rows.get('synthetic', 0):,} synthetic rows ({rows.get('synthetic_valid', 0):,} valid) against "
               f"{rows.get('real', 0):,} real rows{holdout}; hf_synth {r.get('hf_synth_version')}, seed {r.get('settings', {}).get('seed')}.")
    out += ["", "| metric | value | ideal |", "|---|---|---|"]
    out += [f"| {label} | {value} | {ideal} |" for label, value, ideal in report.headline()]
    if r.get("notes"):
        out += ["", "Notes:", ""] + [f"- {note}" for note in r["notes"]]
    if r.get("skipped"):
        out += ["", "Not measured:", ""] + [f"- **{name}**: {why}" for name, why in r["skipped"].items()]
    for name in r.get("figures", []):
        out += ["", f"## {FIGURE_TITLES.get(name, name)}", "", f"![{name}]({figure_dir.rstrip('/')}/{name}.png)"]
    out += _validity(r)
    out += _shapes(r)
    out += _trends(r)
    out += _utility(r)
    out += _privacy(r)
    out += _side_by_side("Diversity", r.get("diversity"))
    out += _side_by_side("Complexity", r.get("complexity"))
    if r.get("embeddings"):
        out += ["", "## Embeddings", "", "| metric | value |", "|---|---|"]
        out += [f"| {k} | {_cell(v)} |" for k, v in _flatten(r["embeddings"]).items()]
    return "\n".join(out) + "\n"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "-"
    return str(value)


def _validity(r: dict) -> list[str]:
    details = r.get("validity_details") or {}
    if not details.get("reasons"):
        return []
    out = ["", "## Invalid rows", "", "| where | violations |", "|---|---|"]
    out += [f"| `{where}` | {count} |" for where, count in details["reasons"].items()]
    for example in details.get("examples", []):
        out.append(f"- row {example['row']}: {example['problem']}")
    return out


def _shapes(r: dict) -> list[str]:
    shapes = r.get("column_shapes")
    if not shapes:
        return []
    out = ["", "## Column shapes", "", "| column | metric | score |", "|---|---|---|"]
    out += [f"| `{name}` | {c.get('metric')} | {_cell(c.get('score'))} |" for name, c in shapes.get("columns", {}).items()]
    return out


def _trends(r: dict) -> list[str]:
    trends = r.get("column_pair_trends")
    if not trends:
        return []
    scored = [p for p in trends.get("pairs", {}).values() if p.get("score") is not None]
    scored.sort(key=lambda p: p["score"])
    out = ["", f"## Column pair trends ({len(scored)} pairs; the {min(WORST_PAIRS, len(scored))} worst)", "",
           "| columns | metric | score |", "|---|---|---|"]
    out += [f"| `{p['columns'][0]}` / `{p['columns'][1]}` | {p.get('metric')} | {_cell(p['score'])} |" for p in scored[:WORST_PAIRS]]
    return out


def _utility(r: dict) -> list[str]:
    u = r.get("utility")
    if not u:
        return []
    out = ["", f"## Utility (target `{u.get('target')}`, {u.get('task')}, {u.get('backend')})", "",
           "| metric | trained on synthetic | trained on real | gap |", "|---|---|---|---|"]
    for metric, value in (u.get("synthetic") or {}).items():
        out.append(f"| {metric} | {_cell(value)} | {_cell((u.get('real') or {}).get(metric))} | {_cell((u.get('gap') or {}).get(metric))} |")
    out += [f"- {note}" for note in u.get("notes", [])]
    return out


def _privacy(r: dict) -> list[str]:
    p = r.get("privacy")
    if not p:
        return []
    out = ["", "## Privacy", "", "| metric | value |", "|---|---|"]
    out += [f"| {k} | {_cell(v)} |" for k, v in _flatten(p).items()]
    return out


def _side_by_side(title: str, section: dict | None) -> list[str]:
    if not section:
        return []
    out = ["", f"## {title}"]
    for name, parts in section.items():
        flat_synthetic = _flatten(parts.get("synthetic", parts) if isinstance(parts, dict) else {})
        flat_real = _flatten(parts.get("real", {})) if isinstance(parts, dict) else {}
        label = "whole records (JSON)" if name == "<record>" else f"`{name}`"
        out += ["", f"### {label}", "", "| metric | synthetic | real |", "|---|---|---|"]
        out += [f"| {k} | {_cell(v)} | {_cell(flat_real.get(k))} |" for k, v in flat_synthetic.items()]
    return out


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as ``a.b`` keys; lists (curves, groups) are left out of the tables."""
    flat: dict[str, Any] = {}
    if not isinstance(value, dict):
        return flat
    for key, sub in value.items():
        name = f"{prefix}{key}"
        if key == "real" and prefix == "":
            continue
        if isinstance(sub, dict):
            flat.update(_flatten(sub, name + "."))
        elif not isinstance(sub, list):
            flat[name] = sub
    return flat
