"""Small building blocks shared by several modeling files: MLP, channel-first LayerNorm, attention.

Parameter names (``layers.N``, ``q_proj`` ...) follow the official checkpoints.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    """``num_layers`` linear layers with an activation between them (none after the last).

    input (..., input_dim) -> (..., output_dim); optional sigmoid on the output.
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int,
        output_dim: int,
        num_layers: int,
        activation: type[nn.Module] = nn.ReLU,
        sigmoid_output: bool = False,
    ) -> None:
        super().__init__()
        dims_in = [input_dim] + [hidden_dim] * (num_layers - 1)
        dims_out = [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims_in, dims_out))
        self.act = activation()
        self.sigmoid_output = sigmoid_output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < last:
                x = self.act(x)
        return torch.sigmoid(x) if self.sigmoid_output else x


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of a (B, C, H, W) tensor."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # F.layer_norm on a channels-last view is one fused kernel instead of five elementwise passes
        y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


class Attention(nn.Module):
    """Multi-head attention with separate q/k/v projections and optional channel downsampling.

    q: (B, Nq, embedding_dim); k, v: (B, Nk, kv_in_dim) -> (B, Nq, embedding_dim).
    The inner width is ``embedding_dim // downsample_rate`` (the two-way transformer's cross attention
    uses 2, i.e. 128 channels).
    """

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        downsample_rate: int = 1,
        dropout: float = 0.0,
        kv_in_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.kv_in_dim = kv_in_dim if kv_in_dim is not None else embedding_dim
        self.internal_dim = embedding_dim // downsample_rate
        self.num_heads = num_heads
        if self.internal_dim % num_heads != 0:
            raise ValueError(f"num_heads ({num_heads}) must divide the attention width ({self.internal_dim})")
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(self.kv_in_dim, self.internal_dim)
        self.v_proj = nn.Linear(self.kv_in_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)
        self.dropout_p = dropout

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def _merge(self, x: torch.Tensor) -> torch.Tensor:
        b, h, n, d = x.shape
        return x.transpose(1, 2).reshape(b, n, h * d)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        p = self.dropout_p if self.training else 0.0
        return F.scaled_dot_product_attention(q, k, v, dropout_p=p)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q = self._heads(self.q_proj(q))
        k = self._heads(self.k_proj(k))
        v = self._heads(self.v_proj(v))
        return self.out_proj(self._merge(self._attend(q, k, v)))

    # Folded forms for the mask decoder's cross attention between a few prompt tokens and thousands of
    # image tokens. Projecting every image token costs more than folding the projection weights into
    # the few tokens' side when heads * n_few < internal_dim (8 heads x ~8 tokens vs 128 in SAM 2). The
    # math is that of forward() (softmax rows sum to 1, so a value projection commutes with the
    # weighting); only the rounding order differs. Inference only: tested against forward().
    def folds(self, n_few: int) -> bool:
        """Whether the folded forms apply and save work for ``n_few`` tokens on the short side."""
        return (
            not self.training and not torch.is_grad_enabled() and self.num_heads * n_few < self.internal_dim
        )

    def attend_to_many(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``forward(q, k, v)`` for few queries (B, Nq, C) and many keys/values (B or 1, Nk, kv_in_dim),
        without projecting the keys and values. Returns (B, Nq, C)."""
        b, nq, _ = q.shape
        h = self.num_heads
        d = self.internal_dim // h
        qh = self._heads(F.linear(q, self.q_proj.weight, self.q_proj.bias)) * d**-0.5  # (B, h, Nq, d)
        qk = (qh @ self.k_proj.weight.view(h, d, -1)).reshape(b, h * nq, -1)  # (B, h*Nq, kv)
        qb = (qh * self.k_proj.bias.view(h, 1, d)).sum(-1).reshape(b, h * nq, 1)
        scores = _bmm_shared(qk, k.transpose(1, 2)) + qb  # (B, h*Nq, Nk)
        attn = torch.softmax(scores, dim=-1)
        mixed = _bmm_shared(attn, v).view(b, h, nq, -1)  # (B, h, Nq, kv): raw values, weighted
        out = mixed @ self.v_proj.weight.view(h, d, -1).transpose(1, 2) + self.v_proj.bias.view(h, 1, d)
        return F.linear(self._merge(out), self.out_proj.weight, self.out_proj.bias)

    def attend_from_many(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, residual: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``forward(q, k, v)`` (plus ``residual``, fused into the last GEMM) for many queries (B or 1, Nq,
        C) and few keys/values (B, Nk, kv_in_dim), without projecting the queries or each query's output.
        Returns (B, Nq, C)."""
        b, nk, _ = k.shape
        h = self.num_heads
        d = self.internal_dim // h
        kh = self._heads(F.linear(k, self.k_proj.weight, self.k_proj.bias)) * d**-0.5  # (B, h, Nk, d)
        vh = self._heads(F.linear(v, self.v_proj.weight, self.v_proj.bias))
        # key-major, head-minor columns: the softmax over a few keys then runs along a strided axis
        # with the heads contiguous, several times faster than over rows of Nk values
        kq = (kh @ self.q_proj.weight.view(h, d, -1)).transpose(1, 2).reshape(b, nk * h, -1)
        kb = (kh * self.q_proj.bias.view(h, 1, d)).sum(-1).transpose(1, 2).reshape(b, 1, nk * h)
        scores = _bmm_shared(q, kq.transpose(1, 2), shared_left=True) + kb  # (B, Nq, Nk*h)
        attn = torch.softmax(scores.view(b, -1, nk, h), dim=2).view(b, -1, nk * h)
        # values through the output projection; each head's weights sum to 1, so adding bias / h to
        # every value of every head adds the output bias once
        wo = self.out_proj.weight.view(-1, h, d).permute(1, 2, 0)  # (h, d, C)
        vo = (vh @ wo + self.out_proj.bias / h).transpose(1, 2).reshape(b, nk * h, -1)  # (B, Nk*h, C)
        if residual is None:
            return attn @ vo
        return torch.baddbmm(residual, attn, vo)


def _bmm_shared(a: torch.Tensor, b: torch.Tensor, shared_left: bool = False) -> torch.Tensor:
    """Batched ``a @ b`` where one side may have batch 1 (shared by every batch entry): then a single
    GEMM over the stacked other side instead of a broadcast bmm."""
    if not shared_left and b.shape[0] == 1 and a.shape[0] > 1:
        n, r, _ = a.shape
        return (a.reshape(n * r, -1) @ b[0]).view(n, r, -1)
    if shared_left and a.shape[0] == 1 and b.shape[0] > 1:
        n, _, c = b.shape
        out = a[0] @ b.transpose(0, 1).reshape(b.shape[1], n * c)  # (Nq, B*c)
        return out.view(-1, n, c).transpose(0, 1)
    return a @ b
