"""The training forward pass: a clip rolled out with prompts and memory exactly as inference runs it.

For the N objects of a clip (one batch), as ``VideoPredictor`` does after prompts were added and
``propagate_in_video`` is called:

1. prompted frames, first and without memory (they are "initial" frames): a mask prompt becomes the
   frame's output (:meth:`SAM2Model.mask_as_output`); a click or box is decoded on the frame's
   features plus the no-memory embedding, then each corrective click is added to the frame's points and
   decoded again with the previous low-resolution logits as mask input (clamped to +-32), as
   ``add_new_points_or_box(clear_old_points=False)`` does. Their memories are encoded from the final
   mask, binarised (the predictor's preflight step);
2. the other frames in order, each conditioned on the memories and object pointers that
   :class:`~masklet.inference.memory_bank.MemoryBank` selects (the bank the predictor builds for the
   model), decoded without prompts, the mask with the highest predicted IoU chosen, and encoded into a
   memory from its sigmoid.

Gradients flow through everything (memories and pointers are not detached), except the corrective
clicks' mask inputs, which are observations of the previous step. Each decoder output is a
supervised step (:mod:`.losses`); mask prompts, which output the ground truth itself, are not.

One difference from inference, deliberately: the loss sees the decoder's logits before absent objects'
masks are replaced by ``NO_OBJECT_SCORE`` (the memory path does use the replaced masks), so a wrongly
"absent" object still gets a mask gradient. Output hole filling (``fill_hole_area``) is not applied.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..inference.memory_bank import MemoryBank, MemorySelection
from ..inference.tracking_step import TrackingStep
from ..modeling.sam2 import ImageFeatures, SAM2Model
from .clips import Clip
from .config import LossConfig, PromptConfig
from .features import ClipEncoder
from .losses import LossTerms, step_loss
from .prompts import PromptPlan, add_error_clicks, initial_points, plan_prompts

__all__ = ["ClipForward", "ClipLoss", "ClipRollout", "DecoderStep", "inference_memory_bank"]


def inference_memory_bank(model: SAM2Model) -> MemoryBank:
    """The memory bank ``VideoPredictor`` builds for ``model`` by default (the official selection)."""
    return MemoryBank.official(model.cfg)


@dataclass
class Memory:
    """One frame's stored output as the memory bank reads it (batched over the clip's objects)."""

    maskmem_features: torch.Tensor  # (N, 64, h, w)
    obj_ptr: torch.Tensor  # (N, 256)
    low_res_masks: torch.Tensor  # (N, 1, S/4, S/4) chosen logits


@dataclass
class DecoderStep:
    """A supervised decoder output on ``frame``: masks (N, C, S/4, S/4) raw logits, iou (N, C),
    object_score (N, 1); ``points``: the prompt (coords (N, K, 2), labels (N, K)), None on tracked
    frames."""

    frame: int
    masks: torch.Tensor
    iou: torch.Tensor
    object_score: torch.Tensor
    points: tuple[np.ndarray, np.ndarray] | None = None


class ClipRollout:
    """Runs one clip (see the module docstring) through :class:`~masklet.inference.tracking_step.
    TrackingStep`, the step the predictors run. ``checkpointing`` recomputes each tracked frame in the
    backward pass instead of keeping its activations."""

    def __init__(self, model: SAM2Model, prompts: PromptConfig, checkpointing: bool = False) -> None:
        self.model = model
        self.prompts = prompts
        self.bank = inference_memory_bank(model)
        self.step = TrackingStep(model)
        self.checkpointing = checkpointing

    def run(
        self, feats: list[ImageFeatures], gt: torch.Tensor, plan: PromptPlan, rng: np.random.Generator
    ) -> tuple[list[DecoderStep], dict[int, Memory]]:
        """feats: per-frame features (batch 1); gt: (T, N, S, S) bool. Returns the supervised decoder
        steps in execution order and every frame's output (frame index -> :class:`Memory`)."""
        cond: dict[int, Memory] = {}
        steps: list[DecoderStep] = []
        n = gt.shape[1]
        for t in plan.frames:
            cond[t] = self._prompted(feats[t].expand(n), gt[t], plan, rng, steps, t)
        non_cond: dict[int, Memory] = {}
        for t in range(gt.shape[0]):
            if t in cond:
                continue
            sel = self.bank.select(t, cond, non_cond, False, gt.shape[0])
            f = feats[t].expand(n)
            if self.checkpointing and torch.is_grad_enabled():
                out = checkpoint(self._track, f, sel, use_reentrant=False)
            else:
                out = self._track(f, sel)
            decoded, memory = out
            steps.append(DecoderStep(t, decoded.low_res_masks, decoded.iou, decoded.object_score))
            non_cond[t] = memory
        return steps, {**cond, **non_cond}

    def _track(self, f: ImageFeatures, sel: MemorySelection[Memory]):
        """A frame without prompts: the tracking step with memory encoding."""
        out = self.step(f, memories=[sel], encode_memory=True)
        res = out.result
        return out.decoded, Memory(out.memory, res.obj_ptr, res.low_res_masks)

    def _prompted(self, f: ImageFeatures, gt: torch.Tensor, plan: PromptPlan, rng, steps, t: int) -> Memory:
        """A prompted frame: (N, S, S) bool ground truth -> its output, recording decoder steps."""
        if plan.kind == "mask":
            res = self.step(f, mask=gt[:, None].float()).result
        else:
            gt_np = gt.cpu().numpy()
            coords, labels = initial_points(plan.kind, gt_np, rng, self.prompts)
            prev = None
            device = f.image_embed.device
            for it in range(plan.corrections + 1):
                if it:
                    pred = (res.high_res_masks[:, 0] > 0).cpu().numpy()
                    coords, labels = add_error_clicks(
                        coords, labels, pred, gt_np, rng, self.prompts.correction_sampling
                    )
                    prev = res.low_res_masks.detach().clamp(-32.0, 32.0)
                points = (torch.from_numpy(coords).to(device), torch.from_numpy(labels).to(device))
                out = self.step(f, points=points, prev_logits=prev)
                d = out.decoded
                steps.append(DecoderStep(t, d.low_res_masks, d.iou, d.object_score, (coords, labels)))
                res = out.result
        mem = self.step.prompt_memory(f, res.low_res_masks, res.object_score)
        return Memory(mem, res.obj_ptr, res.low_res_masks)


