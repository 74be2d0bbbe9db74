"""BufferedCache decodes exactly as transformers' DynamicCache."""

import pytest
import torch
from transformers import DynamicCache, GPT2Config, GPT2LMHeadModel

from hf_synth.kv_cache import MIN_SPARE_POSITIONS, BufferedCache, BufferedLayer


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=50, n_positions=256, n_embd=32, n_layer=2, n_head=2, bos_token_id=0, eos_token_id=1)
    return GPT2LMHeadModel(config).eval()


def generate(model, cache, **inputs):
    return model.generate(**inputs, past_key_values=cache, do_sample=False, max_new_tokens=100,
                          min_new_tokens=100, pad_token_id=0)


@pytest.mark.parametrize("capacity", [0, 8, 300])
def test_same_tokens_as_the_dynamic_cache_with_left_padding(model, capacity):
    ids = torch.randint(2, 50, (3, 6))
    mask = torch.ones_like(ids)
    mask[0, :2] = 0  # left padding
    mask[1, :1] = 0
    expected = generate(model, DynamicCache(config=model.config), input_ids=ids, attention_mask=mask)
    cache = BufferedCache(model.config, capacity=capacity)
    assert torch.equal(generate(model, cache, input_ids=ids, attention_mask=mask), expected)
    assert all(isinstance(layer, BufferedLayer) for layer in cache.layers)
    # 106 positions: a buffer smaller than that grew past its first size
    assert cache.layers[0].get_seq_length() == 105
    assert cache.layers[0]._key_buffer.shape[-2] >= 105


def test_same_tokens_from_input_embeddings(model):
    embeds = torch.randn(2, 4, 32)
    expected = generate(model, DynamicCache(config=model.config), inputs_embeds=embeds)
    assert torch.equal(generate(model, BufferedCache(model.config), inputs_embeds=embeds), expected)


def test_a_layer_survives_batch_selection_and_cropping():
    layer, reference = BufferedLayer(capacity=4), torch.randn(5, 2, 200, 3)
    keys, values = layer.update(reference[:, :, :3], -reference[:, :, :3])
    assert torch.equal(keys, reference[:, :, :3]) and torch.equal(values, -reference[:, :, :3])
    first = layer._key_buffer
    assert first.shape[-2] == 3 + MIN_SPARE_POSITIONS  # spare positions beyond a small capacity
    layer.crop(-1)  # a view of the same buffer, one position shorter
    keys, _ = layer.update(reference[:, :, 2:6], -reference[:, :, 2:6])
    assert torch.equal(keys, reference[:, :, :6]) and layer._key_buffer is first
    keys, _ = layer.update(reference[:, :, 6:100], -reference[:, :, 6:100])
    assert torch.equal(keys, reference[:, :, :100]) and layer._key_buffer.shape[-2] == 200  # doubled
    layer.batch_select_indices(torch.tensor([4, 0]))  # new tensors, outside the buffer
    keys, values = layer.update(reference[[4, 0], :, 100:101], -reference[[4, 0], :, 100:101])
    assert torch.equal(keys, reference[[4, 0], :, :101]) and torch.equal(values, -reference[[4, 0], :, :101])
    layer.reset()
    keys, _ = layer.update(reference[:, :, :2], reference[:, :, :2])
    assert torch.equal(keys, reference[:, :, :2])


def test_one_cache_serves_successive_batches_after_reset(model):
    cache = BufferedCache(model.config)
    for rows in (3, 2, 4):  # smaller, then larger than the buffers
        ids = torch.randint(2, 50, (rows, 5))
        expected = generate(model, DynamicCache(config=model.config), input_ids=ids)
        cache.reset()
        assert torch.equal(generate(model, cache, input_ids=ids), expected)
    assert cache.layers[0]._key_buffer.shape[0] == 4


def test_new_tokens_size_the_first_buffers(model):
    cache = BufferedCache(model.config, new_tokens=120)
    ids = torch.randint(2, 50, (3, 6))
    expected = generate(model, DynamicCache(config=model.config), input_ids=ids)
    assert torch.equal(generate(model, cache, input_ids=ids), expected)
    first = cache.layers[0]._key_buffer
    assert first.shape[-2] == 6 + 120  # 106 positions fit: the buffer never grew
    cache.reset()
    assert torch.equal(generate(model, cache, input_ids=ids), expected)
    assert cache.layers[0]._key_buffer is first
    layer, reference = BufferedLayer(new_tokens=10), torch.randn(2, 2, 200, 3)
    layer.update(reference[:, :, :100], reference[:, :, :100])
    assert layer._key_buffer.shape[-2] == 200  # twice a long prompt when that is more
    layer.update(reference[:, :, 100:101], reference[:, :, 100:101])
    assert layer._key_buffer.shape[-2] == 200
