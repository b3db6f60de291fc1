"""Which preset an EdgeTAM or EfficientTAM checkpoint is for, from its keys and shapes.

SAM 2 files are told apart in :func:`masklet.checkpoints.infer_preset` (Hiera width and depth,
2.1-only keys). EdgeTAM files hold ``spatial_perceiver.*``; EfficientTAM files a plain ViT trunk
(``image_encoder.trunk.patch_embed.proj.weight``) whose width gives the size. The EfficientTAM
releases of one size share their tensors' names and shapes (the 512 px models and the two efficient
cross-attention variants differ only in settings), so the file name, when it is a released one
(``efficienttam_s_512x512.pt``), picks among them; any other name gets the 1024 px plain model.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from masklet.presets import PRESETS, ViTConfig

PERCEIVER_KEY = "spatial_perceiver.latents"
VIT_PATCH_KEY = "image_encoder.trunk.patch_embed.proj.weight"


def efficient_family_preset(sd: Mapping[str, torch.Tensor], file_name: str | None = None) -> str | None:
    """The EdgeTAM / EfficientTAM preset ``sd`` fits, or None when it is neither family's layout."""
    if PERCEIVER_KEY in sd:
        return "edgetam"
    patch = sd.get(VIT_PATCH_KEY)
    if patch is None or patch.ndim != 4:
        return None
    sizes = [cfg for cfg in PRESETS.values() if isinstance(cfg.trunk, ViTConfig)]
    same = [cfg.name for cfg in sizes if cfg.trunk.embed_dim == patch.shape[0]]
    if not same:
        return None
    stem = Path(file_name).stem if file_name else ""
    return stem if stem in same else min(same, key=len)


def weight_layout(name: str) -> str:
    """The preset whose checkpoint layout ``name`` shares (itself, or the plain EfficientTAM model of
    its size): presets of one layout load each other's files."""
    cfg = PRESETS[name]
    if isinstance(cfg.trunk, ViTConfig):
        same = [c.name for c in PRESETS.values() if c.trunk == cfg.trunk]
        return min(same, key=len)
    return name
