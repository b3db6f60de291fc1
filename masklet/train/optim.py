"""Optimisation: freezing, AdamW parameter groups with layer-wise decay, the schedule, clipping.

Learning rates: every module outside the image encoder trains at ``lr``; the image encoder's neck at
``encoder_lr`` and its Hiera trunk block ``i`` (of L) at ``encoder_lr * layer_decay ** (L - i)``, the
patch embedding and position embeddings at ``encoder_lr * layer_decay ** (L + 1)``: the deeper a layer
lies from the output, the less it moves (layer-wise learning-rate decay, as SAM 2 fine-tunes Hiera).
Biases, normalisation weights, learned tokens and embeddings get no weight decay.

The schedule is a pure function of the step (linear warm-up from 0, then a cosine down to
``min_lr_ratio``), so resuming needs only the step.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..modeling.sam2 import SAM2Model
from .config import ConfigError, OptimConfig

__all__ = ["apply_freeze", "build_optimizer", "clip_gradients", "lr_factor", "param_groups", "set_lr"]

_NO_DECAY_NAMES = ("pos_embed", "pos_embed_window")


def apply_freeze(model: SAM2Model, prefixes: tuple[str, ...]) -> list[str]:
    """Turn off gradients of parameters whose name starts with one of ``prefixes``; returns the names
    frozen. ConfigError for a prefix that matches nothing (listing the top-level modules)."""
    names = [n for n, _ in model.named_parameters()]
    for prefix in prefixes:
        if not any(n == prefix or n.startswith(prefix + ".") for n in names):
            tops = sorted({n.split(".")[0] for n in names})
            raise ConfigError(
                f"train.freeze entry {prefix!r} matches no parameter; use a module path such as "
                f"{', '.join(tops)} (or a sub-module, e.g. image_encoder.trunk)"
            )
    frozen = []
    for name, p in model.named_parameters():
        if any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes):
            p.requires_grad_(False)
            frozen.append(name)
    return frozen


def _encoder_scale(model: SAM2Model, name: str, decay: float) -> float:
    """Learning-rate multiplier of an image-encoder parameter (1 for the neck)."""
    if name.startswith("image_encoder.neck."):
        return 1.0
    trunk = model.image_encoder.trunk
    rel = name.removeprefix("image_encoder.trunk.")
    if hasattr(trunk, "layer_depth"):  # RepViT (EdgeTAM), ViT (EfficientTAM): the trunk numbers its layers
        depth, num_layers = trunk.layer_depth(rel)
    else:  # Hiera: block i is layer i + 1
        parts = rel.split(".")
        depth = int(parts[1]) + 1 if parts[0] == "blocks" else 0
        num_layers = len(trunk.blocks)
    return decay ** (num_layers + 1 - depth)


def _no_decay(model: nn.Module, name: str, p: torch.Tensor) -> bool:
    if p.ndim <= 1 or "." not in name or name.split(".")[-1] in _NO_DECAY_NAMES:
        return True
    owner = model.get_submodule(name.rsplit(".", 1)[0])
    return isinstance(owner, nn.Embedding)


def param_groups(model: SAM2Model, cfg: OptimConfig) -> list[dict]:
    """AdamW groups of the trainable parameters: one per (learning rate, weight decay) pair, each with
    ``base_lr`` (the peak learning rate) and ``names``."""
    groups: dict[tuple[float, float], dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith("image_encoder."):
            lr = cfg.encoder_lr * _encoder_scale(model, name, cfg.layer_decay)
        else:
            lr = cfg.lr
        wd = 0.0 if _no_decay(model, name, p) else cfg.weight_decay
        group = groups.setdefault(
            (lr, wd), {"params": [], "names": [], "base_lr": lr, "lr": lr, "weight_decay": wd}
        )
        group["params"].append(p)
        group["names"].append(name)
    if not groups:
        raise ConfigError("every parameter is frozen (train.freeze): there is nothing to train")
    return list(groups.values())


def build_optimizer(model: SAM2Model, cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups` (call :func:`apply_freeze` first)."""
    return torch.optim.AdamW(
        param_groups(model, cfg), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay
    )


def lr_factor(step: int, total_steps: int, cfg: OptimConfig) -> float:
    """Multiplier of the peak learning rates at optimizer step ``step`` (0-based) of ``total_steps``:
    ``(step + 1) / warmup_steps`` during warm-up, then a cosine from 1 to ``min_lr_ratio`` at the end."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    span = max(total_steps - cfg.warmup_steps, 1)
    progress = min((step - cfg.warmup_steps) / span, 1.0)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor


def clip_gradients(optimizer: torch.optim.Optimizer, max_norm: float) -> float:
    """Clip the global L2 norm of all gradients to ``max_norm`` (0: only measure); returns the norm
    before clipping."""
    params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    if not params:
        return 0.0
    if max_norm > 0:
        return float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params])))
