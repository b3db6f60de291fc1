"""Which boxes a preset is made of: the one place where the model families (SAM 2 / 2.1, EdgeTAM,
EfficientTAM) differ.

SAM 2's modules know nothing of the other families; each builder here returns SAM 2's box or the
family's own (a new file in this package) from the preset's config.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from torch import nn

from masklet.modeling.efficient_attention import PooledMemoryAttention
from masklet.modeling.hiera import Hiera
from masklet.modeling.latent_attention import LatentRoPEAttention
from masklet.modeling.neck import FpnNeck
from masklet.modeling.perceiver import SpatialPerceiver
from masklet.modeling.repvit import RepViT
from masklet.modeling.rope import RoPEAttention
from masklet.modeling.vit import ViT, ViTNeck
from masklet.presets import CROSS_ATTENTION_KINDS, ModelConfig, RepViTConfig, ViTConfig


def build_trunk(cfg: ModelConfig) -> nn.Module:
    """The image-encoder trunk: Hiera, RepViT (EdgeTAM) or a plain ViT (EfficientTAM)."""
    if isinstance(cfg.trunk, RepViTConfig):
        return RepViT(cfg.trunk)
    if isinstance(cfg.trunk, ViTConfig):
        return ViT(cfg.trunk)
    return Hiera(cfg.hiera)


def backbone_channel_list(cfg: ModelConfig) -> tuple[int, ...]:
    """The trunk's output widths, lowest resolution first (the neck's order)."""
    return (cfg.trunk or cfg.hiera).backbone_channel_list


def build_neck(cfg: ModelConfig) -> nn.Module:
    """SAM 2's FPN neck over a multi-stage trunk; the one-level ViT neck over a plain ViT."""
    if isinstance(cfg.trunk, ViTConfig):
        return ViTNeck(backbone_channel_list(cfg), cfg.d_model)
    return FpnNeck(backbone_channel_list(cfg), cfg.d_model, cfg.fpn_top_down_levels)


def build_perceiver(cfg: ModelConfig) -> SpatialPerceiver | None:
    """EdgeTAM's memory compressor, or None (memories attended to at full resolution)."""
    return None if cfg.perceiver is None else SpatialPerceiver(cfg.perceiver)


def cross_attention(cfg: ModelConfig) -> Callable[..., RoPEAttention]:
    """The memory cross-attention class (with its extra arguments bound) for ``cfg.cross_attention``."""
    kind = cfg.cross_attention
    if kind == "rope":
        return RoPEAttention
    if kind == "rope_latent":
        if cfg.perceiver is None:
            raise ValueError(f"{cfg.name}: cross_attention 'rope_latent' needs a perceiver config")
        p = cfg.perceiver
        return functools.partial(LatentRoPEAttention, num_plain=p.num_latents, grid=p.grid_2d)
    if kind in ("pooled_logit_bias", "pooled_key_bias"):
        return functools.partial(PooledMemoryAttention, key_bias=kind == "pooled_key_bias")
    raise ValueError(f"{cfg.name}: unknown cross_attention {kind!r}; expected one of {CROSS_ATTENTION_KINDS}")
