"""Geometry and bookkeeping of "segment everything": point grids, crops, boxes, NMS, small regions.

Pure functions on numpy arrays and torch tensors, shared by :class:`masklet.AutoMaskGenerator` and its
tests. Boxes are ``(x0, y0, x1, y1)`` in pixels, where x1 / y1 are the last foreground column / row
(inclusive, as the official generator computes them); crop boxes are ``(x0, y0, x1, y1)`` with x1 / y1
exclusive (slice ends).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from .postprocess import connected_components

__all__ = [
    "batched_nms",
    "box_area",
    "crop_boxes",
    "layer_point_grids",
    "masks_to_boxes",
    "nms",
    "near_crop_edge",
    "point_grid",
    "remove_small_regions",
]


def point_grid(n_per_side: int) -> np.ndarray:
    """(n * n, 2) float64 points (x, y) in [0, 1]: cell centres of an n x n grid, rows of constant y."""
    if not isinstance(n_per_side, (int, np.integer)) or isinstance(n_per_side, bool) or n_per_side < 1:
        raise ValueError(f"points per side must be an integer >= 1, got {n_per_side!r}")
    half = 1.0 / (2 * n_per_side)
    side = np.linspace(half, 1.0 - half, n_per_side)
    xs = np.tile(side[None, :], (n_per_side, 1))
    ys = np.tile(side[:, None], (1, n_per_side))
    return np.stack([xs, ys], axis=-1).reshape(-1, 2)


def layer_point_grids(n_per_side: int, n_layers: int, downscale: int) -> list[np.ndarray]:
    """One grid per crop layer: layer i has ``int(n_per_side / downscale**i)`` points per side."""
    grids = []
    for i in range(n_layers + 1):
        n = int(n_per_side / downscale**i)
        if n < 1:
            raise ValueError(
                f"crop layer {i} would get {n_per_side} / {downscale}**{i} < 1 points per side; "
                "lower crop_n_points_downscale_factor or crop_n_layers, or raise points_per_side"
            )
        grids.append(point_grid(n))
    return grids


def crop_boxes(image_hw: tuple[int, int], n_layers: int, overlap_ratio: float) -> tuple[list, list]:
    """Crops of an image: the whole image (layer 0), then 2**i x 2**i overlapping crops for layer i.

    Returns (boxes as [x0, y0, x1, y1] int lists, their layer indices). Crops of layer i overlap by
    ``overlap_ratio * short_side * 2 / 2**i`` pixels; the last crop of a row or column is cut at the
    image border.
    """
    h, w = image_hw
    short = min(h, w)
    boxes, layers = [[0, 0, w, h]], [0]
    for i in range(n_layers):
        per_side = 2 ** (i + 1)
        overlap = int(overlap_ratio * short * (2 / per_side))
        crop_w = int(math.ceil((overlap * (per_side - 1) + w) / per_side))
        crop_h = int(math.ceil((overlap * (per_side - 1) + h) / per_side))
        x0s = [int((crop_w - overlap) * k) for k in range(per_side)]
        y0s = [int((crop_h - overlap) * k) for k in range(per_side)]
        for x0, y0 in itertools.product(x0s, y0s):
            boxes.append([x0, y0, min(x0 + crop_w, w), min(y0 + crop_h, h)])
            layers.append(i + 1)
    return boxes, layers


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(N, H, W) bool -> (N, 4) int64 boxes x0, y0, x1, y1 (inclusive ends); [0, 0, 0, 0] if empty."""
    n, h, w = masks.shape
    if n == 0:
        return torch.zeros(0, 4, dtype=torch.int64, device=masks.device)
    rows = masks.any(dim=2)  # (N, H)
    cols = masks.any(dim=1)  # (N, W)
    ys = torch.arange(h, device=masks.device)
    xs = torch.arange(w, device=masks.device)
    bottom = torch.where(rows, ys, -1).amax(1)
    top = torch.where(rows, ys, h).amin(1)
    right = torch.where(cols, xs, -1).amax(1)
    left = torch.where(cols, xs, w).amin(1)
    boxes = torch.stack([left, top, right, bottom], dim=1)
    empty = ~rows.any(1)
    return boxes.masked_fill(empty[:, None], 0)


