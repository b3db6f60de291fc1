"""masklet: SAM 2 / SAM 2.1 (Segment Anything Model 2) from scratch in PyTorch."""

__version__ = "0.1.0"
