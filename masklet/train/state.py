"""Training checkpoints: official-format weights plus everything an exact resume needs.

A training checkpoint is one ``torch.save`` file::

    {"model": {name: tensor},          # the full model, official key names: build_model and the
                                        # reference sam2 load it (they read only "model")
     "optimizer": optimizer.state_dict(), "step": int (optimizer steps done),
     "rng": {"torch", "cuda", "numpy", "python"}, "config": {...}, "format": "masklet-train-1"}

Every entry is made of tensors, numbers, strings, lists, tuples and dicts, so the file loads with
``torch.load(weights_only=True)`` (which masklet and the reference use). The learning-rate schedule
is a function of the step and the data and prompts of a step are drawn from generators seeded by
(seed, rank, step), so these entries are enough to continue a run exactly.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..download import atomic_file

__all__ = ["FORMAT", "get_rng_state", "load_training_state", "save_training_state", "set_rng_state"]

FORMAT = "masklet-train-1"


def get_rng_state() -> dict[str, Any]:
    """The global random states of torch (CPU and CUDA), numpy and Python, in weights-only-safe types."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`get_rng_state` returned."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def save_training_state(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    config: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a training checkpoint (see the module docstring); the file appears only once complete."""
    weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    state = {
        "model": weights,
        "optimizer": optimizer.state_dict(),
        "step": int(step),
        "rng": get_rng_state(),
        "config": config,
        "format": FORMAT,
        **(extra or {}),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        torch.save(state, tmp)
    return path


def load_training_state(path: str | Path) -> dict[str, Any]:
    """Read a training checkpoint (weights only, on the CPU); ValueError if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"resume checkpoint {path} not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated or foreign pickles
        raise ValueError(f"{path} is not a readable training checkpoint: {exc}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(
            f"{path} is not a masklet training checkpoint (no optimizer and step to resume from); to start "
            "a new run from its weights, set model.checkpoint to it instead of resuming"
        )
    return state
