"""A saved generator used as a dataset: hf_synth.load_dataset, the datasets.load_dataset route,
streams, and the Dataset.map-style augmentation."""

from __future__ import annotations

import collections
import logging
import os
import subprocess
import sys
import types

import datasets
import pytest
import torch

import hf_synth
from hf_synth import AutoGenerator, LMGenerator, augment, balance, load_dataset, load_demo_dataset
from hf_synth.datasets_route import RouteError, install
from hf_synth.errors import ConditionError, GeneratorLoadError, HFSynthError

COLUMNS = ["age", "sex", "income", "education"]


def tiny_generator(seed: int = 0) -> LMGenerator:
    data = load_demo_dataset().select(range(120)).select_columns(COLUMNS)
    return LMGenerator(n_layer=1, n_embd=32, n_head=2, epochs=1, batch_size=32, seed=seed).fit(data, progress=False)


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> str:
    directory = str(tmp_path_factory.mktemp("generators") / "adult")
    tiny_generator().save_pretrained(directory)
    return directory


@pytest.fixture()
def cache(tmp_path) -> str:
    return str(tmp_path / "cache")


def rows(dataset) -> list[dict]:
    return list(dataset) if isinstance(dataset, datasets.IterableDataset) else dataset.to_list()


# ---------------------------------------------------------------------------- hf_synth.load_dataset
def test_splits_features_and_determinism(saved, tmp_path):
    config = dict(num_rows={"train": 70, "test": 20}, seed=5, batch_size=32)
    first = load_dataset(saved, "synthetic", cache_dir=str(tmp_path / "a"), **config)
    again = load_dataset(saved, "synthetic", cache_dir=str(tmp_path / "b"), **config)
    assert isinstance(first, datasets.DatasetDict) and set(first) == {"train", "test"}
    assert first["train"].num_rows == 70 and first["test"].num_rows == 20
    schema = AutoGenerator.from_pretrained(saved).schema
    assert first["train"].features == schema.features
    assert first["train"].to_list() == again["train"].to_list()
    assert first["test"].to_list() == again["test"].to_list()
    assert first["train"].to_list()[:20] != first["test"].to_list()  # each split has its own seeds
    other_seed = load_dataset(saved, cache_dir=str(tmp_path / "c"), **{**config, "seed": 6})
    assert other_seed["train"].to_list() != first["train"].to_list()


def test_slicing_streaming_and_num_proc_give_the_same_rows(saved, cache, tmp_path):
    config = dict(num_rows={"train": 70, "test": 10}, seed=1, batch_size=16)
    full = load_dataset(saved, split="train", cache_dir=cache, **config)
    assert load_dataset(saved, split="train[:10]", cache_dir=cache, **config).to_list() == full.to_list()[:10]
    both = load_dataset(saved, split="train+test", cache_dir=cache, **config)
    assert both.num_rows == 80 and both.to_list()[:70] == full.to_list()
    stream = load_dataset(saved, split="train", streaming=True, **config)
    assert isinstance(stream, datasets.IterableDataset)
    assert rows(stream) == full.to_list()
    parallel = load_dataset(saved, split="train", num_proc=2, cache_dir=str(tmp_path / "parallel"), **config)
    assert parallel.to_list() == full.to_list()


def test_one_number_is_a_train_split_and_default_is_the_training_size(saved, cache):
    assert list(load_dataset(saved, num_rows=12, cache_dir=cache)) == ["train"]
    meta_rows = AutoGenerator.from_pretrained(saved).training_info["rows"]
    assert load_dataset(saved, split="train", cache_dir=cache).num_rows == meta_rows


def test_sample_options_reach_the_generator(saved, cache):
    plain = load_dataset(saved, num_rows=30, seed=0, split="train", cache_dir=cache)
    cold = load_dataset(saved, num_rows=30, seed=0, split="train", cache_dir=cache, sample_options={"temperature": 0.3})
    direct = AutoGenerator.from_pretrained(saved).as_iterable_dataset(30, seed=0, temperature=0.3)
    assert cold.to_list() != plain.to_list() and cold.to_list() == rows(direct)


