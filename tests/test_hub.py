"""push_to_hub through the real huggingface_hub client, with only its HTTP calls replaced.

The Hub itself cannot run here; these tests stub the two HfApi calls that reach the network and
check what would be uploaded. (Round trips against a local Hub-compatible server live with the
datasets/Hub integration tests.)
"""

from __future__ import annotations

import os
import shutil

import pytest
from huggingface_hub import HfApi

from hf_synth import AutoGenerator, LMGenerator, load_demo_dataset
from hf_synth.errors import GeneratorLoadError


@pytest.fixture(scope="module")
def generator() -> LMGenerator:
    data = load_demo_dataset().select(range(60)).select_columns(["age", "sex", "income"])
    return LMGenerator(n_layer=1, n_embd=32, n_head=2, epochs=1, batch_size=32).fit(data, progress=False)


def test_push_to_hub_uploads_a_loadable_generator(generator, tmp_path, monkeypatch):
    calls = {}

    def create_repo(self, repo_id, **kwargs):
        calls["create"] = (repo_id, kwargs)

    def upload_folder(self, *, folder_path, repo_id, **kwargs):
        calls["upload"] = (repo_id, kwargs)
        shutil.copytree(folder_path, tmp_path / "uploaded")
        return "https://hub.example/commit/1"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    url = generator.push_to_hub("me/adult", private=True, token="hf_x")
    assert url == "https://hub.example/commit/1"
    assert calls["create"] == ("me/adult", {"private": True, "exist_ok": True, "repo_type": "model"})
    assert calls["upload"][1]["repo_type"] == "model"
    uploaded = tmp_path / "uploaded"
    assert {"generator_config.json", "schema.json", "README.md", "model", "tokenizer"} <= set(os.listdir(uploaded))
    loaded = AutoGenerator.from_pretrained(str(uploaded))
    assert loaded.sample(5, seed=0, progress=False).to_list() == generator.sample(5, seed=0, progress=False).to_list()


def test_offline_hub_id_gives_clear_error():
    with pytest.raises(GeneratorLoadError, match="cannot be reached|no Hub repo"):
        AutoGenerator.from_pretrained("someone/not-cached-generator")


def test_evaluated_generator_pushes_its_report_and_card(generator, tmp_path, monkeypatch):
    uploaded = tmp_path / "uploaded"
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kwargs: None)
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, *, folder_path, repo_id, **kwargs: shutil.copytree(folder_path, uploaded))
    real = load_demo_dataset().select(range(60)).select_columns(["age", "sex", "income"])
    holdout = load_demo_dataset().select(range(60, 120)).select_columns(["age", "sex", "income"])
    report = generator.evaluate(real, holdout=holdout, target="income", seed=0,
                                metrics=["fidelity", "utility", "privacy"], progress=False)
    assert report["rows"]["synthetic"] == 60
    try:
        generator.push_to_hub("me/adult")
    finally:
        generator.evaluation = None
    files = set(os.listdir(uploaded / "evaluation"))
    assert {"report.json", "report.md", "marginals.png", "pair_trends.png", "dcr.png"} <= files
    card = (uploaded / "README.md").read_text()
    assert "## Evaluation" in card and "![Distance to the closest training record](evaluation/dcr.png)" in card
    assert f"| column shape error | {report['shape_error']:.2f} % | 0 % |" in card
    loaded = AutoGenerator.from_pretrained(str(uploaded))
    assert loaded.evaluation.to_dict() == report.to_dict()
    assert loaded.evaluation.figures == report.figures
