"""Simulated interactive prompts for training: what the annotator does on each clip.

Per clip (all its objects get the same kind of prompt, so their prompts batch):

1. the kind of the first prompt: the ground-truth mask, one positive click drawn uniformly inside the
   mask, or the mask's box with random jitter (:func:`choose_kind`, probabilities in
   :class:`~masklet.train.config.PromptConfig`);
2. which frames get it: the first frame always, plus up to ``max_prompted_frames - 1`` others where
   every object is visible (:func:`plan_prompts`);
3. for clicks and boxes, corrective clicks: each is drawn in the error region between the latest
   prediction and the ground truth, positive on a missed pixel and negative on a wrong one
   (:func:`error_click`).

Coordinates are pixel indices of the (S, S) model-resolution masks, x = column, y = row, which is the
model-input pixel frame the prompt encoder reads. All randomness comes from the numpy Generator given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..io.mask_geometry import gt_box, next_click
from .config import PromptConfig

__all__ = [
    "KINDS",
    "PromptPlan",
    "add_error_clicks",
    "choose_kind",
    "error_click",
    "initial_points",
    "jittered_box",
    "plan_prompts",
    "positive_click",
]

KINDS = ("mask", "click", "box")
BOX_LABELS = (2, 3)  # the prompt encoder's labels of a box's top-left and bottom-right corners


@dataclass(frozen=True)
class PromptPlan:
    """The prompts of one clip: ``kind`` (mask, click or box) given on ``frames`` (sorted, frame 0
    first), then ``corrections`` corrective clicks on each of those frames (0 for mask prompts)."""

    kind: str
    frames: tuple[int, ...]
    corrections: int


def choose_kind(rng: np.random.Generator, cfg: PromptConfig, single_frame: bool = False) -> str:
    """Draw mask / click / box with the configured probabilities.

    On one-frame clips (images) a mask prompt would hand the answer to the model, so the draw is
    between click and box in their relative proportions (click alone when both are 0).
    """
    probs = np.array([cfg.prob_mask, cfg.prob_click, cfg.prob_box], dtype=np.float64)
    if single_frame:
        probs[0] = 0.0
        if probs.sum() == 0:
            probs[1] = 1.0
    return KINDS[int(rng.choice(3, p=probs / probs.sum()))]


def plan_prompts(
    rng: np.random.Generator, visible: np.ndarray, cfg: PromptConfig, kind: str | None = None
) -> PromptPlan:
    """The prompts of a clip whose objects are ``visible`` (T, N) bool (all visible on frame 0).

    The number of prompted frames is uniform in 1..max_prompted_frames (at most T, or T - 1 for mask
    prompts so that a frame is left to track); extra prompted
    frames are drawn among frames 1..T-1 where every object is visible (a click or box needs the object),
    any frame for mask prompts.
    """
    visible = np.asarray(visible, dtype=bool)
    if visible.ndim != 2 or visible.shape[0] < 1:
        raise ValueError(f"visible must be (T, N) with T >= 1, got shape {visible.shape}")
    if not visible[0].all():
        raise ValueError("every object of a clip must be visible on its first frame (frame 0)")
    t = visible.shape[0]
    kind = kind or choose_kind(rng, cfg, single_frame=t == 1)
    # a mask prompt outputs the ground truth, so a clip of masks keeps one frame to track
    limit = min(cfg.max_prompted_frames, t if kind != "mask" else max(t - 1, 1))
    count = int(rng.integers(1, limit + 1))
    frames = [0]
    if count > 1:
        ok = np.arange(1, t) if kind == "mask" else np.flatnonzero(visible[1:].all(axis=1)) + 1
        if ok.size:
            extra = rng.choice(ok, size=min(count - 1, ok.size), replace=False)
            frames += sorted(int(f) for f in extra)
    corrections = 0 if kind == "mask" else cfg.correction_iters
    return PromptPlan(kind, tuple(frames), corrections)


def positive_click(gt: np.ndarray, rng: np.random.Generator) -> tuple[int, int]:
    """``(x, y)`` of a pixel drawn uniformly inside the (H, W) mask ``gt`` (ValueError if empty)."""
    flat = np.flatnonzero(np.asarray(gt, dtype=bool))
    if flat.size == 0:
        raise ValueError("cannot click inside an empty mask: the object is not visible on this frame")
    y, x = divmod(int(flat[rng.integers(flat.size)]), gt.shape[1])
    return x, y


def jittered_box(gt: np.ndarray, rng: np.random.Generator, noise: float, max_noise_px: float) -> np.ndarray:
    """``[x0, y0, x1, y1]`` float32: the tight box of ``gt`` with each side moved uniformly by up to
    ``noise`` times the box's width (x) or height (y), and at most ``max_noise_px`` pixels, clipped to
    the image (the SAM 2 training box noise)."""
    box = gt_box(gt, jitter=noise, rng=rng, max_jitter_px=max_noise_px) if noise > 0 else gt_box(gt)
    return box.astype(np.float32)


def error_click(
    pred: np.ndarray, gt: np.ndarray, rng: np.random.Generator, sampling: str = "uniform"
) -> tuple[int, int, int]:
    """``(x, y, label)``: a corrective click for the (H, W) bool prediction ``pred`` of mask ``gt``.

    ``uniform``: a pixel drawn uniformly from the error region (prediction XOR ground truth), labelled
    1 where the ground truth is the object (a missed pixel) and 0 where it is not (a false positive).
    ``center``: the evaluation protocol's click at the center of the larger error region
    (:func:`masklet.io.mask_geometry.next_click`). Without any error, a positive click inside ``gt``
    (a negative one outside when ``gt`` is empty) keeps the prompt count the same for every object.
    """
    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    if pred.shape != gt.shape:
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} must have the same shape")
    if sampling == "center":
        click = next_click(pred, gt)
        if click is not None:
            return click
    elif sampling != "uniform":
        raise ValueError(f"sampling must be 'uniform' or 'center', got {sampling!r}")
    else:
        flat = np.flatnonzero(pred != gt)
        if flat.size:
            idx = int(flat[rng.integers(flat.size)])
            y, x = divmod(idx, gt.shape[1])
            return x, y, int(gt.flat[idx])
    if gt.any():
        return (*positive_click(gt, rng), 1)
    y, x = divmod(int(rng.integers(gt.size)), gt.shape[1])
    return x, y, 0


def initial_points(
    kind: str, gts: np.ndarray, rng: np.random.Generator, cfg: PromptConfig
) -> tuple[np.ndarray, np.ndarray]:
    """The first click or box of N objects: ``gts`` (N, S, S) bool, all non-empty.

    Returns (coords (N, K, 2) float32 x, y in model pixels, labels (N, K) int32): K = 1 with label 1
    for a click, K = 2 with labels 2, 3 for a box.
    """
    if kind == "click":
        coords = np.array([[positive_click(g, rng)] for g in gts], dtype=np.float32)
        return coords, np.ones((len(gts), 1), dtype=np.int32)
    if kind == "box":
        max_px = cfg.box_noise_max * max(gts.shape[-2:])
        boxes = np.stack([jittered_box(g, rng, cfg.box_noise, max_px) for g in gts])
        return boxes.reshape(-1, 2, 2), np.tile(np.array(BOX_LABELS, dtype=np.int32), (len(gts), 1))
    raise ValueError(f"initial_points makes click or box prompts, not {kind!r}")


def add_error_clicks(
    coords: np.ndarray,
    labels: np.ndarray,
    preds: np.ndarray,
    gts: np.ndarray,
    rng: np.random.Generator,
    sampling: str = "uniform",
) -> tuple[np.ndarray, np.ndarray]:
    """Append one corrective click per object: preds / gts (N, S, S) bool -> (N, K+1, 2), (N, K+1)."""
    clicks = [error_click(p, g, rng, sampling) for p, g in zip(preds, gts)]
    new_c = np.array([[[x, y]] for x, y, _ in clicks], dtype=np.float32)
    new_l = np.array([[lab] for _, _, lab in clicks], dtype=np.int32)
    return np.concatenate([coords, new_c], axis=1), np.concatenate([labels, new_l], axis=1)
