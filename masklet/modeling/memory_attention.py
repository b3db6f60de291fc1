"""Memory attention: condition the current frame's image features on the memory bank.

A stack of pre-norm transformer layers. Each layer lets the current frame's tokens attend to each other
(self-attention with RoPE), then to the memories of past frames and the object pointers (cross-attention;
memory keys carry both RoPE and the memory encoder's sine position encoding, object pointers carry
neither RoPE nor spatial position), then applies a ReLU MLP.

Where position enters follows every official SAM 2 / 2.1 config: the current frame's sine encoding is
added once, scaled by 0.1, at the input; inside the layers only the cross-attention keys get the memory
position encoding added, and RoPE is applied to all queries and to all spatial keys.

Parameter names (``layers.N.self_attn``, ``layers.N.cross_attn_image``, ``linear1``, ``norm1`` ...)
follow the official checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from masklet.modeling.kernels import linear
from masklet.modeling.rope import AxialRoPE, RoPEAttention, square_side


class MemoryAttentionLayer(nn.Module):
    """One pre-norm layer: self-attention, cross-attention to memory, MLP; each with a residual.

    Works batch-first: x (B, N, d_model) with N = h * w tokens of the current frame's grid.
    """

    def __init__(
        self,
        d_model: int = 256,
        kv_dim: int = 64,
        num_heads: int = 1,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        rope_theta: float = 10000.0,
        rope: AxialRoPE | None = None,
        cross_attention: Callable[..., RoPEAttention] = RoPEAttention,
    ) -> None:
        super().__init__()
        if rope is None:
            rope = AxialRoPE(d_model // num_heads, rope_theta)
        self.self_attn = RoPEAttention(d_model, num_heads, dropout=dropout, rope_theta=rope_theta, rope=rope)
        self.cross_attn_image = cross_attention(
            d_model,
            num_heads,
            dropout=dropout,
            kv_in_dim=kv_dim,
            rope_theta=rope_theta,
            rope_k_repeat=True,
            rope=rope,
        )
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout_p = dropout

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.dropout_p, self.training)

    def forward(
        self,
        x: torch.Tensor,
        memory_keys: torch.Tensor,
        memory: torch.Tensor,
        feat_size: tuple[int, int],
        num_k_exclude_rope: int = 0,
    ) -> torch.Tensor:
        """x: (B, N, d_model) -> (B, N, d_model), same dtype.

        memory_keys: (B, M, kv_dim), the memory with its position encoding added (attention keys);
        memory: (B, M, kv_dim), the same tokens without it (attention values). The first
        M - num_k_exclude_rope tokens are whole frames of the (h, w) = ``feat_size`` grid; the trailing
        ``num_k_exclude_rope`` ones are object-pointer tokens.
        """
        y = self.norm1(x)
        x = x + self._drop(self.self_attn(y, y, y, feat_size=feat_size))
        y = self.norm2(x)
        y = self.cross_attn_image(y, memory_keys, memory, num_k_exclude_rope, feat_size)
        x = x + self._drop(y)
        if self.training and self.dropout_p > 0:
            y = F.relu(self.linear1(self.norm3(x)), inplace=True)
            return x + self._drop(self.linear2(self._drop(y)))
        y = linear(self.norm3(x), self.linear1.weight, self.linear1.bias, relu=True)
        return linear(y, self.linear2.weight, self.linear2.bias, residual=x)


class MemoryAttention(nn.Module):
    """``num_layers`` :class:`MemoryAttentionLayer` and a final LayerNorm.

    All layers share one table cache for RoPE (the tables depend only on the grid size).
    ``cross_attention`` builds each layer's memory cross-attention (SAM 2's :class:`RoPEAttention` by
    default; the efficient families pass their variants, which take the same arguments).
    """

    def __init__(
        self,
        d_model: int = 256,
        num_layers: int = 4,
        pos_enc_at_input: bool = True,
        kv_dim: int = 64,
        num_heads: int = 1,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        rope_theta: float = 10000.0,
        cross_attention: Callable[..., RoPEAttention] = RoPEAttention,
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.kv_dim = kv_dim
        self.pos_enc_at_input = pos_enc_at_input
        rope = AxialRoPE(d_model // num_heads, rope_theta)
        self.layers = nn.ModuleList(
            MemoryAttentionLayer(
                d_model, kv_dim, num_heads, dim_feedforward, dropout, rope_theta, rope, cross_attention
            )
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)

    def _check(self, curr: torch.Tensor, memory: torch.Tensor, num_obj_ptr_tokens: int) -> None:
        if curr.dim() != 3 or curr.shape[2] != self.d_model:
            raise ValueError(
                f"curr must be (HW, B, {self.d_model}) sequence-first, got shape {tuple(curr.shape)}"
            )
        if memory.dim() != 3 or memory.shape[2] != self.kv_dim:
            raise ValueError(
                f"memory must be (M, B, {self.kv_dim}) sequence-first, got shape {tuple(memory.shape)}"
            )
        if curr.shape[1] != memory.shape[1]:
            raise ValueError(
                f"curr and memory must have the same batch size, got {curr.shape[1]} and {memory.shape[1]}"
            )
        if not 0 <= num_obj_ptr_tokens <= memory.shape[0]:
            raise ValueError(
                f"num_obj_ptr_tokens must be between 0 and the {memory.shape[0]} memory tokens, "
                f"got {num_obj_ptr_tokens}"
            )

    def forward(
        self,
        curr: torch.Tensor,
        memory: torch.Tensor,
        curr_pos: torch.Tensor | None = None,
        memory_pos: torch.Tensor | None = None,
        num_obj_ptr_tokens: int = 0,
        *,
        feat_size: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """Sequence-first in and out, like the official module.

        curr: (HW, B, d_model) current frame features, row-major over the (h, w) grid;
        memory: (M, B, kv_dim): F frames of HW spatial memory tokens, then ``num_obj_ptr_tokens``
        object-pointer tokens (M = F * HW + num_obj_ptr_tokens);
        curr_pos: (HW, B, d_model) and memory_pos: (M, B, kv_dim) position encodings (None: no encoding);
        feat_size: the grid (h, w); by default the square grid of HW tokens.
        Returns (HW, B, d_model) in curr's dtype (a batch-first buffer seen through a transpose).
        """
        self._check(curr, memory, num_obj_ptr_tokens)
        if feat_size is None:
            side = square_side(curr.shape[0])
            feat_size = (side, side)
        elif feat_size[0] * feat_size[1] != curr.shape[0]:
            raise ValueError(f"feat_size {tuple(feat_size)} does not hold the {curr.shape[0]} tokens of curr")

        x = curr
        if self.pos_enc_at_input and curr_pos is not None:
            x = x + 0.1 * curr_pos
        memory_keys = memory if memory_pos is None else memory + memory_pos
        # batch-first once here (free for batch 1), so that no layer re-copies its inputs
        x = x.transpose(0, 1).contiguous()
        memory_keys = memory_keys.transpose(0, 1).contiguous()
        memory = memory.transpose(0, 1).contiguous()
        for layer in self.layers:
            x = layer(x, memory_keys, memory, feat_size, num_obj_ptr_tokens)
        return self.norm(x).transpose(0, 1)
