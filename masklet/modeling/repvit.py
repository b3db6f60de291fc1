"""RepViT image-encoder trunk (EdgeTAM): a mobile CNN shaped like a ViT.

A stride-4 convolutional stem, then four stages of RepViT blocks on grids of stride 4, 8, 16 and 32.
A block mixes tokens with a 3x3 depthwise convolution plus a 1x1 depthwise one plus the identity (a
"re-parameterisable" sum that is one 3x3 depthwise convolution at inference), applies squeeze-excite on
every other block, and mixes channels with a residual 1x1-convolution MLP (GELU). Stages 2..4 begin
with a downsampling block: a block without squeeze-excite, a stride-2 depthwise convolution, a 1x1
convolution to the new width and a residual MLP. Every convolution is followed by batch norm.

Parameter names are timm's (``stem.conv1.c``, ``stages_1.downsample.pre_block.token_mixer.conv.bn``,
``...channel_mixer.conv2.c`` ...) under ``body.``, as EdgeTAM's checkpoint holds them: EdgeTAM wraps
timm's feature extractor, which names stage ``i`` ``stages_i``.

At inference (eval mode, no autograd) each convolution + batch norm pair, and each token mixer's three
branches, are folded into one convolution whose weights are cached until a parameter changes; 1x1
convolutions run as fused matmuls over channels-last activations. That is the plain computation in
another rounding order, tested against it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from masklet.modeling.kernels import compiling, linear
from masklet.presets import RepViTConfig


def _folding(module: nn.Module) -> bool:
    """Whether ``module`` runs the folded inference path (batch norm frozen, nothing to differentiate)."""
    return not module.training and not torch.is_grad_enabled() and not compiling()


def _version_key(tensors: list[torch.Tensor], dtype: torch.dtype) -> tuple:
    return (dtype, *((t.data_ptr(), t._version, t.device) for t in tensors))


class ConvNorm(nn.Module):
    """A bias-free convolution ``c`` followed by batch norm ``bn``: (B, cin, H, W) -> (B, cout, H', W')."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.c = nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self._cache: tuple | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _folding(self):
            return self.bn(self.c(x))
        w, b = self.folded()
        return F.conv2d(x, w, b, self.c.stride, self.c.padding, groups=self.c.groups)

    def folded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, bias) of the one convolution equal to conv + batch norm, in the weight's dtype;
        computed in float32 and cached until a parameter or buffer changes."""
        bn = self.bn
        tensors = [self.c.weight, bn.weight, bn.bias, bn.running_mean, bn.running_var]
        key = _version_key(tensors, self.c.weight.dtype)
        if self._cache is None or self._cache[0] != key:
            scale = bn.weight.float() * (bn.running_var.float() + bn.eps).rsqrt()
            w = self.c.weight.float() * scale[:, None, None, None]
            b = bn.bias.float() - bn.running_mean.float() * scale
            dtype = self.c.weight.dtype
            self._cache = (key, w.to(dtype), b.to(dtype))
        return self._cache[1], self._cache[2]


def _pointwise(conv: ConvNorm, x: torch.Tensor, **fuse) -> torch.Tensor:
    """A folded 1x1 ConvNorm on channels-last x (B, H, W, cin) -> (B, H, W, cout), as one fused matmul
    (``fuse``: ``gelu=True`` or ``residual=...``, see :func:`masklet.modeling.kernels.linear`)."""
    w, b = conv.folded()
    return linear(x, w.flatten(1), b, **fuse)


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) in channels-last memory -> the (B, H, W, C) view of the same memory."""
    return x.permute(0, 2, 3, 1)


def _channels_first(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2)


class TokenMixer(nn.Module):
    """3x3 depthwise ConvNorm + 1x1 depthwise ConvNorm + identity: (B, C, H, W) -> same shape."""

    def __init__(self, dim: int, kernel: int) -> None:
        super().__init__()
        self.conv = ConvNorm(dim, dim, kernel, groups=dim)
        self.conv1 = ConvNorm(dim, dim, 1, groups=dim)
        self._cache: tuple | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _folding(self):
            return self.conv(x) + self.conv1(x) + x
        w, b = self.folded()
        return F.conv2d(x, w, b, 1, self.conv.c.padding, groups=self.conv.c.groups)

    def folded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The three branches as one depthwise convolution (weight (C, 1, k, k), bias (C,)): the 1x1
        kernel and the identity (a 1 at the centre tap) are added to the k x k kernel's centre."""
        w3, b3 = self.conv.folded()
        w1, b1 = self.conv1.folded()
        key = (w3.data_ptr(), w1.data_ptr())
        if self._cache is None or self._cache[0] != key:
            k = w3.shape[-1] // 2
            w = w3.float().clone()
            w[:, :, k, k] += w1.float()[:, :, 0, 0] + 1.0
            self._cache = (key, w.to(w3.dtype), (b3.float() + b1.float()).to(b3.dtype))
        return self._cache[1], self._cache[2]


class SqueezeExcite(nn.Module):
    """Channel gating: x * sigmoid(fc2(relu(fc1(mean over H, W)))); fc1/fc2 are 1x1 convs with bias."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        s = self.fc2(F.relu(self.fc1(s)))
        return x * torch.sigmoid(s)


class ConvMlp(nn.Module):
    """1x1 ConvNorm to ``hidden`` channels, GELU, 1x1 ConvNorm back: (B, C, H, W) -> same shape."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.conv1 = ConvNorm(dim, hidden)
        self.act = nn.GELU()
        self.conv2 = ConvNorm(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act(self.conv1(x)))

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """x + self(x). Folded: two fused matmuls over channels-last rows (GELU and residual fused)."""
        if not _folding(self):
            return x + self(x)
        rows = _channels_last(x.contiguous(memory_format=torch.channels_last))
        hidden = _pointwise(self.conv1, rows, gelu=True)
        return _channels_first(_pointwise(self.conv2, hidden, residual=rows))


