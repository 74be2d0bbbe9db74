"""Reading training data from every supported source and writing outputs atomically."""

from __future__ import annotations

import os

import datasets
import pandas as pd
import pytest

from hf_synth.errors import HFSynthError, OutputExistsError
from hf_synth.io import atomic_path, load_input, write_dataset

ROWS = [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}, {"a": 3, "b": None}]


@pytest.fixture
def dataset() -> datasets.Dataset:
    return datasets.Dataset.from_list(ROWS)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_files(dataset, tmp_path, suffix):
    path = str(tmp_path / f"data{suffix}")
    write_dataset(dataset, path)
    loaded = load_input(path)
    assert loaded["a"] == [1, 2, 3]
    assert load_input(path, columns=["b"]).column_names == ["b"]


def test_saved_dataset_dir_and_dict(dataset, tmp_path):
    dataset.save_to_disk(str(tmp_path / "ds"))
    assert load_input(str(tmp_path / "ds"))["a"] == [1, 2, 3]
    datasets.DatasetDict({"train": dataset, "test": dataset.select([0])}).save_to_disk(str(tmp_path / "dd"))
    assert load_input(str(tmp_path / "dd"), split="test").num_rows == 1
    with pytest.raises(HFSynthError, match="no split 'valid'"):
        load_input(str(tmp_path / "dd"), split="valid")


def test_in_memory_sources(dataset):
    assert load_input(pd.DataFrame(ROWS))["a"] == [1, 2, 3]
    assert load_input(ROWS)["b"] == ["x", "y", None]
    assert load_input(dataset) is dataset


def test_bad_sources(tmp_path):
    with pytest.raises(HFSynthError, match="no such file"):
        load_input(str(tmp_path / "missing.csv"))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(HFSynthError, match="empty"):
        load_input(str(tmp_path / "empty.csv"))
    (tmp_path / "data.xlsx").write_text("x")
    with pytest.raises(HFSynthError, match="unsupported file type"):
        load_input(str(tmp_path / "data.xlsx"))
    os.makedirs(tmp_path / "plain")
    with pytest.raises(HFSynthError, match="save_to_disk"):
        load_input(str(tmp_path / "plain"))
    with pytest.raises(HFSynthError, match="mixes types"):
        load_input(pd.DataFrame({"m": [1, "a", 2.5]}))
    with pytest.raises(HFSynthError, match="unknown columns"):
        load_input(ROWS, columns=["zzz"])
    with pytest.raises(HFSynthError, match="cannot read training data"):
        load_input(42)
    with pytest.raises(HFSynthError, match="cannot load the Hub dataset"):
        load_input("someone/some-dataset-that-is-not-cached")


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = str(tmp_path / "out.csv")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            open(tmp, "w").write("partial")
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []
    with atomic_path(target) as tmp:
        open(tmp, "w").write("done")
    assert open(target).read() == "done"
    with pytest.raises(OutputExistsError):
        with atomic_path(target):
            pass
