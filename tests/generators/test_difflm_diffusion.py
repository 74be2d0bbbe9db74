"""DiffLM's latent diffusion prior (EDM): preconditioning, loss, sampler, training, persistence.

The numerical checks compare against closed forms (EDM's formulas, the exact probability-flow ODE
solution and loss of Gaussian data) rather than against recorded outputs of the code itself.
"""

from __future__ import annotations

import json
import math
import os

import pytest
import torch
from torch import Tensor, nn

from hf_synth.configuration import ConfigError
from hf_synth.errors import GeneratorLoadError, HFSynthError
from hf_synth.generators.difflm.diffusion import (
    DiffusionConfig,
    EDMDenoiser,
    LatentDiffusion,
    MLPDenoiser,
    SinusoidalNoiseEmbedding,
    edm_loss,
    edm_sigma_steps,
    heun_sample,
)

TINY = dict(hidden_dim=32, num_layers=1, noise_embedding_dim=16, train_steps=20, batch_size=64, num_steps=8)

# a 2-D mixture of four well-separated Gaussians with unequal weights
CENTRES = torch.tensor([[-2.0, -2.0], [-2.0, 2.0], [2.0, -2.0], [2.0, 2.0]])
WEIGHTS = torch.tensor([0.4, 0.3, 0.2, 0.1])
MODE_STD = 0.3


class _Zero(nn.Module):
    """``F = 0``: the preconditioned denoiser is then ``c_skip x``."""

    def forward(self, x: Tensor, c_noise: Tensor) -> Tensor:
        return torch.zeros_like(x)


class _Recorder(nn.Module):
    """Returns a fixed function of its inputs and remembers them."""

    def forward(self, x: Tensor, c_noise: Tensor) -> Tensor:
        self.x, self.c_noise = x, c_noise
        return torch.tanh(x) + c_noise[:, None]


class _Identity(nn.Module):
    """A denoiser that returns its noisy input unchanged."""

    sigma_data = 0.5

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        return x


def _mixture(n: int, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    modes = torch.multinomial(WEIGHTS, n, replacement=True, generator=g)
    return CENTRES[modes] + MODE_STD * torch.randn(n, 2, generator=g)


def _gaussian(n: int, seed: int, scale: Tensor, offset: Tensor) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, len(scale), generator=g, dtype=torch.float64) * scale + offset


@pytest.fixture(scope="module")
def small() -> LatentDiffusion:
    """A briefly trained model on Gaussian latents (enough for plumbing tests)."""
    model = LatentDiffusion(latent_dim=3, ema_decay=0.9, mixed_precision="no", **TINY)
    model.fit(_gaussian(500, 0, torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.0, 1.0, -1.0])).float())
    return model


# ---------------------------------------------------------------------------- preconditioning


@pytest.mark.parametrize("sigma", [0.002, 0.1, 0.5, 2.0, 80.0])
def test_preconditioning_coefficients_follow_edm(sigma):
    sd = 0.7
    c_skip, c_out, c_in, c_noise = EDMDenoiser(_Zero(), sd).coefficients(torch.tensor([sigma], dtype=torch.float64))
    assert c_skip.item() == pytest.approx(sd**2 / (sigma**2 + sd**2), rel=1e-12)
    assert c_out.item() == pytest.approx(sigma * sd / math.sqrt(sigma**2 + sd**2), rel=1e-12)
    assert c_in.item() == pytest.approx(1 / math.sqrt(sigma**2 + sd**2), rel=1e-12)
    assert c_noise.item() == pytest.approx(math.log(sigma) / 4, rel=1e-12)
    # EDM's design goals for data of std sd: the network input c_in (x + n) and the effective
    # training target (x - c_skip (x + n)) / c_out have unit variance
    assert (c_in**2 * (sd**2 + sigma**2)).item() == pytest.approx(1.0, rel=1e-12)
    target_var = ((1 - c_skip) ** 2 * sd**2 + c_skip**2 * sigma**2) / c_out**2
    assert target_var.item() == pytest.approx(1.0, rel=1e-9)


