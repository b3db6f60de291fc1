"""Fixed 2-D sine/cosine position encoding (the FPN neck and the memory encoder use it).

For a feature map of size (H, W) the encoding has ``num_pos_feats`` channels: the first half encodes the
row (y), the second half the column (x). Positions are 1..H / 1..W divided by H / W (so they lie in
(0, 1]) and scaled by 2*pi; channel pairs (2i, 2i+1) hold sin / cos at frequency temperature^(-2i/half).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _axis_encoding(n: int, half: int, temperature: float, device: torch.device) -> torch.Tensor:
    """(n, half) encoding of positions 1..n along one axis."""
    pos = torch.arange(1, n + 1, dtype=torch.float32, device=device)
    pos = pos / (n + 1e-6) * (2 * math.pi)
    i = torch.arange(half, dtype=torch.float32, device=device)
    freq = temperature ** (2 * torch.div(i, 2, rounding_mode="floor") / half)
    angles = pos[:, None] / freq
    out = torch.empty_like(angles)
    out[:, 0::2] = angles[:, 0::2].sin()
    out[:, 1::2] = angles[:, 1::2].cos()
    return out


class PositionEmbeddingSine(nn.Module):
    """x: (B, C, H, W) (only its shape and device are used) -> (B, num_pos_feats, H, W) float32."""

    def __init__(self, num_pos_feats: int, temperature: float = 10000.0) -> None:
        super().__init__()
        if num_pos_feats % 2:
            raise ValueError(f"num_pos_feats must be even, got {num_pos_feats}")
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self._cache: dict[tuple[int, int, str], torch.Tensor] = {}

    def encoding(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        """(num_pos_feats, H, W) float32, cached per size and device."""
        key = (h, w, str(device))
        if key not in self._cache:
            half = self.num_pos_feats // 2
            ey = _axis_encoding(h, half, self.temperature, device)  # (H, half)
            ex = _axis_encoding(w, half, self.temperature, device)  # (W, half)
            pe = torch.cat([ey[:, None, :].expand(h, w, half), ex[None, :, :].expand(h, w, half)], dim=-1)
            self._cache[key] = pe.permute(2, 0, 1).contiguous()
        return self._cache[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        return self.encoding(h, w, x.device).unsqueeze(0).expand(b, -1, -1, -1)
