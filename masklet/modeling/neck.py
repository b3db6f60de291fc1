"""FPN neck and the image encoder (the preset's trunk + neck, see :mod:`.families`).

The neck projects every trunk stage to ``d_model`` channels with a 1x1 convolution, adds nearest-upsampled
coarser features into the levels listed in ``fpn_top_down_levels`` (the two coarsest, officially), and
attaches a fixed sine position encoding to every level. Parameter names follow the official checkpoints
(``image_encoder.neck.convs.{i}.conv``).
"""

from __future__ import annotations

import torch
from torch import nn

from masklet.modeling.hiera import linear
from masklet.modeling.position import PositionEmbeddingSine
from masklet.presets import ModelConfig


class _Lateral(nn.Module):
    """Holds one level's 1x1 convolution under the checkpoint name ``conv``."""

    def __init__(self, in_channels: int, d_model: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, d_model, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, d_model, H, W), computed as a matmul over channels-last rows."""
        w = self.conv.weight
        y = linear(x.permute(0, 2, 3, 1), w.view(w.shape[0], w.shape[1]), self.conv.bias)
        return y.permute(0, 3, 1, 2)


def _upsample2x_add(lateral: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
    """lateral (B, C, 2H, 2W) + nearest 2x upsampling of coarse (B, C, H, W), without materialising it."""
    b, c, h, w = coarse.shape
    lat = lateral.permute(0, 2, 3, 1).reshape(b, h, 2, w, 2, c)
    out = lat + coarse.permute(0, 2, 3, 1)[:, :, None, :, None, :]
    return out.reshape(b, 2 * h, 2 * w, c).permute(0, 3, 1, 2)


class FpnNeck(nn.Module):
    """xs: trunk outputs, highest resolution first, channels ``reversed(backbone_channel_list)``.

    Returns (features, position encodings): two lists of (B, d_model, H_i, W_i) tensors in the order of
    ``xs``, both in the features' dtype. Features are channels-last in memory (``x.flatten(2)`` is then
    free); position encodings are broadcast views of a cached constant, to be read, not written.
    """

    def __init__(
        self,
        backbone_channel_list: tuple[int, ...],
        d_model: int = 256,
        fpn_top_down_levels: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        self.backbone_channel_list = tuple(backbone_channel_list)
        self.d_model = d_model
        # convs[0] serves the lowest resolution (the official order)
        self.convs = nn.ModuleList(_Lateral(c, d_model) for c in self.backbone_channel_list)
        n = len(self.convs)
        self.fpn_top_down_levels = tuple(range(n) if fpn_top_down_levels is None else fpn_top_down_levels)
        self.position_encoding = PositionEmbeddingSine(d_model)
        self._pos_cast: dict[tuple, torch.Tensor] = {}

    def _position(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        if x.dtype == torch.float32:
            return self.position_encoding(x)
        key = (h, w, x.device, x.dtype)
        if key not in self._pos_cast:  # a constant: cast once, not on every image
            self._pos_cast[key] = self.position_encoding.encoding(h, w, x.device).to(x.dtype)
        return self._pos_cast[key].unsqueeze(0).expand(b, -1, -1, -1)

    def forward(self, xs: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        n = len(self.convs)
        if len(xs) != n:
            raise ValueError(f"the neck expects {n} feature levels, got {len(xs)}")
        feats: list[torch.Tensor] = [xs[0]] * n
        prev = None
        for i in range(n - 1, -1, -1):  # coarse to fine, so each level can take the coarser one
            lateral = self.convs[n - 1 - i](xs[i])
            if i in self.fpn_top_down_levels and prev is not None:
                prev = _upsample2x_add(lateral, prev)
            else:
                prev = lateral
            feats[i] = prev
        return feats, [self._position(f) for f in feats]


class ImageEncoder(nn.Module):
    """image (B, 3, S, S) float, normalised, S a multiple of 32 -> (features, position encodings).

    Both are lists of ``4 - cfg.scalp`` tensors (3 officially), highest resolution first, each
    (B, d_model, S/4 / 2^i, S/4 / 2^i): at S = 1024, 256x256, 128x128 and 64x64 with 256 channels
    (a plain-ViT trunk gives one level, the stride-16 one),
    in the input's dtype (float32, or bfloat16 for a module converted with ``.to(torch.bfloat16)``).
    See :class:`FpnNeck` for their memory layout.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        from masklet.modeling.families import build_neck, build_trunk  # it imports this module

        self.trunk = build_trunk(cfg)
        self.neck = build_neck(cfg)
        self.scalp = cfg.scalp

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        feats, pos = self.neck(self.trunk(x))
        if self.scalp > 0:
            feats, pos = feats[: -self.scalp], pos[: -self.scalp]
        return feats, pos
