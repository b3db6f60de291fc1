"""Where and in which precision to run: device choice and the "fast dtype" rule used by the CLI.

The Python API defaults to float32 (as the official one). The CLI and studio choose bfloat16 where the
hardware runs it fast: CUDA GPUs with bf16 support, and CPUs with AMX or AVX512-BF16 instructions.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch


def default_device() -> torch.device:
    """cuda if available, else mps, else cpu."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@functools.lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """True when the CPU has AMX or AVX512-BF16 (bf16 matmuls several times faster than fp32)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def fast_dtype(device: torch.device | str) -> torch.dtype:
    """bfloat16 where it is fast on ``device``, else float32."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    if dev.type == "cpu":
        return torch.bfloat16 if cpu_has_fast_bf16() else torch.float32
    return torch.float32


def parse_dtype(value: str | torch.dtype | None, device: torch.device | str | None = None) -> torch.dtype:
    """'auto' (fast_dtype), 'fp32'/'float32', 'bf16'/'bfloat16', a torch dtype, or None (float32)."""
    if value is None:
        return torch.float32
    if isinstance(value, torch.dtype):
        if value not in (torch.float32, torch.bfloat16):
            raise ValueError(f"dtype must be float32 or bfloat16, got {value}")
        return value
    key = str(value).lower().replace("torch.", "")
    if key == "auto":
        return fast_dtype(device if device is not None else default_device())
    table = {
        "fp32": torch.float32,
        "float32": torch.float32,
        "float": torch.float32,
        "bf16": torch.bfloat16,
        "bfloat16": torch.bfloat16,
    }
    if key not in table:
        raise ValueError(f"unknown dtype {value!r}: use 'float32' (fp32), 'bfloat16' (bf16) or 'auto'")
    return table[key]


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"``: the one spelling of a dtype in every JSON masklet writes."""
    return str(dtype).removeprefix("torch.")


def precision_meta(model) -> dict:
    """What output records say about a model's precision: ``{"dtype": ...}`` for the heavy modules
    (``--dtype``), plus ``"encoder_dtype"`` when the image encoder runs in another one (``--encoder-dtype``).
    Dtypes spelt as :func:`dtype_name` does."""
    # the memory modules (heavy_modules()[1:]); a model whose heavy parts run elsewhere has none
    memory = [p.dtype for m in model.heavy_modules()[1:] for p in m.parameters()]
    heavy = memory[0] if memory else model.dtype
    meta = {"dtype": dtype_name(heavy)}
    if model.dtype != heavy:
        meta["encoder_dtype"] = dtype_name(model.dtype)
    return meta
