"""Opt-in ``torch.compile`` of the heavy modules, with a graceful fallback to eager execution.

    model = masklet.build_model("sam2.1_hiera_tiny", compile=True)   # or compile_model(model)
    seconds = warm_up(model)                                          # the one-time compile cost

The image encoder is compiled for static shapes (one input size), memory attention with dynamic shapes
(the number of memory frames and object pointers grows during tracking). While compiling, masklet's
hand-written CPU kernels step aside (``masklet.modeling.kernels``) and the compiler sees the plain
PyTorch ops it knows how to fuse. The math is the same; the first calls pay the compile time, which
:func:`warm_up` pays up front and reports.

If compiling fails -- no C++ compiler, an unsupported op, an old torch -- the module runs eagerly from
then on, with one warning saying why: a compiled model never fails where an eager one works.
"""

from __future__ import annotations

import time
import warnings

import torch
from torch import nn

COMPILED = {"image_encoder": False, "memory_attention": True}  # module -> dynamic shapes


class _Guarded:
    """Calls the compiled forward; on its first failure warns once and calls the eager one from then on."""

    def __init__(self, name: str, eager, compiled) -> None:
        self.name, self.eager, self.compiled = name, eager, compiled
        self.failed: str | None = None

    def __call__(self, *args, **kwargs):
        if self.failed is None:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as exc:  # compilation or compiled-code failure: eager is always correct
                self.failed = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
                warnings.warn(
                    f"torch.compile of {self.name} failed ({self.failed}); running it eagerly",
                    RuntimeWarning,
                    stacklevel=2,
                )
        return self.eager(*args, **kwargs)


def compile_model(model: nn.Module, backend: str = "inductor", mode: str | None = None) -> nn.Module:
    """Compile ``model``'s image encoder and memory attention in place (idempotent); returns ``model``.

    backend / mode: passed to ``torch.compile`` (``mode="max-autotune"`` tries more kernels, slower to
    compile). Without ``torch.compile`` (torch < 2.0) the model is returned unchanged with a warning.
    """
    if not hasattr(torch, "compile"):
        warnings.warn("this torch has no torch.compile: running eagerly", RuntimeWarning, stacklevel=2)
        return model
    for name, dynamic in COMPILED.items():
        module = getattr(model, name)
        if isinstance(module.forward, _Guarded):
            continue
        eager = module.forward
        compiled = torch.compile(eager, backend=backend, mode=mode, dynamic=dynamic)
        module.forward = _Guarded(name, eager, compiled)
    return model


def compile_status(model: nn.Module) -> dict[str, str]:
    """module -> "compiled", "eager (<why>)" after a failure, or "not compiled"."""
    out = {}
    for name in COMPILED:
        fwd = getattr(model, name).forward
        if not isinstance(fwd, _Guarded):
            out[name] = "not compiled"
        else:
            out[name] = "compiled" if fwd.failed is None else f"eager ({fwd.failed})"
    return out


@torch.inference_mode()
def warm_up(model: nn.Module, batch: int = 1) -> float:
    """Run the image encoder once on a blank image (compiling it if :func:`compile_model` was called);
    returns the seconds it took. Memory attention compiles on the first tracked frame."""
    size = model.image_size
    x = torch.zeros(batch, 3, size, size, device=model.device)
    t0 = time.perf_counter()
    model.encode_image(x)
    return time.perf_counter() - t0
