"""Plain ViT image encoder (EfficientTAM): a ViTDet-style trunk and its one-level neck.

The trunk cuts the image into 16x16 patches, adds an absolute position embedding learned for a 14x14
grid (224 px pretraining, with a class-token slot that is dropped) and resized bicubically to the
input's grid, and runs ``depth`` pre-norm transformer blocks. Most blocks attend inside 14x14 windows
(the grid is zero-padded to a multiple of 14 after the block's first norm, and the padding takes part
in the attention as keys, as in ViTDet); ``global_blocks`` attend over the whole grid. Its single
output is the last block's, at stride 16.

The neck turns it into the d_model-wide stride-16 embedding with a bias-free 1x1 convolution and a 3x3
one, each followed by a channel LayerNorm; there are no higher-resolution levels (the mask decoder runs
without them). Parameter names (``patch_embed.proj``, ``blocks.N.attn.qkv``, ``blocks.N.mlp.layers.0``,
``neck.convs.0.conv_1x1``, ``neck.convs.0.norm_0`` ...) follow EfficientTAM's checkpoints.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from masklet.modeling.common import MLP, LayerNorm2d
from masklet.modeling.hiera import window_partition, window_unpartition
from masklet.modeling.position import PositionEmbeddingSine
from masklet.presets import ViTConfig


class PatchEmbed(nn.Module):
    """(B, 3, S, S) -> (B, S/p, S/p, dim) channels-last patch tokens (a strided convolution ``proj``)."""

    def __init__(self, patch: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


class ViTAttention(nn.Module):
    """Multi-head self-attention over the tokens of each (B, h, w, dim) grid -> same shape."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        q, k, v = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, h*w, d)
        return self.proj(out.transpose(1, 2).reshape(b, h, w, c))


class ViTBlock(nn.Module):
    """Pre-norm block: (windowed) attention and a GELU MLP, each residual. (B, h, w, dim) -> same."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, window: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = ViTAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLP(dim, int(dim * mlp_ratio), dim, 2, activation=nn.GELU)
        self.window = window

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        if self.window:
            hw = (y.shape[1], y.shape[2])
            y, padded = window_partition(y, self.window)
            y = window_unpartition(self.attn(y), padded, hw)
        else:
            y = self.attn(y)
        x = x + y
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """ViT trunk. image (B, 3, S, S) float, normalised, S a multiple of 16 -> [(B, dim, S/16, S/16)]."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        dim = cfg.embed_dim
        self.patch_embed = PatchEmbed(cfg.patch_size, dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.pretrain_grid**2 + 1, dim))
        self.blocks = nn.ModuleList(
            ViTBlock(dim, cfg.num_heads, cfg.mlp_ratio, 0 if i in cfg.global_blocks else cfg.window_size)
            for i in range(cfg.depth)
        )

    def position_embedding(self, h: int, w: int) -> torch.Tensor:
        """(1, h, w, dim): the learned grid embedding (class-token slot dropped) resized to (h, w)."""
        g = self.cfg.pretrain_grid
        grid = self.pos_embed[:, 1:].reshape(1, g, g, -1)
        if (h, w) == (g, g):
            return grid
        grid = F.interpolate(grid.permute(0, 3, 1, 2), size=(h, w), mode="bicubic", align_corners=False)
        return grid.permute(0, 2, 3, 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        p = self.cfg.patch_size
        if x.dim() != 4 or x.shape[-1] % p or x.shape[-2] % p:
            raise ValueError(f"expected images (B, 3, H, W), H and W multiples of {p}; got {tuple(x.shape)}")
        x = self.patch_embed(x)
        x = x + self.position_embedding(x.shape[1], x.shape[2])
        for block in self.blocks:
            x = block(x)
        return [x.permute(0, 3, 1, 2)]

    def layer_depth(self, name: str) -> tuple[int, int]:
        """(depth, number of layers) of the parameter ``name`` (relative to the trunk) for layer-wise
        learning-rate decay: the patch and position embeddings are 0, block i is i + 1."""
        parts = name.split(".")
        if parts[0] == "blocks":
            return int(parts[1]) + 1, self.num_layers
        return 0, self.num_layers

    @property
    def num_layers(self) -> int:
        return len(self.blocks)


class _NeckLevel(nn.Module):
    """1x1 conv, LayerNorm, 3x3 conv, LayerNorm (the checkpoint's ``conv_1x1`` ... ``norm_1``)."""

    def __init__(self, cin: int, d_model: int) -> None:
        super().__init__()
        self.conv_1x1 = nn.Conv2d(cin, d_model, 1, bias=False)
        self.norm_0 = LayerNorm2d(d_model)
        self.conv_3x3 = nn.Conv2d(d_model, d_model, 3, padding=1, bias=False)
        self.norm_1 = LayerNorm2d(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm_1(self.conv_3x3(self.norm_0(self.conv_1x1(x))))


class ViTNeck(nn.Module):
    """[(B, C, h, w)] trunk output -> ([(B, d_model, h, w)], [sine position encoding, same shape])."""

    def __init__(self, backbone_channel_list: tuple[int, ...], d_model: int = 256) -> None:
        super().__init__()
        self.convs = nn.ModuleList(_NeckLevel(c, d_model) for c in backbone_channel_list)
        self.position_encoding = PositionEmbeddingSine(d_model)

    def forward(self, xs: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        if len(xs) != len(self.convs):
            raise ValueError(f"the neck expects {len(self.convs)} feature levels, got {len(xs)}")
        feats = [conv(x) for conv, x in zip(self.convs, xs)]
        return feats, [self.position_encoding(f).to(f.dtype) for f in feats]
