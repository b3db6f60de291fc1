"""Compute floors: how many FLOPs a workload needs, and how fast this machine can do matmuls.

    python benchmarks/compute_floor.py            # the matmul peaks of this machine, fp32 and bf16

``count_flops(fn)`` runs ``fn`` once under ``torch.utils.flop_counter.FlopCounterMode`` and returns the
multiply-adds x 2 of its matrix products and convolutions (the ops that carry ~all of SAM 2's work),
including masklet's fused oneDNN linear layers (a formula is registered for them here).
``matmul_peak(dtype)`` measures the best throughput of large square products through the same oneDNN
primitive masklet uses. The floor of a workload is flops / peak: no implementation that does the same
arithmetic at that precision on this machine can be faster.
"""

from __future__ import annotations

import functools
import math
import time

import torch
from torch.utils.flop_counter import FlopCounterMode, register_flop_formula


@functools.cache
def _register() -> None:
    def linear_flops(x_shape, second, third=None, *args, **kwargs) -> int:
        # default overload: (x, weight, bias, ...); binary: (x, other, weight, bias, ...)
        w_shape = third if isinstance(third, (tuple, list, torch.Size)) and len(third) == 2 else second
        return 2 * math.prod(x_shape[:-1]) * w_shape[0] * w_shape[1]

    register_flop_formula(torch.ops.mkldnn._linear_pointwise)(linear_flops)


def count_flops(fn) -> int:
    """FLOPs (2 x multiply-adds) of the matmuls and convolutions ``fn()`` runs."""
    _register()
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """Best FLOP/s of (n x n) @ (n x n) products in ``dtype`` through masklet's linear kernel."""
    from masklet.modeling.kernels import linear

    a = torch.randn(n, n).to(dtype)
    w = torch.randn(n, n).to(dtype)
    best = math.inf
    with torch.inference_mode():
        linear(a, w)
        for _ in range(repeats):
            t0 = time.perf_counter()
            linear(a, w)
            best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def floor_line(flops: int, peak: float) -> str:
    return f"{flops / 1e9:.0f} GFLOP / {peak / 1e12:.2f} TFLOP/s = {flops / peak:.3f} s"


if __name__ == "__main__":
    for dt in (torch.float32, torch.bfloat16):
        print(f"{dt}: {matmul_peak(dt) / 1e9:.0f} GFLOP/s")