def near_crop_edge(
    boxes: torch.Tensor, crop_box: list[int], image_box: list[int], atol: float = 20.0
) -> torch.Tensor:
    """(N,) bool: the (crop-frame) box lies within ``atol`` px of a crop edge that is not an image edge.

    Such masks are likely cut by the crop; the same object is found whole in a larger crop.
    """
    x0, y0 = crop_box[0], crop_box[1]
    offset = torch.tensor([x0, y0, x0, y0], device=boxes.device)
    b = (boxes + offset).float()
    crop = torch.as_tensor(crop_box, dtype=torch.float32, device=boxes.device)
    image = torch.as_tensor(image_box, dtype=torch.float32, device=boxes.device)
    at_crop = torch.isclose(b, crop[None], atol=atol, rtol=0)
    at_image = torch.isclose(b, image[None], atol=atol, rtol=0)
    return (at_crop & ~at_image).any(dim=1)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """(N, 4) x0, y0, x1, y1 -> (N,) (x1 - x0) * (y1 - y0)."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _pairwise_iou(boxes: torch.Tensor) -> torch.Tensor:
    area = box_area(boxes)
    lt = torch.maximum(boxes[:, None, :2], boxes[None, :, :2])
    rb = torch.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area[:, None] + area[None, :] - inter)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression, torchvision's semantics.

    Boxes are visited by decreasing score (ties in input order); each kept box removes every later box
    whose IoU with it is strictly greater than ``iou_threshold``. Degenerate (zero-area) boxes have an
    undefined IoU and suppress nothing. Returns the kept indices (int64), highest score first.
    """
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.int64, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    suppress = (_pairwise_iou(boxes[order].float()) > iou_threshold).cpu().numpy()
    n = order.numel()
    removed = np.zeros(n, dtype=bool)
    keep = []
    for i in range(n):
        if removed[i]:
            continue
        keep.append(i)
        removed[i + 1 :] |= suppress[i, i + 1 :]
    return order[torch.as_tensor(keep, dtype=torch.int64, device=order.device)]


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, categories: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """NMS within each category independently (boxes of different categories never suppress each
    other). Returns the kept indices by decreasing score."""
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.int64, device=boxes.device)
    kept = []
    for c in torch.unique(categories):
        idx = torch.nonzero(categories == c).flatten()
        kept.append(idx[nms(boxes[idx], scores[idx], iou_threshold)])
    keep = torch.cat(kept)
    return keep[torch.sort(scores[keep], descending=True, stable=True).indices]


def remove_small_regions(mask: np.ndarray, area_thresh: float, mode: str) -> tuple[np.ndarray, bool]:
    """Fill holes (``mode="holes"``) or drop islands (``"islands"``) smaller than ``area_thresh`` pixels.

    8-connected components, as the official generator's OpenCV-based step (no OpenCV needed). When
    every island is small, the largest one is kept. Returns (new (H, W) bool mask, whether it changed).
    """
    if mode not in ("holes", "islands"):
        raise ValueError(f"mode must be 'holes' or 'islands', got {mode!r}")
    mask = np.asarray(mask, dtype=bool)
    holes = mode == "holes"
    working = torch.from_numpy(mask != holes)[None, None]
    labels, areas = connected_components(working)
    labels, areas = labels[0, 0].numpy(), areas[0, 0].numpy()
    small = (labels > 0) & (areas < area_thresh)
    if not small.any():
        return mask, False
    if holes:
        return mask | small, True
    kept = (labels > 0) & ~small
    if not kept.any():  # every island is small: keep the largest (the first of equal ones)
        flat = np.where(labels > 0, areas, -1).ravel()
        kept = labels == labels.ravel()[int(np.argmax(flat))]
    return kept, True
