"""Mask I/O: COCO run-length encoding, boxes, PNG files (binary masks, object-id maps) and colour overlays.

RLE follows COCO (and pycocotools) exactly, so files round-trip with other tools:

* pixels are read in column-major order (down the first column, then the next one);
* ``counts`` alternate background / foreground run lengths and always start with background (a
  leading 0 when the first pixel is foreground);
* compressed ``counts`` are pycocotools' ASCII string: each count (minus the count two places
  before it, from the fourth on) in 5-bit groups, low bits first, as characters ``chr(48 + bits)``
  with 0x20 flagging that more groups follow and 0x10 of the last group carrying the sign.

Everything is numpy; :func:`masks_to_rle_torch` finds the run boundaries of a batch on the masks' own
device and only moves the boundary indices to the CPU.
"""

from __future__ import annotations

import colorsys
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from .images import to_rgb_uint8

__all__ = [
    "MaskFileError",
    "as_mask",
    "compress_rle",
    "decode_rle",
    "encode_rle",
    "mask_colors",
    "mask_to_box_xywh",
    "mask_to_uncompressed_rle",
    "masks_to_rle_torch",
    "overlay_masks",
    "read_id_png",
    "rle_area",
    "save_mask_png",
]

_MAX_GROUPS = 13  # 13 five-bit groups cover any int64
_GRAY_MODES = ("P", "L", "1", "I", "I;16", "I;16L", "I;16B")


class MaskFileError(ValueError):
    """A mask file that cannot be read as object ids; the message says what to change."""


def as_mask(mask, name: str = "mask") -> np.ndarray:
    """(H, W) bool numpy array from a numpy array or torch tensor; nonzero is foreground.

    ``name`` names the argument in the ValueError raised for anything else (another type, another
    number of dimensions). A bool numpy array is returned as is (not copied).
    """
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    if not isinstance(mask, np.ndarray):
        raise ValueError(
            f"{name} must be a numpy array or torch tensor of shape (H, W), got {type(mask).__name__}"
        )
    if mask.ndim != 2:
        raise ValueError(
            f"{name} must have shape (H, W), got shape {mask.shape}; pass one mask at a time "
            "(e.g. masks[i] of an (N, H, W) stack)"
        )
    return mask if mask.dtype == np.bool_ else mask != 0


def _run_lengths(mask: np.ndarray) -> np.ndarray:
    """COCO run lengths (int64) of an (H, W) bool mask, column-major, starting with a background run."""
    flat = mask.ravel(order="F")
    if flat.size == 0:
        return np.zeros(1, dtype=np.int64)
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate([[0], change, [flat.size]]))
    if flat[0]:
        counts = np.concatenate([[0], counts])
    return counts.astype(np.int64)


def mask_to_uncompressed_rle(mask) -> dict:
    """Uncompressed COCO RLE ``{"size": [H, W], "counts": [int, ...]}`` of an (H, W) mask."""
    mask = as_mask(mask)
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": _run_lengths(mask).tolist()}


def encode_rle(mask) -> dict:
    """Compressed COCO RLE ``{"size": [H, W], "counts": str}`` of an (H, W) mask (nonzero = foreground).

    ``counts`` is pycocotools' string (as ``str``, ready for JSON); ``pycocotools.mask.decode``
    accepts it as is.
    """
    mask = as_mask(mask)
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": _counts_to_string(_run_lengths(mask))}


def compress_rle(rle: dict) -> dict:
    """Compressed form (``counts`` as str) of an uncompressed or compressed RLE."""
    h, w, counts = _parse_rle(rle)
    return {"size": [h, w], "counts": _counts_to_string(counts)}


def _counts_to_string(counts: np.ndarray) -> str:
    values = counts.astype(np.int64)
    if values.size > 3:
        values[3:] -= counts[1:-2]
    groups = np.zeros((values.size, _MAX_GROUPS), dtype=np.uint8)
    emitted = np.zeros((values.size, _MAX_GROUPS), dtype=bool)
    active = np.ones(values.size, dtype=bool)
    for g in range(_MAX_GROUPS):
        bits = values & 0x1F
        values = values >> 5  # arithmetic shift: negative deltas end in a run of -1
        more = np.where(bits & 0x10, values != -1, values != 0)
        groups[:, g] = 48 + (bits | (more << 5))
        emitted[:, g] = active
        active &= more
        if not active.any():
            break
    # Boolean indexing walks row-major: all groups of count 0, then of count 1, ...
    return groups[emitted].tobytes().decode("ascii")


