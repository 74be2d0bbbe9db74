"""The hf-synth command line, run in-process through its entry point."""

from __future__ import annotations

import json
import os

import datasets
import pytest

from hf_synth.cli import main
from hf_synth.data import demo_csv_path

TINY = ["--set", "n_layer=1", "n_embd=32", "n_head=2", "batch_size=32", "sample_batch_size=64"]


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("data") / "adult.csv")
    datasets.load_dataset("csv", data_files=demo_csv_path(), split="train").select(range(150)).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def generator_dir(small_csv, tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("gen") / "adult-gen")
    code = main(["fit", "--dataset", small_csv, "--columns", "age,sex,education,income", "--epochs", "2",
                 "--no-progress", "--out", out, *TINY])
    assert code == 0
    return out


def test_fit_writes_a_generator(generator_dir, capsys):
    assert os.path.isfile(os.path.join(generator_dir, "generator_config.json"))
    assert not os.path.exists(generator_dir + ".checkpoints")


def test_fit_with_target_columns(small_csv, tmp_path):
    out = str(tmp_path / "lm")
    assert main(["fit", "--dataset", small_csv, "--columns", "age,sex,income", "--epochs", "1", "--target-columns",
                 "income", "--no-progress", "--out", out, *TINY]) == 0
    assert json.load(open(os.path.join(out, "generator_config.json")))["config"]["target_columns"] == ["income"]
    ordered = str(tmp_path / "ordered")
    assert main(["fit", "--dataset", small_csv, "--columns", "age,sex,income", "--epochs", "1", "--column-order",
                 "sex,income,age", "--no-progress", "--out", ordered, *TINY]) == 0
    assert json.load(open(os.path.join(ordered, "generator_config.json")))["config"]["column_order"] == ["sex", "income", "age"]
    assert list(json.load(open(os.path.join(ordered, "schema.json")))["fields"]) == ["sex", "income", "age"]
    assert main(["fit", "--dataset", small_csv, "--columns", "age,sex", "--target-columns", "income",
                 "--no-progress", "--out", str(tmp_path / "bad"), *TINY]) != 0


def test_fit_difflm_with_its_knobs(small_csv, tmp_path, capsys):
    out = str(tmp_path / "difflm")
    code = main(["fit", "--method", "difflm", "--dataset", small_csv, "--columns", "age,sex,income", "--epochs", "2",
                 "--latent-dim", "6", "--virtual-tokens", "3", "--prefix-length", "1", "--beta-max", "0.05",
                 "--beta-min", "0.001", "--diffusion-steps", "40", "--sampling-steps", "6", "--calibration", "token", "--calibration-rounds", "2", "--target-columns", "income",
                 "--column-order", "dependence",
                 "--no-progress",
                 "--out", out, "--set", "encoder_layers=1", "encoder_hidden=32", "encoder_heads=2",
                 "diffusion_hidden=32", 'decoder_options={"n_layer": 1, "n_embd": 32, "n_head": 2, "epochs": 1}'])
    assert code == 0 and "VAE" in capsys.readouterr().out
    saved = json.load(open(os.path.join(out, "generator_config.json")))
    assert saved["generator_class"] == "DiffLMGenerator"
    assert {k: saved["config"][k] for k in ("latent_dim", "num_virtual_tokens", "prefix_length", "beta_max",
                                            "beta_min", "diffusion_steps", "sampling_steps", "vae_epochs", "calibration",
                                            "calibration_rounds", "target_columns", "column_order")} == \
        {"latent_dim": 6, "num_virtual_tokens": 3, "prefix_length": 1, "beta_max": 0.05, "beta_min": 0.001,
         "diffusion_steps": 40, "sampling_steps": 6, "vae_epochs": 2, "calibration": "token", "calibration_rounds": 2, "target_columns": ["income"],
         "column_order": "dependence"}
    assert saved["training"]["calibration"]["kind"] == "token"
    rows = str(tmp_path / "rows.csv")
    assert main(["sample", out, "-n", "5", "--seed", "0", "--no-progress", "--out", rows]) == 0
    assert main(["fit", "--dataset", small_csv, "--latent-dim", "6", "--out", str(tmp_path / "x")]) == 2
    assert main(["fit", "--method", "difflm", "--dataset", small_csv, "--lora", "--out", str(tmp_path / "y")]) == 2
    assert main(["fit", "--method", "difflm", "--dataset", small_csv, "--latent-dim", "0", "--out", str(tmp_path / "z")]) == 2


