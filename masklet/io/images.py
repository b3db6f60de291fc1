"""Image loading and conversion to the one layout the models take: (H, W, 3) uint8 RGB.

Accepted inputs and how they are converted (anything else raises ``ValueError`` saying what to do):

* numpy arrays (or CPU/GPU torch tensors, converted through numpy) shaped (H, W), (H, W, 1), (H, W, 3)
  or (H, W, 4): gray is repeated to RGB, the 4th channel (alpha) is dropped without compositing.
* dtypes: uint8 as is; uint16 (16-bit) divided by 257 and rounded, so 65535 -> 255; floats must lie in
  [0, 1] and are multiplied by 255 and rounded. Bool arrays are rejected because a bool array is
  almost always a mask passed where an image was meant; other integer dtypes are rejected because
  their range is ambiguous.
* PIL images of any mode are converted with Pillow (16-bit gray ``I;16`` modes are scaled by 257).
  In-memory PIL images are used as their pixels are; EXIF orientation is applied only by
  :func:`load_image`, which reads files the way image viewers show them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["load_image", "to_rgb_uint8"]

_ACCEPTED = "uint8, uint16, or float in [0, 1] arrays shaped (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)"


def to_rgb_uint8(image) -> np.ndarray:
    """Convert an image to a C-contiguous (H, W, 3) uint8 RGB array (see the module doc for the rules).

    Args:
        image: numpy array, torch tensor (H, W[, C]) or PIL image.

    Returns:
        (H, W, 3) uint8 array with values 0..255; a new array unless the input already was one.
    """
    if isinstance(image, Image.Image):
        return _from_pil(image)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(image, torch.Tensor):
        image = _tensor_to_numpy(image, torch)
    if not isinstance(image, np.ndarray):
        raise ValueError(
            f"expected an image as a numpy array, torch tensor or PIL image, got {type(image).__name__}; "
            "load files with masklet.io.images.load_image(path)"
        )
    return _from_array(image)


def _tensor_to_numpy(tensor, torch) -> np.ndarray:
    tensor = tensor.detach().cpu()
    if tensor.dtype in (torch.bfloat16, torch.float16):
        tensor = tensor.float()  # numpy has no bfloat16; float32 holds both exactly
    return tensor.numpy()


def _from_array(array: np.ndarray) -> np.ndarray:
    array = _as_hwc(array)
    if array.dtype == np.bool_:
        raise ValueError(
            "got a bool array, which looks like a mask rather than an image; "
            "if it really is a black/white image, pass mask.astype(np.uint8) * 255"
        )
    if array.dtype == np.uint8:
        out = array
    elif array.dtype == np.uint16:
        # Round to nearest: 257 is odd, so x / 257 is never exactly halfway.
        out = ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif np.issubdtype(array.dtype, np.floating):
        out = _float_to_uint8(array)
    else:
        raise ValueError(
            f"unsupported image dtype {array.dtype}; expected {_ACCEPTED}. "
            "Convert first, e.g. np.clip(image, 0, 255).astype(np.uint8) for 8-bit values"
        )
    channels = out.shape[2]
    if channels == 1:
        out = np.repeat(out, 3, axis=2)
    elif channels == 4:
        out = out[:, :, :3]  # alpha is dropped, not composited over a background
    return np.ascontiguousarray(out)


def _as_hwc(array: np.ndarray) -> np.ndarray:
    """Validate the shape and return an (H, W, C) view with C in {1, 3, 4}."""
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise ValueError(
            f"expected an image of shape (H, W) or (H, W, C), got {array.ndim} dims with shape "
            f"{tuple(array.shape)}; pass one image at a time"
        )
    h, w, c = array.shape
    if h == 0 or w == 0:
        raise ValueError(f"got an empty image of shape {tuple(array.shape)}; height and width must be > 0")
    if c not in (1, 3, 4):
        hint = ""
        if h in (1, 3, 4):
            hint = " It looks channels-first: use image.transpose(1, 2, 0) (numpy) or image.permute(1, 2, 0)."
        raise ValueError(
            f"expected 1 (gray), 3 (RGB) or 4 (RGBA) channels in the last dim, got shape "
            f"{tuple(array.shape)}.{hint}"
        )
    return array


def _float_to_uint8(array: np.ndarray) -> np.ndarray:
    if np.isnan(array).any():
        raise ValueError("float image contains NaN; expected finite values in [0, 1]")
    lo, hi = float(array.min()), float(array.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"float image values must lie in [0, 1], got range [{lo:g}, {hi:g}]; "
            "divide 0..255 data by 255 or pass it as uint8"
        )
    return np.rint(array.astype(np.float64) * 255.0).astype(np.uint8)


def _from_pil(image: Image.Image) -> np.ndarray:
    if image.width == 0 or image.height == 0:
        raise ValueError(f"got an empty PIL image of size {image.size}; width and height must be > 0")
    if image.mode.startswith("I;16"):
        # Pillow's own conversion would clip 16-bit values to 255 instead of scaling them.
        return _from_array(np.asarray(image).astype(np.uint16))
    if image.mode != "RGB":
        try:
            image = image.convert("RGB")
        except (ValueError, OSError) as exc:
            raise ValueError(
                f"cannot convert a PIL image of mode {image.mode!r} to RGB ({exc}); convert it to 'RGB' first"
            ) from exc
    return np.array(image, dtype=np.uint8)


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB, upright according to its EXIF orientation.

    Multi-frame files (GIF, TIFF) give their first frame.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is a directory, or not a readable image.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such image file: {path}")
    if path.is_dir():
        raise ValueError(f"{path} is a directory; expected an image file (JPEG, PNG, ...)")
    try:
        with Image.open(path) as image:
            image.load()
            upright = ImageOps.exif_transpose(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"could not read {path} as an image: {exc}") from exc
    return to_rgb_uint8(upright)
