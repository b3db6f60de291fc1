"""Minimal stand-in for torchvision, used only so the reference ``sam2`` package imports in tests.

The reference imports ``Normalize, Resize, ToTensor`` and ``batched_nms, box_area``. These are written
with plain torch so the oracle runs on a CPU-only torch without torchvision.
"""

from . import ops, transforms  # noqa: F401

__version__ = "0.0-masklet-shim"
