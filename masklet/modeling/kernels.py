"""CPU-fast exact kernels for inference: fused linear layers and blocked softmax attention.

Both are local swaps for plain PyTorch ops (``F.linear`` (+ GELU / residual) and
``F.scaled_dot_product_attention``) with the same results, tested against them. They take the fast
path only on CPU without autograd; everywhere else they are the plain ops.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

# Query-key pairs scored per attention step (the score slab is 8 MiB in float32).
_ATTN_BLOCK_ELEMS = 1 << 21


@functools.cache
def _onednn_linear_works(dtype: torch.dtype) -> bool:
    """Whether this build and CPU run oneDNN's fused linear op in ``dtype`` and it agrees with F.linear."""
    try:
        op = torch.ops.mkldnn._linear_pointwise
        if dtype == torch.bfloat16 and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return False
        # fixed values: probing must not draw from the global random generator
        x = torch.linspace(-1, 1, 24).view(3, 8)
        w, b = torch.linspace(-1, 1, 40).view(5, 8), torch.linspace(-1, 1, 5)
        with torch.no_grad():
            got = op(x.to(dtype), w.to(dtype), b.to(dtype), "none", [], "").float()
        return torch.allclose(got, F.linear(x, w, b), atol=0.05)
    except Exception:  # any build without the op, or with a different signature
        return False


def compiling() -> bool:
    """True while ``torch.compile`` or an export (``torch.export``, ONNX) traces: hand-written kernels
    step aside for the plain ops a compiler fuses and an exported graph can express."""
    if torch.onnx.is_in_onnx_export():
        return True
    if not hasattr(torch, "compiler"):
        return False
    return torch.compiler.is_compiling() or torch.compiler.is_exporting()


def exporting() -> bool:
    """True while ``torch.export`` (or the ONNX exporter built on it) traces: code whose path depends
    on a size that the exported graph leaves free must choose it inside the graph."""
    if torch.onnx.is_in_onnx_export():
        return True
    return hasattr(torch, "compiler") and torch.compiler.is_exporting()


def onednn_applies(x: torch.Tensor, weight: torch.Tensor) -> bool:
    # measured on a 2-core AMD EPYC: MKL's fp32 GEMM (behind F.linear) reaches 215 GFLOP/s, oneDNN 480.
    # The oneDNN op has no autograd formula, so it only serves inference
    if x.device.type != "cpu" or x.dtype != weight.dtype or x.dtype not in (torch.float32, torch.bfloat16):
        return False
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
        return False
    if compiling():
        return False
    return torch.backends.mkldnn.enabled and _onednn_linear_works(x.dtype)


def linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    gelu: bool = False,
    residual: torch.Tensor | None = None,
    relu: bool = False,
) -> torch.Tensor:
    """``F.linear`` with an optional exact (erf) GELU or a ReLU after it, or a residual added to it.

    x: (..., in) any strides; weight: (out, in); residual: (..., out) -> (..., out) contiguous. On CPU
    without autograd it runs as one oneDNN primitive with the GELU / ReLU / residual fused into the
    GEMM; otherwise it is exactly ``residual + F.linear(x, weight, bias)`` (or ``F.gelu(F.linear(...))``,
    ``F.relu(F.linear(...))``).
    """
    if gelu + relu + (residual is not None) > 1:
        raise ValueError("linear() fuses one of a GELU, a ReLU or a residual, not several")
    if onednn_applies(x, weight):
        op = torch.ops.mkldnn._linear_pointwise
        if residual is not None:
            return op.binary(x, residual.contiguous(), weight, bias, "add")
        if gelu:
            return op(x, weight, bias, "gelu", [], "none")
        return op(x, weight, bias, "relu" if relu else "none", [], "")
    y = F.linear(x, weight, bias)
    if gelu:
        return F.gelu(y)
    if relu:
        return F.relu(y)
    return y if residual is None else residual + y


def _matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(n, r, k) @ (n, k, c) -> (n, r, c); one oneDNN GEMM when n == 1 (see :func:`linear`)."""
    if a.shape[0] == 1 and onednn_applies(a, b):
        w = b[0].t()
        # oneDNN drops to a reference kernel, hundreds of times slower, for weights with padded rows
        if w.is_contiguous() or w.t().is_contiguous():
            return linear(a[0], w).unsqueeze(0)
    return torch.bmm(a, b)


def softmax_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    block_elems: int | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Exact multi-head softmax attention, token-major, computed a cache-sized block at a time.

    q and k: (B, Lq / Lk, heads, d), v: (B, Lk, heads, dv), any strides (views into a fused qkv
    projection, or v expanded over heads, are fine) -> (B, Lq, heads, dv) contiguous, so a free view
    makes it (B, Lq, heads * dv). Same result as
    ``F.scaled_dot_product_attention`` (softmax(q k^T / sqrt(d)) v). On CPU it is several times faster
    here: the flash kernel is slow for head_dim 96, and the plain formula spills a (Lq, Lk) score matrix
    per head out of cache. Each step scores at most ``block_elems`` (default ``_ATTN_BLOCK_ELEMS``)
    query-key pairs (a batch of small windows, or a slab of queries of one image); ``out``
    (B, Lq, heads, d), if given, receives the result.
    """
    if compiling() or (torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)):
        # the blocked loop writes into buffers in place, which autograd cannot follow (and a compiler
        # fuses the plain formula itself)
        res = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        res = res.transpose(1, 2)
        return res.contiguous() if out is None else out.copy_(res)
    b, lq, heads, d = q.shape
    lk = k.shape[1]
    block_elems = block_elems or _ATTN_BLOCK_ELEMS
    q = q * d**-0.5
    out = q.new_empty(b, lq, heads, v.shape[-1]) if out is None else out
    rows = max(1, min(lq, block_elems // lk))  # queries per step
    batch = max(1, min(b, block_elems // (rows * lk)))  # batch entries (windows) per step
    k, v = k.transpose(1, 2), v.transpose(1, 2)  # (B, heads, Lk, d)
    if batch == 1:  # single-matrix GEMMs (see _matmul) want each (Lk, d) matrix contiguous
        k, v = k.contiguous(), v.contiguous()
    for h in range(heads):
        for i in range(0, b, batch):
            kt, vh = k[i : i + batch, h].transpose(1, 2), v[i : i + batch, h]
            for j in range(0, lq, rows):
                scores = _matmul(q[i : i + batch, j : j + rows, h], kt)
                torch.softmax(scores, dim=-1, out=scores)  # row-wise, so in place is safe
                out[i : i + batch, j : j + rows, h] = _matmul(scores, vh)
    return out
