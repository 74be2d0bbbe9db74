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
