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

import numpy as np
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


def _seeded_reference(preset: str, seed: int):
    """The reference model with its random initial weights drawn from ``seed`` (same file every run)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_reference(preset)


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
        model = _seeded_reference(preset, seed)
        sd = perturbed_state_dict(model, seed)
        tmp = path.with_suffix(".tmp")
        torch.save({"model": sd}, tmp)
        tmp.rename(path)
    return path


SCORE_HEAD = "sam_mask_decoder.pred_obj_score_head.layers.2"


def write_video_checkpoint(
    preset: str, path: str | os.PathLike, seed: int = 0, score_scale: float = 30.0, score_shift: float = 0.0
) -> Path:
    """A seeded random checkpoint whose object-score head is rescaled and shifted.

    With plain random weights the presence logit sits near -0.05 for every prompt, so every tracked
    mask would be the constant "absent" value and any implementation would match. Scaling the head's
    last layer spreads the logits and the shift makes most frames present and a few absent.
    """
    path = Path(path)
    if not path.exists():
        model = _seeded_reference(preset, seed)
        sd = perturbed_state_dict(model, seed)
        sd[f"{SCORE_HEAD}.weight"] *= score_scale
        sd[f"{SCORE_HEAD}.bias"] = sd[f"{SCORE_HEAD}.bias"] * score_scale + score_shift
        tmp = path.with_suffix(".tmp")
        torch.save({"model": sd}, tmp)
        tmp.rename(path)
    return path


def write_automask_checkpoint(preset: str, path: str | os.PathLike, seed: int = 0) -> Path:
    """A seeded random checkpoint whose masks are small, point-dependent blobs, for "segment everything".

    Plain random weights give every point of a grid the same image-wide speckle (its box is the whole
    image), so box NMS keeps one mask and the generator's filtering is never exercised. Here the mask
    decoder is smoothed and made to listen to the point: the stride-4/8 detail path (``conv_s0``,
    ``conv_s1``) is zeroed, the transposed convolutions use one weight for all four taps (no 2x2
    checkerboard), the learned tokens are shrunk so that the point's position encoding dominates the
    mask tokens, and the hypernetwork outputs are scaled so that logits spread well past the stability
    offset. Both implementations load the file unchanged: it is an official-format checkpoint.
    """
    path = Path(path)
    if path.exists():
        return path
    with torch.random.fork_rng():  # the same weights in every run: mask counts depend on them
        torch.manual_seed(seed)
        model = _seeded_reference(preset, seed)
    sd = blob_mask_weights(perturbed_state_dict(model, seed))
    tmp = path.with_suffix(".tmp")
    torch.save({"model": sd}, tmp)
    tmp.rename(path)
    return path


def blob_mask_weights(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The decoder changes of :func:`write_automask_checkpoint`, made to the state dict ``sd`` in place."""
    dec = "sam_mask_decoder."
    for name in ("conv_s0", "conv_s1"):
        sd[f"{dec}{name}.weight"].zero_()
        sd[f"{dec}{name}.bias"].zero_()
    for name in ("output_upscaling.0.weight", "output_upscaling.3.weight"):
        w = sd[dec + name]
        sd[dec + name] = w.mean(dim=(2, 3), keepdim=True).expand_as(w).contiguous()
    tokens = [f"{dec}iou_token.weight", f"{dec}mask_tokens.weight", f"{dec}obj_score_token.weight"]
    tokens += ["sam_prompt_encoder.not_a_point_embed.weight"]
    tokens += [f"sam_prompt_encoder.point_embeddings.{i}.weight" for i in range(4)]
    for name in tokens:
        sd[name] *= 0.03
    for i in range(4):
        for kind in ("weight", "bias"):
            sd[f"{dec}output_hypernetworks_mlps.{i}.layers.2.{kind}"] *= 400.0
    return sd


def build_reference_video(preset: str, checkpoint: str | os.PathLike, image_size: int = 1024):
    """The reference SAM2VideoPredictor on CPU with hole filling off (it needs CUDA there).

    Its memory attention gets the memory cast to the compute dtype: the reference stores memories
    in bfloat16 and relies on concatenation with float32 object pointers to promote them, which
    fails when a frame has no pointer to attend to ("mat1 and mat2 must have the same dtype").
    """
    require_reference()
    from sam2.build_sam import build_sam2_video_predictor

    extra = [] if image_size == 1024 else [f"++model.image_size={image_size}"]
    pred = build_sam2_video_predictor(
        REFERENCE_CONFIGS[preset], str(checkpoint), device="cpu", hydra_overrides_extra=extra
    )
    pred.fill_hole_area = 0
    return cast_memory_on_cpu(pred).eval()


def cast_memory_on_cpu(pred):
    """``pred`` (a reference SAM2VideoPredictor) with its memory attention casting the memory to the
    compute dtype (see :func:`build_reference_video`); returns ``pred``."""
    attn = pred.memory_attention
    plain_forward = attn.forward

    def forward(curr, memory, curr_pos=None, memory_pos=None, num_obj_ptr_tokens=0):
        dtype = curr[0].dtype if isinstance(curr, list) else curr.dtype
        return plain_forward(curr, memory.to(dtype), curr_pos, memory_pos.to(dtype), num_obj_ptr_tokens)

    attn.forward = forward
    return pred


EIGHT = np.ones((3, 3), dtype=bool)


def scipy_components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels, areas) for an (H, W) bool mask with 8-connectivity, from scipy."""
    from scipy import ndimage

    labels, _ = ndimage.label(mask, structure=EIGHT)
    sizes = np.bincount(labels.ravel())
    return labels, np.where(labels > 0, sizes[labels], 0)


def scipy_cc_like_reference(mask: torch.Tensor) -> list[torch.Tensor]:
    """Stand-in for the reference's CUDA connected components (``sam2.utils.misc.get_connected_components``,
    which it skips silently on CPU), computed with scipy."""
    labels = np.zeros(mask.shape, dtype=np.int32)
    areas = np.zeros(mask.shape, dtype=np.int32)
    for i in range(mask.shape[0]):
        labels[i, 0], areas[i, 0] = scipy_components(mask[i, 0].cpu().numpy().astype(bool))
    return [torch.from_numpy(labels), torch.from_numpy(areas)]