@dataclass
class ClipLoss:
    """The loss of a batch of clips: ``loss`` (back-propagated), its weighted ``terms``, and counts."""

    loss: torch.Tensor
    terms: LossTerms
    frames: int
    objects: int
    steps: int


class ClipForward(nn.Module):
    """Features + prompt plan + rollout + loss for a list of clips, as one module call (so that
    ``DistributedDataParallel`` can wrap it). ``forward(clips, rng)`` -> :class:`ClipLoss`.

    A clip's loss sums its decoder steps' losses per frame and averages over its supervised frames;
    the batch loss averages the clips.
    """

    def __init__(
        self,
        model: SAM2Model,
        features: ClipEncoder,
        prompts: PromptConfig,
        loss: LossConfig,
        checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.model = model
        self.features = features
        self.rollout = ClipRollout(model, prompts, checkpointing)
        self.prompts = prompts
        self.loss_cfg = loss

    def forward(self, clips: list[Clip], rng: np.random.Generator) -> ClipLoss:
        total: LossTerms | None = None
        frames = objects = count = 0
        for clip in clips:
            plan = plan_prompts(rng, clip.visible, self.prompts)
            feats = self.features(clip)
            gt = clip.masks.to(self.model.device)
            steps, _ = self.rollout.run(feats, gt, plan, rng)
            terms = self.clip_terms(steps, gt)
            total = terms if total is None else total + terms
            frames += gt.shape[0]
            objects += gt.shape[1]
            count += len(steps)
        assert total is not None, "ClipForward needs at least one clip"
        total = total.scaled(1.0 / len(clips))
        return ClipLoss(total.total, total, frames, objects, count)

    def clip_terms(self, steps: list[DecoderStep], gt: torch.Tensor) -> LossTerms:
        """Loss terms of one clip's steps against gt (T, N, S, S): summed per frame, mean over frames."""
        size = self.model.image_size
        total: LossTerms | None = None
        for s in steps:
            logits = F.interpolate(s.masks.float(), size=(size, size), mode="bilinear", align_corners=False)
            terms = step_loss(logits, s.iou, s.object_score, gt[s.frame][:, None], self.loss_cfg)
            total = terms if total is None else total + terms
        if total is None:
            raise ValueError(
                "a clip without any supervised decoder output; it needs a frame to track or a click"
            )
        return total.scaled(1.0 / len({s.frame for s in steps}))