def _string_to_counts(text: bytes) -> np.ndarray:
    codes = np.frombuffer(text, dtype=np.uint8).astype(np.int64) - 48
    if codes.size == 0:
        return np.zeros(0, dtype=np.int64)
    if codes.min() < 0 or codes.max() > 63:
        raise ValueError("compressed RLE counts contain characters outside pycocotools' alphabet ('0'..'o')")
    last = (codes & 0x20) == 0
    if not last[-1]:
        raise ValueError("compressed RLE counts are truncated: the last character says more follow")
    starts = np.flatnonzero(np.concatenate([[True], last[:-1]]))
    lengths = np.diff(np.concatenate([starts, [codes.size]]))
    if lengths.max() > _MAX_GROUPS:
        raise ValueError("compressed RLE counts contain a value too large for 64 bits; the string is corrupt")
    position = np.arange(codes.size) - np.repeat(starts, lengths)
    values = np.add.reduceat((codes & 0x1F) << (5 * position), starts)
    negative = (codes[last] & 0x10) != 0
    values[negative] -= np.left_shift(1, 5 * lengths[negative])
    # Undo the delta coding: counts[i] = values[i] + counts[i - 2] from i = 3 on.
    counts = values.copy()
    counts[1::2] = np.cumsum(values[1::2])
    counts[2::2] = np.cumsum(values[2::2])
    return counts


def _parse_rle(rle) -> tuple[int, int, np.ndarray]:
    """Validate an RLE dict and return (height, width, int64 run lengths)."""
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise ValueError(
            "an RLE must be a dict with 'size' [height, width] and 'counts' (a str/bytes string or a list "
            f"of run lengths), got {type(rle).__name__}"
            + (f" with keys {sorted(rle)}" if isinstance(rle, dict) else "")
        )
    size = rle["size"]
    if len(size) != 2 or any(int(s) < 0 for s in size):
        raise ValueError(f"RLE 'size' must be [height, width] with sizes >= 0, got {size!r}")
    h, w = int(size[0]), int(size[1])
    counts = rle["counts"]
    if isinstance(counts, str):
        if not counts.isascii():
            raise ValueError("compressed RLE counts must be an ASCII string as pycocotools writes it")
        counts = counts.encode("ascii")
    if isinstance(counts, bytes):
        counts = _string_to_counts(counts)
    else:
        counts = np.asarray(counts)
        if counts.ndim != 1 or (counts.size and not np.issubdtype(counts.dtype, np.integer)):
            raise ValueError("uncompressed RLE 'counts' must be a flat list of integer run lengths")
        counts = counts.astype(np.int64)
    if counts.size and counts.min() < 0:
        raise ValueError("RLE counts contain a negative run length; the RLE is corrupt")
    if int(counts.sum()) != h * w:
        raise ValueError(
            f"RLE counts cover {int(counts.sum())} pixels but 'size' {[h, w]} has {h * w}; "
            "the RLE is corrupt or its size is wrong"
        )
    return h, w, counts


def decode_rle(rle: dict) -> np.ndarray:
    """(H, W) bool mask from a COCO RLE, compressed (``counts`` str or bytes) or uncompressed (list)."""
    h, w, counts = _parse_rle(rle)
    values = (np.arange(counts.size) % 2).astype(bool)
    flat = np.repeat(values, counts)
    return np.ascontiguousarray(flat.reshape(w, h).T)


def rle_area(rle: dict) -> int:
    """Foreground pixel count of a compressed or uncompressed RLE."""
    return int(_parse_rle(rle)[2][1::2].sum())


def mask_to_box_xywh(mask) -> list[int]:
    """COCO box ``[x, y, width, height]`` of an (H, W) mask, in pixels; [0, 0, 0, 0] when empty.

    ``x, y`` are the leftmost column and top row holding foreground and the box covers them
    inclusively (``width = x_max - x + 1``), as ``pycocotools.mask.toBbox`` reports.
    """
    mask = as_mask(mask)
    cols = np.flatnonzero(mask.any(axis=0))
    rows = np.flatnonzero(mask.any(axis=1))
    if cols.size == 0:
        return [0, 0, 0, 0]
    x, y = int(cols[0]), int(rows[0])
    return [x, y, int(cols[-1]) - x + 1, int(rows[-1]) - y + 1]


def masks_to_rle_torch(masks) -> list[dict]:
    """Uncompressed COCO RLEs of an (N, H, W) torch tensor of masks (nonzero = foreground), any device.

    Run boundaries are found on the masks' device; only their indices travel to the CPU.
    """
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(masks, torch.Tensor) or masks.ndim != 3:
        shape = tuple(getattr(masks, "shape", ()))
        raise ValueError(
            f"masks must be a torch tensor of shape (N, H, W), got {type(masks).__name__} {shape}"
        )
    n, h, w = masks.shape
    if h * w == 0:
        return [{"size": [h, w], "counts": [0]} for _ in range(n)]
    if masks.dtype != torch.bool:
        masks = masks != 0
    flat = masks.transpose(1, 2).contiguous().view(n, h * w)  # column-major, as COCO
    if flat.device.type == "cpu":
        # numpy's comparison and flatnonzero are several times faster than torch's on bool rows
        bits = flat.numpy()
        change = np.flatnonzero(bits[:, 1:] != bits[:, :-1])
        rows, cols = np.divmod(change, h * w - 1)
        first_on = bits[:, 0]
    else:
        found = (flat[:, 1:] != flat[:, :-1]).nonzero().cpu().numpy()
        rows, cols = found[:, 0], found[:, 1]
        first_on = flat[:, 0].cpu().numpy()
    bounds = np.searchsorted(rows, np.arange(n + 1))
    boundaries = [cols[bounds[i] : bounds[i + 1]] + 1 for i in range(n)]
    out = []
    for i in range(n):
        counts = np.diff(np.concatenate([[0], boundaries[i], [h * w]]))
        lead = [0] if first_on[i] else []
        out.append({"size": [h, w], "counts": lead + counts.tolist()})
    return out


