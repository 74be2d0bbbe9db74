"""The VAE stage of DiffLM: train the encoder and the latent injection against a frozen decoder.

The validation loss (the token cross-entropy with ``z = mu``) really runs during training: it drives
both the KL schedule and early stopping. beta starts at ``beta_max`` and is multiplied by
``beta_decay`` whenever the validation loss has not improved for ``beta_patience`` evaluations, down
to ``beta_min``; training stops after ``patience`` evaluations without improvement, and the best
weights are kept.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import Callable

import torch
from torch import nn

from .vae import DiffLMVAE, state_dict_of

logger = logging.getLogger(__name__)
Batch = dict[str, torch.Tensor]


@dataclasses.dataclass
class VAETrainingArguments:
    epochs: int
    learning_rate: float
    weight_decay: float
    beta_max: float
    beta_min: float
    beta_decay: float
    beta_patience: int
    patience: int
    eval_steps: int
    seed: int
    progress: bool = True
    mixed_precision: str = "no"


@dataclasses.dataclass
class VAETrainingResult:
    epochs: float
    steps: int
    best_val_loss: float
    final_beta: float
    stopped_early: bool
    seconds: float
    history: list[dict]


def train_vae(vae: DiffLMVAE, decoder: nn.Module, train_batches: Callable[[int], list[Batch]],
              val_batches: list[Batch], args: VAETrainingArguments, device: torch.device) -> VAETrainingResult:
    """Train ``vae`` in place (``train_batches(epoch)`` gives that epoch's shuffled batches)."""
    from tqdm.auto import tqdm

    start = time.perf_counter()

    def autocast() -> torch.autocast:  # bf16 where the hardware has it, as for the decoder's own training
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.mixed_precision == "bf16")

    decoder.eval()  # frozen: no dropout, no gradient for its weights (activations still carry them)
    for parameter in decoder.parameters():
        parameter.requires_grad_(False)
    vae.to(device).train()
    optimizer = torch.optim.AdamW([p for p in vae.parameters() if p.requires_grad], lr=args.learning_rate,
                                  weight_decay=args.weight_decay)
    beta, best, bad, step, history = args.beta_max, math.inf, 0, 0, []
    best_state = state_dict_of(vae)
    first_batches = train_batches(0)
    steps_per_epoch = len(first_batches)
    bar = tqdm(total=steps_per_epoch * args.epochs, disable=not args.progress, desc="fit VAE", unit="step")

    def evaluate() -> dict[str, float]:
        vae.eval()
        sums = {"cross_entropy": 0.0, "kl": 0.0}
        with torch.no_grad():
            for batch in val_batches:
                with autocast():
                    parts = vae.loss(decoder, _to(batch, device), beta, sample=False)
                for name in sums:
                    sums[name] += float(parts[name]) * batch["decoder_ids"].shape[0]
        vae.train()
        rows = sum(b["decoder_ids"].shape[0] for b in val_batches)
        return {name: total / rows for name, total in sums.items()}

    def after_eval(running: float) -> bool:
        nonlocal beta, best, bad, best_state
        val = evaluate()
        history.append({"step": step, "epoch": round(step / steps_per_epoch, 3), "train_loss": round(running, 5),
                        "val_cross_entropy": round(val["cross_entropy"], 5), "val_kl": round(val["kl"], 5),
                        "beta": beta})
        if val["cross_entropy"] < best - 1e-4:
            best, bad, best_state = val["cross_entropy"], 0, state_dict_of(vae)
            return False
        bad += 1
        if bad % args.beta_patience == 0 and beta > args.beta_min:
            beta = max(args.beta_min, beta * args.beta_decay)
            logger.info("validation loss stalled: beta -> %.3g", beta)
        return bad >= args.patience

    running, stopped = math.nan, False
    for epoch in range(args.epochs):
        for batch in first_batches if epoch == 0 else train_batches(epoch):
            with autocast():
                loss = vae.loss(decoder, _to(batch, device), beta)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
            optimizer.step()
            step += 1
            value = float(loss.detach())
            running = value if math.isnan(running) else 0.95 * running + 0.05 * value
            bar.update(1)
            bar.set_postfix(loss=f"{running:.4f}", beta=f"{beta:.2g}", best_val=f"{best:.4f}")
            if args.eval_steps and step % args.eval_steps == 0 and after_eval(running):
                stopped = True
                break
        if stopped:
            break
        if (not args.eval_steps or step % args.eval_steps) and after_eval(running):
            stopped = True
            break
    bar.close()
    vae.load_state_dict(best_state)
    vae.eval()
    return VAETrainingResult(epochs=round(step / steps_per_epoch, 3), steps=step, best_val_loss=best, final_beta=beta,
                             stopped_early=stopped, seconds=time.perf_counter() - start, history=history)


def _to(batch: Batch, device: torch.device) -> Batch:
    return {name: tensor.to(device) for name, tensor in batch.items()}
