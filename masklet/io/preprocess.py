"""Model inputs: an RGB image or video frame as the normalized square tensor the image encoder reads.

The model sees a square S x S image (S = ``cfg.image_size``, 1024 officially) made by stretching the
input (no padding, aspect ratio not kept), scaled to [0, 1] and normalized with the ImageNet mean/std.
Still images and video frames are resized differently, each as the official pipeline does, so outputs
match the reference for either.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "imagenet_normalize_",
    "preprocess_image",
    "preprocess_video_frame",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_normalize_(t: torch.Tensor) -> torch.Tensor:
    """(B, 3, S, S) float RGB in [0, 1] -> normalized with the ImageNet mean/std, in place; returns ``t``."""
    mean = torch.tensor(IMAGENET_MEAN, device=t.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=t.device).view(1, 3, 1, 1)
    return t.sub_(mean).div_(std)


def preprocess_image(
    image: np.ndarray | torch.Tensor, size: int, device: torch.device | str, dtype: torch.dtype
) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (1, 3, size, size) normalized tensor on ``device`` in ``dtype``.

    Resizing is bilinear with antialiasing (the reference's image preprocessing), done in float32.
    """
    t = torch.as_tensor(np.ascontiguousarray(image)) if isinstance(image, np.ndarray) else image
    t = t.to(device=device, non_blocking=True).permute(2, 0, 1)[None].float().div_(255.0)
    t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return imagenet_normalize_(t).to(dtype)


def preprocess_video_frame(frame: np.ndarray, size: int, device: torch.device | str) -> torch.Tensor:
    """(H, W, 3) uint8 RGB video frame -> (1, 3, size, size) normalized float32 tensor on ``device``.

    Video frames are resized as the official video loader does: bicubic in 8 bits (PIL), then
    scaled to [0, 1] and normalized. (Still images use :func:`preprocess_image`, the image
    predictor's float resize.) Tracking outputs therefore match the reference frame for frame.
    """
    from PIL import Image

    small = np.array(Image.fromarray(np.ascontiguousarray(frame)).resize((size, size), Image.BICUBIC))
    t = torch.from_numpy(small).to(device).permute(2, 0, 1)[None].float().div_(255.0)
    return imagenet_normalize_(t)