def test_conditions_hold_in_every_row(saved, cache):
    ds = load_dataset(saved, num_rows=40, seed=0, conditions={"sex": "Female", "income": ">50K"},
                      split="train", cache_dir=cache)
    assert set(ds["sex"]) == {"Female"} and set(ds["income"]) == {">50K"}


def test_cache_is_keyed_on_the_generator_files(tmp_path, cache):
    directory = str(tmp_path / "generator")
    tiny_generator(seed=0).save_pretrained(directory)
    before = load_dataset(directory, num_rows=30, seed=0, split="train", cache_dir=cache)
    reused = hf_synth.SyntheticBuilder(generator=directory, num_rows=30, seed=0, cache_dir=cache)
    assert os.path.isdir(reused.cache_dir)  # same generator and config: the cached split is reused
    tiny_generator(seed=1).save_pretrained(directory)  # another generator at the same path
    after = hf_synth.SyntheticBuilder(generator=directory, num_rows=30, seed=0, cache_dir=cache)
    assert after.cache_dir != reused.cache_dir and not os.path.isdir(after.cache_dir)
    assert load_dataset(directory, num_rows=30, seed=0, split="train", cache_dir=cache).to_list() != before.to_list()


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(num_rows=-5), HFSynthError, "positive integer"),
    (dict(num_rows="10"), HFSynthError, "positive integer"),
    (dict(num_rows={"train": 0}), HFSynthError, "positive integer"),
    (dict(num_rows={"bad split!": 3}), HFSynthError, "invalid split name"),
    (dict(num_rows=3, seed="zero"), HFSynthError, "seed"),
    (dict(num_rows=3, batch_size=0), HFSynthError, "batch_size"),
    (dict(num_rows=3, conditions={"colour": "red"}), ConditionError, "unknown column 'colour'"),
    (dict(num_rows=3, conditions={"sex": "Robot"}), ConditionError, "not a known value"),
    (dict(num_rows=3, conditions=[{"sex": "Female"}]), HFSynthError, "dict of column values"),
    (dict(num_rows=3, sample_options={"seed": 1}), HFSynthError, "own argument"),
    (dict(num_rows=3, temperature=0.5), HFSynthError, "unknown arguments"),
    (dict(num_rows=3, sample_options={"temprature": 0.5}), HFSynthError, "unknown sampling options"),
    (dict(num_rows=3, sample_options=0.5), HFSynthError, "must be a dict"),
    (dict(num_rows=3, split="validation"), HFSynthError, "unknown split 'validation'"),
    (dict(num_rows=3, split="train[:2]", streaming=True), HFSynthError, "cannot be sliced"),
    (dict(num_rows=3, streaming=True, num_proc=2), HFSynthError, "num_proc"),
])
def test_bad_config_fails_before_sampling(saved, cache, kwargs, error, match):
    with pytest.raises(error, match=match):
        load_dataset(saved, cache_dir=cache, **kwargs)
    assert not os.path.isdir(os.path.join(cache, "hf_synth")) or not any(
        name.endswith(".arrow") for _, _, files in os.walk(cache) for name in files)


def test_a_path_that_is_not_a_generator(tmp_path, cache):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "rows.csv").write_text("a,b\n1,2\n")
    with pytest.raises(GeneratorLoadError, match="not an hf_synth generator"):
        load_dataset(str(tmp_path / "data"), num_rows=3, cache_dir=cache)
    with pytest.raises(GeneratorLoadError, match="no generator directory"):
        load_dataset(str(tmp_path / "missing"), num_rows=3, cache_dir=cache)


