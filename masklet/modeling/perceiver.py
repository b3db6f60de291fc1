"""EdgeTAM's 2D spatial perceiver: compress each frame's memory to a fixed, small set of latent tokens.

SAM 2 attends to every memory token of every remembered frame (h * w = 4096 per frame at 1024 px).
EdgeTAM first compresses a (64, h, w) memory into 512 tokens:

- 256 global latents, learned queries that cross-attend to all h * w memory tokens (whose keys and
  values carry the memory's sine position encoding); they get no position themselves (zeros);
- 256 window latents: the memory grid is cut into a 16 x 16 grid of windows and each window's latent
  (one learned query per window cell) cross-attends to that window's tokens only; they keep the sine
  position encoding of the 16 x 16 grid.

Both go through the same ``depth`` layers (cross-attention, feed-forward, self-attention among the
latents, feed-forward; all pre-norm and residual) and a final LayerNorm. Parameter names (``latents``,
``latents_2d``, ``layers.N.attn.to_kv``, ``layers.N.self_ff.3`` ...) follow EdgeTAM's checkpoint
(``spatial_perceiver.*``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from masklet.modeling.position import PositionEmbeddingSine
from masklet.presets import PerceiverConfig


def feed_forward(dim: int, mult: int) -> nn.Sequential:
    """Pre-norm MLP without biases: LayerNorm, Linear(dim, dim * mult), GELU, Linear back."""
    inner = dim * mult
    return nn.Sequential(
        nn.LayerNorm(dim), nn.Linear(dim, inner, bias=False), nn.GELU(), nn.Linear(inner, dim, bias=False)
    )


class _HeadsMixin:
    heads: int

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.heads, c // self.heads).transpose(1, 2)

    def _merge(self, x: torch.Tensor) -> torch.Tensor:
        b, h, n, d = x.shape
        return x.transpose(1, 2).reshape(b, n, h * d)


class LatentCrossAttention(_HeadsMixin, nn.Module):
    """Latents (B, L, dim) attend to inputs (B, N, dim) -> (B, L, dim). Both sides are layer-normed;
    ``pos`` (B, N, inner), when given, is added to the keys and the values."""

    def __init__(self, dim: int, dim_head: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        inner = dim_head * heads
        self.norm_x = nn.LayerNorm(dim)
        self.norm_latents = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(
        self, latents: torch.Tensor, x: torch.Tensor, pos: torch.Tensor | None = None
    ) -> torch.Tensor:
        q = self._split(self.to_q(self.norm_latents(latents)))
        k, v = (self._split(t) for t in self.to_kv(self.norm_x(x)).chunk(2, dim=-1))
        if pos is not None:
            pos = self._split(pos)
            k, v = k + pos, v + pos
        return self.to_out(self._merge(F.scaled_dot_product_attention(q, k, v)))


class LatentSelfAttention(_HeadsMixin, nn.Module):
    """Pre-norm self-attention among the latents: (B, L, dim) -> (B, L, dim)."""

    def __init__(self, dim: int, dim_head: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        inner = dim_head * heads
        self.norm = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        q = self._split(self.to_q(x))
        k, v = (self._split(t) for t in self.to_kv(x).chunk(2, dim=-1))
        return self.to_out(self._merge(F.scaled_dot_product_attention(q, k, v)))


class PerceiverLayer(nn.Module):
    """Cross-attention to the inputs, feed-forward, self-attention, feed-forward; each residual."""

    def __init__(self, dim: int, dim_head: int, heads: int, ff_mult: int) -> None:
        super().__init__()
        self.attn = LatentCrossAttention(dim, dim_head, heads)
        self.ff = feed_forward(dim, ff_mult)
        self.self_attn = LatentSelfAttention(dim, dim_head, heads)
        self.self_ff = feed_forward(dim, ff_mult)

    def forward(
        self, latents: torch.Tensor, x: torch.Tensor, pos: torch.Tensor | None = None
    ) -> torch.Tensor:
        latents = latents + self.attn(latents, x, pos)
        latents = latents + self.ff(latents)
        latents = latents + self.self_attn(latents)
        return latents + self.self_ff(latents)


class SpatialPerceiver(nn.Module):
    """(B, dim, h, w) memory -> (B, num_latents + num_latents_2d, dim) tokens and their position encoding.

    h and w must be multiples of ``cfg.grid_2d`` (16): the window latents see (h / 16) x (w / 16) tokens.
    """

    def __init__(self, cfg: PerceiverConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.latents = nn.Parameter(torch.randn(cfg.num_latents, cfg.dim))
        self.latents_2d = nn.Parameter(torch.randn(cfg.num_latents_2d, cfg.dim))
        self.layers = nn.ModuleList(
            PerceiverLayer(cfg.dim, cfg.dim_head, cfg.heads, cfg.ff_mult) for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(cfg.dim)
        self.position_encoding = PositionEmbeddingSine(cfg.dim)

    def forward(self, memory: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """memory: (B, dim, h, w) memory features; pos: (B, dim, h, w) their sine position encoding.

        Returns (tokens (B, L, dim) in memory's dtype, pos (B, L, dim)): global latents first, then the
        window latents in row-major window order; L = ``cfg.num_tokens``.
        """
        b, c, h, w = memory.shape
        g = self.cfg.grid_2d
        if h % g or w % g:
            raise ValueError(f"the memory grid ({h}x{w}) must be a multiple of the {g}x{g} window grid")
        tokens = torch.cat([self._global(memory, pos), self._windows(memory)], dim=1)
        return tokens, self.positions(memory.device, tokens.dtype).expand(b, -1, -1)

    def _global(self, memory: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        x = memory.flatten(2).transpose(1, 2)
        p = pos.flatten(2).transpose(1, 2).to(x.dtype)
        latents = self.latents.unsqueeze(0).expand(x.shape[0], -1, -1)
        for layer in self.layers:
            latents = layer(latents, x, p)
        return self.norm(latents)

    def _windows(self, memory: torch.Tensor) -> torch.Tensor:
        b, c, h, w = memory.shape
        g = self.cfg.grid_2d
        wh, ww = h // g, w // g
        # (B, C, g, wh, g, ww) -> one row of wh * ww tokens per window, windows row-major
        x = memory.reshape(b, c, g, wh, g, ww).permute(0, 2, 4, 3, 5, 1).reshape(b * g * g, wh * ww, c)
        latents = self.latents_2d.unsqueeze(0).expand(b, -1, -1).reshape(b * g * g, 1, c)
        for layer in self.layers:
            latents = layer(latents, x)
        return self.norm(latents.reshape(b, g * g, c))

    def positions(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """(1, L, dim) position encoding of the tokens: zeros for the global latents, the sine encoding
        of the window grid for the window latents (the same for every frame)."""
        g = self.cfg.grid_2d
        grid = self.position_encoding.encoding(g, g, device).flatten(1).t()  # (g*g, dim), row-major
        zeros = grid.new_zeros(self.cfg.num_latents, grid.shape[1])
        return torch.cat([zeros, grid]).unsqueeze(0).to(dtype)