def save_mask_png(mask, path: str | os.PathLike) -> None:
    """Write an (H, W) mask as an 8-bit grayscale PNG: 255 on foreground, 0 on background."""
    mask = as_mask(mask)
    Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(path, format="PNG")


def read_id_png(path: str | Path) -> np.ndarray:
    """(H, W) integer id map of a mask PNG (0 background, k object k): palette indices or gray values.

    Palette (mode P) PNGs give their palette indices, gray ones (L, 1, I, I;16) their values (mode 1 as
    0/1 uint8). RGB/RGBA/LA PNGs are accepted only when every pixel is gray (R == G == B) and opaque,
    since coloured masks would need a colour-to-id guess. Raises MaskFileError naming the file and what
    to write instead for anything else (unreadable, transparent, coloured, negative ids).
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            mode = img.mode
            arr = np.array(img)
    except (OSError, ValueError) as exc:
        raise MaskFileError(f"{path}: not a readable PNG ({exc})") from None
    if mode in _GRAY_MODES:
        if arr.dtype == np.bool_:
            return arr.astype(np.uint8)
        if mode == "I" and arr.size and arr.min() < 0:
            raise MaskFileError(f"{path}: negative values in a mask PNG; ids must be >= 0 (0 = background)")
        return arr
    if mode in ("LA", "RGB", "RGBA"):
        colour = arr[..., :1] if mode == "LA" else arr[..., :3]
        if mode != "RGB" and not (arr[..., -1] == 255).all():
            raise MaskFileError(
                f"{path}: a {mode} PNG with transparent pixels; write masks without alpha, as an indexed "
                "(palette) or 8-bit gray PNG with 0 = background and k = object k"
            )
        if (colour == colour[..., :1]).all():
            return np.ascontiguousarray(colour[..., 0])
        raise MaskFileError(
            f"{path}: an {mode} PNG with colours; masks must hold object ids, not colours: write an indexed "
            "(palette, mode P) or 8-bit gray PNG with 0 = background and k = object k"
        )
    raise MaskFileError(f"{path}: unsupported PNG mode {mode}; write an indexed (palette) or 8-bit gray PNG")


def mask_colors(n: int) -> np.ndarray:
    """(n, 3) uint8 RGB colours, the same for every call: hues spread by the golden ratio."""
    hues = (np.arange(n) * 0.618033988749895 + 0.11) % 1.0
    sat = np.where(np.arange(n) % 2 == 0, 0.85, 0.65)
    rgb = [colorsys.hsv_to_rgb(hh, ss, 0.95) for hh, ss in zip(hues, sat)]
    return np.rint(np.array(rgb, dtype=np.float64).reshape(n, 3) * 255).astype(np.uint8)


def _outline(mask: np.ndarray) -> np.ndarray:
    """Foreground pixels with a 4-neighbour outside the mask (the image edge counts as outside)."""
    padded = np.pad(mask, 1, constant_values=False)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~interior


def overlay_masks(
    image,
    masks,
    alpha: float = 0.5,
    colors: Sequence[Sequence[int]] | np.ndarray | None = None,
    draw_contours: bool = True,
) -> np.ndarray:
    """Blend masks over an image for display.

    Args:
        image: (H, W, 3) uint8 RGB (anything :func:`masklet.io.images.to_rgb_uint8` accepts).
        masks: (H, W) mask, (N, H, W) array/tensor or a list of (H, W) masks; later masks are drawn on top.
        alpha: opacity of the fill in [0, 1].
        colors: (N, 3) RGB values 0..255; default :func:`mask_colors` (N).
        draw_contours: draw each mask's 1-pixel outline in its colour at full opacity.

    Returns:
        A new (H, W, 3) uint8 RGB array.
    """
    rgb = to_rgb_uint8(image)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(masks, torch.Tensor):
        masks = masks.detach().cpu().numpy()
    if isinstance(masks, np.ndarray) and masks.ndim == 2:
        masks = [masks]
    masks = [as_mask(m, f"masks[{i}]") for i, m in enumerate(masks)]
    for i, m in enumerate(masks):
        if m.shape != rgb.shape[:2]:
            raise ValueError(
                f"masks[{i}] has shape {m.shape} but the image is {rgb.shape[:2]}; sizes must match"
            )
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    palette = mask_colors(len(masks)) if colors is None else np.asarray(colors, dtype=np.float64)
    if palette.shape != (len(masks), 3) or palette.min(initial=0) < 0 or palette.max(initial=0) > 255:
        raise ValueError(f"colors must be {len(masks)} RGB triples in 0..255, got shape {palette.shape}")
    out = rgb.astype(np.float32)
    for m, color in zip(masks, palette.astype(np.float32)):
        out[m] = out[m] * (1.0 - alpha) + color * alpha
        if draw_contours:
            out[_outline(m)] = color
    return np.rint(out).astype(np.uint8)
