"""Clicks and boxes from masks: the geometry of the SAM / SAM 2 prompt protocols (numpy only).

Coordinates are pixel indices of the mask (x = column, y = row), as the official SAM 2 click sampler
returns them; labels are 1 for a positive (foreground) click and 0 for a negative one. Masks may be numpy
arrays or torch tensors of shape (H, W); nonzero is foreground. Evaluation (:mod:`masklet.eval.prompting`)
and training (:mod:`masklet.train.prompts`) both simulate annotators with these.

* **Center of a region** = its pixel farthest from the region's boundary: the maximum of the Euclidean
  distance transform (:mod:`masklet.io.distance`), the distance to the nearest pixel outside the region,
  where pixels outside the image count as outside the region (the mask is padded with one ring of zeros
  first). This is what RITM's ``Clicker`` (Sofiiuk et al., "Reviving Iterative Training with Mask
  Guidance for Interactive Segmentation", ICIP 2022) and SAM 2's
  ``sample_one_point_from_error_center(padding=True)`` compute. Ties go to the first such pixel in
  row-major order (smallest y, then smallest x), as their ``argmax`` / ``np.where(...)[0]`` does.
* **First click** (SAM, Kirillov et al. 2023, appendix D.1: "The first point is chosen
  deterministically as the point farthest from the object boundary"): the center of the GT mask.
* **Next click** (same source: "Each subsequent point is the farthest from the boundary of the error
  region between ground truth and the previous prediction"): "largest" error region means largest
  distance-transform maximum, not largest area. Following RITM and SAM 2, the false-negative area
  (GT and not predicted) and the false-positive area (predicted and not GT) get separate distance
  transforms; the click goes to the center of the false negatives (positive) when their maximum is
  strictly larger, else to the center of the false positives (negative).
* **Box**: the tight box of the GT mask (:func:`gt_box`), optionally jittered the way SAM 2's
  training samples noisy boxes (``sample_box_points``: each side moved by up to 10% of the box size,
  at most 20 px).
"""

from __future__ import annotations

import numpy as np

from .distance import edt_squared
from .masks import as_mask

__all__ = ["first_click", "gt_box", "next_click", "region_center"]


def region_center(region) -> tuple[int, int, float]:
    """``(x, y, distance)``: the pixel of ``region`` farthest from its boundary (image border included).

    region: (H, W) mask with at least one foreground pixel. ``distance`` is the Euclidean distance in
    pixels from that pixel to the nearest pixel outside the region (1.0 for a one-pixel region).
    Ties go to the first pixel in row-major order.
    """
    mask = as_mask(region, "region")
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        raise ValueError("region is empty: it has no foreground pixel to place a click on")
    cols = np.flatnonzero(mask.any(axis=0))
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    # Distances inside the region only depend on its bounding box plus one ring of background: that
    # ring is where the image border counts as background, and any pixel beyond it is farther.
    crop = np.pad(mask[y0:y1, x0:x1], 1)
    d2 = edt_squared(crop)[1:-1, 1:-1]
    best = int(np.argmax(d2))  # squared distances are exact integers, so ties are exact
    y, x = divmod(best, d2.shape[1])
    return int(x0 + x), int(y0 + y), float(np.sqrt(d2.flat[best]))


def first_click(gt) -> tuple[int, int]:
    """``(x, y)`` of the first click of the SAM protocol: the GT pixel farthest from the object boundary.

    gt: (H, W) ground-truth mask of one object, nonzero = object. Raises ValueError when it is empty.
    """
    mask = as_mask(gt, "gt")
    if not mask.any():
        raise ValueError(
            "gt is empty: the object has no pixel in this frame, so there is nothing to click; "
            "skip the object on this frame or prompt it on a frame where it is visible"
        )
    x, y, _ = region_center(mask)
    return x, y


def next_click(pred, gt, ignore=None) -> tuple[int, int, int] | None:
    """``(x, y, label)`` of the next corrective click, or None when ``pred`` already equals ``gt``.

    pred: (H, W) predicted mask (after the previous clicks); gt: (H, W) ground truth of the same shape;
    ignore: optional (H, W) mask of pixels that never count as errors (void / "don't care" labels).
    The click goes to the center of the false negatives with label 1 when their distance-transform
    maximum is strictly larger than that of the false positives, else to the center of the false
    positives with label 0 (RITM / SAM 2 rule, see the module docstring).
    """
    gt_mask = as_mask(gt, "gt")
    pred_mask = as_mask(pred, "pred")
    if pred_mask.shape != gt_mask.shape:
        raise ValueError(
            f"pred has shape {pred_mask.shape} but gt has shape {gt_mask.shape}; "
            "resize the prediction to the ground-truth resolution first"
        )
    fn = gt_mask & ~pred_mask
    fp = pred_mask & ~gt_mask
    if ignore is not None:
        care = ~as_mask(ignore, "ignore")
        if care.shape != gt_mask.shape:
            raise ValueError(f"ignore has shape {care.shape} but gt has shape {gt_mask.shape}")
        fn &= care
        fp &= care
    has_fn, has_fp = bool(fn.any()), bool(fp.any())
    if not has_fn and not has_fp:
        return None
    fn_center = region_center(fn) if has_fn else None
    fp_center = region_center(fp) if has_fp else None
    if fn_center is not None and (fp_center is None or fn_center[2] > fp_center[2]):
        return fn_center[0], fn_center[1], 1
    assert fp_center is not None
    return fp_center[0], fp_center[1], 0


def gt_box(
    gt, jitter: float = 0.0, rng: np.random.Generator | None = None, max_jitter_px: float = 20.0
) -> np.ndarray:
    """Box prompt ``[x0, y0, x1, y1]`` (float64) around a GT mask, in pixel indices of the mask.

    ``x0, y0`` are the leftmost column and top row of the object, ``x1, y1`` the rightmost column and
    bottom row (inclusive, as SAM 2's ``mask_to_box``). With ``jitter > 0`` each coordinate moves by
    a uniform amount in ``[-m, m]``, ``m = min(jitter * box side, max_jitter_px)`` (SAM 2 trains with
    jitter 0.1 and 20 px), then is clipped to the image; this needs ``rng``.
    """
    mask = as_mask(gt, "gt")
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        raise ValueError(
            "gt is empty: the object has no pixel in this frame, so it has no box; "
            "skip the object on this frame or prompt it on a frame where it is visible"
        )
    cols = np.flatnonzero(mask.any(axis=0))
    box = np.array([cols[0], rows[0], cols[-1], rows[-1]], dtype=np.float64)
    if jitter < 0 or max_jitter_px < 0:
        raise ValueError(f"jitter and max_jitter_px must be >= 0, got {jitter} and {max_jitter_px}")
    if jitter == 0:
        return box
    if not isinstance(rng, np.random.Generator):
        raise ValueError("gt_box with jitter > 0 needs rng=np.random.default_rng(seed) to stay reproducible")
    w, h = box[2] - box[0], box[3] - box[1]
    scale = np.minimum(np.array([w, h, w, h]) * jitter, max_jitter_px)
    box = box + rng.uniform(-1.0, 1.0, size=4) * scale
    height, width = mask.shape
    return np.clip(box, 0.0, [width - 1, height - 1, width - 1, height - 1])
