"""The seeded token sampler that turns greedy decoding into sampling."""

import torch

from hf_synth.sampling import SeededSample


def test_draws_follow_the_softmax_and_never_pick_a_masked_token():
    probabilities = torch.tensor([0.5, 0.3, 0.15, 0.05, 0.0])
    scores = probabilities.log().expand(40_000, -1).clone()  # log(0) = -inf: masked
    out = SeededSample(seed=3)(torch.zeros((40_000, 0), dtype=torch.long), scores)
    assert torch.isfinite(out).sum(dim=1).eq(1).all()  # exactly one token left per row
    picked = out.argmax(dim=1)
    shares = torch.bincount(picked, minlength=5).double() / len(picked)
    assert shares[4] == 0
    # 40,000 draws: the standard error of each share is at most 0.0025
    assert torch.allclose(shares[:4], probabilities[:4].double(), atol=0.01)


def test_scores_need_not_be_normalised():
    # softmax of (2, 0): 0.881 / 0.119
    scores = torch.tensor([[2.0, 0.0]]).expand(20_000, -1).clone()
    picked = SeededSample(seed=0)(torch.zeros((20_000, 0), dtype=torch.long), scores).argmax(dim=1)
    share = picked.eq(0).double().mean().item()
    assert abs(share - torch.sigmoid(torch.tensor(2.0)).item()) < 0.01


def test_same_seed_same_draws_and_no_global_rng():
    scores = torch.randn(500, 30)
    before = torch.random.get_rng_state()
    first = SeededSample(seed=11)(torch.zeros((500, 0), dtype=torch.long), scores.clone()).argmax(dim=1)
    assert torch.equal(torch.random.get_rng_state(), before)
    again = SeededSample(seed=11)(torch.zeros((500, 0), dtype=torch.long), scores.clone()).argmax(dim=1)
    other = SeededSample(seed=12)(torch.zeros((500, 0), dtype=torch.long), scores.clone()).argmax(dim=1)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_output_bias_reads_each_rows_context_as_generate_hands_it_the_tokens():
    from hf_synth.naming_tokens import naming_context
    from hf_synth.sampling import OutputBias

    naming = torch.zeros(10, dtype=torch.bool)
    naming[[7, 8]] = True  # tokens 7 and 8 name a field
    prompts = torch.tensor([[0, 7, 3], [0, 8, 8]])
    generated = torch.tensor([[4, 8, 5], [2, 2, 7]])
    seen = []

    def bias(previous, named, steps, logits):
        seen.append(torch.stack([previous, named, steps], 1))
        return logits

    full = torch.cat([prompts, generated], 1)
    named, steps = naming_context(full, naming)
    # the context before each new token: after the prompt, then after each sampled token
    expected = [torch.stack([full[:, i], named[:, i], steps[:, i]], 1) for i in range(2, 5)]
    scores = torch.zeros((2, 10))
    # with input_ids, generate hands the prompt too; with inputs_embeds, only the new tokens
    for given, prompt_length in ((full, 3), (generated, 0)):
        seen.clear()
        processor = OutputBias(bias, prompts, naming, prompt_length)
        for step in range(3):
            processor(given[:, : prompt_length + step], scores)
        assert all(torch.equal(a, b) for a, b in zip(seen, expected)) and len(seen) == 3
