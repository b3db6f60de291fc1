"""SAM 2's training losses for one decoder output against the ground truth.

Per object and candidate mask: a sigmoid focal loss and a dice loss on the mask logits, an L1 loss
between the predicted IoU and the IoU the mask actually has, and a binary cross-entropy on the
object-score (presence) logit. With several candidate masks (multimask output) the mask losses count
only for the candidate with the lowest weighted focal + dice loss, while every candidate's IoU
prediction is supervised. Where the object is absent, only the object-score loss applies.

Shapes: N objects, C candidate masks, (H, W) pixels; targets are {0, 1} floats of the logits' size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .config import LossConfig

__all__ = [
    "LossTerms",
    "dice_loss",
    "focal_loss",
    "iou_loss",
    "mask_iou",
    "object_score_loss",
    "step_loss",
]


def focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """Sigmoid focal loss (Lin et al. 2017) averaged over pixels: (N, C, H, W) -> (N, C).

    Per pixel ``-alpha_t (1 - p_t)^gamma log(p_t)`` with ``p_t`` the predicted probability of the true
    class and ``alpha_t = alpha`` on object pixels, ``1 - alpha`` elsewhere (alpha < 0: no weighting).
    """
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return loss.flatten(2).mean(-1)


def dice_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Soft dice loss ``1 - (2 sum(p t) + 1) / (sum(p) + sum(t) + 1)``: (N, C, H, W) -> (N, C)."""
    p = torch.sigmoid(logits).flatten(2)
    t = targets.flatten(2)
    return 1 - (2 * (p * t).sum(-1) + 1) / (p.sum(-1) + t.sum(-1) + 1)


def mask_iou(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """IoU of the masks ``logits > 0`` with the targets: (N, C, H, W) -> (N, C) in [0, 1] (0 when both
    are empty). Not differentiable: it is the target of the IoU head."""
    pred = (logits.detach() > 0).flatten(2)
    t = targets.flatten(2) > 0.5
    inter = (pred & t).sum(-1).float()
    union = (pred | t).sum(-1).float()
    return inter / union.clamp(min=1)


def iou_loss(pred_iou: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """L1 between the predicted IoU (N, C) and the actual IoU of each candidate mask: -> (N, C)."""
    return (pred_iou.float() - mask_iou(logits, targets)).abs()


def object_score_loss(score_logits: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the presence logit (N, 1) against ``present`` (N,) bool: -> (N,)."""
    return F.binary_cross_entropy_with_logits(
        score_logits.float().view(-1), present.float().view(-1), reduction="none"
    )


@dataclass
class LossTerms:
    """Weighted loss terms of one decoder output, each a 0-d tensor averaged over the objects.
    ``total`` is their sum (what is back-propagated)."""

    focal: torch.Tensor
    dice: torch.Tensor
    iou: torch.Tensor
    object_score: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        return self.focal + self.dice + self.iou + self.object_score

    def __add__(self, other: LossTerms) -> LossTerms:
        return LossTerms(*(a + b for a, b in zip(self.as_tuple(), other.as_tuple())))

    def scaled(self, factor: float) -> LossTerms:
        return LossTerms(*(a * factor for a in self.as_tuple()))

    def as_tuple(self) -> tuple[torch.Tensor, ...]:
        return (self.focal, self.dice, self.iou, self.object_score)

    def as_floats(self) -> dict[str, float]:
        names = ("focal", "dice", "iou", "object_score")
        return {n: float(v.detach()) for n, v in zip(names, self.as_tuple())}


def step_loss(
    mask_logits: torch.Tensor,
    pred_iou: torch.Tensor,
    score_logits: torch.Tensor,
    targets: torch.Tensor,
    cfg: LossConfig,
) -> LossTerms:
    """Losses of one decoder output: mask_logits (N, C, H, W), pred_iou (N, C), score_logits (N, 1)
    against targets (N, 1, H, W) {0, 1} at the logits' resolution.

    Mask terms use the candidate with the lowest ``focal_w * focal + dice_w * dice`` (the only one
    when C = 1); the IoU term averages all candidates; mask and IoU terms count only for present
    objects (a non-empty target), the object-score term for all. Each term is a mean over the N objects.
    """
    logits = mask_logits.float()
    t = targets.float().expand_as(logits)
    present = targets.flatten(1).any(dim=1)
    weight = present.float()
    focal = focal_loss(logits, t, cfg.focal_alpha, cfg.focal_gamma)
    dice = dice_loss(logits, t)
    combined = cfg.focal * focal + cfg.dice * dice
    best = combined.detach().argmin(dim=1)
    rows = torch.arange(logits.shape[0], device=logits.device)
    n = logits.shape[0]
    iou = iou_loss(pred_iou, logits, t).mean(dim=1)
    score = object_score_loss(score_logits, present)
    return LossTerms(
        focal=cfg.focal * (focal[rows, best] * weight).sum() / n,
        dice=cfg.dice * (dice[rows, best] * weight).sum() / n,
        iou=cfg.iou * (iou * weight).sum() / n,
        object_score=cfg.object_score * score.sum() / n,
    )
