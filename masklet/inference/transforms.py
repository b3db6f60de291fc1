"""Prompt coordinate transforms and mask post-processing shared by the predictors.

The model sees a square S x S image made by stretching the input (no padding, aspect ratio not kept;
see :mod:`masklet.io.preprocess`); prompt coordinates follow the same stretch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..io.images import to_rgb_uint8
from ..io.preprocess import preprocess_image
from ..modeling.sam2 import SAM2Model
from .postprocess import fill_holes_and_sprinkles

__all__ = ["ImageTransforms", "to_model_coords"]


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


@dataclass(frozen=True)
class ImageTransforms:
    """The image predictor's input and output transforms (``ImagePredictor._transforms``, the object
    that code written for the official SAM2ImagePredictor reads under that name).

    resolution: the model's input side S; mask_threshold, max_hole_area, max_sprinkle_area: as in
    :class:`~masklet.inference.image.ImagePredictor` (areas in low-res mask pixels).
    """

    resolution: int
    mask_threshold: float = 0.0
    max_hole_area: float = 0.0
    max_sprinkle_area: float = 0.0

    def __call__(self, image) -> torch.Tensor:
        """(H, W, 3) uint8 RGB array or PIL image -> (3, S, S) float32 normalized model input (CPU)."""
        rgb = np.require(to_rgb_uint8(image), requirements="CW")
        return preprocess_image(rgb, self.resolution, "cpu", torch.float32)[0]

    def forward_batch(self, img_list) -> torch.Tensor:
        """A list of images -> (B, 3, S, S) float32."""
        return torch.stack([self(im) for im in img_list])

    def transform_coords(self, coords, normalize: bool = False, orig_hw=None) -> torch.Tensor:
        """(..., 2) x, y -> model-input pixels: from image pixels with ``normalize`` (``orig_hw`` (h, w)
        needed), else from relative [0, 1] coordinates."""
        if normalize and orig_hw is None:
            raise ValueError("transform_coords(normalize=True) needs orig_hw=(height, width) of the image")
        coords = torch.as_tensor(coords, dtype=torch.float32)
        return to_model_coords(coords, orig_hw, self.resolution, normalize=normalize)

    def transform_boxes(self, boxes, normalize: bool = False, orig_hw=None) -> torch.Tensor:
        """(B, 4) x0, y0, x1, y1 boxes -> (B, 2, 2) corners in model-input pixels."""
        return self.transform_coords(torch.as_tensor(boxes).reshape(-1, 2, 2), normalize, orig_hw)

    def postprocess_masks(self, masks: torch.Tensor, orig_hw) -> torch.Tensor:
        """(B, C, S/4, S/4) logits -> (B, C, H, W) float32 logits at ``orig_hw`` (h, w), after filling
        holes and removing sprinkles up to the configured areas."""
        masks = masks.float()
        if self.max_hole_area > 0 or self.max_sprinkle_area > 0:
            b, c = masks.shape[:2]
            flat = masks.reshape(b * c, 1, *masks.shape[-2:])
            flat = fill_holes_and_sprinkles(
                flat, self.mask_threshold, self.max_hole_area, self.max_sprinkle_area
            )
            masks = flat.view_as(masks)
        return SAM2Model.upscale_masks(masks, tuple(orig_hw))
