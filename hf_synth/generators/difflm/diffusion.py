"""The latent diffusion prior of DiffLM (Zhou et al. 2024, arXiv 2411.03250).

DiffLM trains a VAE on records, then a diffusion model on the (normalised) encoder means, and
samples new latents with it for the language-model decoder. Like TabSyn (Zhang et al. 2024,
arXiv 2310.09656) it uses EDM (Karras et al. 2022, "Elucidating the Design Space of
Diffusion-Based Generative Models", arXiv 2206.00364):

* noise is added as ``x + sigma * eps`` with ``ln sigma ~ N(p_mean, p_std^2)`` during training;
* a network ``F`` is wrapped in a *preconditioning* ``D(x, sigma) = c_skip x + c_out F(c_in x, c_noise)``
  whose coefficients keep the network's inputs and training targets at unit variance for every
  ``sigma`` (given data of standard deviation ``sigma_data``);
* the loss is ``lambda(sigma) ||D(x + n, sigma) - x||^2`` with ``lambda = 1 / c_out^2``, so every noise
  level contributes about equally;
* sampling integrates the probability-flow ODE ``dx/dsigma = (x - D(x, sigma)) / sigma`` from
  ``sigma_max`` to 0 with Heun's 2nd-order method on a ``rho``-warped grid (EDM Algorithm 1, no churn).

Everything random takes a :class:`torch.Generator`; nothing here touches the global RNG.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import time
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...configuration import ConfigError, GeneratorConfig, in_range, positive
from ...errors import GeneratorLoadError, HFSynthError
from ...hub import read_json
from ...precision import cpu_has_native_bf16

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
#: Rows of initial noise drawn per call to the generator while sampling (see :func:`heun_sample`).
NOISE_BLOCK = 256


@dataclasses.dataclass
class DiffusionConfig(GeneratorConfig):
    """Configuration of :class:`LatentDiffusion`.

    Args:
        latent_dim: Dimension ``d`` of the latents (the VAE's latent size).
        hidden_dim: Width of the denoising MLP.
        num_layers: Hidden ``hidden_dim x hidden_dim`` layers of the denoising MLP.
        noise_embedding_dim: Size of the sinusoidal embedding of the noise level (even).
        sigma_data: Standard deviation the preconditioning assumes for the data; training latents
            are standardised per dimension and scaled to it.
        p_mean, p_std: Training noise levels: ``ln sigma ~ N(p_mean, p_std^2)`` (EDM / TabSyn values).
        sigma_min, sigma_max, rho: The sampler's noise levels and the warping of its grid.
        num_steps: Heun steps of the sampler (``2 * num_steps - 1`` network evaluations).
        ema_decay: Decay of the exponential moving average of the weights used for sampling
            (0 disables it).
        train_steps: Optimiser steps.
        batch_size: Latents per training step.
        learning_rate, weight_decay: AdamW settings (cosine decay to 0 after a short warm-up).
        seed: Seed of the initialisation, batch order and training noise.
        mixed_precision: ``"no"``, ``"bf16"`` or ``"auto"``: bf16 autocast of the network's matrix
            products in training and sampling. ``"auto"`` uses it on CPUs with native bf16 dot
            products (AMX or AVX512-BF16; with AMX it trains ~2x and samples ~3x faster); the
            preconditioning, the loss and the ODE updates stay in float32.
    """

    latent_dim: int
    # Defaults sized for a CPU: 30k latents of dim 32 train in ~45 s (bf16 on one Xeon core with
    # AMX; ~80 s in float32) and 30k samples (99 network evaluations each) take ~4 s (~12 s).
    # On latents on a curved 4-d manifold in 32-d, 256 x 3 layers reached k-NN precision 0.97
    # (256 x 2: 0.95; 512 x 2 at ~2x the cost: 0.97; the data itself: 0.98).
    hidden_dim: int = 256
    num_layers: int = 3
    noise_embedding_dim: int = 128
    # EDM / TabSyn values
    sigma_data: float = 0.5
    p_mean: float = -1.2
    p_std: float = 1.2
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    num_steps: int = 50
    # EMA off: with the learning rate decayed to 0 the last steps barely move the weights, and
    # EMA weights sampled no better (same mode shares / energy distance on a 2-D
    # mixture; k-NN precision 0.954 vs 0.955, energy distance 0.0074 vs 0.0071 over 3 seeds on
    # 32-d latents). EMA matters with a constant learning rate, which did worse than the decay.
    ema_decay: float = 0.0
    # short, high-learning-rate training: 4e-3 beat 2e-3 and 1e-3 (k-NN precision 0.95 / 0.90 /
    # 0.70 at 256 x 2) in the same 4000 steps; TabSyn's 1e-3 assumes far longer GPU training.
    # 16000 steps: DiffLM's latents of Default decoded as well as the encoder means themselves
    train_steps: int = 16000
    batch_size: int = 1024
    learning_rate: float = 4e-3
    weight_decay: float = 0.0
    seed: int = 0
    mixed_precision: str = "auto"

    def validate(self) -> None:
        name = type(self).__name__
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{name}.{f.name} must be finite, got {value!r}")
        positive(self, "latent_dim", "hidden_dim", "num_layers", "noise_embedding_dim", "sigma_data", "p_std",
                 "sigma_min", "sigma_max", "rho", "num_steps", "train_steps", "batch_size", "learning_rate")
        in_range(self, "ema_decay", 0.0, 0.999999)
        in_range(self, "weight_decay", 0.0, 1.0)
        if self.noise_embedding_dim % 2:
            raise ConfigError(f"{name}.noise_embedding_dim must be even, got {self.noise_embedding_dim}")
        if self.sigma_min >= self.sigma_max:
            raise ConfigError(f"{name}.sigma_min ({self.sigma_min}) must be below sigma_max ({self.sigma_max})")
        if self.mixed_precision not in ("auto", "no", "bf16"):
            raise ConfigError(f"{name}.mixed_precision must be 'auto', 'no' or 'bf16', got {self.mixed_precision!r}")
        if self.num_steps < 2:
            raise ConfigError(f"{name}.num_steps must be at least 2, got {self.num_steps}")


# ---------------------------------------------------------------------------------------- network
class SinusoidalNoiseEmbedding(nn.Module):
    """Transformer-style positional embedding of the scalar noise level ``c_noise``."""

    def __init__(self, dim: int, max_period: float = 10_000.0):
        super().__init__()
        half = dim // 2
        # geometric frequencies 1 ... 1/max_period: c_noise = ln(sigma)/4 lies in about [-1.6, 1.1]
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)  # (E/2,)

    def forward(self, c_noise: Tensor) -> Tensor:
        angles = c_noise.float()[:, None] * self.freqs[None, :]  # (B, E/2)
        return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)  # (B, E)


class MLPDenoiser(nn.Module):
    """The raw network ``F(x, c_noise)`` (TabSyn's MLP): the noise embedding is added to the
    projected input, then an MLP with SiLU maps it back to the latent space."""

    def __init__(self, latent_dim: int, hidden_dim: int, num_layers: int, noise_embedding_dim: int):
        super().__init__()
        self.noise_embedding = SinusoidalNoiseEmbedding(noise_embedding_dim)
        self.noise_mlp = nn.Sequential(
            nn.Linear(noise_embedding_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, hidden_dim))
        self.in_proj = nn.Linear(latent_dim, hidden_dim)
        self.layers = nn.ModuleList(nn.Linear(hidden_dim, hidden_dim) for _ in range(num_layers))
        self.out_proj = nn.Linear(hidden_dim, latent_dim)

    def forward(self, x: Tensor, c_noise: Tensor) -> Tensor:
        # c_noise is (B,) or (1,): the sampler uses one noise level per step, so the noise MLP
        # then runs once and broadcasts over the batch
        emb = self.noise_mlp(self.noise_embedding(c_noise).to(x.dtype))  # (B or 1, H)
        # without gradients the activations are overwritten in place: fresh (B, H) tensors at every
        # one of the sampler's ~100 evaluations cost more in page faults than the SiLUs themselves
        inplace = not torch.is_grad_enabled()
        h = self.in_proj(x).add_(emb)  # (B, H)
        for layer in self.layers:
            h = layer(F.silu(h, inplace=inplace))  # (B, H)
        return self.out_proj(F.silu(h, inplace=inplace))  # (B, d)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator) -> None:
        """PyTorch's default ``nn.Linear`` initialisation, drawn from ``generator``; the output layer
        starts at zero so that the untrained ``D`` is ``c_skip x``, the optimal denoiser of
        ``N(0, sigma_data^2)`` data, and its loss starts near 1 (see :func:`edm_loss`)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                bound = 1.0 / math.sqrt(module.in_features)
                for p in (module.weight, module.bias):
                    p.copy_(torch.rand(p.shape, generator=generator, device=generator.device) * 2 * bound - bound)
        self.out_proj.weight.zero_()
        self.out_proj.bias.zero_()


class EDMDenoiser(nn.Module):
    """EDM preconditioning: ``D(x, sigma) = c_skip x + c_out F(c_in x, c_noise)``."""

    def __init__(self, net: nn.Module, sigma_data: float):
        super().__init__()
        self.net = net
        self.sigma_data = float(sigma_data)

    def coefficients(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(c_skip, c_out, c_in, c_noise)`` at ``sigma`` (EDM Table 1)."""
        sd2 = self.sigma_data**2
        c_skip = sd2 / (sigma**2 + sd2)
        c_out = sigma * self.sigma_data / (sigma**2 + sd2).sqrt()
        c_in = 1.0 / (sigma**2 + sd2).sqrt()
        c_noise = sigma.log() / 4
        return c_skip, c_out, c_in, c_noise

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        sigma = sigma.to(x.dtype).reshape(-1)  # (B,) or (1,)
        c_skip, c_out, c_in, c_noise = self.coefficients(sigma)
        f = self.net(c_in[:, None] * x, c_noise)  # (B, d)
        return c_skip[:, None] * x + c_out[:, None] * f.to(x.dtype)  # (B, d)


def edm_loss(denoiser: EDMDenoiser, x: Tensor, generator: torch.Generator, *,
             p_mean: float = -1.2, p_std: float = 1.2) -> Tensor:
    """EDM's training loss on clean latents ``x`` (B, d): ``mean(lambda(sigma) ||D(x + n, sigma) - x||^2)``
    with ``ln sigma ~ N(p_mean, p_std^2)``, ``n ~ N(0, sigma^2 I)`` and
    ``lambda = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2``; the mean runs over batch and dimensions.

    ``lambda = 1 / c_out^2`` makes the loss the plain squared error of ``F`` against its effective
    target, whose variance is 1 for data of standard deviation ``sigma_data``. For example,
    ``D = c_skip x`` (``F = 0``) is the optimal denoiser of ``N(0, sigma_data^2)`` data and has
    expected loss exactly 1 at every ``sigma``.
    """
    batch = x.shape[0]
    log_sigma = torch.randn(batch, generator=generator, device=x.device, dtype=x.dtype) * p_std + p_mean
    sigma = log_sigma.exp()  # (B,)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype) * sigma[:, None]  # (B, d)
    sd = denoiser.sigma_data
    weight = (sigma**2 + sd**2) / (sigma * sd) ** 2  # (B,)
    denoised = denoiser(x + noise, sigma)  # (B, d)
    return (weight[:, None] * (denoised - x) ** 2).mean()


# ---------------------------------------------------------------------------------------- sampler
def edm_sigma_steps(num_steps: int, sigma_min: float, sigma_max: float, rho: float,
                    device: torch.device | str | None = None) -> Tensor:
    """The sampler's noise levels ``t_0 = sigma_max > ... > t_{N-1} = sigma_min > t_N = 0``:
    ``t_i = (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho``, (N+1,)."""
    if num_steps < 2:
        raise HFSynthError(f"the sampler needs at least 2 steps, got {num_steps}")
    i = torch.arange(num_steps, dtype=torch.float64)
    inv_rho = 1.0 / rho
    t = (sigma_max**inv_rho + i / (num_steps - 1) * (sigma_min**inv_rho - sigma_max**inv_rho)) ** rho
    return torch.cat([t, torch.zeros(1, dtype=torch.float64)]).to(device=device, dtype=torch.float32)


@torch.no_grad()
def heun_sample(denoiser: nn.Module, num_samples: int, latent_dim: int, *, generator: torch.Generator,
                sigmas: Tensor, batch_size: int = 4096) -> Tensor:
    """Deterministic Heun sampling of the probability-flow ODE (EDM Algorithm 1): (num_samples, d).

    ``sigmas`` comes from :func:`edm_sigma_steps`. The initial noise ``x_0 = t_0 eps`` is drawn from
    ``generator`` in blocks of ``NOISE_BLOCK`` rows (batches are whole blocks), so the same generator
    state gives the same samples whatever ``batch_size`` is: it only bounds the memory.
    """
    device = sigmas.device
    batch_size = -(-batch_size // NOISE_BLOCK) * NOISE_BLOCK
    out = torch.empty(num_samples, latent_dim, device=device)
    for start in range(0, num_samples, batch_size):
        rows = min(batch_size, num_samples - start)
        blocks = [torch.randn(NOISE_BLOCK, latent_dim, generator=generator, device=device)
                  for _ in range(-(-rows // NOISE_BLOCK))]
        x = torch.cat(blocks)[:rows] * sigmas[0]  # (b, d)
        for i in range(len(sigmas) - 1):
            t_cur, t_next = sigmas[i : i + 1], sigmas[i + 1 : i + 2]  # (1,) each: broadcast over rows
            d_cur = (x - denoiser(x, t_cur)) / t_cur  # (b, d), dx/dsigma
            x_next = x + (t_next - t_cur) * d_cur  # Euler step
            if i < len(sigmas) - 2:  # 2nd-order correction, except on the step to sigma = 0
                d_next = (x_next - denoiser(x_next, t_next)) / t_next
                x_next = x + (t_next - t_cur) * (0.5 * d_cur + 0.5 * d_next)
            x = x_next
        out[start : start + rows] = x
    return out


# ---------------------------------------------------------------------------------------- model
class LatentDiffusion(nn.Module):
    """A diffusion prior over VAE latents: standardise, train with :func:`edm_loss`, sample with Heun.

    Example:
        >>> prior = LatentDiffusion(latent_dim=32)
        >>> history = prior.fit(latents)                     # latents: (N, 32) encoder means
        >>> new = prior.sample(10_000, seed=0)               # (10000, 32), in the original scale
        >>> prior.save_pretrained("prior")
        >>> prior = LatentDiffusion.from_pretrained("prior")
    """

    def __init__(self, config: DiffusionConfig | None = None, **kwargs: Any):
        super().__init__()
        if config is None:
            known = {f.name for f in dataclasses.fields(DiffusionConfig)}
            unknown = sorted(set(kwargs) - known)
            if unknown:
                raise ConfigError(f"unknown DiffusionConfig fields: {', '.join(unknown)}")
            if "latent_dim" not in kwargs:
                raise ConfigError("DiffusionConfig.latent_dim is required")
            config = DiffusionConfig(**kwargs)
        elif kwargs:
            config = config.replace(**kwargs)
        self.config = config
        # nn.Linear initialises itself from the global RNG: restore its state afterwards and draw
        # the weights from the config's seed instead
        with torch.random.fork_rng(devices=[]):
            net = MLPDenoiser(config.latent_dim, config.hidden_dim, config.num_layers, config.noise_embedding_dim)
        net.reset_parameters(torch.Generator().manual_seed(config.seed))
        self.denoiser = EDMDenoiser(net, config.sigma_data)
        self.ema = copy.deepcopy(self.denoiser).requires_grad_(False) if config.ema_decay > 0 else None
        # normalisation of the training latents: z = sigma_data * (x - mean) / std
        self.register_buffer("latent_mean", torch.zeros(config.latent_dim))
        self.register_buffer("latent_std", torch.ones(config.latent_dim))
        self.is_fitted = False

    @property
    def device(self) -> torch.device:
        return self.latent_mean.device

    def _autocast(self) -> torch.autocast:
        mode = self.config.mixed_precision
        if mode == "auto":
            mode = "bf16" if self.device.type == "cpu" and cpu_has_native_bf16() else "no"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=mode == "bf16")

    # ------------------------------------------------------------------ normalisation
    def normalize(self, latents: Tensor) -> Tensor:
        return (latents - self.latent_mean) / self.latent_std * self.config.sigma_data

    def denormalize(self, z: Tensor) -> Tensor:
        return z / self.config.sigma_data * self.latent_std + self.latent_mean

    def _check_latents(self, latents: Any, what: str) -> Tensor:
        if not isinstance(latents, Tensor):
            raise HFSynthError(f"{what} must be a torch.Tensor of shape (rows, {self.config.latent_dim}), "
                               f"got {type(latents).__name__}")
        if latents.ndim != 2 or latents.shape[1] != self.config.latent_dim:
            raise HFSynthError(f"{what} must have shape (rows, {self.config.latent_dim}), got {tuple(latents.shape)}")
        if not latents.is_floating_point():
            raise HFSynthError(f"{what} must be a floating-point tensor, got {latents.dtype}")
        if latents.shape[0] < 2:
            raise HFSynthError(f"{what} needs at least 2 rows, got {latents.shape[0]}")
        if not torch.isfinite(latents).all():
            raise HFSynthError(f"{what} contains NaN or infinite values")
        # float64 stays float64 until normalised: latents with a large offset would lose digits
        dtype = torch.float64 if latents.dtype == torch.float64 else torch.float32
        return latents.detach().to(device=self.device, dtype=dtype)

    # ------------------------------------------------------------------ training
    def fit(self, latents: Tensor, *, validation: Tensor | None = None, progress: bool = False) -> dict[str, Any]:
        """Train on ``latents`` (N, d) for ``config.train_steps`` AdamW steps (from a fresh
        initialisation, seeded by ``config.seed``).

        Returns the history: ``steps``, ``train_loss`` (mean over each logging window, at
        ``logged_steps``), ``validation_loss`` (same steps, with the sampling weights and the same
        noise each time; only when ``validation`` is given), ``final_train_loss``,
        ``final_validation_loss``, ``seconds`` and ``steps_per_second``.
        """
        cfg = self.config
        latents = self._check_latents(latents, "latents")
        if validation is not None:
            validation = self._check_latents(validation, "validation")
        started = time.perf_counter()
        self.is_fitted = False  # until training completes
        torch.clear_autocast_cache()  # bf16 copies of the weights an earlier sample() left cached

        # standardise per dimension (in float64: latents can have large offsets); a constant
        # dimension keeps std 1 so it stays constant instead of dividing by zero
        mean = latents.double().mean(0)
        std = latents.double().std(0)
        std = torch.where(std > 1e-12 * mean.abs().clamp_min(1.0), std, torch.ones_like(std))
        self.latent_mean.copy_(mean.float())
        self.latent_std.copy_(std.float())
        data = self.normalize(latents).float()  # (N, d)
        val_data = self.normalize(validation).float() if validation is not None else None

        generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self.denoiser.net.reset_parameters(generator)
        if self.ema is not None:
            self.ema.load_state_dict(self.denoiser.state_dict())
        self.denoiser.train()
        params = [p for p in self.denoiser.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_cosine(cfg.train_steps))
        ema_params = list(self.ema.parameters()) if self.ema is not None else []

        log_every = max(1, cfg.train_steps // 50)
        history: dict[str, Any] = {"steps": cfg.train_steps, "logged_steps": [], "train_loss": []}
        if val_data is not None:
            history["validation_loss"] = []
        window = torch.zeros((), device=self.device)
        bar = _progress_bar(cfg.train_steps) if progress else None
        batches = _batches(data, cfg.batch_size, generator)
        for step in range(1, cfg.train_steps + 1):
            with self._autocast():
                loss = edm_loss(self.denoiser, next(batches), generator, p_mean=cfg.p_mean, p_std=cfg.p_std)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            # autocast caches the bf16 copies of the weights until the outermost autocast context
            # exits; inside a caller's context that would be never, and every step would run on
            # the weights of the first one
            torch.clear_autocast_cache()
            if ema_params:
                # warm-up of the decay (as in many EMA implementations) so the average does not
                # drag the random initialisation along in short runs
                decay = min(cfg.ema_decay, (1 + step) / (10 + step))
                with torch.no_grad():
                    torch._foreach_lerp_(ema_params, params, 1.0 - decay)
            window += loss.detach()
            if step % log_every == 0 or step == cfg.train_steps:
                count = step - (history["logged_steps"][-1] if history["logged_steps"] else 0)
                history["logged_steps"].append(step)
                history["train_loss"].append(window.item() / count)
                window.zero_()
                if val_data is not None:
                    history["validation_loss"].append(self._validation_loss(val_data))
                if bar is not None:
                    bar.set_postfix(loss=f"{history['train_loss'][-1]:.4f}")
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        self.denoiser.eval()
        self.is_fitted = True
        seconds = time.perf_counter() - started
        history["final_train_loss"] = history["train_loss"][-1]
        if val_data is not None:
            history["final_validation_loss"] = history["validation_loss"][-1]
        history["seconds"] = seconds
        history["steps_per_second"] = cfg.train_steps / seconds
        return history

    @torch.no_grad()
    def _validation_loss(self, data: Tensor) -> float:
        # the same noise at every evaluation (a fixed seed), so successive values are comparable
        generator = torch.Generator(device=self.device).manual_seed(self.config.seed + 1)
        model = self.sampling_denoiser
        was_training = model.training
        model.eval()
        total = 0.0
        for start in range(0, len(data), 4096):
            batch = data[start : start + 4096]
            with self._autocast():
                loss = edm_loss(model, batch, generator, p_mean=self.config.p_mean, p_std=self.config.p_std)
            total += loss.item() * len(batch)
        model.train(was_training)
        return total / len(data)

    # ------------------------------------------------------------------ sampling
    @property
    def sampling_denoiser(self) -> EDMDenoiser:
        """The EMA weights when kept, else the trained ones."""
        return self.ema if self.ema is not None else self.denoiser

    @torch.no_grad()
    def sample(self, num_rows: int, *, seed: int, num_steps: int | None = None, batch_size: int = 4096) -> Tensor:
        """``num_rows`` new latents (num_rows, d) in the original (denormalised) latent space.

        The same ``seed`` gives the same latents, whatever ``batch_size`` (rows integrated
        together, which only bounds the memory). ``num_steps`` overrides ``config.num_steps``.
        Samples in bf16 (``mixed_precision``) follow the float32 ones closely but not bit for bit.
        """
        cfg = self.config
        if not self.is_fitted:
            raise HFSynthError("the diffusion prior is not trained; call fit() or from_pretrained() first")
        if isinstance(num_rows, bool) or not isinstance(num_rows, int) or num_rows < 0:
            raise HFSynthError(f"num_rows must be a non-negative int, got {num_rows!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise HFSynthError(f"batch_size must be a positive int, got {batch_size!r}")
        num_steps = cfg.num_steps if num_steps is None else num_steps
        if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 2:
            raise HFSynthError(f"num_steps must be an int >= 2, got {num_steps!r}")
        model = self.sampling_denoiser
        was_training = model.training
        model.eval()
        sigmas = edm_sigma_steps(num_steps, cfg.sigma_min, cfg.sigma_max, cfg.rho, device=self.device)
        generator = torch.Generator(device=self.device).manual_seed(seed)
        with self._autocast():
            z = heun_sample(model, num_rows, cfg.latent_dim, generator=generator, sigmas=sigmas, batch_size=batch_size)
        torch.clear_autocast_cache()  # do not keep bf16 weight copies alive in a caller's autocast context
        model.train(was_training)
        return self.denormalize(z)

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write ``config.json`` and ``model.safetensors`` (weights, EMA weights, normalisation)."""
        from safetensors.torch import save_file

        if not self.is_fitted:
            raise HFSynthError("the diffusion prior is not trained; call fit() before save_pretrained()")
        directory = os.fspath(directory)
        os.makedirs(directory, exist_ok=True)
        tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in self.state_dict().items()}
        # write to temporary names first so an interrupted save never leaves a half-written pair
        _atomic_write(os.path.join(directory, WEIGHTS_FILE),
                      lambda path: save_file(tensors, path, metadata={"format": "pt"}))
        _atomic_write(os.path.join(directory, CONFIG_FILE),
                      lambda path: _write_text(path, json.dumps(self.config.to_dict(), indent=2) + "\n"))

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, *, device: torch.device | str = "cpu") -> LatentDiffusion:
        """Load what :meth:`save_pretrained` wrote; every tensor must be present with its shape."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        directory = os.fspath(directory)
        data = read_json(os.path.join(directory, CONFIG_FILE), "diffusion prior config")
        if not isinstance(data, dict):
            raise GeneratorLoadError(f"diffusion prior config in {directory} is not a JSON object")
        try:
            config = DiffusionConfig.from_dict(data)
        except (ConfigError, TypeError) as err:
            raise GeneratorLoadError(f"invalid diffusion prior config in {directory}: {err}") from None
        path = os.path.join(directory, WEIGHTS_FILE)
        if not os.path.isfile(path):
            raise GeneratorLoadError(f"diffusion prior weights are missing: {path}")
        try:
            tensors = load_file(path)
        except (SafetensorError, OSError, ValueError, RuntimeError) as err:
            raise GeneratorLoadError(f"diffusion prior weights are corrupted: {path} ({err})") from None
        model = cls(config)
        expected = model.state_dict()
        missing = sorted(set(expected) - set(tensors))
        unexpected = sorted(set(tensors) - set(expected))
        if missing or unexpected:
            raise GeneratorLoadError(f"diffusion prior weights in {path} do not match its config: "
                                     f"missing {missing or 'none'}, unexpected {unexpected or 'none'}")
        for key, value in expected.items():
            if tensors[key].shape != value.shape:
                raise GeneratorLoadError(f"diffusion prior weight {key} in {path} has shape {tuple(tensors[key].shape)}, "
                                         f"expected {tuple(value.shape)} from its config")
            if not tensors[key].is_floating_point():
                raise GeneratorLoadError(f"diffusion prior weight {key} in {path} has dtype {tensors[key].dtype}")
            if not torch.isfinite(tensors[key]).all():
                raise GeneratorLoadError(f"diffusion prior weight {key} in {path} contains NaN or infinite values")
        model.load_state_dict(tensors, strict=True)
        model.is_fitted = True
        return model.to(device).eval()


# ---------------------------------------------------------------------------------------- helpers
def _batches(data: Tensor, batch_size: int, generator: torch.Generator) -> Iterator[Tensor]:
    """Endless mini-batches: a fresh random permutation every epoch (sampling with replacement
    when a batch is larger than the data)."""
    n = len(data)
    if batch_size > n:
        while True:
            yield data[torch.randint(n, (batch_size,), generator=generator, device=generator.device)]
    while True:
        order = torch.randperm(n, generator=generator, device=generator.device)
        for start in range(0, n - batch_size + 1, batch_size):  # drop the ragged last batch
            yield data[order[start : start + batch_size]]


def _warmup_cosine(total_steps: int, warmup_fraction: float = 0.02) -> Any:
    warmup = max(1, int(total_steps * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _progress_bar(total: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="diffusion prior", unit="step")


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _atomic_write(path: str, write: Any) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