def test_preconditioning_limits():
    denoiser = EDMDenoiser(_Zero(), 0.5)
    c_skip, c_out, _, _ = denoiser.coefficients(torch.tensor([1e-8, 1e6], dtype=torch.float64))
    assert c_skip[0].item() == pytest.approx(1.0, abs=1e-12) and c_out[0].item() == pytest.approx(0.0, abs=1e-7)
    assert c_skip[1].item() == pytest.approx(0.0, abs=1e-12) and c_out[1].item() == pytest.approx(0.5, rel=1e-9)


def test_denoiser_combines_network_as_preconditioned():
    net = _Recorder()
    denoiser = EDMDenoiser(net, 0.5)
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([0.01, 0.5, 3.0, 40.0])
    out = denoiser(x, sigma)
    s = sigma[:, None]
    c_in = 1 / (s**2 + 0.25).sqrt()
    torch.testing.assert_close(net.x, c_in * x)
    torch.testing.assert_close(net.c_noise, sigma.log() / 4)
    expected = 0.25 / (s**2 + 0.25) * x + s * 0.5 / (s**2 + 0.25).sqrt() * (torch.tanh(c_in * x) + sigma.log()[:, None] / 4)
    torch.testing.assert_close(out, expected)


def test_network_shapes_and_noise_broadcast():
    net = MLPDenoiser(latent_dim=5, hidden_dim=16, num_layers=2, noise_embedding_dim=8)
    net.reset_parameters(torch.Generator().manual_seed(0))
    nn.init.normal_(net.out_proj.weight)  # the output layer starts at zero; give it weights
    x = torch.randn(7, 5)
    assert SinusoidalNoiseEmbedding(8)(torch.zeros(7)).shape == (7, 8)
    one = net(x, torch.full((1,), 0.3))  # one noise level for the batch (the sampler's case)
    each = net(x, torch.full((7,), 0.3))
    assert one.shape == (7, 5)
    torch.testing.assert_close(one, each)


# ---------------------------------------------------------------------------- loss


def test_loss_of_optimal_gaussian_denoiser_is_one():
    # for x ~ N(0, sd^2 I), D = c_skip x is the posterior mean with error variance
    # sd^2 sigma^2 / (sd^2 + sigma^2) = c_out^2, so lambda = 1 / c_out^2 makes the loss 1 at every sigma
    sd = 0.5
    x = sd * torch.randn(20_000, 10, generator=torch.Generator().manual_seed(1))
    loss = edm_loss(EDMDenoiser(_Zero(), sd), x, torch.Generator().manual_seed(2))
    assert loss.item() == pytest.approx(1.0, abs=0.02)  # standard error ~0.003


def test_loss_of_identity_denoiser_matches_closed_form():
    # D(x + n) = x + n: lambda * sigma^2 = 1 + sigma^2 / sd^2 with E[sigma^2] = exp(2 p_mean + 2 p_std^2)
    p_mean, p_std, sd = -1.2, 0.5, 0.5
    x = torch.randn(20_000, 10, generator=torch.Generator().manual_seed(1))
    loss = edm_loss(_Identity(), x, torch.Generator().manual_seed(2), p_mean=p_mean, p_std=p_std)
    assert loss.item() == pytest.approx(1 + math.exp(2 * p_mean + 2 * p_std**2) / sd**2, rel=0.03)


def test_loss_draws_only_from_the_given_generator():
    x = torch.randn(64, 3)
    denoiser = EDMDenoiser(_Zero(), 0.5)
    state = torch.get_rng_state()
    a = edm_loss(denoiser, x, torch.Generator().manual_seed(5))
    b = edm_loss(denoiser, x, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert torch.equal(torch.get_rng_state(), state)


# ---------------------------------------------------------------------------- sampler


def test_sigma_schedule():
    sigmas = edm_sigma_steps(50, 0.002, 80.0, 7.0)
    assert sigmas.shape == (51,)
    assert sigmas[0].item() == pytest.approx(80.0, rel=1e-6)
    assert sigmas[-2].item() == pytest.approx(0.002, rel=1e-6)
    assert sigmas[-1].item() == 0.0
    assert bool((sigmas[1:] < sigmas[:-1]).all())
    # rho warps the grid: rho = 1 is evenly spaced, larger rho spends more steps at small sigma
    linear = edm_sigma_steps(5, 1.0, 5.0, 1.0)
    torch.testing.assert_close(linear, torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0, 0.0]))
    assert (sigmas < 1.0).sum() > 5 * (edm_sigma_steps(50, 0.002, 80.0, 1.0) < 1.0).sum()


