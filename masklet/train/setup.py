"""Everything a run builds from its config before the first step: process group, device, model,
data sources and the held-out split. All checks that can fail on user input happen here, so a bad
config or dataset stops the run before any training.

Distributed runs are started with ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``): the process group is initialised from those variables, with NCCL
on CUDA and Gloo on the CPU. Without them the run is a single process.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ..checkpoints import build_model
from ..modeling.sam2 import SAM2Model
from .config import ConfigError, TrainConfig
from .data import DataError, Source, davis_videos, open_source
from .validate import ValidationSet

__all__ = [
    "DistInfo",
    "amp_context",
    "build_data",
    "build_training_model",
    "init_distributed",
]


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the run (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    enabled: bool = False
    device: torch.device = torch.device("cpu")  # where collective operations put their tensors

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def mean(self, values: list[float]) -> list[float]:
        """Element-wise mean of ``values`` over all processes (the values themselves without torchrun)."""
        if not self.enabled:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return (t / self.world_size).tolist()

    def any(self, flag: bool) -> bool:
        """True on every process if ``flag`` is true on any (to stop together)."""
        if not self.enabled:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t)
        return bool(t.item() > 0)


def init_distributed(device_name: str) -> tuple[DistInfo, torch.device]:
    """This process's device (``auto``: its GPU by local rank when CUDA is available, else the CPU)
    and place in the run: the torchrun process group is joined when its environment variables are
    set (NCCL on CUDA, Gloo on the CPU), otherwise the run is a single process."""
    env = os.environ
    launched = "WORLD_SIZE" in env and "MASTER_ADDR" in env
    local_rank = int(env.get("LOCAL_RANK", 0)) if launched else 0
    if device_name == "auto":
        device_name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device_name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"train.device {device_name!r}: CUDA is not available here; use cpu or auto")
        if device.index is None:
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not launched:
        return DistInfo(device=device), device
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    info = DistInfo(int(env.get("RANK", 0)), int(env["WORLD_SIZE"]), local_rank, True, device)
    return info, device


def amp_context(mode: str, device: torch.device):
    """bf16 autocast for ``mode`` bf16, or auto on CUDA; a no-op context otherwise."""
    if mode == "bf16" or (mode == "auto" and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def build_training_model(cfg: TrainConfig, device: torch.device) -> SAM2Model:
    """The model to fine-tune, float32 in train mode: from ``model.checkpoint`` (loaded strictly), or a
    random initialisation drawn from ``model.init_seed``."""
    m = cfg.model
    seed = None if m.checkpoint is not None else m.init_seed
    model = build_model(
        m.preset, m.checkpoint, device="cpu", dtype="float32", image_size=m.image_size, random_seed=seed
    )
    return model.float().to(device).train()


def _held_out(names: list[str], fraction: float, seed: int) -> set[str]:
    if fraction <= 0 or len(names) < 2:
        return set()
    k = min(max(1, round(fraction * len(names))), len(names) - 1)
    pick = np.random.default_rng(seed).choice(len(names), size=k, replace=False)
    return {names[i] for i in pick}


def build_data(cfg: TrainConfig) -> tuple[list[Source], ValidationSet | None]:
    """Open every training source (with the held-out videos removed) and the validation set."""
    d = cfg.data
    if not d.sources:
        raise ConfigError("data.sources is empty: list at least one dataset (kind davis, sav or coco)")
    sources, val = [], None
    for i, s in enumerate(d.sources):
        try:
            if s.kind == "davis" and d.val_fraction > 0 and val is None:
                names = davis_videos(s)
                held = _held_out(names, d.val_fraction, d.split_seed + i)
                sources.append(open_source(s, [n for n in names if n not in held]))
                if held:
                    val = ValidationSet(Path(s.root), tuple(n for n in names if n in held), s.resolution)
            else:
                sources.append(open_source(s))
        except DataError as exc:
            raise DataError(f"data.sources[{i}] ({s.kind} {s.root}): {exc}") from None
    if d.val is not None:
        try:
            names = davis_videos(d.val)
            open_source(d.val, names)  # the same checks as training data, before training starts
        except DataError as exc:
            raise DataError(f"data.val ({d.val.root}): {exc}") from None
        val = ValidationSet(Path(d.val.root), tuple(names), d.val.resolution)
    if val is not None and d.max_val_videos is not None:
        val = ValidationSet(val.root, val.videos[: d.max_val_videos], val.resolution)
    return sources, val
