"""Minimal stand-in for torchvision, used only so the reference ``sam2`` package imports in tests.

The reference imports ``Normalize, Resize, ToTensor`` and ``batched_nms, box_area``. These are written
with plain torch so the oracle runs on a CPU-only torch without torchvision. timm (the EdgeTAM
oracle's encoder) also imports ``ops.misc.FrozenBatchNorm2d`` and many dataset and transform names at
import time: those are placeholders that fail only if called.
"""

from . import datasets, ops, transforms  # noqa: F401

__version__ = "0.0-masklet-shim"