def test_heun_solves_the_gaussian_ode_exactly_in_the_limit():
    # for N(0, sd^2) data the optimal denoiser is c_skip x (F = 0) and the probability-flow ODE
    # dx/dsigma = x sigma / (sigma^2 + sd^2) gives x(0) = x(sigma_max) sd / sqrt(sigma_max^2 + sd^2)
    sd, sigma_max = 0.5, 80.0
    seen = []

    class Zero(_Zero):
        def forward(self, x: Tensor, c_noise: Tensor) -> Tensor:
            sigma = c_noise.mul(4).exp()[:, None]  # c_noise = ln(sigma) / 4
            seen.append(x * (sigma**2 + sd**2).sqrt())  # the network sees c_in x
            return super().forward(x, c_noise)

    denoiser = EDMDenoiser(Zero(), sd)
    errors = {}
    for n in (10, 20, 50):
        seen.clear()
        sigmas = edm_sigma_steps(n, 0.002, sigma_max, 7.0)
        out = heun_sample(denoiser, 500, 3, generator=torch.Generator().manual_seed(0), sigmas=sigmas)
        start = seen[0]  # x(sigma_max), as the first network call saw it
        assert start.std().item() == pytest.approx(sigma_max, rel=0.1)
        exact = start * sd / math.sqrt(sigma_max**2 + sd**2)
        errors[n] = ((out - exact).abs().max() / exact.abs().max()).item()
    assert errors[50] < 0.01
    assert errors[10] / errors[20] > 3.0  # second order: halving the step size divides the error by ~4


def test_heun_sampling_does_not_depend_on_batch_size():
    denoiser = EDMDenoiser(_Recorder(), 0.5)
    sigmas = edm_sigma_steps(6, 0.002, 80.0, 7.0)
    whole = heun_sample(denoiser, 600, 3, generator=torch.Generator().manual_seed(3), sigmas=sigmas, batch_size=4096)
    pieces = heun_sample(denoiser, 600, 3, generator=torch.Generator().manual_seed(3), sigmas=sigmas, batch_size=7)
    torch.testing.assert_close(whole, pieces)


# ---------------------------------------------------------------------------- training on a toy distribution


def _mixture_errors(samples: Tensor) -> dict[str, float]:
    """How far ``samples`` are from the mixture, against its closed-form moments."""
    mean = WEIGHTS @ CENTRES
    std = (WEIGHTS @ CENTRES**2 - mean**2 + MODE_STD**2).sqrt()
    distance, mode = torch.cdist(samples, CENTRES).min(1)
    share = torch.bincount(mode, minlength=4).float() / len(samples)
    spreads = []
    for k in range(4):
        own = samples[mode == k] - CENTRES[k]
        spreads.append(1.4826 * own.abs().median(0).values.mean().item())  # robust std (MAD)
    return {
        "share": (share - WEIGHTS).abs().max().item(),
        # beyond 4 mode stds from every centre: probability exp(-8) = 0.03 % for the true distribution
        "between": (distance > 4 * MODE_STD).float().mean().item(),
        "mean": (samples.mean(0) - mean).abs().max().item(),  # standard error ~0.03
        "std": (samples.std(0) / std - 1).abs().max().item(),
        "mode_std": max(abs(s / MODE_STD - 1) for s in spreads),
    }


def _matches_mixture(errors: dict[str, float]) -> bool:
    return (errors["share"] < 0.04 and errors["between"] < 0.05 and errors["mean"] < 0.15
            and errors["std"] < 0.1 and errors["mode_std"] < 0.25)


def test_learns_a_mixture_of_separated_gaussians():
    train, reference = _mixture(4000, 0), _mixture(4000, 1)
    config = dict(latent_dim=2, hidden_dim=128, num_layers=2, noise_embedding_dim=32, batch_size=256,
                  learning_rate=2e-3, num_steps=25, ema_decay=0.0)
    model = LatentDiffusion(**config, train_steps=1500)
    history = model.fit(train, validation=reference[:500])
    errors = _mixture_errors(model.sample(4000, seed=0))
    assert _matches_mixture(errors), errors
    assert history["validation_loss"][-1] < history["validation_loss"][0]

    # the checks are not vacuous: a model that has barely trained fails them
    untrained = LatentDiffusion(**config, train_steps=1)
    untrained.fit(train)
    errors = _mixture_errors(untrained.sample(4000, seed=0))
    assert not _matches_mixture(errors) and errors["between"] > 0.3, errors