# ---------------------------------------------------------------------------- datasets.load_dataset route
def test_datasets_load_dataset_route(saved, cache):
    ours = load_dataset(saved, num_rows=25, seed=2, batch_size=8, split="train", cache_dir=cache)
    theirs = datasets.load_dataset("hf_synth", "synthetic", generator=saved, num_rows=25, seed=2, batch_size=8,
                                   cache_dir=cache)
    assert isinstance(theirs, datasets.DatasetDict)
    assert theirs["train"].to_list() == ours.to_list()
    stream = datasets.load_dataset("hf_synth", generator=saved, num_rows=25, seed=2, batch_size=8, split="train",
                                   streaming=True)
    assert rows(stream) == ours.to_list()
    builder = datasets.load_dataset_builder("hf_synth", generator=saved, num_rows=25)
    assert isinstance(builder, hf_synth.SyntheticBuilder)
    with pytest.raises(HFSynthError, match="data_files"):
        datasets.load_dataset("hf_synth", generator=saved, num_rows=5, data_files="x.csv")
    with pytest.raises(HFSynthError, match="name the generator"):
        datasets.load_dataset("hf_synth", "synthetic", num_rows=5)


def test_route_is_installed_when_datasets_is_imported_after_hf_synth(saved, tmp_path):
    script = (
        "import sys, hf_synth\n"
        "assert 'datasets' not in sys.modules, 'import hf_synth must stay light'\n"
        "from datasets import load_dataset\n"
        f"ds = load_dataset('hf_synth', 'synthetic', generator={saved!r}, num_rows=4, seed=0, split='train',"
        f" cache_dir={str(tmp_path)!r})\n"
        "print(ds.num_rows)\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "4"


def test_route_points_to_hf_synth_load_dataset_when_datasets_changes(saved, monkeypatch, caplog):
    import datasets.load as load_module

    changed = types.ModuleType("datasets.load")
    changed.load_dataset_builder = lambda path, **kwargs: None  # calls no dataset_module_factory
    changed.dataset_module_factory = lambda path, **kwargs: None
    changed.DatasetModule = object
    with caplog.at_level(logging.WARNING):
        assert install(changed) is False
    assert "hf_synth.load_dataset" in caplog.text

    def module_with_other_fields(*, name: str):  # a DatasetModule whose fields were renamed
        return name

    monkeypatch.setattr(load_module, "DatasetModule", module_with_other_fields)
    with pytest.raises(RouteError, match=r"use hf_synth\.load_dataset"):
        datasets.load_dataset("hf_synth", generator=saved, num_rows=3)


# ---------------------------------------------------------------------------- streams
def test_bounded_stream_equals_load_dataset_and_shards_over_workers(saved):
    generator = AutoGenerator.from_pretrained(saved)
    stream = generator.as_iterable_dataset(40, seed=3, batch_size=8)
    expected = rows(load_dataset(saved, num_rows=40, seed=3, batch_size=8, split="train", streaming=True))
    assert rows(stream) == expected
    assert stream.num_shards == 5
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=2)
    read = list(loader)
    key = lambda row: tuple(sorted(row.items()))  # noqa: E731
    assert collections.Counter(map(key, read)) == collections.Counter(map(key, expected))


def test_endless_stream_gives_each_worker_its_own_rows():
    generator = tiny_generator()
    stream = generator.as_iterable_dataset(seed=0, batch_size=4, num_shards=2)
    assert stream.num_shards == 2
    first = list(stream.take(10))
    assert len(first) == 10
    per_shard = [list(stream.shard(num_shards=2, index=i).take(8)) for i in range(2)]
    assert per_shard[0] != per_shard[1]
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=2)
    read = [row for _, row in zip(range(16), loader)]
    key = lambda row: tuple(sorted(row.items()))  # noqa: E731
    assert collections.Counter(map(key, read)) == collections.Counter(map(key, per_shard[0] + per_shard[1]))


