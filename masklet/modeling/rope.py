"""Axial 2-D rotary position embedding (RoPE) and the attention that uses it (memory attention).

A token at grid position (y, x) of an (h, w) feature map (row-major, token index ``y * w + x``) has each
channel pair (2j, 2j+1) of its per-head query/key vector rotated by an angle: the first quarter of the
pairs (j < head_dim / 4) by ``x * f_j``, the next quarter by ``y * f_(j - head_dim/4)``, with
``f_i = theta^(-4 i / head_dim)``. Since the rotation is the same for queries and keys, the dot product
of a rotated query and key depends only on their relative offset.

Rotations are done in real arithmetic on precomputed cos/sin tables; pair (a, b) becomes
``(a cos - b sin, a sin + b cos)``, i.e. ``x * cos + swap(x) * signed_sin`` with ``swap`` exchanging the
two members of each pair.
"""

from __future__ import annotations

import math

import torch

from masklet.modeling.common import Attention
from masklet.modeling.kernels import compiling, exporting, linear, softmax_attention

# Bytes of attention scores per step of the CPU memory-attention kernel (one head of width 256 over
# ~29k memory keys). Measured on a 2-core AMD EPYC: the score GEMM (rows x 256 @ 256 x 29k) runs at
# ~370 GFLOP/s in float32 while its output fits in ~16 MiB of cache and drops to ~215 beyond; 16 MiB is
# also the fastest block for the whole layer in bfloat16.
MEMORY_ATTN_BLOCK_BYTES = 16 * 2**20


def _block_elems(q: torch.Tensor) -> int:
    return MEMORY_ATTN_BLOCK_BYTES // q.element_size()


def axial_rope_angles(head_dim: int, h: int, w: int, theta: float = 10000.0) -> torch.Tensor:
    """Rotation angles in radians: (h * w, head_dim // 2) float32, one per token and channel pair."""
    if head_dim % 4:
        raise ValueError(f"axial RoPE needs a head dimension divisible by 4, got {head_dim}")
    quarter = head_dim // 4
    freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 4, dtype=torch.float32)[:quarter] / head_dim))
    t = torch.arange(h * w, dtype=torch.float32)
    tx = t % w
    ty = torch.div(t, w, rounding_mode="floor")
    return torch.cat([torch.outer(tx, freqs), torch.outer(ty, freqs)], dim=-1)


