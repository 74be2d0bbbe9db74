"""Checks shared by the generator tests."""

from __future__ import annotations

import datasets

from hf_synth import AutoGenerator


def reloaded_writes_and_samples_the_same(generator, directory: str, rows: datasets.Dataset):
    """Save ``generator``, load it back and check that it writes columns in the same order and
    samples ``rows`` again (they were drawn with ``seed=0``); returns the loaded generator."""
    generator.save_pretrained(directory)
    loaded = AutoGenerator.from_pretrained(directory)
    assert list(loaded.schema.fields) == list(generator.schema.fields)
    assert loaded.sample(rows.num_rows, seed=0, progress=False).to_list() == rows.to_list()
    return loaded