def test_stream_conditions_and_bad_arguments():
    generator = tiny_generator()
    stream = generator.as_iterable_dataset(12, seed=0, conditions={"sex": "Male"}, batch_size=5)
    assert {row["sex"] for row in stream} == {"Male"}
    with pytest.raises(ConditionError):
        generator.as_iterable_dataset(5, conditions={"nope": 1})
    with pytest.raises(HFSynthError, match="num_rows"):
        generator.as_iterable_dataset(-1)
    with pytest.raises(HFSynthError, match="num_shards"):
        generator.as_iterable_dataset(10, num_shards=2)


# ---------------------------------------------------------------------------- augment and balance
@pytest.fixture(scope="module")
def real() -> datasets.Dataset:
    return load_demo_dataset().select(range(200, 236)).select_columns([*COLUMNS, "race"])


def test_augment_adds_k_conditioned_rows_after_each_row(saved, real):
    generator = AutoGenerator.from_pretrained(saved)
    fn = augment(generator, k=2, condition_on=["income", "sex"], seed=0)
    out = real.map(fn, batched=True, batch_size=10)
    assert out.num_rows == 3 * real.num_rows
    assert out["is_synthetic"] == [False, True, True] * real.num_rows
    records = out.to_list()
    for i, original in enumerate(real.to_list()):
        block = records[3 * i: 3 * i + 3]
        assert {k: v for k, v in block[0].items() if k != "is_synthetic"} == original
        for synthetic in block[1:]:
            assert (synthetic["income"], synthetic["sex"]) == (original["income"], original["sex"])
            assert synthetic["race"] is None  # a column the generator does not know
    assert real.map(fn, batched=True, batch_size=10).to_list() == records  # the same rows every time
    with_indices = real.map(fn, batched=True, batch_size=10, with_indices=True)
    assert with_indices.num_rows == out.num_rows


def test_augment_with_num_proc_and_on_an_iterable_dataset(saved, real):
    generator = AutoGenerator.from_pretrained(saved)
    fn = augment(generator, k=1, condition_on="income", seed=1)
    parallel = real.map(fn, batched=True, batch_size=9, num_proc=2)
    assert parallel.num_rows == 2 * real.num_rows and sum(parallel["is_synthetic"]) == real.num_rows
    assert [r for r, s in zip(parallel.to_list(), parallel["is_synthetic"]) if not s] == \
        [{**r, "is_synthetic": False} for r in real.to_list()]
    streamed = list(real.to_iterable_dataset().map(fn, batched=True, batch_size=9))
    assert streamed == real.map(fn, batched=True, batch_size=9).to_list()


def test_augment_bad_input(saved, real):
    generator = AutoGenerator.from_pretrained(saved)
    with pytest.raises(HFSynthError, match="k must be"):
        augment(generator, k=0)
    with pytest.raises(HFSynthError, match="does not know"):
        augment(generator, k=1, condition_on=["race"])
    with pytest.raises(HFSynthError, match="batched=True"):
        real.map(augment(generator, k=1))
    with pytest.raises(HFSynthError, match="unknown sampling options"):
        augment(generator, k=1, top_k=3)
    with pytest.raises(HFSynthError, match="lacks"):
        real.remove_columns("sex").map(augment(generator, k=1, condition_on=["sex"]), batched=True)


def test_balance_uniform_and_shares(saved, real):
    generator = AutoGenerator.from_pretrained(saved)
    counts = collections.Counter(real["income"])
    balanced = balance(generator, real, "income", seed=0)
    assert collections.Counter(balanced["income"]) == {value: max(counts.values()) for value in counts}
    assert balanced.select(range(real.num_rows)).remove_columns("is_synthetic").to_list() == real.to_list()
    assert sum(balanced["is_synthetic"]) == balanced.num_rows - real.num_rows
    assert balanced.features["race"] == real.features["race"]
    shares = balance(generator, real, "sex", target={"Female": 2, "Male": 1}, seed=0)
    sexes = collections.Counter(shares["sex"])
    assert sexes["Female"] >= 2 * sexes["Male"] - 1 and sexes["Male"] == collections.Counter(real["sex"])["Male"]
    assert balance(generator, real, "income", seed=0).to_list() == balanced.to_list()


