"""Tensor-only versions of the three torchvision transforms the sam2 reference uses; any other name
(timm imports many at import time) is a placeholder."""

import numpy as np
import torch
import torch.nn.functional as F

from .._stub import module_getattr


class ToTensor:
    """HxWxC uint8 array or PIL image -> CxHxW float tensor in [0, 1]."""

    def __call__(self, pic):
        arr = np.asarray(pic)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).contiguous()
        if t.dtype == torch.uint8:
            return t.float().div(255.0)
        return t.float()


class Resize(torch.nn.Module):
    """Bilinear resize with antialiasing, as torchvision does for tensors."""

    def __init__(self, size):
        super().__init__()
        self.size = tuple(size) if not isinstance(size, int) else (size, size)

    def forward(self, x):
        squeeze = x.dim() == 3
        if squeeze:
            x = x[None]
        y = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=True)
        return y[0] if squeeze else y


class Normalize(torch.nn.Module):
    def __init__(self, mean, std):
        super().__init__()
        self.mean = torch.tensor(mean)
        self.std = torch.tensor(std)

    def forward(self, x):
        shape = (-1, 1, 1)
        return (x - self.mean.to(x).view(shape)) / self.std.to(x).view(shape)


__getattr__ = module_getattr(__name__)
