"""Validation of user prompts (points, labels, boxes, mask inputs) with errors that say what to fix.

All checks run before any predictor state changes, so a bad prompt never leaves a predictor unusable.
"""

from __future__ import annotations

import numpy as np
import torch

# 1 positive click, 0 negative click, -1 padding (ignored), 2/3 top-left/bottom-right box corners
VALID_LABELS = (-1, 0, 1, 2, 3)


class PromptError(ValueError):
    """A prompt that cannot be used as given."""


def _as_float_array(x, what: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().float().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PromptError(f"{what} must be numeric, got {type(x).__name__}: {exc}") from None
    if not np.all(np.isfinite(arr)):
        raise PromptError(f"{what} contains NaN or infinite values: {arr.tolist()}")
    return arr


def _check_in_frame(values: np.ndarray, what: str, w: float, h: float) -> None:
    """values (N, 2k): rows of k x, y pairs (a point, or a box's two corners). A row with any pair
    outside [0, w] x [0, h] is an error: points and boxes get the same rule, so a box reaching past an
    edge is refused like a click past it. A small margin lets the last pixel's far edge through."""
    xy = values.reshape(len(values), -1, 2)
    tol = 1e-6 * max(w, h, 1.0)
    bad = (xy[..., 0] < -tol) | (xy[..., 0] > w + tol) | (xy[..., 1] < -tol) | (xy[..., 1] > h + tol)
    bad = bad.any(axis=1)
    if np.any(bad):
        first = values[bad][0].tolist()
        verb = "lies" if xy.shape[1] == 1 else "reaches"
        raise PromptError(
            f"{what} {first} {verb} outside the image (x in [0, {w:g}], y in [0, {h:g}]); "
            "coordinates are x, y in pixels of the original image"
            + ("" if w > 1 else " (normalize_coords=False expects relative coordinates in [0, 1])")
            + ("" if xy.shape[1] == 1 else "; clip a box that crosses an edge to the image")
        )


def check_points(
    point_coords, point_labels, frame_wh: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray] | None:
    """Points (N, 2) or (B, N, 2) and labels (N,) or (B, N) -> float32 (B, N, 2), int32 (B, N).

    ``frame_wh`` is the coordinate frame's width and height ((1, 1) for relative coordinates).
    """
    if point_coords is None and point_labels is None:
        return None
    if point_coords is None:
        raise PromptError("point_labels were given without point_coords; pass both or neither")
    if point_labels is None:
        raise PromptError(
            "point_coords were given without point_labels; "
            "pass one label per point (1 = object, 0 = background)"
        )
    coords = _as_float_array(point_coords, "point_coords")
    labels = np.asarray(
        point_labels.detach().cpu() if isinstance(point_labels, torch.Tensor) else point_labels
    )
    if coords.ndim == 2:
        coords = coords[None]
    if labels.ndim == 1:
        labels = labels[None]
    if coords.ndim != 3 or coords.shape[-1] != 2:
        raise PromptError(
            f"point_coords must have shape (N, 2) or (B, N, 2) with x, y pairs; got {np.shape(point_coords)}"
        )
    if labels.ndim != 2 or labels.shape != coords.shape[:2]:
        raise PromptError(
            f"point_labels must give one label per point: {coords.shape[1]} point(s) in coords "
            f"{np.shape(point_coords)} but labels have shape {np.shape(point_labels)}"
        )
    if coords.shape[1] == 0:
        raise PromptError("point_coords is empty; pass at least one point or use point_coords=None")
    if labels.dtype.kind == "f" and not np.all(np.isfinite(labels)):
        raise PromptError("point_labels contain NaN or infinite values")
    if labels.dtype.kind not in "iufb" or not np.all(np.isin(labels, VALID_LABELS)):
        bad = (
            sorted({v for v in np.ravel(labels).tolist() if v not in VALID_LABELS})
            if labels.dtype.kind in "iuf"
            else labels.dtype
        )
        raise PromptError(
            f"unknown point label value(s) {bad}; use 1 (object), 0 (background), -1 (padding) "
            "or 2/3 (box corners)"
        )
    _check_in_frame(coords.reshape(-1, 2), "point", *frame_wh)
    return coords.astype(np.float32), labels.astype(np.int32)


def check_boxes(box, frame_wh: tuple[float, float]) -> np.ndarray | None:
    """Box (4,) or (B, 4) as x0, y0, x1, y1 -> float32 (B, 4).

    ``frame_wh`` as in :func:`check_points`; like points, every corner must lie in the image. Flipped
    boxes (x1 < x0 or y1 < y0) are refused rather than passed on as given (the official predictor does
    not check them; the prompt encoder would read the corners with swapped roles).
    """
    if box is None:
        return None
    arr = _as_float_array(box, "box")
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[-1] != 4:
        raise PromptError(f"box must have shape (4,) or (B, 4) as x0, y0, x1, y1; got {np.shape(box)}")
    if arr.shape[0] == 0:
        raise PromptError("box is empty; pass at least one box or use box=None")
    flipped = (arr[:, 2] < arr[:, 0]) | (arr[:, 3] < arr[:, 1])
    if np.any(flipped):
        raise PromptError(
            f"box {arr[flipped][0].tolist()} has x1 < x0 or y1 < y0; boxes are x0, y0, x1, y1 "
            "(top-left, then bottom-right corner)"
        )
    _check_in_frame(arr, "box", *frame_wh)
    return arr.astype(np.float32)


def check_mask_input(mask_input, size: int) -> np.ndarray | None:
    """Low-res mask logits (H, W), (1, H, W) or (B, 1, H, W) with H = W = ``size`` -> (B, 1, size, size)."""
    if mask_input is None:
        return None
    arr = _as_float_array(mask_input, "mask_input")
    while arr.ndim < 4:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[1] != 1 or arr.shape[-2:] != (size, size):
        raise PromptError(
            f"mask_input must be low-resolution logits of shape (1, {size}, {size}) "
            f"or (B, 1, {size}, {size}) "
            f"(the third value predict() returns); got {np.shape(mask_input)}"
        )
    return arr.astype(np.float32)


def batch_size_of(*prompts: np.ndarray | None) -> int:
    """The common batch size of the given prompts (1 if none); mismatches raise PromptError."""
    sizes = {p.shape[0] for p in prompts if p is not None}
    if len(sizes) > 1:
        raise PromptError(
            f"prompts disagree on the batch size: {sorted(sizes)}; give the same number of each"
        )
    return sizes.pop() if sizes else 1
