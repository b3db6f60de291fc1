"""The reference implementation (Meta's ``sam2`` 1.1.0 from PyPI) as a test oracle.

Tests build a reference model with random weights, perturb every parameter with seeded noise (so that
zero-initialised tensors matter too), save ``{"model": state_dict}`` -- exactly the official checkpoint
format -- and load that one file into both implementations.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import pytest
import torch

SHIMS = str(Path(__file__).parent / "oracle_shims")

REFERENCE_CONFIGS = {
    "sam2_hiera_tiny": "configs/sam2/sam2_hiera_t.yaml",
    "sam2_hiera_small": "configs/sam2/sam2_hiera_s.yaml",
    "sam2_hiera_base_plus": "configs/sam2/sam2_hiera_b+.yaml",
    "sam2_hiera_large": "configs/sam2/sam2_hiera_l.yaml",
    "sam2.1_hiera_tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "sam2.1_hiera_small": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "sam2.1_hiera_base_plus": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "sam2.1_hiera_large": "configs/sam2.1/sam2.1_hiera_l.yaml",
}


@functools.lru_cache(maxsize=1)
def reference_error() -> str | None:
    """None when the reference imports, else why it does not."""
    try:
        import torchvision  # noqa: F401
    except Exception:
        if SHIMS not in sys.path:
            sys.path.insert(0, SHIMS)
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
    try:
        import sam2.build_sam  # noqa: F401
    except Exception as exc:  # pragma: no cover - depends on the environment
        return f"reference sam2==1.1.0 not importable ({exc!r}); install it as .ci/run does"
    return None


def require_reference() -> None:
    err = reference_error()
    if err is not None:
        if os.environ.get("CI"):
            pytest.fail(err)
        pytest.skip(err)


def build_reference(preset: str, checkpoint: str | os.PathLike | None = None, **overrides):
    """The reference SAM2Base for ``preset`` on CPU in eval mode (random weights, or ``checkpoint``)."""
    require_reference()
    from sam2.build_sam import build_sam2

    extra = [f"++model.{k}={v}" for k, v in overrides.items()]
    model = build_sam2(REFERENCE_CONFIGS[preset], None, device="cpu", hydra_overrides_extra=extra)
    if checkpoint is not None:
        sd = torch.load(checkpoint, map_location="cpu", weights_only=True)["model"]
        model.load_state_dict(sd, strict=True)
    return model.eval()


def perturbed_state_dict(model: torch.nn.Module, seed: int, scale: float = 0.02) -> dict[str, torch.Tensor]:
    """Every floating tensor of ``model`` plus seeded Gaussian noise of std ``scale``."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, t in model.state_dict().items():
        t = t.detach().clone()
        if t.is_floating_point():
            t += torch.randn(t.shape, generator=gen, dtype=t.dtype) * scale
        out[name] = t
    return out


def write_reference_checkpoint(preset: str, path: str | os.PathLike, seed: int = 0) -> Path:
    """Write a seeded random checkpoint for ``preset`` in the official format (``{"model": sd}``)."""
    path = Path(path)
    if not path.exists():
        model = build_reference(preset)
        sd = perturbed_state_dict(model, seed)
        tmp = path.with_suffix(".tmp")
        torch.save({"model": sd}, tmp)
        tmp.rename(path)
    return path
