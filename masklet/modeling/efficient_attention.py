"""EfficientTAM's efficient memory cross-attention: attend to 2x2-pooled memories.

Neighbouring memory tokens are highly redundant, so EfficientTAM averages the (rotated) keys and the
values of each remembered frame over 2x2 cells of its grid, a quarter of the tokens, before the
attention. Each pooled key stands for four: variant 1 adds log 4 to its attention logits (the weight
four identical keys would get); variant 2 adds log 4 to the pooled key vectors themselves. Object
pointer tokens are attended to unpooled. With a single remembered frame (the first tracked frame) the
attention is SAM 2's, unpooled.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from masklet.modeling.kernels import exporting
from masklet.modeling.rope import RoPEAttention

_POOL = 2
_LOG_POOL = 2 * math.log(_POOL)  # log of the tokens one pooled key stands for


def pool_frames(x: torch.Tensor, frames: int, h: int, w: int) -> torch.Tensor:
    """(B, heads, frames * h * w, d) tokens of row-major (h, w) grids -> (B, heads, frames * h/2 * w/2, d),
    each 2x2 cell averaged."""
    b, heads, _, d = x.shape
    cells = x.reshape(b, heads, frames, h // _POOL, _POOL, w // _POOL, _POOL, d)
    return cells.mean(dim=(4, 6)).reshape(b, heads, -1, d)


class PooledMemoryAttention(RoPEAttention):
    """:class:`RoPEAttention` over 2x2-pooled memory frames (see the module docstring).

    ``key_bias=False``: log 4 added to the pooled keys' logits (EfficientTAM's variant 1);
    ``key_bias=True``: log 4 added to the pooled key vectors (variant 2).
    """

    def __init__(self, *args, key_bias: bool, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.key_bias = key_bias

    def attend_rotated(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v_in: torch.Tensor,
        feat_size: tuple[int, int],
        num_exclude: int,
    ) -> torch.Tensor:
        h, w = feat_size
        n_spatial = k.shape[-2] - num_exclude
        if isinstance(n_spatial, torch.SymInt) and exporting():
            # a traced graph takes any number of frames: the choice between one frame (unpooled) and
            # several is made when the graph runs (an ONNX ``If``), not fixed by the frames traced
            sizes = {"feat_size": feat_size, "num_exclude": num_exclude}
            plain = functools.partial(super().attend_rotated, **sizes)
            pooled = functools.partial(self._attend_pooled, **sizes)
            pred = torch.scalar_tensor(n_spatial, dtype=torch.int64) > h * w
            return torch.cond(pred, pooled, plain, (q, k, v_in))
        if n_spatial <= h * w:  # a single remembered frame: SAM 2's attention
            return super().attend_rotated(q, k, v_in, feat_size, num_exclude)
        return self._attend_pooled(q, k, v_in, feat_size, num_exclude)

    def _attend_pooled(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v_in: torch.Tensor,
        feat_size: tuple[int, int],
        num_exclude: int,
    ) -> torch.Tensor:
        """Attention to the 2x2-pooled frames and the unpooled pointer tokens: (B, heads, Lq, d)."""
        h, w = feat_size
        if h % _POOL or w % _POOL:
            raise ValueError(f"pooled memory attention needs an even feature grid, got {h}x{w}")
        n_spatial = k.shape[-2] - num_exclude
        frames = n_spatial // (h * w)
        v = self._heads(F.linear(v_in, self.v_proj.weight, self.v_proj.bias))
        pk = pool_frames(k[..., :n_spatial, :], frames, h, w)
        pv = pool_frames(v[..., :n_spatial, :], frames, h, w)
        keys = torch.cat([pk + _LOG_POOL if self.key_bias else pk, k[..., n_spatial:, :]], dim=-2)
        values = torch.cat([pv, v[..., n_spatial:, :]], dim=-2)
        bias = None
        if not self.key_bias:
            pooled = pk.new_full((pk.shape[-2],), _LOG_POOL, dtype=q.dtype)
            bias = torch.cat([pooled, pooled.new_zeros(keys.shape[-2] - pk.shape[-2])]).view(1, 1, 1, -1)
        p = self.dropout_p if self.training else 0.0
        torch._check(keys.shape[-2] > 0)  # lets a tracer see that the keys are never empty
        return F.scaled_dot_product_attention(q, keys, values, attn_mask=bias, dropout_p=p)