class AxialRoPE:
    """Cos/sin tables for one head size, cached per (h, w, device, dtype).

    Holds no parameters; one instance may be shared by many attention modules so that the tables
    (2 x h*w x head_dim values each) exist once per model rather than once per layer.
    """

    def __init__(self, head_dim: int, theta: float = 10000.0) -> None:
        if head_dim % 4:
            raise ValueError(f"axial RoPE needs a head dimension divisible by 4, got {head_dim}")
        self.head_dim = head_dim
        self.theta = theta
        self._tables: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def tables(
        self, h: int, w: int, device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(cos, signed_sin), each (h * w, head_dim) of ``dtype``, pair-interleaved like the channels.

        ``cos`` repeats cos(angle) for both members of a pair; ``signed_sin`` holds (-sin, +sin).
        """
        if exporting():
            # an export's tables are symbolic: cached, they would outlive the trace in the model (and
            # a traced branch, ``torch.cond``, would take them for constants without values)
            return self._compute(h, w, device, dtype)
        key = (h, w, str(device), dtype)
        if key not in self._tables:
            self._tables[key] = self._compute(h, w, device, dtype)
        return self._tables[key]

    def _compute(
        self, h: int, w: int, device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        angles = axial_rope_angles(self.head_dim, h, w, self.theta).to(device)
        cos, sin = angles.cos(), angles.sin()
        cos = cos.repeat_interleave(2, dim=-1)
        sin = torch.stack([-sin, sin], dim=-1).flatten(-2)
        return cos.to(dtype), sin.to(dtype)

    def rotate(
        self, x: torch.Tensor, h: int, w: int, num_exclude: int = 0, repeat: bool = False
    ) -> torch.Tensor:
        """Rotate x: (B, heads, n, head_dim) (or any leading axes) -> a new tensor of the same shape and
        dtype.

        The first ``n - num_exclude`` tokens are rotated; the trailing ``num_exclude`` are copied
        unchanged. Without ``repeat`` the rotated part must be exactly h*w tokens; with it, any whole
        number of h*w grids (several memory frames), each getting the same positions.
        """
        n_grid = h * w
        n_rot = x.shape[-2] - num_exclude
        if n_rot < 0:
            raise ValueError(f"cannot exclude {num_exclude} tokens from RoPE: only {x.shape[-2]} tokens")
        # floor division and modulo rather than divmod: they also take the symbolic sizes of an export
        reps, rem = n_rot // n_grid, n_rot % n_grid
        if rem or (not repeat and reps != 1):
            what = "a multiple of" if repeat else "equal to"
            raise ValueError(
                f"RoPE over a {h}x{w} grid: the number of rotated tokens ({n_rot}) must be {what} {n_grid}"
            )
        # tables in x's dtype: bf16 rotation costs one extra rounding, far below bf16 attention noise
        cos, sin = self.tables(h, w, x.device, x.dtype)
        # frames as a separate axis, so one grid-sized table broadcasts over all of them
        src = x[..., :n_rot, :].unflatten(-2, (reps, n_grid))
        swapped = src.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)
        out = (src * cos).addcmul_(swapped, sin).flatten(-3, -2)
        if num_exclude:
            out = torch.cat([out, x[..., n_rot:, :]], dim=-2)
        return out


def _apply(layer: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)``, through the fused CPU kernel at inference (:func:`masklet.modeling.kernels.linear`)."""
    return linear(x, layer.weight, layer.bias)


def square_side(num_tokens: int) -> int:
    """Side of the square grid holding ``num_tokens`` tokens; raises if there is none."""
    side = math.isqrt(num_tokens)
    if side * side != num_tokens:
        raise ValueError(
            f"{num_tokens} query tokens do not form a square grid; pass feat_size=(h, w) explicitly"
        )
    return side


class RoPEAttention(Attention):
    """Multi-head attention whose queries and keys get axial rotary position embedding.

    q: (B, Nq, embedding_dim) with Nq = h * w tokens of a row-major grid;
    k, v: (B, Nk, kv_in_dim) -> (B, Nq, embedding_dim). Parameter names (q_proj, k_proj, v_proj,
    out_proj) follow the official checkpoints.

    ``rope_k_repeat``: keys are several grids of the query's size laid end to end (memories of several
    frames), each rotated with the query's positions. Otherwise Nk must equal Nq (self-attention).
    ``num_k_exclude_rope`` (per call): the trailing keys that carry no position (object pointers).
    ``rope``: a table cache to share between modules; by default each module has its own.
    """

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        downsample_rate: int = 1,
        dropout: float = 0.0,
        kv_in_dim: int | None = None,
        rope_theta: float = 10000.0,
        rope_k_repeat: bool = False,
        rope: AxialRoPE | None = None,
    ) -> None:
        super().__init__(embedding_dim, num_heads, downsample_rate, dropout, kv_in_dim)
        head_dim = self.internal_dim // num_heads
        if rope is None:
            rope = AxialRoPE(head_dim, rope_theta)
        elif rope.head_dim != head_dim or rope.theta != rope_theta:
            raise ValueError(
                f"shared RoPE tables are for head_dim={rope.head_dim}, theta={rope.theta}; "
                f"this attention needs head_dim={head_dim}, theta={rope_theta}"
            )
        self.rope = rope
        self.rope_k_repeat = rope_k_repeat

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        num_k_exclude_rope: int = 0,
        feat_size: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """``feat_size``: the query grid (h, w); by default the square grid of Nq tokens."""
        if feat_size is None:
            side = square_side(q.shape[1])
            feat_size = (side, side)
        h, w = feat_size
        q = self.rope.rotate(self._heads(_apply(self.q_proj, q)), h, w)
        k = self.rotate_keys(self._heads(_apply(self.k_proj, k)), (h, w), num_k_exclude_rope)
        return _apply(self.out_proj, self._merge(self.attend_rotated(q, k, v, (h, w), num_k_exclude_rope)))

    # The two steps a memory cross-attention variant may replace (EdgeTAM's keys on their own latent
    # grid, EfficientTAM's pooled memory); both receive per-head tensors (B, heads, L, d).
    def rotate_keys(self, k: torch.Tensor, feat_size: tuple[int, int], num_exclude: int) -> torch.Tensor:
        """Keys with RoPE: spatial keys on the query's (h, w) grid (repeated per memory frame with
        ``rope_k_repeat``); the trailing ``num_exclude`` keys (object pointers) unrotated."""
        return self.rope.rotate(k, *feat_size, num_exclude, self.rope_k_repeat)

    def attend_rotated(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v_in: torch.Tensor,
        feat_size: tuple[int, int],
        num_exclude: int,
    ) -> torch.Tensor:
        """softmax(q k^T / sqrt(d)) v_proj(v_in): q, k rotated (B, heads, L, d), v_in (B, Lk, kv_in_dim)
        unprojected -> (B, heads, Lq, d)."""
        if self._fast_cpu(q) and v_in.shape[-1] < q.shape[-1]:
            return self._attend_then_project_values(q, k, v_in)
        return self._attend(q, k, self._heads(_apply(self.v_proj, v_in)))

    def _fast_cpu(self, q: torch.Tensor) -> bool:
        return (
            not self.training and q.device.type == "cpu" and not torch.is_grad_enabled() and not compiling()
        )

    def _attend_then_project_values(
        self, q: torch.Tensor, k: torch.Tensor, v_in: torch.Tensor
    ) -> torch.Tensor:
        """``_attend(q, k, heads(v_proj(v_in)))`` with the value projection moved after the attention.

        Softmax weights sum to 1 per query, so ``A @ (v_in W^T + b) = (A @ v_in) W^T + b``. Memory
        tokens are 64 wide and heads 256: mixing the raw tokens does a quarter of the work of mixing
        projected ones (the largest GEMM of video tracking). Same math, another rounding order;
        tested against the plain path.

        q, k: (B, heads, L, d); v_in: (B, Lk, kv_in_dim) -> (B, heads, Lq, d).
        """
        b, heads, _, d = q.shape
        raw = v_in.unsqueeze(2).expand(b, v_in.shape[1], heads, v_in.shape[2])
        mixed = softmax_attention(
            q.transpose(1, 2), k.transpose(1, 2), raw, block_elems=_block_elems(q)
        )  # (B, Lq, heads, kv_in_dim)
        weight = self.v_proj.weight.view(heads, d, -1)
        out = torch.einsum("blhc,hdc->bhld", mixed, weight)
        if self.v_proj.bias is not None:
            out = out + self.v_proj.bias.view(1, heads, 1, d)
        return out

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """(B, heads, L, d) in and out; the blocked kernel on CPU at inference, else SDPA."""
        if not self._fast_cpu(q):
            return super()._attend(q, k, v)
        out = softmax_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), block_elems=_block_elems(q)
        )
        return out.transpose(1, 2)
