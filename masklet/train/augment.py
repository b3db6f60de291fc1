"""Clip augmentations: drawn once per clip, applied identically to every frame and mask of it.

Frames are first brought to the model's S x S input exactly as inference does (a bicubic 8-bit
resize of the whole frame, aspect ratio not kept), masks with an antialiased bilinear resize
thresholded at 0.5 (as a mask prompt is resized). The augmentation then works on that square:

* geometry: one affine warp (horizontal flip, zoom, rotation, shear, translation) with bilinear
  sampling; pixels that come from outside the frame are black (masks: background);
* colour: brightness, contrast, saturation and hue, in that order, on [0, 1] RGB.

With :func:`identity` nothing changes, so unaugmented training frames are the inference inputs bit
for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..io.preprocess import imagenet_normalize_
from .config import AugmentConfig

__all__ = ["AugParams", "augment_frames", "augment_masks", "draw_params", "identity"]


@dataclass(frozen=True)
class AugParams:
    """One clip's augmentation. Angles in degrees, translation as a fraction of the side, colour
    factors multiplicative (1 = unchanged), hue a shift in turns."""

    flip: bool = False
    scale: float = 1.0
    angle: float = 0.0
    shear: float = 0.0
    tx: float = 0.0
    ty: float = 0.0
    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0
    hue: float = 0.0

    @property
    def moves_pixels(self) -> bool:
        return (self.flip, self.scale, self.angle, self.shear, self.tx, self.ty) != (False, 1.0, 0, 0, 0, 0)

    @property
    def changes_colour(self) -> bool:
        return (self.brightness, self.contrast, self.saturation, self.hue) != (1.0, 1.0, 1.0, 0.0)


def identity() -> AugParams:
    return AugParams()


def draw_params(rng: np.random.Generator, cfg: AugmentConfig) -> AugParams:
    """Random parameters within ``cfg``'s ranges (the identity when augmentation is disabled)."""
    if not cfg.enabled:
        return identity()

    def sym(r: float) -> float:
        return float(rng.uniform(-r, r)) if r > 0 else 0.0

    lo, hi = cfg.scale
    return AugParams(
        flip=bool(rng.random() < cfg.hflip),
        scale=float(math.exp(rng.uniform(math.log(lo), math.log(hi)))) if hi > lo else float(lo),
        angle=sym(cfg.rotate),
        shear=sym(cfg.shear),
        tx=sym(cfg.translate),
        ty=sym(cfg.translate),
        brightness=1.0 + sym(cfg.brightness),
        contrast=1.0 + sym(cfg.contrast),
        saturation=1.0 + sym(cfg.saturation),
        hue=sym(cfg.hue),
    )


def _theta(p: AugParams) -> torch.Tensor:
    """(1, 2, 3) affine map from output to input coordinates in [-1, 1] (``F.affine_grid``'s theta)."""
    a, s = math.radians(p.angle), math.radians(p.shear)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    shear = np.array([[1.0, math.tan(s)], [0.0, 1.0]])
    flip = np.diag([-1.0 if p.flip else 1.0, 1.0])
    m = rot @ shear @ flip / p.scale
    theta = np.concatenate([m, [[2 * p.tx], [2 * p.ty]]], axis=1)
    return torch.tensor(theta, dtype=torch.float32)[None]


def _warp(x: torch.Tensor, p: AugParams) -> torch.Tensor:
    """(B, C, S, S) float -> the same warped by ``p`` (bilinear, zeros outside)."""
    theta = _theta(p).expand(x.shape[0], -1, -1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _gray(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def _colour(x: torch.Tensor, p: AugParams) -> torch.Tensor:
    """(T, 3, S, S) RGB in [0, 1] -> jittered, clamped to [0, 1]."""
    x = (x * p.brightness).clamp(0, 1)
    mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * p.contrast + mean).clamp(0, 1)
    g = _gray(x)
    x = ((x - g) * p.saturation + g).clamp(0, 1)
    if p.hue:
        # rotate the chroma plane of YIQ by the hue angle
        to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
        c, s = math.cos(2 * math.pi * p.hue), math.sin(2 * math.pi * p.hue)
        rot = torch.tensor([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
        m = torch.linalg.inv(to_yiq) @ rot @ to_yiq
        x = torch.einsum("ij,tjhw->tihw", m, x).clamp(0, 1)
    return x


def augment_frames(frames: list[np.ndarray], size: int, p: AugParams) -> torch.Tensor:
    """T (H, W, 3) uint8 RGB frames -> (T, 3, size, size) float32 model input (ImageNet-normalised)."""
    small = [
        np.asarray(Image.fromarray(np.ascontiguousarray(f)).resize((size, size), Image.BICUBIC))
        for f in frames
    ]
    x = torch.from_numpy(np.stack(small)).permute(0, 3, 1, 2).float().div_(255.0)
    if p.changes_colour:
        x = _colour(x, p)
    if p.moves_pixels:
        x = _warp(x, p)
    return imagenet_normalize_(x)


def augment_masks(masks: np.ndarray, size: int, p: AugParams) -> torch.Tensor:
    """(T, N, H, W) bool masks -> (T, N, size, size) bool, warped like the frames."""
    m = torch.from_numpy(np.ascontiguousarray(masks)).float()
    t, n = m.shape[:2]
    m = m.flatten(0, 1)[:, None]
    if m.shape[-2:] != (size, size):
        m = F.interpolate(m, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    m = (m >= 0.5).float()
    if p.moves_pixels:
        m = _warp(m, p)
    return (m[:, 0] >= 0.5).view(t, n, size, size)
