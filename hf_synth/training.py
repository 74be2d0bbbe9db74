"""The causal-LM training loop shared by the LM-based generators.

Runs through `accelerate`, so the same code trains on a CPU, one GPU or several
(``accelerate launch``). Each epoch re-encodes the training records (new column orders), the batch
order is seeded by ``(seed, epoch)``, the validation loss is measured every epoch (and every
``eval_steps`` optimizer steps when set), the best weights are kept, training stops early after
``patience`` evaluations without improvement, and a checkpoint written every ``checkpoint_steps``
steps and at every evaluation lets an interrupted fit resume where it stopped.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import Callable

import torch
from torch.utils.data import DataLoader

from .checkpoint import load_checkpoint, save_checkpoint

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainingArguments:
    epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    warmup_ratio: float
    patience: int
    seed: int
    eval_steps: int = 0
    checkpoint_steps: int = 500
    checkpoint_dir: str | None = None
    progress: bool = True
    device: str = "auto"
    mixed_precision: str = "no"


@dataclasses.dataclass
class TrainingResult:
    epochs: float
    steps: int
    best_val_loss: float
    last_train_loss: float
    stopped_early: bool
    resumed_from_step: int
    seconds: float
    history: list[dict]


#: A training example: token ids, or token ids with a loss weight per token.
Example = list[int] | tuple[list[int], list[float]]


class _Examples(torch.utils.data.Dataset):
    def __init__(self, examples: list[Example]):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> Example:
        return self.examples[i]


def _collate(pad_id: int) -> Callable[[list[Example]], dict[str, torch.Tensor]]:
    def collate(batch: list[Example]) -> dict[str, torch.Tensor]:
        weighted = isinstance(batch[0], tuple)
        sequences = [x[0] for x in batch] if weighted else batch
        width = max(len(x) for x in sequences)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, x in enumerate(sequences):
            ids[i, : len(x)] = torch.tensor(x)
            mask[i, : len(x)] = 1
        # padding carries no loss; the label mask comes from the attention mask because the pad
        # token may equal the end-of-record token, which must be learned
        labels = ids.masked_fill(mask == 0, -100)
        out = {"input_ids": ids, "attention_mask": mask, "labels": labels}
        if weighted:
            out["loss_weights"] = torch.zeros((len(batch), width))
            for i, (_, weights) in enumerate(batch):
                out["loss_weights"][i, : len(weights)] = torch.tensor(weights)
        return out

    return collate


def train_causal_lm(
    model: torch.nn.Module,
    train_examples: Callable[[int], list[Example]],
    num_train: int,
    val_examples: list[list[int]],
    pad_id: int,
    args: TrainingArguments,
    run_key: str,
) -> TrainingResult:
    """Train ``model`` in place; returns what happened. ``train_examples(epoch)`` gives the token
    ids of every training record for that epoch (with a loss weight per token, or not); the
    validation loss, which picks the weights kept and stops training, is never weighted.
    ``run_key`` identifies the data and config so a checkpoint of another run is never resumed."""
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    accelerator = Accelerator(cpu=args.device == "cpu")
    # bf16 autocast here rather than accelerate's mixed_precision: that one is process-wide state,
    # fixed by the first Accelerator, and a process may fit several generators
    def autocast() -> torch.autocast:
        return torch.autocast(accelerator.device.type, dtype=torch.bfloat16, enabled=args.mixed_precision == "bf16")
    start = time.perf_counter()
    collate = _collate(pad_id)
    steps_per_epoch = math.ceil(num_train / args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    trainable = [p for p in model.parameters() if p.requires_grad]
    # the fused kernel (one op for all parameters) saves ~10 % of a step on small models
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in trainable)
    optimizer = torch.optim.AdamW(trainable, lr=args.learning_rate, weight_decay=args.weight_decay, fused=fused)
    warmup = max(1, int(args.warmup_ratio * total_steps))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total_steps - warmup))))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    progress = {"run_key": run_key, "step": 0, "epoch": 0, "batch": 0, "best_val_loss": math.inf,
                "bad_evals": 0, "history": [], "done": False}
    best_state = None
    resumed_from = 0
    if args.checkpoint_dir:
        saved = load_checkpoint(args.checkpoint_dir)
        if saved is not None and saved["progress"].get("run_key") == run_key:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            progress = saved["progress"]
            best_state = saved["best"]
            resumed_from = progress["step"]
            logger.info("resuming training from step %d (%s)", resumed_from, args.checkpoint_dir)
        elif saved is not None:
            logger.warning("ignoring the checkpoint in %s: it belongs to other data or settings", args.checkpoint_dir)

    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    val_loader = accelerator.prepare(DataLoader(_Examples(val_examples), batch_size=args.batch_size, collate_fn=collate))
    bar = tqdm(total=total_steps, initial=progress["step"], disable=not args.progress, desc="fit", unit="step")
    trainable_names = {n for n, p in accelerator.unwrap_model(model).named_parameters() if p.requires_grad}

    def evaluate() -> float:
        model.eval()
        sums = torch.zeros(2, device=accelerator.device, dtype=torch.float64)
        with torch.no_grad():
            for batch in val_loader:
                with autocast():
                    out = model(**batch)
                tokens = (batch["labels"][:, 1:] != -100).sum()
                sums += torch.stack([out.loss.double() * tokens, tokens.double()])
        model.train()
        # every process sees the same loss, so early stopping stops them all together
        total, count = accelerator.reduce(sums, reduction="sum").tolist()
        return total / max(1.0, count)

    def checkpoint() -> None:
        if args.checkpoint_dir and accelerator.is_main_process:
            state = accelerator.unwrap_model(model).state_dict()
            save_checkpoint(args.checkpoint_dir, state, optimizer.optimizer if hasattr(optimizer, "optimizer") else optimizer,
                            scheduler.scheduler if hasattr(scheduler, "scheduler") else scheduler, progress, best_state)

    def after_eval(val_loss: float, train_loss: float) -> bool:
        nonlocal best_state
        progress["history"].append({"step": progress["step"], "epoch": round(progress["step"] / steps_per_epoch, 3),
                                    "train_loss": round(train_loss, 5), "val_loss": round(val_loss, 5)})
        if val_loss < progress["best_val_loss"] - 1e-4:
            progress["best_val_loss"], progress["bad_evals"] = val_loss, 0
            unwrapped = accelerator.unwrap_model(model).state_dict()
            best_state = {k: v.detach().to("cpu").clone() for k, v in unwrapped.items() if k in trainable_names}
        else:
            progress["bad_evals"] += 1
        stop = progress["bad_evals"] >= args.patience
        progress["done"] = stop
        checkpoint()
        return stop

    model.train()
    running = math.nan
    stopped = progress["done"]
    while not stopped and progress["epoch"] < args.epochs:
        epoch = progress["epoch"]
        generator = torch.Generator().manual_seed(args.seed * 1009 + epoch)
        loader = DataLoader(_Examples(train_examples(epoch)), batch_size=args.batch_size, shuffle=True,
                            generator=generator, collate_fn=collate)
        loader = accelerator.prepare(loader)
        if progress["batch"]:
            loader = accelerator.skip_first_batches(loader, progress["batch"])
        for batch in loader:
            with autocast():
                loss = _weighted_loss(model, batch) if "loss_weights" in batch else model(**batch).loss
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            value = float(loss.detach())
            running = value if math.isnan(running) else 0.95 * running + 0.05 * value
            progress["step"] += 1
            progress["batch"] += 1
            bar.update(1)
            bar.set_postfix(loss=f"{running:.4f}", best_val=f"{progress['best_val_loss']:.4f}")
            if args.eval_steps and progress["step"] % args.eval_steps == 0:
                if after_eval(evaluate(), running):
                    stopped = True
                    break
            elif args.checkpoint_steps and progress["step"] % args.checkpoint_steps == 0:
                checkpoint()
        if stopped:
            break
        progress["epoch"] += 1
        progress["batch"] = 0
        if not args.eval_steps or progress["step"] % args.eval_steps:
            stopped = after_eval(evaluate(), running)
    bar.close()
    model = accelerator.unwrap_model(model)
    if best_state is not None:
        model.load_state_dict(best_state, strict=False)
    model.eval()
    return TrainingResult(
        epochs=round(progress["step"] / steps_per_epoch, 3),
        steps=progress["step"],
        best_val_loss=progress["best_val_loss"],
        last_train_loss=running,
        stopped_early=progress["done"] and progress["epoch"] < args.epochs,
        resumed_from_step=resumed_from,
        seconds=time.perf_counter() - start,
        history=progress["history"],
    )


def _weighted_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Next-token cross-entropy with each token's term scaled by its weight, averaged over the
    tokens (not the weights), so weight 1 everywhere gives the model's own loss."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]  # (B, T-1, V)
    labels, weights = batch["labels"][:, 1:], batch["loss_weights"][:, 1:]  # (B, T-1)
    real = labels != -100
    terms = torch.nn.functional.cross_entropy(logits[real].float(), labels[real], reduction="none")  # (N,)
    return (terms * weights[real]).sum() / real.sum().clamp(min=1)
