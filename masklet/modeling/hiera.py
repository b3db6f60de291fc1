"""Hiera image-encoder trunk: a hierarchical ViT with mask-unit (windowed) attention and query pooling.

The image is cut into stride-4 patches, then four stages of transformer blocks run on grids of stride
4, 8, 16 and 32. Most blocks attend only inside square windows; a few ("global" blocks) attend over the
whole grid. The first block of stages 2..(1 + q_pool) halves the grid by max-pooling its queries (and its
shortcut), and doubles channels and heads.

Tensors stay channels-last, (B, H, W, C), from the patch embedding to the stage outputs: every
projection is then a plain matmul over contiguous rows and no block pays for layout changes.
Parameter names follow the official checkpoints (``image_encoder.trunk.*``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from masklet.modeling.common import MLP
from masklet.modeling.kernels import compiling, linear, onednn_applies, softmax_attention
from masklet.presets import HieraConfig

_LN_EPS = 1e-6
# Working-set size (elements) for the slabs that large activations are processed in: a few MiB, so
# intermediates stay in cache and reuse freed heap memory instead of fresh, page-faulting allocations.
_CHUNK_ELEMS = 1 << 21


def window_partition(x: torch.Tensor, window: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Cut a grid into non-overlapping square windows, zero-padding the bottom/right edges.

    x: (B, H, W, C) -> windows (B * nH * nW, window, window, C) in row-major window order, and the padded
    grid size (Hp, Wp) = (nH * window, nW * window). Padded tokens are zeros, exactly as the trained
    model saw them (they still project to the qkv bias and take part in attention).
    """
    b, h, w, c = x.shape
    pad_h, pad_w = -h % window, -w % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    x = x.view(b, hp // window, window, wp // window, window, c).transpose(2, 3)
    return x.reshape(-1, window, window, c), (hp, wp)


def window_unpartition(windows: torch.Tensor, padded: tuple[int, int], hw: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B * nH * nW, w, w, C) -> (B, H, W, C), padding cropped.

    The result may be a strided view (when cropped); consumers read it elementwise.
    """
    n, window, _, c = windows.shape
    hp, wp = padded
    nh, nw = hp // window, wp // window
    x = windows.view(n // (nh * nw), nh, nw, window, window, c).transpose(2, 3).reshape(-1, hp, wp, c)
    h, w = hw
    return x[:, :h, :w] if (hp, wp) != (h, w) else x


def max_pool_channels_last(x: torch.Tensor, stride: tuple[int, int]) -> torch.Tensor:
    """Non-overlapping max pooling (kernel = stride, floor mode) of (B, H, W, C) -> (B, H/sh, W/sw, C).

    Works on strided views (e.g. the queries inside a fused qkv output) without copying them first.
    One ``maximum`` per window offset over whole contiguous channel runs: a reduction over the two
    window axes (``amax``) is an order of magnitude slower on CPU.
    """
    b, h, w, c = x.shape
    sh, sw = stride
    ho, wo = h // sh, w // sw
    x = x[:, : ho * sh, : wo * sw].unflatten(1, (ho, sh))
    rows = x[:, :, 0]
    for i in range(1, sh):
        rows = torch.maximum(rows, x[:, :, i])
    rows = rows.unflatten(2, (wo, sw))
    out = rows[:, :, :, 0]
    for j in range(1, sw):
        out = torch.maximum(out, rows[:, :, :, j])
    return out.contiguous()  # a no-op unless both strides are 1


class PatchEmbed(nn.Module):
    """7x7 stride-4 convolution: image (B, 3, S, S) -> channels-last tokens (B, S/4, S/4, embed_dim)."""

    def __init__(self, embed_dim: int, in_chans: int = 3) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=7, stride=4, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # a channels-last input makes the convolution write channels-last output, so the permute is free
        x = self.proj(x.contiguous(memory_format=torch.channels_last))
        return x.permute(0, 2, 3, 1)


class MultiScaleAttention(nn.Module):
    """Multi-head self-attention over (windows of) tokens, optionally max-pooling the queries.

    x: (N, h, w, dim) -> (N, h/s, w/s, dim_out) where s is the query stride (1 without pooling).
    The fused ``qkv`` projection lays its 3 * dim_out outputs out as (q|k|v, head, head_dim).
    """

    def __init__(
        self, dim: int, dim_out: int, num_heads: int, q_stride: tuple[int, int] | None = None
    ) -> None:
        super().__init__()
        if dim_out % num_heads:
            raise ValueError(f"num_heads ({num_heads}) must divide the attention width ({dim_out})")
        self.num_heads = num_heads
        self.q_stride = q_stride
        self.qkv = nn.Linear(dim, dim_out * 3)
        self.proj = nn.Linear(dim_out, dim_out)

    def _attend(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        n, h, w, _ = x.shape
        qkv = linear(x, self.qkv.weight, self.qkv.bias).view(n, h * w, 3, self.num_heads, -1)
        q, k, v = qkv.unbind(2)  # each (N, h*w, heads, head_dim), strided views
        if self.q_stride is not None:
            q = max_pool_channels_last(q.reshape(n, h, w, -1), self.q_stride)
            h, w = q.shape[1:3]
            q = q.view(n, h * w, self.num_heads, -1)
        if out is not None:
            out = out.view(n, h * w, self.num_heads, -1)
        return softmax_attention(q, k, v, out=out).view(n, h, w, -1)

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        """Everything but the output projection: (N, h, w, dim) -> (N, h/s, w/s, dim_out).

        Without autograd, many windows are processed a group at a time so that their qkv projection
        stays in cache and the full-size one is never allocated (fresh multi-MB buffers cost a page fault
        per 4 KiB).
        """
        n, h, w, _ = x.shape
        step = max(1, _CHUNK_ELEMS // (h * w * self.qkv.out_features))
        if not onednn_applies(x, self.qkv.weight) or step >= n:
            return self._attend(x)
        sh, sw = self.q_stride or (1, 1)
        out = x.new_empty(n, h // sh, w // sw, self.proj.out_features)
        for i in range(0, n, step):
            self._attend(x[i : i + step], out=out[i : i + step])
        return out

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """(N, h, w, dim) -> (N, h/s, w/s, dim_out), plus ``residual`` when given (fused into ``proj``)."""
        return linear(self.attend(x), self.proj.weight, self.proj.bias, residual=residual)


class MultiScaleBlock(nn.Module):
    """Pre-norm transformer block: (windowed) attention then a GELU MLP, both residual.

    x: (B, H, W, dim) -> (B, H/s, W/s, dim_out). ``window_size`` 0 means global attention. When the width
    changes, the shortcut is ``proj`` of the normalised input, max-pooled like the queries.
    """

    def __init__(
        self,
        dim: int,
        dim_out: int,
        num_heads: int,
        window_size: int,
        q_stride: tuple[int, int] | None = None,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        if q_stride is not None and window_size % q_stride[0]:
            raise ValueError(f"window size {window_size} is not divisible by the query stride {q_stride}")
        self.dim, self.dim_out = dim, dim_out
        self.window_size = window_size
        self.q_stride = q_stride
        self.norm1 = nn.LayerNorm(dim, eps=_LN_EPS)
        self.attn = MultiScaleAttention(dim, dim_out, num_heads, q_stride)
        self.norm2 = nn.LayerNorm(dim_out, eps=_LN_EPS)
        self.mlp = MLP(dim_out, int(dim_out * mlp_ratio), dim_out, num_layers=2, activation=nn.GELU)
        if dim != dim_out:
            self.proj = nn.Linear(dim, dim_out)

    def _shortcut(self, x: torch.Tensor, normed: torch.Tensor) -> torch.Tensor:
        if self.dim == self.dim_out:
            return x
        w, bias = self.proj.weight, self.proj.bias
        if self.q_stride is None:
            return linear(normed, w, bias)
        b, hh, ww, _ = normed.shape
        sh, sw = self.q_stride
        band = max(1, _CHUNK_ELEMS // (sh * ww * self.dim_out)) * sh  # grid rows per step
        if band >= hh or not onednn_applies(normed, w):
            return max_pool_channels_last(linear(normed, w, bias), self.q_stride)
        # project and pool a band of rows at a time: the full-resolution projection never exists
        out = normed.new_empty(b, hh // sh, ww // sw, self.dim_out)
        for r in range(0, (hh // sh) * sh, band):
            out[:, r // sh : (r + band) // sh] = max_pool_channels_last(
                linear(normed[:, r : r + band], w, bias), self.q_stride
            )
        return out

    def _attention(self, normed: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
        """shortcut + attention(normed), both channels-last at the output resolution."""
        if self.window_size == 0:
            return self.attn(normed, residual=shortcut)
        windows, (hp, wp) = window_partition(normed, self.window_size)
        out = self.attn.attend(windows)
        if self.q_stride is not None:
            hp, wp = hp // self.q_stride[0], wp // self.q_stride[1]
        # unpartitioning before the projection lets the projection add the shortcut in the same pass
        out = window_unpartition(out, (hp, wp), shortcut.shape[1:3])
        return linear(out, self.attn.proj.weight, self.attn.proj.bias, residual=shortcut)

    def mlp_residual_(self, x: torch.Tensor) -> torch.Tensor:
        """x + mlp(norm2(x)) for channels-last x (..., dim_out), written into ``x`` when possible.

        Without autograd, it runs over a slab of rows at a time with the GELU and the residual fused
        into the two matmuls, and overwrites ``x`` (the caller's own fresh tensor) row slab by row slab:
        the 4x-wide hidden activations then stay in cache. Otherwise it returns a new tensor.
        """
        fc1, fc2 = self.mlp.layers
        if not onednn_applies(x, fc1.weight) or not x.is_contiguous():
            return x + self.mlp(F.layer_norm(x, (self.dim_out,), self.norm2.weight, self.norm2.bias, _LN_EPS))
        flat = x.view(-1, self.dim_out)
        step = max(1, _CHUNK_ELEMS // fc1.out_features)
        for i in range(0, flat.shape[0], step):
            rows = flat[i : i + step]
            normed = F.layer_norm(rows, (self.dim_out,), self.norm2.weight, self.norm2.bias, _LN_EPS)
            hidden = linear(normed, fc1.weight, fc1.bias, gelu=True)
            rows.copy_(linear(hidden, fc2.weight, fc2.bias, residual=rows))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = F.layer_norm(x, (self.dim,), self.norm1.weight, self.norm1.bias, _LN_EPS)
        x = self._attention(normed, self._shortcut(x, normed))
        return self.mlp_residual_(x)


class Hiera(nn.Module):
    """Hiera trunk. image (B, 3, S, S) float, normalised, S a multiple of 32 -> 4 stage outputs.

    The outputs are channels-first (B, C_i, S/4 / 2^i, S/4 / 2^i) for i = 0..3 (stride 4 first) with
    C_i = ``cfg.stage_dims[i]``; they are permuted views of channels-last memory.
    """

    def __init__(self, cfg: HieraConfig) -> None:
        super().__init__()
        if len(cfg.stages) != len(cfg.window_spec):
            raise ValueError(f"stages {cfg.stages} and window_spec {cfg.window_spec} differ in length")
        if not 0 <= cfg.q_pool < len(cfg.stages):
            raise ValueError(f"q_pool must lie in [0, {len(cfg.stages) - 1}], got {cfg.q_pool}")
        self.cfg = cfg
        self.stage_ends = [sum(cfg.stages[: i + 1]) - 1 for i in range(len(cfg.stages))]
        self.patch_embed = PatchEmbed(cfg.embed_dim)
        # windowed absolute position embedding: a coarse background map stretched over the whole grid
        # plus one window-sized pattern repeated in every stage-1 window
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.embed_dim, *cfg.window_pos_embed_bkg_spatial_size))
        w0 = cfg.window_spec[0]
        self.pos_embed_window = nn.Parameter(torch.zeros(1, cfg.embed_dim, w0, w0))
        self.blocks = nn.ModuleList(self._make_blocks(cfg))
        self._pos_cache: tuple[tuple, torch.Tensor] | None = None

    def _make_blocks(self, cfg: HieraConfig) -> list[MultiScaleBlock]:
        pool_blocks = {end + 1 for end in self.stage_ends[: cfg.q_pool]}
        dim, heads, stage = cfg.embed_dim, cfg.num_heads, 0
        blocks = []
        for i in range(sum(cfg.stages)):
            # a stage's first block still runs on the previous stage's grid, so it uses that stage's
            # window (its pooled queries then form the new stage's window)
            window = 0 if i in cfg.global_att_blocks else cfg.window_spec[stage]
            dim_out = dim
            if i - 1 in self.stage_ends:
                dim_out, heads, stage = int(dim * cfg.dim_mul), int(heads * cfg.head_mul), stage + 1
            q_stride = cfg.q_stride if i in pool_blocks else None
            blocks.append(MultiScaleBlock(dim, dim_out, heads, window, q_stride))
            dim = dim_out
        return blocks

    def _pos_key(self, h: int, w: int, dtype: torch.dtype) -> tuple:
        p, pw = self.pos_embed, self.pos_embed_window
        return (h, w, dtype, p.device, p.data_ptr(), p._version, pw.data_ptr(), pw._version)

    def position_embedding(self, h: int, w: int, dtype: torch.dtype) -> torch.Tensor:
        """(1, h, w, embed_dim) in ``dtype``; h and w must be multiples of the first window size.

        Computed in float32. Cached while gradients are off, keyed on the parameters' storage and
        version counters so that loading or editing weights invalidates it.
        """
        cacheable = not torch.is_grad_enabled() and not compiling()
        key = self._pos_key(h, w, dtype) if cacheable else None
        if cacheable and self._pos_cache is not None and self._pos_cache[0] == key:
            return self._pos_cache[1]
        w0 = self.pos_embed_window.shape[-1]
        if h % w0 or w % w0:
            raise ValueError(f"the stride-4 grid ({h}x{w}) must be a multiple of the window size {w0}")
        bkg = F.interpolate(self.pos_embed.float(), size=(h, w), mode="bicubic", align_corners=False)
        pos = bkg + self.pos_embed_window.float().tile(1, 1, h // w0, w // w0)
        pos = pos.permute(0, 2, 3, 1).to(dtype).contiguous()
        if cacheable:
            self._pos_cache = (key, pos)
        return pos

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.dim() != 4 or x.shape[-1] % 32 or x.shape[-2] % 32:
            raise ValueError(f"expected images (B, 3, H, W), H and W multiples of 32; got {tuple(x.shape)}")
        x = self.patch_embed(x)
        x = x + self.position_embedding(x.shape[1], x.shape[2], x.dtype)
        outputs = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.stage_ends:
                outputs.append(x.permute(0, 3, 1, 2))
        return outputs
