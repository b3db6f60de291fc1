"""Settings of the automatic mask generator, checked once, with the official names and defaults."""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from .automask_ops import layer_point_grids

OUTPUT_MODES = ("binary_mask", "uncompressed_rle", "coco_rle")


@dataclass(frozen=True, eq=False)
class AutoMaskConfig:
    """How :class:`masklet.AutoMaskGenerator` samples, filters and reports masks.

    - ``points_per_side``: an n x n grid of point prompts over each crop (None: ``point_grids`` instead)
    - ``points_per_batch``: points decoded together (memory vs speed)
    - ``pred_iou_thresh``: keep masks whose predicted IoU is above this (0 keeps all)
    - ``stability_score_thresh``: keep masks whose stability score is at least this (0 keeps all)
    - ``stability_score_offset``: the logit shift of the two cuts compared by the stability score
    - ``mask_threshold``: the logit cut of the binary masks
    - ``box_nms_thresh``: box IoU above which the lower-scoring mask of a crop is dropped
    - ``crop_n_layers``: extra layers of zoomed-in crops (layer i has 2**i x 2**i crops)
    - ``crop_nms_thresh``: box IoU above which masks of different crops are deduplicated
    - ``crop_overlap_ratio``: overlap of neighbouring crops, as a fraction of the short image side
      (scaled down by 2 for each layer)
    - ``crop_n_points_downscale_factor``: layer i uses points_per_side / factor**i points per side
    - ``point_grids``: explicit (K, 2) grids in [0, 1] (x, y), one per crop layer
    - ``min_mask_region_area``: fill holes and remove specks up to this area (low-res mask pixels)
    - ``output_mode``: ``binary_mask``, ``uncompressed_rle`` or ``coco_rle`` segmentations
    - ``use_m2m``: refine each mask once more with its own logits as a mask prompt
    - ``multimask_output``: three masks per point (else one)
    """

    points_per_side: int | None = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.8
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    mask_threshold: float = 0.0
    box_nms_thresh: float = 0.7
    crop_n_layers: int = 0
    crop_nms_thresh: float = 0.7
    crop_overlap_ratio: float = 512 / 1500
    crop_n_points_downscale_factor: int = 1
    point_grids: list[np.ndarray] | None = None
    min_mask_region_area: int = 0
    output_mode: str = "binary_mask"
    use_m2m: bool = False
    multimask_output: bool = True

    def __post_init__(self) -> None:
        if (self.points_per_side is None) == (self.point_grids is None):
            given = "both" if self.point_grids is not None else "neither"
            raise ValueError(
                f"give exactly one of points_per_side and point_grids, got {given}; "
                "e.g. points_per_side=32, or point_grids=[grid] with points_per_side=None"
            )
        _int(self.points_per_batch, "points_per_batch", 1)
        _int(self.crop_n_layers, "crop_n_layers", 0)
        _int(self.crop_n_points_downscale_factor, "crop_n_points_downscale_factor", 1)
        if self.points_per_side is not None:
            _int(self.points_per_side, "points_per_side", 1)
        for name in ("pred_iou_thresh", "stability_score_thresh", "box_nms_thresh", "crop_nms_thresh"):
            _number(getattr(self, name), name, 0.0, 1.0)
        _number(self.crop_overlap_ratio, "crop_overlap_ratio", 0.0, 1.0)
        _number(self.stability_score_offset, "stability_score_offset", 0.0, None)
        _number(self.mask_threshold, "mask_threshold", None, None)
        _number(self.min_mask_region_area, "min_mask_region_area", 0.0, None)
        if self.output_mode not in OUTPUT_MODES:
            raise ValueError(
                f"unknown output_mode {self.output_mode!r}; choose one of {', '.join(OUTPUT_MODES)}"
            )
        if self.point_grids is not None:
            self._check_grids()

    def _check_grids(self) -> None:
        grids = self.point_grids
        if not isinstance(grids, (list, tuple)) or len(grids) != self.crop_n_layers + 1:
            n = len(grids) if isinstance(grids, (list, tuple)) else type(grids).__name__
            raise ValueError(
                f"point_grids must be a list with one (K, 2) grid per crop layer: crop_n_layers="
                f"{self.crop_n_layers} needs {self.crop_n_layers + 1}, got {n}"
            )
        for i, g in enumerate(grids):
            a = np.asarray(g)
            if a.ndim != 2 or a.shape[1] != 2 or a.shape[0] == 0 or not np.issubdtype(a.dtype, np.number):
                raise ValueError(
                    f"point_grids[{i}] must be a non-empty (K, 2) array of x, y, got shape {a.shape}"
                )
            if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
                raise ValueError(f"point_grids[{i}] must hold relative coordinates in [0, 1]")

    def layer_grids(self) -> list[np.ndarray]:
        """The (K, 2) float64 relative point grid of each crop layer."""
        if self.point_grids is not None:
            return [np.asarray(g, dtype=np.float64) for g in self.point_grids]
        return layer_point_grids(
            self.points_per_side, self.crop_n_layers, self.crop_n_points_downscale_factor
        )


def _int(value, name: str, minimum: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _number(value, name: str, low: float | None, high: float | None) -> None:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
    if ok and low is not None:
        ok = value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        rng = f"in [{low}, {high}]" if high is not None else (f">= {low}" if low is not None else "finite")
        raise ValueError(f"{name} must be a number {rng}, got {value!r}")
