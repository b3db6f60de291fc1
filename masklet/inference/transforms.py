"""Prompt coordinate transforms shared by the predictors.

The model sees a square S x S image made by stretching the input (no padding, aspect ratio not kept;
see :mod:`masklet.io.preprocess`); prompt coordinates follow the same stretch.
"""

from __future__ import annotations

import torch

__all__ = ["to_model_coords"]


def to_model_coords(
    coords: torch.Tensor, orig_hw: tuple[int, int], size: int, normalize: bool
) -> torch.Tensor:
    """(..., 2) x,y coordinates -> model-input pixels (0..size).

    With ``normalize`` the input is in original-image pixels; otherwise it is already relative (0..1).
    """
    if normalize:
        h, w = orig_hw
        coords = coords / torch.tensor([w, h], dtype=coords.dtype, device=coords.device)
    return coords * size
