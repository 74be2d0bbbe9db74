"""LMGenerator with a given causal LM (a tiny GPT-2 saved locally stands in for a Hub model)."""

from __future__ import annotations

import os

import pytest
import torch

from hf_synth import AutoGenerator, LMGenerator, load_demo_dataset

COLUMNS = ["age", "workclass", "sex", "hours-per-week", "income"]


@pytest.fixture(scope="module")
def base_model_dir(tmp_path_factory) -> str:
    from record_strategies import tiny_gpt2_tokenizer
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = tiny_gpt2_tokenizer()
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=256, n_embd=32, n_layer=1, n_head=2,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    path = str(tmp_path_factory.mktemp("tiny-gpt2"))
    GPT2LMHeadModel(config).save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def data():
    return load_demo_dataset().select(range(80)).select_columns(COLUMNS)


@pytest.mark.parametrize("use_lora", [False, True])
def test_fine_tune_sample_save_load(base_model_dir, data, tmp_path, use_lora):
    generator = LMGenerator(model=base_model_dir, use_lora=use_lora, epochs=1, batch_size=16,
                            sample_batch_size=16, learning_rate=1e-3).fit(data, progress=False)
    rows = generator.sample(10, conditions={"sex": "Female"}, seed=0, progress=False)
    assert rows.features == data.features
    assert all(not generator.schema.validate(r) for r in rows.to_list())
    assert set(rows["sex"]) == {"Female"}

    path = str(tmp_path / "gen")
    generator.save_pretrained(path)
    saved = {os.path.relpath(os.path.join(root, f), path) for root, _, files in os.walk(path) for f in files}
    if use_lora:
        # only the adapter is stored; the base model is referenced by its id / path
        assert "model/adapter_model.safetensors" in saved and "model/model.safetensors" not in saved
    else:
        assert "model/model.safetensors" in saved
    assert "tokenizer/tokenizer.json" in saved
    loaded = AutoGenerator.from_pretrained(path)
    again = loaded.sample(10, conditions={"sex": "Female"}, seed=0, progress=False)
    assert again.to_list() == rows.to_list()


def test_lora_trains_only_the_adapter(base_model_dir, data):
    from safetensors.torch import load_file

    generator = LMGenerator(model=base_model_dir, use_lora=True, epochs=1, batch_size=16).fit(data, progress=False)
    base = load_file(os.path.join(base_model_dir, "model.safetensors"))
    merged = {k.replace("base_model.model.", "").replace(".base_layer", ""): v
              for k, v in generator.model.state_dict().items() if "lora_" not in k}
    for name, tensor in base.items():
        assert torch.equal(merged[name], tensor), name
    assert any("lora_" in name for name, p in generator.model.named_parameters() if p.requires_grad)
