"""Synthetic datasets and the Hub, through the real huggingface_hub and datasets clients and the local
Hub-compatible server (tests/hub_server.py): load_dataset of a Hub generator id (with revisions),
push_synthetic_dataset then a plain datasets.load_dataset, and the push-dataset command."""

from __future__ import annotations

import datasets
import pytest
from huggingface_hub import DatasetCard, HfApi

import hf_synth
from hf_synth import LMGenerator, load_demo_dataset
from hf_synth.cli import main
from hf_synth.errors import GeneratorLoadError, HFSynthError

REPO = "tester/adult-gen"
COLUMNS = ["age", "sex", "income"]


def fit(seed: int) -> LMGenerator:
    data = load_demo_dataset().select(range(60)).select_columns(COLUMNS)
    return LMGenerator(n_layer=1, n_embd=32, n_head=2, epochs=1, batch_size=32, seed=seed).fit(data, progress=False)


@pytest.fixture(scope="module")
def generators() -> tuple[LMGenerator, LMGenerator]:
    return fit(0), fit(1)


def expected(generator, num_rows: int, seed: int) -> list[dict]:
    """What load_dataset gives for a train split: the bounded stream holds the same rows."""
    return list(generator.as_iterable_dataset(num_rows, seed=seed, batch_size=16))


def test_load_dataset_of_a_hub_generator_follows_revisions(hub, generators, tmp_path):
    first, second = generators
    api = HfApi(token=hub.token)
    first.push_to_hub(REPO, token=hub.token)
    first_sha = api.repo_info(REPO).sha
    cache = str(tmp_path / "cache")
    config = dict(num_rows=30, seed=4, batch_size=16, split="train", cache_dir=cache)
    assert hf_synth.load_dataset(REPO, **config).to_list() == expected(first, 30, 4)

    second.push_to_hub(REPO, token=hub.token)
    assert expected(first, 30, 4) != expected(second, 30, 4)
    # "main" moved: the same call and cache directory give the new generator's rows, never stale ones
    assert hf_synth.load_dataset(REPO, **config).to_list() == expected(second, 30, 4)
    assert hf_synth.load_dataset(REPO, revision=first_sha, **config).to_list() == expected(first, 30, 4)
    theirs = datasets.load_dataset("hf_synth", "synthetic", generator=REPO, revision=first_sha, num_rows=30, seed=4,
                                   batch_size=16, split="train", cache_dir=cache)
    assert theirs.to_list() == expected(first, 30, 4)
    streamed = hf_synth.load_dataset(REPO, revision=first_sha, streaming=True, **{**config, "cache_dir": None})
    assert list(streamed) == expected(first, 30, 4)


def test_load_dataset_of_a_missing_or_private_hub_generator(hub, generators):
    with pytest.raises(GeneratorLoadError, match="no Hub repo 'tester/nothing'"):
        hf_synth.load_dataset("tester/nothing", num_rows=3)
    generators[0].push_to_hub("tester/private-gen", private=True, token=hub.token)
    with pytest.raises(GeneratorLoadError, match="no access"):
        hf_synth.load_dataset("tester/private-gen", num_rows=3)
    with pytest.raises(GeneratorLoadError, match="401"):
        hf_synth.load_dataset("tester/private-gen", num_rows=3, token="hf_wrong")
    assert hf_synth.load_dataset("tester/private-gen", num_rows=3, token=hub.token, split="train").num_rows == 3
    with pytest.raises(GeneratorLoadError, match="has no revision"):
        hf_synth.load_dataset("tester/private-gen", num_rows=3, token=hub.token, revision="v9")


def test_push_synthetic_dataset_loads_with_plain_datasets(hub, generators):
    generator = generators[0]
    generator.push_to_hub(REPO, token=hub.token)
    generator_sha = HfApi().repo_info(REPO).sha
    real = load_demo_dataset().select(range(60)).select_columns(COLUMNS)
    generator.evaluate(real, seed=0, metrics=["fidelity"], progress=False)
    try:
        generator.push_synthetic_dataset("tester/synthetic-adult", num_rows={"train": 40, "test": 12}, seed=2,
                                         batch_size=16, token=hub.token)
    finally:
        generator.evaluation = None
    loaded = datasets.load_dataset("tester/synthetic-adult")
    assert set(loaded) == {"train", "test"}
    again = hf_synth.load_dataset(REPO, num_rows={"train": 40, "test": 12}, seed=2, batch_size=16)
    for split in ("train", "test"):
        assert loaded[split].features == generator.schema.features
        assert loaded[split].to_list() == again[split].to_list()

    card = DatasetCard.load("tester/synthetic-adult")
    assert {"hf_synth", "synthetic"} <= set(card.data.tags)
    assert card.data.configs  # datasets' metadata was added to our card
    assert f"`{REPO}`" in card.text and f"revision `{generator_sha}`" in card.text
    assert "`train` 40 rows, `test` 12 rows (52 in all)" in card.text and "Seed: `2`" in card.text
    assert "| column shape error |" in card.text
    files = set(HfApi().list_repo_files("tester/synthetic-adult", repo_type="dataset"))
    assert "evaluation/report.json" in files


def test_push_synthetic_dataset_bad_input_and_credentials(hub, generators):
    generator = generators[0]
    with pytest.raises(HFSynthError, match="positive integer"):
        generator.push_synthetic_dataset("tester/x", num_rows={"train": -1}, token=hub.token)
    with pytest.raises(HFSynthError, match="unknown column"):
        generator.push_synthetic_dataset("tester/x", num_rows=5, conditions={"nope": 1}, token=hub.token)
    with pytest.raises(HFSynthError, match=r"^cannot push to 'tester/x': the Hub rejected the credentials"):
        generator.push_synthetic_dataset("tester/x", num_rows=5, token="hf_wrong")
    assert not HfApi(token=hub.token).repo_exists("tester/x", repo_type="dataset")


def test_push_dataset_command(hub, generators, tmp_path, capsys, monkeypatch):
    generators[1].save_pretrained(str(tmp_path / "gen"))
    monkeypatch.setenv("HF_TOKEN", hub.token)
    assert main(["push-dataset", str(tmp_path / "gen"), "tester/cli-synthetic", "--rows", "train=20",
                 "--rows", "test=5", "--seed", "1", "--condition", "sex=Female"]) == 0
    assert "tester/cli-synthetic" in capsys.readouterr().out
    loaded = datasets.load_dataset("tester/cli-synthetic")
    assert {name: split.num_rows for name, split in loaded.items()} == {"train": 20, "test": 5}
    assert set(loaded["train"]["sex"]) == {"Female"}
    card = DatasetCard.load("tester/cli-synthetic").text
    assert "a local generator, not published" in card and "every row has `sex` = `Female`" in card
    assert main(["push-dataset", str(tmp_path / "gen"), "tester/cli-synthetic", "--rows", "ten"]) == 2
