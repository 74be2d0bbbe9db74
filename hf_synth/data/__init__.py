"""Data shipped with hf_synth: a 2,000-row attributed sample of UCI Adult (CC BY 4.0, see NOTICE.md)."""

from __future__ import annotations

from importlib import resources

import datasets


def demo_csv_path() -> str:
    """Path of the bundled Adult sample (CSV)."""
    return str(resources.files("hf_synth.data").joinpath("adult_sample.csv"))


def load_demo_dataset() -> datasets.Dataset:
    """The bundled Adult sample as a `datasets.Dataset` (works offline)."""
    return datasets.load_dataset("csv", data_files=demo_csv_path(), split="train")