def test_sample_with_conditions(generator_dir, tmp_path, capsys):
    out = str(tmp_path / "rows.jsonl")
    code = main(["sample", generator_dir, "-n", "12", "--seed", "3", "--condition", "sex=Female",
                 "--condition", "age=30", "--no-progress", "--out", out])
    assert code == 0
    rows = datasets.load_dataset("json", data_files=out, split="train")
    assert rows.num_rows == 12 and set(rows["sex"]) == {"Female"} and set(rows["age"]) == {30}
    assert "produced 12" in capsys.readouterr().out


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err  # one line, no traceback
    return err


def test_user_errors_exit_2(generator_dir, small_csv, tmp_path, capsys):
    existing = tmp_path / "exists.csv"
    existing.write_text("x\n")
    assert main(["sample", generator_dir, "-n", "5", "--out", str(existing)]) == 2
    assert "exists" in _error(capsys)
    assert main(["sample", generator_dir, "-n", "0", "--out", str(tmp_path / "a.csv")]) == 2
    assert "positive" in _error(capsys)
    assert main(["sample", generator_dir, "-n", "3", "--condition", "colour=red", "--out", str(tmp_path / "b.csv")]) == 2
    assert "unknown column 'colour'" in _error(capsys)
    assert main(["sample", str(tmp_path / "missing" / "dir"), "-n", "3", "--out", str(tmp_path / "c.csv")]) == 2
    assert "no generator directory" in _error(capsys)
    assert main(["fit", "--dataset", small_csv, "--out", generator_dir]) == 2
    assert "--overwrite" in _error(capsys)
    assert main(["fit", "--dataset", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "g")]) == 2
    assert "no such file" in _error(capsys)
    assert main(["fit", "--dataset", small_csv, "--set", "epochz=3", "--out", str(tmp_path / "g")]) == 2
    assert "epochz" in _error(capsys)
    assert main(["fit", "--dataset", small_csv, "--columns", "age,salary", "--out", str(tmp_path / "g")]) == 2
    assert "salary" in _error(capsys)
    assert not os.path.exists(tmp_path / "g")


def test_bad_output_format_fails_before_loading(generator_dir, tmp_path, capsys):
    assert main(["sample", generator_dir, "-n", "3", "--out", str(tmp_path / "rows.xlsx")]) == 2
    assert "unsupported output format" in _error(capsys)


def test_demo_runs_offline(tmp_path, capsys):
    from hf_synth.demo import run_demo

    out = str(tmp_path / "demo")
    run_demo(out, rows=3, epochs=1, progress=False)
    printed = capsys.readouterr().out
    assert "3 synthetic rows" in printed and "sex=Female" in printed and os.path.abspath(out) in printed
    assert os.path.isfile(os.path.join(out, "model", "model.safetensors"))
    assert main(["demo", "--out", out]) == 2  # refuses to overwrite


# ---------------------------------------------------------------------------- evaluate and curate


@pytest.fixture(scope="module")
def real_and_synthetic(small_csv, generator_dir, tmp_path_factory) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp("eval")
    real = str(folder / "real.csv")
    datasets.load_dataset("csv", data_files=small_csv, split="train").select_columns(["age", "sex", "education", "income"]).to_csv(real, index=False)
    synthetic = str(folder / "synthetic.csv")
    assert main(["sample", generator_dir, "-n", "80", "--seed", "0", "--no-progress", "--out", synthetic]) == 0
    return real, synthetic