# ---------------------------------------------------------------------------- determinism and normalisation


def test_same_seed_same_samples_and_no_global_rng(small):
    state = torch.get_rng_state()
    a = small.sample(100, seed=1)
    assert torch.equal(a, small.sample(100, seed=1))
    assert not torch.allclose(a, small.sample(100, seed=2))
    assert torch.equal(torch.get_rng_state(), state)


def test_training_inside_a_callers_autocast_context():
    # autocast caches bf16 weight copies until the outermost context exits: fit must not train
    # on stale copies when the caller holds one open
    data = _mixture(500, 0)
    config = dict(latent_dim=2, **{**TINY, "train_steps": 30}, mixed_precision="bf16")
    plain, nested = LatentDiffusion(**config), LatentDiffusion(**config)
    plain.fit(data)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=False):
        nested.fit(data)
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), nested.state_dict().values()))


def test_training_is_seeded():
    data = _gaussian(300, 0, torch.ones(3), torch.zeros(3)).float()
    state = torch.get_rng_state()
    a, b, c = (LatentDiffusion(latent_dim=3, seed=s, **TINY) for s in (0, 0, 1))
    for model in (a, b, c):
        model.fit(data)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.denoiser.net.in_proj.weight, c.denoiser.net.in_proj.weight)
    assert torch.equal(a.sample(50, seed=0), b.sample(50, seed=0))


def test_sample_batch_size_only_bounds_memory(small):
    torch.testing.assert_close(small.sample(700, seed=4, batch_size=7), small.sample(700, seed=4))


def test_samples_come_back_in_the_original_scale():
    # Gaussian latents far from N(0, 1): the normalised data is N(0, sigma_data^2), which the
    # (zero-initialised) preconditioned model represents exactly, so a short fit samples the data
    scale = torch.tensor([1000.0, 0.01, 3.0])
    offset = torch.tensor([1e4, -5.0, 0.0])
    model = LatentDiffusion(latent_dim=3, **{**TINY, "num_steps": 50})
    model.fit(_gaussian(2000, 0, scale, offset))  # float64, kept until normalised
    samples = model.sample(4000, seed=0)
    assert samples.shape == (4000, 3)
    samples = samples.double()
    assert ((samples.mean(0) - offset).abs() < 0.1 * scale).all(), samples.mean(0)
    assert ((samples.std(0) / scale - 1).abs() < 0.1).all(), samples.std(0)


def test_bf16_sampling_follows_the_float32_trajectories(small):
    # mixed precision only rounds the network's matrix products: the same noise ends up in nearly
    # the same place (a trajectory near a boundary between modes may rarely go another way)
    fp32 = small.sample(2000, seed=0)
    small.config = small.config.replace(mixed_precision="bf16")
    try:
        bf16 = small.sample(2000, seed=0)
    finally:
        small.config = small.config.replace(mixed_precision="no")
    scale = small.latent_std
    error = ((bf16 - fp32).abs() / scale).mean(1)
    assert error.mean() < 0.01 and error.quantile(0.99) < 0.05


def test_empty_and_zero_row_requests(small):
    assert small.sample(0, seed=0).shape == (0, 3)


# ---------------------------------------------------------------------------- EMA


def test_ema_weights_are_kept_and_used_for_sampling(small):
    assert small.ema is not None and small.sampling_denoiser is small.ema
    ema = small.ema.net.in_proj.weight
    raw = small.denoiser.net.in_proj.weight
    assert not torch.equal(ema, raw) and not ema.requires_grad
    no_ema = LatentDiffusion(latent_dim=3, ema_decay=0.0, **TINY)
    assert no_ema.ema is None and not any(k.startswith("ema.") for k in no_ema.state_dict())


# ---------------------------------------------------------------------------- persistence


def test_save_and_load_round_trip(small, tmp_path):
    small.save_pretrained(tmp_path / "prior")
    assert sorted(os.listdir(tmp_path / "prior")) == ["config.json", "model.safetensors"]
    loaded = LatentDiffusion.from_pretrained(tmp_path / "prior")
    assert loaded.config == small.config
    assert torch.equal(loaded.latent_mean, small.latent_mean) and torch.equal(loaded.latent_std, small.latent_std)
    assert torch.equal(loaded.sample(64, seed=3), small.sample(64, seed=3))


