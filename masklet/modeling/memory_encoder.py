"""Memory encoder: turn a frame's image features and its predicted mask into a memory.

The mask (full stride-4 logits upsampled to image size, or a binary mask) is downsampled by 16 with
strided convolutions, added to a 1x1 projection of the frame's stride-16 image features, mixed by two
ConvNeXt blocks and projected to the narrow memory width (64). The memory's position encoding is the
fixed sine encoding of its grid.

Parameter names (``mask_downsampler.encoder.N``, ``fuser.layers.N.dwconv`` ...) follow the official
checkpoints.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from masklet.modeling.common import LayerNorm2d
from masklet.modeling.position import PositionEmbeddingSine


class MaskDownSampler(nn.Module):
    """Masks (B, 1, H, W) -> (B, embed_dim, H / total_stride, W / total_stride).

    Each stage is a strided conv that multiplies the channels by stride**2 (so the values per token
    stay constant), a per-token LayerNorm and a GELU; a final 1x1 conv projects to ``embed_dim``.
    With the official settings: 1 -> 4 -> 16 -> 64 -> 256 channels, stride 2 each, total stride 16.
    """

    def __init__(
        self,
        embed_dim: int = 256,
        kernel_size: int = 3,
        stride: int = 2,
        padding: int = 1,
        total_stride: int = 16,
    ) -> None:
        super().__init__()
        num_stages = round(math.log(total_stride) / math.log(stride))
        if stride**num_stages != total_stride:
            raise ValueError(f"total_stride ({total_stride}) must be a power of stride ({stride})")
        self.total_stride = total_stride
        layers: list[nn.Module] = []
        channels = 1
        for _ in range(num_stages):
            out = channels * stride**2
            layers += [nn.Conv2d(channels, out, kernel_size, stride, padding), LayerNorm2d(out), nn.GELU()]
            channels = out
        layers.append(nn.Conv2d(channels, embed_dim, kernel_size=1))
        self.encoder = nn.Sequential(*layers)

    def forward(self, masks: torch.Tensor) -> torch.Tensor:
        return self.encoder(masks)


class CXBlock(nn.Module):
    """ConvNeXt block: x (B, dim, H, W) -> same shape and dtype.

    7x7 depthwise conv, LayerNorm over channels, pointwise MLP (dim -> 4 dim -> dim, GELU) run as linear
    layers on channels-last tokens, per-channel layer scale ``gamma``, residual.
    """

    def __init__(self, dim: int = 256, kernel_size: int = 7, padding: int = 3) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size, padding=padding, groups=dim)
        self.norm = LayerNorm2d(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # LayerNorm2d already produces channels-last memory, so this permute is a free view
        y = self.norm(self.dwconv(x)).permute(0, 2, 3, 1)
        y = self.pwconv2(F.gelu(self.pwconv1(y))) * self.gamma
        return x + y.permute(0, 3, 1, 2)


class Fuser(nn.Module):
    """``num_layers`` CXBlocks in sequence: (B, dim, H, W) -> same shape."""

    def __init__(self, dim: int = 256, num_layers: int = 2) -> None:
        super().__init__()
        self.layers = nn.ModuleList(CXBlock(dim) for _ in range(num_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class MemoryEncoder(nn.Module):
    """Encode one frame's memory from its image features and mask."""

    def __init__(self, out_dim: int = 64, in_dim: int = 256) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.mask_downsampler = MaskDownSampler(in_dim)
        self.pix_feat_proj = nn.Conv2d(in_dim, in_dim, kernel_size=1)
        self.fuser = Fuser(in_dim)
        self.out_proj = nn.Conv2d(in_dim, out_dim, kernel_size=1) if out_dim != in_dim else nn.Identity()
        self.position_encoding = PositionEmbeddingSine(out_dim)

    def _check(self, pix_feat: torch.Tensor, masks: torch.Tensor) -> None:
        if pix_feat.dim() != 4 or pix_feat.shape[1] != self.in_dim:
            raise ValueError(f"pix_feat must be (B, {self.in_dim}, h, w), got shape {tuple(pix_feat.shape)}")
        b, _, h, w = pix_feat.shape
        s = self.mask_downsampler.total_stride
        if tuple(masks.shape) != (b, 1, s * h, s * w):
            raise ValueError(
                f"masks must be (B, 1, {s}h, {s}w) = {(b, 1, s * h, s * w)} for pix_feat of shape "
                f"{tuple(pix_feat.shape)}, got {tuple(masks.shape)}"
            )

    def forward(
        self, pix_feat: torch.Tensor, masks: torch.Tensor, skip_mask_sigmoid: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """pix_feat: (B, in_dim, h, w) stride-16 image features;
        masks: (B, 1, 16h, 16w) mask logits (or, with ``skip_mask_sigmoid``, values already in [0, 1]).

        Returns (features (B, out_dim, h, w), pos (B, out_dim, h, w)), both in the features' dtype;
        pos is the sine encoding of the grid, identical for every batch item.
        """
        self._check(pix_feat, masks)
        if not skip_mask_sigmoid:
            # logits become soft masks in [0, 1], the same range as the binary masks of prompted frames
            masks = torch.sigmoid(masks)
        x = self.pix_feat_proj(pix_feat) + self.mask_downsampler(masks)
        x = self.out_proj(self.fuser(x))
        pos = self.position_encoding(x).to(x.dtype)
        return x, pos