def test_evaluate_writes_report_and_attaches_it(real_and_synthetic, generator_dir, tmp_path, capsys):
    real, synthetic = real_and_synthetic
    out = str(tmp_path / "report")
    code = main(["evaluate", "--real", real, "--synthetic", synthetic, "--target", "income", "--no-progress",
                 "--metrics", "fidelity,utility,privacy", "--out", out, "--attach-to", generator_dir])
    assert code == 0, capsys.readouterr().err
    report = json.loads(open(os.path.join(out, "report.json")).read())
    assert report["validity"] == 1.0
    assert 0.0 <= report["shape_error"] <= 100.0
    assert set(report["utility"]) >= {"synthetic", "real", "gap"}
    assert sorted(f for f in os.listdir(out) if f.endswith(".png")) == ["dcr.png", "marginals.png", "pair_trends.png"]
    card = open(os.path.join(generator_dir, "README.md")).read()
    assert "| validity | 100.00 % | 100 % |" in card
    assert "![Real vs synthetic marginals](evaluation/marginals.png)" in card
    assert os.path.isfile(os.path.join(generator_dir, "evaluation", "marginals.png"))
    # an existing --out needs --overwrite
    assert main(["evaluate", "--real", real, "--synthetic", synthetic, "--out", out]) == 2
    assert "exists" in _error(capsys)


def test_evaluate_bad_input_exits_2(real_and_synthetic, tmp_path, capsys):
    real, _ = real_and_synthetic
    other = tmp_path / "other.csv"
    other.write_text("colour,size\nred,3\n")
    assert main(["evaluate", "--real", real, "--synthetic", str(other), "--out", str(tmp_path / "r")]) == 2
    assert "share no column" in _error(capsys)
    assert main(["evaluate", "--real", real, "--synthetic", real, "--target", "salary", "--out", str(tmp_path / "r")]) == 2
    assert "salary" in _error(capsys)
    assert not os.path.exists(tmp_path / "r")


def test_curate_removes_copies_of_training_rows(real_and_synthetic, tmp_path, capsys):
    real, synthetic = real_and_synthetic
    mixed = str(tmp_path / "mixed.csv")
    rows = datasets.load_dataset("csv", data_files=[synthetic, real], split="train")
    rows.to_csv(mixed, index=False)
    out = str(tmp_path / "curated.csv")
    log = str(tmp_path / "curation.json")
    code = main(["curate", "--synthetic", mixed, "--train", real, "--drop-invalid", "--drop-duplicates",
                 "--min", "age=20", "--out", out, "--curation-report", log])
    assert code == 0, capsys.readouterr().err
    curated = datasets.load_dataset("csv", data_files=out, split="train")
    real_rows = {tuple(r.values()) for r in datasets.load_dataset("csv", data_files=real, split="train").to_list()}
    assert not any(tuple(r.values()) in real_rows for r in curated.to_list())
    assert min(curated["age"]) >= 20
    summary = json.loads(open(log).read())
    assert summary["output_rows"] == curated.num_rows
    assert summary["input_rows"] == rows.num_rows
    assert "kept" in capsys.readouterr().out
    assert main(["curate", "--synthetic", mixed, "--out", str(tmp_path / "x.csv")]) == 2
    assert "no curation step" in _error(capsys)


def test_sample_with_curation_flags(real_and_synthetic, generator_dir, tmp_path, capsys):
    real, _ = real_and_synthetic
    out = str(tmp_path / "curated.jsonl")
    log = str(tmp_path / "log.json")
    code = main(["sample", generator_dir, "-n", "30", "--seed", "1", "--no-progress", "--train", real,
                 "--drop-duplicates", "--min-distance", "0", "--max", "age=60", "--out", out, "--curation-report", log])
    assert code == 0, capsys.readouterr().err
    rows = datasets.load_dataset("json", data_files=out, split="train")
    assert rows.num_rows == 30 and max(rows["age"]) <= 60
    real_rows = {(r["age"], r["sex"], r["education"], r["income"]) for r in datasets.load_dataset("csv", data_files=real, split="train").to_list()}
    assert not any((r["age"], r["sex"], r["education"], r["income"]) in real_rows for r in rows.to_list())
    summary = json.loads(open(log).read())
    assert summary["output_rows"] == 30 and [s["step"] for s in summary["steps"]] == ["DropDuplicates", "DropCloseToTraining", "Threshold"]
    assert "curation: kept 30" in capsys.readouterr().out
    assert main(["sample", generator_dir, "-n", "3", "--min-distance", "0.1", "--out", str(tmp_path / "x.csv")]) == 2
    assert "need --train" in _error(capsys)