def test_balance_class_label_column(saved, real):
    generator = AutoGenerator.from_pretrained(saved)
    labelled = real.class_encode_column("income")
    with pytest.raises(HFSynthError):
        balance(generator, labelled, "race")  # a column the generator does not know
    with pytest.raises(HFSynthError, match="share"):
        balance(generator, labelled, "income", target={">50K": -1})
    with pytest.raises(HFSynthError, match="uniform"):
        balance(generator, labelled, "income", target="equal")
    balanced = balance(generator, labelled, "income", target={">50K": 0.5, "<=50K": 0.5}, seed=0)
    assert balanced.features["income"] == labelled.features["income"]
    counts = collections.Counter(balanced["income"])
    assert len(counts) == 2 and len(set(counts.values())) == 1


def test_endless_stream_feeds_a_transformers_trainer(tmp_path):
    from transformers import Trainer, TrainingArguments

    class AgeModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(1, 1)

        def forward(self, age):
            return {"loss": (self.linear(age.float().unsqueeze(-1) / 100) ** 2).mean()}

    stream = tiny_generator().as_iterable_dataset(seed=0, batch_size=16).select_columns(["age"])
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=3, per_device_train_batch_size=8, report_to=[],
                             use_cpu=True, save_strategy="no", logging_strategy="no", dataloader_num_workers=0)
    trainer = Trainer(model=AgeModel(), args=args, train_dataset=stream)
    trainer.train()
    assert trainer.state.global_step == 3


def test_split_dataset_by_node_gives_each_rank_its_own_chunks(saved):
    from datasets.distributed import split_dataset_by_node

    stream = AutoGenerator.from_pretrained(saved).as_iterable_dataset(32, seed=0, batch_size=8)
    ranks = [rows(split_dataset_by_node(stream, rank=rank, world_size=2)) for rank in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 16
    key = lambda row: tuple(sorted(row.items()))  # noqa: E731
    assert collections.Counter(map(key, ranks[0] + ranks[1])) == collections.Counter(map(key, rows(stream)))


def test_worker_handles_pickle_small_and_reload_a_saved_generator(saved):
    import pickle

    from hf_synth.streams import _LIVE, GeneratorRef

    loaded = AutoGenerator.from_pretrained(saved)
    state = pickle.dumps(GeneratorRef(loaded))
    assert len(state) < 1000  # a key and a path, not the model
    _LIVE.clear()  # as in a spawned worker, which shares nothing with this process
    reloaded = pickle.loads(state).get()
    assert reloaded is not loaded
    assert reloaded.sample(5, seed=0, progress=False).to_list() == loaded.sample(5, seed=0, progress=False).to_list()

    in_memory = pickle.dumps(GeneratorRef(tiny_generator()))
    _LIVE.clear()
    with pytest.raises(HFSynthError, match="never saved"):
        pickle.loads(in_memory).get()


def test_augment_fingerprint_names_the_generator_and_settings(saved, tmp_path):
    from datasets.fingerprint import Hasher

    generator = AutoGenerator.from_pretrained(saved)
    assert Hasher.hash(augment(generator, k=2, seed=0)) == Hasher.hash(augment(generator, k=2, seed=0))
    assert Hasher.hash(augment(generator, k=2, seed=0)) != Hasher.hash(augment(generator, k=2, seed=1))
    other = str(tmp_path / "other")
    tiny_generator(seed=3).save_pretrained(other)
    assert Hasher.hash(augment(AutoGenerator.from_pretrained(other), k=2, seed=0)) != \
        Hasher.hash(augment(generator, k=2, seed=0))
