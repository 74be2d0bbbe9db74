"""evaluate() end to end: the report's keys, files, known-answer cases and bad input."""

import json

import numpy as np
import pandas as pd
import pytest

from hf_synth import evaluate, load_demo_dataset
from hf_synth.evaluation import EvaluationError, Report

FAST = ["fidelity", "detection", "utility", "privacy", "diversity", "complexity"]


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    return load_demo_dataset().to_pandas()


@pytest.fixture(scope="module")
def splits(adult):
    return adult.iloc[:600].reset_index(drop=True), adult.iloc[600:1200].reset_index(drop=True)


def _independent_columns(frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({c: frame[c].to_numpy()[rng.permutation(len(frame))] for c in frame.columns})


@pytest.fixture(scope="module")
def copy_report(splits) -> Report:
    train, holdout = splits
    return evaluate(train, train, holdout=holdout, target="income", progress=False)


def test_report_has_the_documented_keys(copy_report):
    r = copy_report.to_dict()
    for key in ("validity", "shape_error", "trend_error", "c2st", "utility", "dcr_share", "exact_copy_rate",
                "membership_inference_auc", "alpha_precision", "beta_recall", "skipped", "notes", "rows", "columns"):
        assert key in r, key
    assert set(r["c2st"]) == {"logistic", "gradient_boosting"}
    assert {"synthetic", "real", "gap"} <= set(r["utility"])
    assert r["rows"] == {"real": 600, "synthetic": 600, "synthetic_valid": 600, "holdout": 600}
    assert r["skipped"] == {"embeddings": "no sentence encoder given (encoder=<Hub id or local path>)"}
    json.loads(copy_report.to_json())  # strict JSON: no NaN


def test_a_copy_of_the_training_data_scores_perfect_fidelity_and_no_privacy(copy_report):
    r = copy_report.to_dict()
    assert r["validity"] == 1.0
    assert r["shape_error"] == pytest.approx(0.0, abs=1e-9)
    assert r["trend_error"] == pytest.approx(0.0, abs=1e-9)
    assert r["exact_copy_rate"] == 1.0
    assert r["dcr_share"] == 1.0
    assert r["utility"]["gap"][r["utility"]["metric"]] == pytest.approx(0.0, abs=1e-9)
    assert r["c2st"]["logistic"] > 0.8


def test_independent_columns_keep_shapes_but_lose_trends(splits):
    train, holdout = splits
    report = evaluate(train, _independent_columns(train), holdout=holdout, target="income", metrics=FAST, progress=False)
    assert report["shape_error"] == pytest.approx(0.0, abs=1e-9)
    assert report["trend_error"] > 5.0
    assert report["c2st"]["gradient_boosting"] < 0.5  # a tree model sees the broken dependencies
    assert report["exact_copy_rate"] < 0.05
    assert report["utility"]["gap"]["auc"] > 0.1  # the label no longer depends on the features


def test_figures_markdown_and_round_trip(copy_report, tmp_path):
    assert set(copy_report.figures) == {"marginals", "pair_trends", "dcr"}
    assert all(png.startswith(b"\x89PNG") for png in copy_report.figures.values())
    out = copy_report.save(str(tmp_path / "report"))
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "![marginals](./marginals.png)" in markdown
    assert "| validity | 100.00 % | 100 % |" in markdown
    loaded = Report.load(out)
    assert loaded.to_dict() == copy_report.to_dict()
    assert loaded.figures == copy_report.figures
    with pytest.raises(Exception, match="exists"):
        copy_report.save(out)


def test_invalid_rows_are_flagged_and_left_out(splits):
    train, _ = splits
    synthetic = train.copy()
    synthetic.loc[:99, "workclass"] = "Astronaut"
    report = evaluate(train, synthetic, metrics=["fidelity"], progress=False)
    assert report["validity"] == pytest.approx(500 / 600)
    assert report["validity_details"]["reasons"] == {"workclass": 100}
    assert report["rows"]["synthetic_valid"] == 500
    assert any("500 valid rows" in note for note in report["notes"])
    assert "Astronaut" not in str(report["column_shapes"])


def test_all_invalid_rows_give_a_report_with_every_section_skipped(splits):
    train, _ = splits
    report = evaluate(train, train.assign(sex="?!"), target="income", progress=False)
    assert report["validity"] == 0.0
    assert set(report["skipped"].values()) == {"no valid synthetic row"}


def test_missing_target_is_an_error_and_constant_target_is_flagged(splits):
    train, holdout = splits
    with pytest.raises(EvaluationError, match="not a column"):
        evaluate(train, train, target="salary", progress=False)
    constant = train.assign(income="<=50K")
    report = evaluate(constant, constant, holdout=holdout.assign(income="<=50K"), target="income", metrics=["utility"], progress=False)
    assert "nothing to predict" in report["skipped"]["utility"]


def test_without_holdout_privacy_and_utility_say_what_they_did(splits):
    train, _ = splits
    report = evaluate(train, _independent_columns(train), target="income", metrics=["utility", "privacy"], progress=False)
    assert report["dcr_share"] is None
    assert report["exact_copy_rate"] is not None
    assert any("no holdout" in note for note in report["notes"])
    assert report["utility"]["real"]["auc"] > 0.7


def test_unknown_metric_is_an_error(splits):
    with pytest.raises(EvaluationError, match="unknown metrics"):
        evaluate(splits[0], splits[0], metrics=["beauty"], progress=False)


def test_same_seed_same_report(splits):
    train, holdout = splits
    synthetic = _independent_columns(train, seed=3)
    a = evaluate(train, synthetic, holdout=holdout, target="income", metrics=FAST, plots=False, progress=False).to_dict()
    b = evaluate(train, synthetic, holdout=holdout, target="income", metrics=FAST, plots=False, progress=False).to_dict()
    for r in (a, b):
        r.pop("created"), r.pop("timings")
    assert a == b


def test_text_records_get_diversity_and_complexity():
    real = [{"name": f"tool_{i}", "description": f"Look up item {i} in the catalogue and report its price in {c}",
             "parameters": {"type": "object", "properties": {"id": {"type": "integer"}}}}
            for i, c in zip(range(60), ["EUR", "USD", "GBP"] * 20)]
    constant = [dict(real[0]) for _ in range(60)]
    report = evaluate(real, constant, metrics=["diversity", "complexity"], progress=False)
    diversity = report["diversity"]
    assert {"description", "<record>"} <= set(diversity)
    assert diversity["<record>"]["exact_duplicate_rate"] > 0.9
    assert diversity["<record>"]["real"]["exact_duplicate_rate"] == 0.0
    assert report["complexity"]["<record>"]["synthetic"]["depth"]["max"] >= 3
