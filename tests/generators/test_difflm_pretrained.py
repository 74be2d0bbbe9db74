"""DiffLM with a given decoder and encoder (tiny models saved locally stand in for Hub models)."""

from __future__ import annotations

import os

import pytest
import torch

from hf_synth import AutoGenerator, DiffLMGenerator, load_demo_dataset
from hf_synth.errors import HFSynthError, SchemaError

COLUMNS = ["age", "sex", "hours-per-week", "income"]
SMALL = dict(encoder_layers=1, encoder_hidden=32, encoder_heads=2, latent_dim=8, num_virtual_tokens=2, vae_epochs=2,
             batch_size=16, learning_rate=3e-3, diffusion_steps=50, diffusion_hidden=32, diffusion_batch_size=32,
             sampling_steps=5, sample_batch_size=32, calibration_samples=96)


def save_tiny_gpt2(path: str, n_positions: int = 256) -> str:
    from record_strategies import tiny_gpt2_tokenizer
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = tiny_gpt2_tokenizer()
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=n_positions, n_embd=32, n_layer=1, n_head=2,
                               bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
                    ).save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def decoder_dir(tmp_path_factory) -> str:
    return save_tiny_gpt2(str(tmp_path_factory.mktemp("tiny-gpt2")))


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory) -> str:
    """A tiny BERT with a byte-level BPE tokenizer that has no pad token (DiffLM pads with eos)."""
    from record_strategies import tiny_gpt2_tokenizer
    from transformers import BertConfig, BertModel

    tokenizer = tiny_gpt2_tokenizer()
    assert tokenizer.pad_token is None
    path = str(tmp_path_factory.mktemp("tiny-bert"))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=256)).save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def data():
    return load_demo_dataset().select(range(60)).select_columns(COLUMNS)


def test_pretrained_decoder_is_frozen_and_stored_by_reference(decoder_dir, data, tmp_path):
    before = {k: v.clone() for k, v in __import__("transformers").AutoModelForCausalLM.from_pretrained(decoder_dir).state_dict().items()}
    generator = DiffLMGenerator(decoder=decoder_dir, **SMALL).fit(data, progress=False)
    assert not generator.training_info["decoder"]["trained"]
    for name, tensor in generator.lm.model.state_dict().items():
        assert torch.equal(tensor, before[name]), name  # frozen: the decoder's weights never moved
    rows = generator.sample(12, seed=0, conditions={"sex": "Male"}, progress=False)
    assert set(rows["sex"]) == {"Male"} and all(not generator.schema.validate(r) for r in rows.to_list())

    path = str(tmp_path / "gen")
    generator.save_pretrained(path)
    assert not os.path.exists(os.path.join(path, "decoder", "model"))  # the id / path is stored, not a copy
    loaded = AutoGenerator.from_pretrained(path)
    assert loaded.sample(12, seed=0, conditions={"sex": "Male"}, progress=False).to_list() == rows.to_list()


def test_pretrained_encoder_reads_json_text(encoder_dir, data, tmp_path):
    generator = DiffLMGenerator(encoder=encoder_dir, decoder_options=dict(n_layer=1, n_embd=32, n_head=2, epochs=1),
                                **SMALL).fit(data, progress=False)
    assert generator.encoder_tokenizer is not None and generator.encoder_tokenizer.pad_token is not None
    rows = generator.sample(10, seed=0, progress=False)
    assert all(not generator.schema.validate(r) for r in rows.to_list())
    path = str(tmp_path / "gen")
    generator.save_pretrained(path)
    loaded = AutoGenerator.from_pretrained(path)
    assert torch.allclose(loaded.encode(data.select(range(4))), generator.encode(data.select(range(4))), atol=1e-5)


def test_records_longer_than_the_decoder_context_fail_before_training(tmp_path, data):
    short = save_tiny_gpt2(str(tmp_path / "short"), n_positions=12)
    with pytest.raises(SchemaError, match="context"):
        DiffLMGenerator(decoder=short, **SMALL).fit(data, progress=False)


def test_unknown_encoder_fails_before_training(data, tmp_path):
    with pytest.raises(HFSynthError, match="encoder"):
        DiffLMGenerator(encoder=str(tmp_path / "no-such-encoder"), **SMALL).fit(data, progress=False)