def test_load_errors(small, tmp_path):
    from safetensors.torch import load_file, save_file

    directory = tmp_path / "prior"
    small.save_pretrained(directory)
    weights = directory / "model.safetensors"
    tensors = load_file(weights)
    config = json.loads((directory / "config.json").read_text())

    with pytest.raises(GeneratorLoadError, match="missing"):
        LatentDiffusion.from_pretrained(tmp_path / "nowhere")

    # a tensor of the wrong shape (the config says another width)
    (directory / "config.json").write_text(json.dumps({**config, "hidden_dim": 48}))
    with pytest.raises(GeneratorLoadError, match=r"has shape \(32, \d+\), expected \(48, \d+\)"):
        LatentDiffusion.from_pretrained(directory)

    # a missing tensor
    (directory / "config.json").write_text(json.dumps(config))
    save_file({k: v for k, v in tensors.items() if k != "latent_std"}, weights)
    with pytest.raises(GeneratorLoadError, match=r"missing \['latent_std'\]"):
        LatentDiffusion.from_pretrained(directory)

    # a truncated weights file
    save_file(tensors, weights)
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(GeneratorLoadError, match="corrupted"):
        LatentDiffusion.from_pretrained(directory)

    weights.unlink()
    with pytest.raises(GeneratorLoadError, match="weights are missing"):
        LatentDiffusion.from_pretrained(directory)

    save_file(tensors, weights)
    (directory / "config.json").write_text("{not json")
    with pytest.raises(GeneratorLoadError, match="corrupted"):
        LatentDiffusion.from_pretrained(directory)
    (directory / "config.json").write_text(json.dumps({**config, "sigma_min": -1}))
    with pytest.raises(GeneratorLoadError, match="sigma_min"):
        LatentDiffusion.from_pretrained(directory)


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize("change, field", [
    (dict(hidden_dim=0), "hidden_dim"),
    (dict(sigma_min=100.0), "sigma_min"),
    (dict(ema_decay=1.0), "ema_decay"),
    (dict(noise_embedding_dim=7), "noise_embedding_dim"),
    (dict(p_mean=float("nan")), "p_mean"),
    (dict(num_steps=1), "num_steps"),
    (dict(batch_size=2.5), "batch_size"),
])
def test_config_errors_name_the_field(change, field):
    with pytest.raises(ConfigError, match=field):
        DiffusionConfig(**{"latent_dim": 3, **change})


def test_config_round_trips_through_json():
    config = DiffusionConfig(latent_dim=3, hidden_dim=64)
    assert DiffusionConfig.from_dict(json.loads(config.to_json())) == config
    with pytest.raises(ConfigError, match="latent_dim"):
        LatentDiffusion(hidden_dim=64)
    with pytest.raises(ConfigError, match="unknown"):
        LatentDiffusion(latent_dim=3, hidden=64)


@pytest.mark.parametrize("latents, message", [
    (torch.zeros(10), "shape"),
    (torch.zeros(10, 4), "shape"),
    (torch.zeros(1, 3), "at least 2 rows"),
    (torch.zeros(10, 3, dtype=torch.long), "floating-point"),
    (torch.tensor([[0.0, 1.0, float("nan")]] * 4), "NaN"),
    ([[0.0, 1.0, 2.0]] * 4, "torch.Tensor"),
])
def test_bad_latents_are_rejected(latents, message):
    with pytest.raises(HFSynthError, match=message):
        LatentDiffusion(latent_dim=3, **TINY).fit(latents)


def test_sampling_needs_a_trained_model(small, tmp_path):
    model = LatentDiffusion(latent_dim=3, **TINY)
    with pytest.raises(HFSynthError, match="not trained"):
        model.sample(5, seed=0)
    with pytest.raises(HFSynthError, match="not trained"):
        model.save_pretrained(tmp_path / "x")
    with pytest.raises(HFSynthError, match="num_rows"):
        small.sample(-1, seed=0)
    with pytest.raises(HFSynthError, match="num_steps"):
        small.sample(5, seed=0, num_steps=1)