class RepViTBlock(nn.Module):
    """token mixer -> optional squeeze-excite -> residual channel MLP: (B, C, H, W) -> same shape."""

    def __init__(self, dim: int, mlp_ratio: int, kernel: int, use_se: bool) -> None:
        super().__init__()
        self.token_mixer = TokenMixer(dim, kernel)
        self.se = SqueezeExcite(dim, _se_width(dim)) if use_se else nn.Identity()
        self.channel_mixer = ConvMlp(dim, dim * mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.channel_mixer.residual(self.se(self.token_mixer(x)))


def _se_width(dim: int) -> int:
    """timm's squeeze-excite width for RepViT: dim / 4 rounded to the nearest multiple of 8 (>= 8)."""
    return max(8, int(dim / 4 + 4) // 8 * 8)


class Downsample(nn.Module):
    """Halve the grid and change the width: block, stride-2 depthwise ConvNorm, 1x1 ConvNorm, residual
    MLP. (B, cin, H, W) -> (B, cout, H/2, W/2)."""

    def __init__(self, cin: int, cout: int, mlp_ratio: int, kernel: int) -> None:
        super().__init__()
        self.pre_block = RepViTBlock(cin, mlp_ratio, kernel, use_se=False)
        self.spatial_downsample = ConvNorm(cin, cin, kernel, stride=2, groups=cin)
        self.channel_downsample = ConvNorm(cin, cout)
        self.ffn = ConvMlp(cout, cout * mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.spatial_downsample(self.pre_block(x))
        if _folding(self):
            x = x.contiguous(memory_format=torch.channels_last)
            x = _channels_first(_pointwise(self.channel_downsample, _channels_last(x)))
        else:
            x = self.channel_downsample(x)
        return self.ffn.residual(x)


class Stem(nn.Module):
    """Two stride-2 3x3 ConvNorms with a GELU between: (B, 3, S, S) -> (B, C, S/4, S/4)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = ConvNorm(cin, cout // 2, 3, stride=2)
        self.act1 = nn.GELU()
        self.conv2 = ConvNorm(cout // 2, cout, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act1(self.conv1(x)))


class Stage(nn.Module):
    """An optional :class:`Downsample` then ``depth`` blocks, squeeze-excite on blocks 0, 2, 4 ..."""

    def __init__(self, cin: int, cout: int, depth: int, mlp_ratio: int, kernel: int, downsample: bool):
        super().__init__()
        if downsample:
            self.downsample = Downsample(cin, cout, mlp_ratio, kernel)
        elif cin != cout:
            raise ValueError(f"a stage without downsampling keeps its width; got {cin} -> {cout}")
        self.blocks = nn.Sequential(*(RepViTBlock(cout, mlp_ratio, kernel, i % 2 == 0) for i in range(depth)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "downsample"):
            x = self.downsample(x)
        return self.blocks(x)


class RepViTBody(nn.Module):
    """The stem and the stages ``stages_0`` .. ``stages_3`` (timm's feature-extractor names)."""

    def __init__(self, cfg: RepViTConfig) -> None:
        super().__init__()
        dims = cfg.embed_dims
        self.stem = Stem(3, dims[0])
        for i, (depth, dim) in enumerate(zip(cfg.depths, dims)):
            cin = dims[max(i - 1, 0)]
            self.add_module(f"stages_{i}", Stage(cin, dim, depth, cfg.mlp_ratio, cfg.kernel_size, i > 0))
        self.num_stages = len(dims)

    def stages(self) -> list[Stage]:
        return [getattr(self, f"stages_{i}") for i in range(self.num_stages)]


class RepViT(nn.Module):
    """RepViT trunk. image (B, 3, S, S) float, normalised, S a multiple of 32 -> 4 stage outputs
    (B, C_i, S/4 / 2^i, S/4 / 2^i), i = 0..3, C_i = ``cfg.embed_dims[i]`` (channels-last memory)."""

    def __init__(self, cfg: RepViTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.body = RepViTBody(cfg)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.dim() != 4 or x.shape[-1] % 32 or x.shape[-2] % 32:
            raise ValueError(f"expected images (B, 3, H, W), H and W multiples of 32; got {tuple(x.shape)}")
        if _folding(self):
            # channels-last activations: depthwise convolutions and 1x1 matmuls then need no transposes
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.body.stem(x)
        outputs = []
        for stage in self.body.stages():
            x = stage(x)
            outputs.append(x)
        return outputs

    def layer_depth(self, name: str) -> tuple[int, int]:
        """(depth, number of layers) of the parameter ``name`` (relative to the trunk) for layer-wise
        learning-rate decay: the stem is 0, then each downsampling block and block in order."""
        parts = name.split(".")
        depth = 0
        for i, stage in enumerate(self.body.stages()):
            if parts[1] == f"stages_{i}":
                if parts[2] == "downsample":
                    return depth + 1, self.num_layers
                return depth + hasattr(stage, "downsample") + int(parts[3]) + 1, self.num_layers
            depth += hasattr(stage, "downsample") + len(stage.blocks)
        return 0, self.num_layers

    @property
    def num_layers(self) -> int:
        return sum(hasattr(s, "downsample") + len(s.blocks) for s in self.body.stages())
