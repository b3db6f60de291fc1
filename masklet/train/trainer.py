"""The training loop: sample clips, roll them out, step AdamW; log, validate, checkpoint, resume.

Usage::

    from masklet.train import Trainer, load_config
    trainer = Trainer(load_config("examples/train_synthetic.yaml"), out_dir="runs/synth")
    result = trainer.run()               # or Trainer(..., resume="runs/synth/checkpoints/last") to go on

Step ``k`` of process ``r`` draws its clips, prompts and dropout masks from generators seeded by
(seed, r, k), so a run resumed from a checkpoint continues with exactly the losses it would have had.
Outputs in ``out_dir``: ``config.yaml``, ``train.csv``, ``val.csv``, ``tensorboard/`` (when installed),
``checkpoints/step_XXXXXXX.pt`` (training state, official ``"model"`` key) and ``model.pt`` (weights
only, official format) at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from ..checkpoint_files import save_checkpoint
from .clip_forward import ClipForward
from .clips import Clip, ClipSampler, ClipSpec
from .config import TrainConfig
from .config_file import config_to_dict
from .features import ClipEncoder, TrainingFeatureCache
from .logs import RunLog
from .optim import apply_freeze, build_optimizer, clip_gradients, lr_factor, set_lr
from .setup import amp_context, build_data, build_training_model, init_distributed
from .state import load_training_state, save_training_state, set_rng_state
from .validate import validate

__all__ = ["StepReport", "TrainResult", "Trainer"]


@dataclass(frozen=True)
class StepReport:
    """What one optimizer step did (losses averaged over processes)."""

    step: int
    total_steps: int
    loss: float
    terms: dict[str, float]
    lr: float
    grad_norm: float
    seconds: float
    frames: int


@dataclass
class TrainResult:
    """A finished run: per-step losses, validations (step, figures) and the files written."""

    losses: list[float] = field(default_factory=list)
    validations: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    steps_done: int = 0
    stopped_early: bool = False
    checkpoint: Path | None = None
    weights: Path | None = None


class Trainer:
    """A training run of ``cfg`` writing to ``out_dir`` (see the module docstring).

    resume: a training checkpoint to continue from, or ``"last"`` for the newest in ``out_dir``.
    progress: called after every step with a :class:`StepReport` (the CLI's progress bar).
    """

    def __init__(
        self,
        cfg: TrainConfig,
        out_dir: str | Path,
        resume: str | Path | None = None,
        progress: Callable[[StepReport], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.out_dir = Path(out_dir)
        self.progress = progress
        t = cfg.train
        if t.threads is not None:
            torch.set_num_threads(t.threads)
        self.sources, self.val_set = build_data(cfg)  # data errors surface before the model is built
        self.dist, self.device = init_distributed(t.device)
        self.model = build_training_model(cfg, self.device)
        apply_freeze(self.model, t.freeze)
        trainable_encoder = any(p.requires_grad for p in self.model.image_encoder.parameters())
        cache = TrainingFeatureCache(t.cache_mb * 2**20) if t.cache_features else None
        self.sampler = ClipSampler(
            self.sources,
            cfg.model.image_size,
            cfg.data.clip_frames,
            cfg.data.max_objects,
            cfg.data.augment,
            variants=t.cache_variants if cache is not None else None,
            seed=t.seed,
        )
        features = ClipEncoder(
            self.model, self._images_for, trainable_encoder, cache, t.activation_checkpointing
        )
        self.forward = ClipForward(self.model, features, cfg.prompts, cfg.loss, t.activation_checkpointing)
        self.module: torch.nn.Module = self.forward
        if self.dist.enabled:
            # device_ids None: the module already sits on this process's one device, and its inputs
            # (clips, a numpy generator) are not to be moved or copied by DDP
            self.module = DistributedDataParallel(self.forward, device_ids=None, find_unused_parameters=True)
        self.optimizer = build_optimizer(self.model, cfg.optim)
        self.step = 0
        # the schedule's horizon; a wall-clock-budgeted run may set it once the step time is known
        self.total_steps = t.steps
        if resume is not None:
            self._resume(resume)
        self.log = RunLog(self.out_dir, t.tensorboard, self.dist.is_main, resume_step=self.step)
        self._window: list[StepReport] = []
        if self.dist.is_main:
            import yaml

            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.yaml").write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))

    # ------------------------------------------------------------------ steps
    def _images_for(self, clip: Clip, positions: list[int]) -> torch.Tensor:
        if clip.images is not None:
            return clip.images[positions]
        return self.sampler.frame_images(clip.spec, [clip.spec.frames[i] for i in positions])

    def _seed_step(self, step: int) -> np.random.Generator:
        rng = np.random.default_rng([self.cfg.train.seed, self.dist.rank, step])
        torch.manual_seed(
            int(np.random.default_rng([self.cfg.train.seed, self.dist.rank, step, 1]).integers(2**62))
        )
        return rng

    def train_step(self) -> StepReport:
        """One optimizer step (``self.step`` advances by one); a train.csv row every ``log_every``."""
        t = self.cfg.train
        start = time.perf_counter()
        rng = self._seed_step(self.step)
        need_images = self.forward.features.cache is None
        clips = [self.sampler.sample(rng, with_images=need_images) for _ in range(t.clips_per_step)]
        factor = lr_factor(self.step, self.total_steps, self.cfg.optim)
        set_lr(self.optimizer, factor)
        self.optimizer.zero_grad(set_to_none=True)
        self.model.train()
        with amp_context(t.amp, self.device):
            out = self.module(clips, rng)
        out.loss.backward()
        grad_norm = clip_gradients(self.optimizer, self.cfg.optim.grad_clip)
        self.optimizer.step()
        terms = out.terms.as_floats()
        names = list(terms)
        values = self.dist.mean([float(out.loss.detach()), *terms.values()])
        self.step += 1
        report = StepReport(
            step=self.step,
            total_steps=self.total_steps,
            loss=values[0],
            terms=dict(zip(names, values[1:])),
            lr=self.cfg.optim.lr * factor,
            grad_norm=grad_norm,
            seconds=time.perf_counter() - start,
            frames=out.frames * self.dist.world_size,
        )
        self._window.append(report)
        if self.step % t.log_every == 0:
            self.flush_log()
        if self.progress is not None:
            self.progress(report)
        return report

    def prefill_cache(self) -> int:
        """Encode every training frame in every cached augmentation variant now (until the cache is
        full) instead of on first use; returns the number of frames encoded (0 without a cache)."""
        feats = self.forward.features
        if feats.cache is None:
            return 0
        done = 0
        for s, src in enumerate(self.sources):
            for i, item in enumerate(src.items):
                for v in range(self.cfg.train.cache_variants):
                    aug = self.sampler.variant_params(s, i, v)
                    for start in range(0, item.num_frames, 8):
                        frames = tuple(range(start, min(start + 8, item.num_frames)))
                        spec = ClipSpec(s, i, frames, item.object_ids[:1], aug, v)
                        feats(Clip(spec, torch.zeros(len(frames), 1, 1, 1, dtype=torch.bool)))
                        done += len(frames)
                        if feats.cache.nbytes + feats.cache.entry_bytes > feats.cache.capacity:
                            return done
        return done

    # ------------------------------------------------------------------ run
    def run(self, max_steps: int | None = None) -> TrainResult:
        """Train until ``total_steps`` (``train.steps``; or ``max_steps`` more steps, or the time limit),
        validating and checkpointing on schedule and at the end."""
        t = self.cfg.train
        result = TrainResult()
        end = self.total_steps if max_steps is None else min(self.total_steps, self.step + max_steps)
        start = time.perf_counter()
        limit = None if t.time_limit_min is None else t.time_limit_min * 60
        while self.step < end:
            result.losses.append(self.train_step().loss)
            if t.val_every and self.step % t.val_every == 0 and self.step < end:
                result.validations.append((self.step, self.validate()))
            if t.ckpt_every and self.step % t.ckpt_every == 0 and self.step < end:
                result.checkpoint = self.save()
            if self.dist.any(limit is not None and time.perf_counter() - start > limit):
                result.stopped_early = self.step < end
                break
        self.flush_log()
        result.steps_done = self.step
        if self.val_set is not None and (not result.validations or result.validations[-1][0] != self.step):
            result.validations.append((self.step, self.validate()))
        result.checkpoint = self.save()
        if self.dist.is_main:
            result.weights = save_checkpoint(self.model, self.out_dir / "model.pt")
        self.dist.barrier()
        self.log.close()
        return result

    def flush_log(self) -> None:
        """Write the steps not logged yet as one train.csv row (their means)."""
        if self._window:
            self._log(self._window)
            self._window = []

    def _log(self, window: list[StepReport]) -> None:
        n = len(window)
        seconds = sum(r.seconds for r in window)
        row = {"loss": sum(r.loss for r in window) / n}
        for key in window[0].terms:
            row[key] = sum(r.terms[key] for r in window) / n
        row.update(
            lr=window[-1].lr,
            grad_norm=sum(r.grad_norm for r in window) / n,
            clips_per_s=n * self.cfg.train.clips_per_step * self.dist.world_size / max(seconds, 1e-9),
            frames_per_s=sum(r.frames for r in window) / max(seconds, 1e-9),
        )
        self.log.train(window[-1].step, row)

    def validate(self) -> dict[str, float]:
        """Held-out J&F now (computed on rank 0, the others wait); {} without a validation set."""
        if self.val_set is None:
            return {}
        figures: dict[str, float] = {}
        if self.dist.is_main:
            work = self.out_dir / "validation"
            figures = validate(self.model, self.val_set, work, self.cfg.data.val_protocol)
            self.log.val(self.step, figures)
        self.dist.barrier()
        return figures

    # ------------------------------------------------------------------ checkpoints
    def save(self) -> Path:
        """Write ``checkpoints/step_<step>.pt`` (rank 0) and keep the newest ``keep_checkpoints``."""
        folder = self.out_dir / "checkpoints"
        path = folder / f"step_{self.step:07d}.pt"
        if self.dist.is_main:
            extra = {"total_steps": self.total_steps}
            save_training_state(path, self.model, self.optimizer, self.step, config_to_dict(self.cfg), extra)
            for old in sorted(folder.glob("step_*.pt"))[: -self.cfg.train.keep_checkpoints]:
                old.unlink()
        self.dist.barrier()
        return path

    def _resume(self, resume: str | Path) -> None:
        path = Path(resume)
        if str(resume) == "last":
            found = sorted((self.out_dir / "checkpoints").glob("step_*.pt"))
            if not found:
                raise ValueError(f"--resume last: no checkpoints/step_*.pt in {self.out_dir}")
            path = found[-1]
        state = load_training_state(path)
        self.model.load_state_dict(state["model"], strict=True)
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except ValueError as exc:
            raise ValueError(
                f"{path}: its optimizer state does not fit this config ({exc}); resume with the config "
                "it was saved with (train.freeze and optim decide the parameter groups)"
            ) from None
        self.step = int(state["step"])
        self.total_steps = max(int(state.get("total_steps", self.total_steps)), self.cfg.train.steps)
        set_rng_state(state["rng"])
        if self.step >= self.total_steps:
            raise ValueError(
                f"{path} is at step {self.step}, the end of its run; raise train.steps to train further"
            )
