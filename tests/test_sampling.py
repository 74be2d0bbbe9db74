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
