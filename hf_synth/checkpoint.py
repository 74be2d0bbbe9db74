"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint directory holds the model weights, the optimizer's tensors (flattened to
``state.<param index>.<name>``), the best weights seen so far, and ``progress.json`` with the
optimizer's param groups, the scheduler state and where training stopped. It is written to a
temporary directory and renamed, so an interrupted save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .hub import read_json, replace_directory, write_json

PROGRESS_FILE = "progress.json"


def _plain(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses shared or non-contiguous storage (tied embeddings): store private copies
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def save_checkpoint(
    directory: str,
    model_state: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    progress: dict[str, Any],
    best_state: dict[str, torch.Tensor] | None,
) -> None:
    parent = os.path.dirname(os.path.abspath(directory))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".ckpt-", dir=parent)
    save_file(_plain(model_state), os.path.join(tmp, "model.safetensors"))
    if best_state is not None:
        save_file(_plain(best_state), os.path.join(tmp, "best.safetensors"))
    opt = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, entry in opt["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{name}"] = value
            else:
                scalars[f"{index}.{name}"] = value
    save_file(_plain(tensors), os.path.join(tmp, "optimizer.safetensors"))
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()} for g in opt["param_groups"]]
    write_json(
        os.path.join(tmp, PROGRESS_FILE),
        {"progress": progress, "param_groups": groups, "optimizer_scalars": scalars, "scheduler": scheduler.state_dict()},
    )
    replace_directory(tmp, directory)


def load_checkpoint(directory: str) -> dict[str, Any] | None:
    """Everything saved by :func:`save_checkpoint`, or ``None`` if there is no complete checkpoint."""
    progress_path = os.path.join(directory, PROGRESS_FILE)
    if not os.path.isfile(progress_path):
        return None
    meta = read_json(progress_path, "checkpoint progress")
    best_path = os.path.join(directory, "best.safetensors")
    flat = load_file(os.path.join(directory, "optimizer.safetensors"))
    state: dict[int, dict[str, Any]] = {}
    for key, tensor in flat.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = tensor
    for key, value in meta["optimizer_scalars"].items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in meta["param_groups"]]
    return {
        "progress": meta["progress"],
        "model": load_file(os.path.join(directory, "model.safetensors")),
        "best": load_file(best_path) if os.path.isfile(best_path) else None,
        "optimizer": {"state": state, "param_groups": groups},
        "scheduler": meta["scheduler"],
    }
