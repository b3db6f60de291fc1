"""torchvision.datasets: every name is a placeholder (timm imports dataset classes at import time)."""

from .._stub import module_getattr

__getattr__ = module_getattr(__name__)
