"""DiffLM beyond tables: nested JSON records (tool definitions) and code (short Python functions)."""

from __future__ import annotations

import logging
import os

import datasets
import pytest

from hf_synth import DiffLMGenerator, LMGenerator
from hf_synth.curation import DropInvalid, curate

SMALL = dict(encoder_layers=1, encoder_hidden=32, encoder_heads=2, latent_dim=8, num_virtual_tokens=2, vae_epochs=2,
             batch_size=16, learning_rate=3e-3, diffusion_steps=50, diffusion_hidden=32, diffusion_batch_size=32,
             sampling_steps=5, sample_batch_size=32, calibration_samples=96)
DECODER = dict(n_layer=1, n_embd=32, n_head=2, epochs=2, batch_size=16, text_vocab_size=300)


@pytest.fixture(scope="module")
def code() -> datasets.Dataset:
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "mbpp_short.jsonl")
    return datasets.load_dataset("json", data_files=path, split="train").select_columns(["text", "code"])


def test_tool_definitions(caplog):
    from record_strategies import tool_dataset

    data = tool_dataset()
    generator = DiffLMGenerator(decoder_options={**DECODER, "epochs": 1}, **{**SMALL, "vae_epochs": 1}).fit(data, progress=False)
    rows = generator.sample(4, seed=0, progress=False)
    assert rows.features == data.features
    assert all(not generator.schema.validate(row) for row in rows.to_list())  # JSON that matches the learned schema
    like = generator.sample_like(data.select(range(2)), num_rows=2, noise=0.1, seed=0)
    assert all(not generator.schema.validate(row) for row in like.to_list())


def test_code_is_known_to_the_schema_and_checked_by_parsing(code, caplog):
    generator = DiffLMGenerator(decoder_options=DECODER, **SMALL).fit(code, progress=False)
    assert generator.schema.fields["code"].format == "python" and generator.schema.fields["text"].format is None
    assert generator.schema.validate({"text": code[0]["text"], "code": "def broken(:"}) == \
        ["code: is not valid Python (it does not parse)"]

    def parsing(rows: datasets.Dataset) -> int:
        return sum(not generator.schema.validate(row) for row in rows.to_list())

    with caplog.at_level(logging.WARNING):
        once = generator.sample(6, seed=0, max_rounds=1, progress=False)
        retried = generator.sample(6, seed=0, max_rounds=3, progress=False)
    assert once.num_rows == retried.num_rows == 6  # rows that never parse are kept, with a warning
    assert parsing(retried) >= parsing(once)
    if parsing(retried) < 6:
        assert "does not parse" in caplog.text
    curated, report = curate(retried, [DropInvalid(generator.schema)])
    assert curated.num_rows == parsing(retried)


def test_lm_generator_also_resamples_code_that_does_not_parse(code):
    generator = LMGenerator(**DECODER).fit(code, progress=False)
    rows = generator.sample(4, seed=1, max_rounds=2, progress=False)
    assert rows.num_rows == 4
    assert generator.last_report.retried >= sum(bool(generator.schema.validate(r)) for r in rows.to_list())


def test_given_latents_follow_their_rows_when_code_is_sampled_again(code):
    """Rows whose code does not parse are sampled again with their own latents, not the whole batch's."""
    import torch

    generator = DiffLMGenerator(decoder_options=DECODER, **SMALL).fit(code, progress=False)
    z = torch.randn((12, SMALL["latent_dim"]), generator=torch.Generator().manual_seed(0)) * 5
    # a conditioned code column parses by construction, so only some rows are sampled again
    rows = [{"code": code[i]["code"]} if i % 2 == 0 else {} for i in range(12)]
    sampled = generator.sample(conditions=rows, latents=z, seed=0, max_rounds=3, progress=False)
    assert sampled.num_rows == 12 and sampled["code"][::2] == [r["code"] for r in rows[::2]]
    assert 0 < generator.last_report.retried
