"""Segment everything: ``AutoMaskGenerator``, a drop-in for the official SAM2AutomaticMaskGenerator.

Usage::

    generator = AutoMaskGenerator(build_model("sam2.1_hiera_large"), points_per_side=32)
    records = generator.generate(image)          # (H, W, 3) uint8 RGB
    for r in records:
        r["segmentation"], r["bbox"], r["predicted_iou"], r["stability_score"]

A grid of single-point prompts covers the image (and, with ``crop_n_layers``, zoomed-in crops of it).
Each point gives up to three masks; masks are kept when their predicted IoU and their stability (how
little they change when the logit cut moves by ``stability_score_offset``) pass the thresholds, masks cut
by a crop border are dropped, and duplicates are removed by box NMS within each crop, then across crops
(preferring smaller crops).

Memory stays bounded: masks are upsampled a few at a time, and only their RLEs are kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ..io.images import to_rgb_uint8
from ..io.masks import compress_rle, decode_rle, masks_to_rle_torch
from ..modeling.mask_decoder import stability_score
from ..modeling.sam2 import SAM2Model
from .automask_config import AutoMaskConfig
from .automask_ops import (
    batched_nms,
    box_area,
    crop_boxes,
    masks_to_boxes,
    near_crop_edge,
    remove_small_regions,
)
from .image import ImagePredictor

# Bytes of float32 full-resolution logits upsampled at once (the rest of a batch waits its turn).
_UPSAMPLE_BYTES = 256 * 2**20
# Bytes of one image-side decoder temporary (see AutoMaskGenerator._decode).
_DECODER_TEMP_BYTES = 8 * 2**20

Progress = Callable[[int, int], None]


@dataclass
class MaskSet:
    """Masks found so far, one row per mask, kept as RLEs.

    ``rles``: uncompressed COCO RLEs at the full image size; ``boxes``: (N, 4) float32 XYXY in image
    pixels (inclusive ends); ``iou``, ``stability``: (N,) float32; ``points``: (N, 2) float32 image
    pixels of the prompting point; ``crop_boxes``: (N, 4) float32 XYXY of the crop each mask came from.
    """

    rles: list[dict] = field(default_factory=list)
    boxes: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 4))
    iou: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    stability: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    points: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 2))
    crop_boxes: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 4))

    def __len__(self) -> int:
        return len(self.rles)

    def select(self, keep: torch.Tensor) -> MaskSet:
        """The rows ``keep`` (indices or a bool mask), in that order."""
        idx = torch.nonzero(keep).flatten() if keep.dtype == torch.bool else keep
        rows = idx.tolist()
        return MaskSet(
            [self.rles[i] for i in rows],
            self.boxes[idx],
            self.iou[idx],
            self.stability[idx],
            self.points[idx],
            self.crop_boxes[idx],
        )

    @staticmethod
    def concat(sets: list[MaskSet]) -> MaskSet:
        if not sets:
            return MaskSet()
        return MaskSet(
            [r for s in sets for r in s.rles],
            torch.cat([s.boxes for s in sets]),
            torch.cat([s.iou for s in sets]),
            torch.cat([s.stability for s in sets]),
            torch.cat([s.points for s in sets]),
            torch.cat([s.crop_boxes for s in sets]),
        )


class AutoMaskGenerator:
    """Generates masks for everything in an image (see the module docstring).

    The arguments, their defaults and their meaning are the official SAM2AutomaticMaskGenerator's
    (:class:`masklet.inference.automask_config.AutoMaskConfig` documents each). As there,
    ``min_mask_region_area`` fills holes and removes specks up to that many low-res mask pixels before
    masks are upsampled; :meth:`postprocess_small_regions` offers the full-resolution clean-up of the
    original SAM as a separate step.
    """

    def __init__(
        self,
        model: SAM2Model,
        points_per_side: int | None = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.8,
        stability_score_thresh: float = 0.95,
        stability_score_offset: float = 1.0,
        mask_threshold: float = 0.0,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        crop_nms_thresh: float = 0.7,
        crop_overlap_ratio: float = 512 / 1500,
        crop_n_points_downscale_factor: int = 1,
        point_grids: list[np.ndarray] | None = None,
        min_mask_region_area: int = 0,
        output_mode: str = "binary_mask",
        use_m2m: bool = False,
        multimask_output: bool = True,
    ) -> None:
        self.config = AutoMaskConfig(
            points_per_side,
            points_per_batch,
            pred_iou_thresh,
            stability_score_thresh,
            stability_score_offset,
            mask_threshold,
            box_nms_thresh,
            crop_n_layers,
            crop_nms_thresh,
            crop_overlap_ratio,
            crop_n_points_downscale_factor,
            point_grids,
            min_mask_region_area,
            output_mode,
            use_m2m,
            multimask_output,
        )
        self.point_grids = self.config.layer_grids()
        self.predictor = ImagePredictor(
            model, max_hole_area=min_mask_region_area, max_sprinkle_area=min_mask_region_area
        )

    @property
    def model(self) -> SAM2Model:
        return self.predictor.model

    # ------------------------------------------------------------------ public
    @torch.inference_mode()
    def generate(self, image, progress: Progress | None = None) -> list[dict]:
        """Masks for everything in ``image`` ((H, W, 3) uint8 RGB or a PIL image).

        Returns a list of records, as the official generator: ``segmentation`` ((H, W) bool array, or an
        RLE dict in the RLE output modes), ``area`` (pixels), ``bbox`` (XYWH floats, width = x1 - x0),
        ``predicted_iou``, ``point_coords`` ([[x, y]]), ``stability_score`` and ``crop_box`` (XYWH).
        ``progress(done, total)`` is called after each batch of points.
        """
        rgb = to_rgb_uint8(image)
        masks = self.generate_masks(rgb, progress)
        return self.records(masks)

    def generate_masks(self, image: np.ndarray, progress: Progress | None = None) -> MaskSet:
        """The kept masks as a :class:`MaskSet` (before turning them into records)."""
        h, w = image.shape[:2]
        cfg = self.config
        boxes, layers = crop_boxes((h, w), cfg.crop_n_layers, cfg.crop_overlap_ratio)
        self._check_crops(boxes, (h, w))
        total = sum(-(-len(self.point_grids[layer]) // cfg.points_per_batch) for layer in layers)
        done = [0]

        def step() -> None:
            done[0] += 1
            if progress is not None:
                progress(done[0], total)

        found = MaskSet.concat(
            [self._process_crop(image, box, layer, step) for box, layer in zip(boxes, layers)]
        )
        if len(boxes) > 1 and len(found):
            prefer_small = 1.0 / box_area(found.crop_boxes)
            keep = batched_nms(
                found.boxes, prefer_small, torch.zeros(len(found), dtype=torch.int64), cfg.crop_nms_thresh
            )
            found = found.select(keep)
        return found

    def records(self, masks: MaskSet) -> list[dict]:
        """Official-style records of ``masks`` in the configured ``output_mode``."""
        mode = self.config.output_mode
        out = []
        for i, rle in enumerate(masks.rles):
            if mode == "binary_mask":
                seg = decode_rle(rle)
            elif mode == "coco_rle":
                seg = compress_rle(rle)
            else:
                seg = rle
            x0, y0, x1, y1 = masks.boxes[i].tolist()
            cx0, cy0, cx1, cy1 = masks.crop_boxes[i].tolist()
            out.append(
                {
                    "segmentation": seg,
                    "area": int(sum(rle["counts"][1::2])),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "predicted_iou": float(masks.iou[i]),
                    "point_coords": [masks.points[i].tolist()],
                    "stability_score": float(masks.stability[i]),
                    "crop_box": [cx0, cy0, cx1 - cx0, cy1 - cy0],
                }
            )
        return out

    @staticmethod
    def postprocess_small_regions(masks: MaskSet, min_area: int, nms_thresh: float) -> MaskSet:
        """Fill holes and remove islands smaller than ``min_area`` pixels at full resolution, then drop
        the duplicates this creates by box NMS (unchanged masks win). Returns a new MaskSet."""
        if not len(masks):
            return masks
        cleaned, unchanged = [], []
        for rle in masks.rles:
            m, changed_holes = remove_small_regions(decode_rle(rle), min_area, "holes")
            m, changed_islands = remove_small_regions(m, min_area, "islands")
            cleaned.append(m)
            unchanged.append(not (changed_holes or changed_islands))
        stacked = torch.from_numpy(np.stack(cleaned))
        boxes = masks_to_boxes(stacked).float()
        scores = torch.tensor(unchanged, dtype=torch.float32)
        keep = batched_nms(boxes, scores, torch.zeros(len(cleaned), dtype=torch.int64), nms_thresh)
        out = masks.select(keep)
        for row, i in enumerate(keep.tolist()):
            if not unchanged[i]:
                out.rles[row] = masks_to_rle_torch(stacked[i : i + 1])[0]
                out.boxes[row] = boxes[i]
        return out

    # ------------------------------------------------------------------ internals
    def _check_crops(self, boxes: list, hw: tuple[int, int]) -> None:
        for x0, y0, x1, y1 in boxes:
            if x1 - x0 < 1 or y1 - y0 < 1:
                raise ValueError(
                    f"the image ({hw[1]}x{hw[0]}) is too small for "
                    f"crop_n_layers={self.config.crop_n_layers}: a crop would be {x1 - x0}x{y1 - y0} "
                    "pixels; use fewer crop layers"
                )

    def _process_crop(self, image: np.ndarray, crop_box: list, layer: int, step: Callable) -> MaskSet:
        x0, y0, x1, y1 = crop_box
        crop = image[y0:y1, x0:x1]
        crop_hw = crop.shape[:2]
        self.predictor.set_image(crop)
        try:
            points = self.point_grids[layer] * np.array(crop_hw)[None, ::-1]
            n = self.config.points_per_batch
            found = []
            for start in range(0, len(points), n):
                found.append(
                    self._process_batch(points[start : start + n], crop_hw, crop_box, image.shape[:2])
                )
                step()
        finally:
            self.predictor.reset_predictor()
        data = MaskSet.concat(found)
        if len(data):
            keep = batched_nms(
                data.boxes, data.iou, torch.zeros(len(data), dtype=torch.int64), self.config.box_nms_thresh
            )
            data = data.select(keep)
        offset = torch.tensor([x0, y0, x0, y0], dtype=torch.float32)
        data.boxes = data.boxes + offset
        data.points = data.points + offset[:2]
        data.crop_boxes = torch.tensor([crop_box] * len(data), dtype=torch.float32).reshape(-1, 4)
        return data

    def _process_batch(self, points: np.ndarray, crop_hw, crop_box: list, image_hw) -> MaskSet:
        cfg = self.config
        pts = torch.as_tensor(points, dtype=torch.float32)
        low, iou = self._decode(pts[:, None, :], None, cfg.multimask_output)
        per_point = low.shape[1]
        low, iou = low.flatten(0, 1), iou.flatten(0, 1)
        pts = pts.repeat_interleave(per_point, dim=0)
        if cfg.use_m2m:
            low, iou = self._refine(pts, low)
        if cfg.pred_iou_thresh > 0.0:
            keep = torch.nonzero(iou > cfg.pred_iou_thresh).flatten()
            low, iou, pts = low[keep], iou[keep], pts[keep]
        h, w = crop_hw
        chunk = max(1, _UPSAMPLE_BYTES // (4 * h * w))
        parts = [
            self._finish(
                low[s : s + chunk], iou[s : s + chunk], pts[s : s + chunk], crop_hw, crop_box, image_hw
            )
            for s in range(0, low.shape[0], chunk)
        ]
        return MaskSet.concat(parts)

    def _decode(self, points: torch.Tensor, mask_input, multimask: bool):
        """(B, 1, 2) crop-pixel points -> low-res logits (B, C, S/4, S/4) (not clamped), IoU (B, C).

        The decoder runs a few prompts at a time (results do not depend on it): each prompt carries
        its own copy of the image tokens through the two-way transformer, and at batch 64 every such
        temporary is hundreds of MB, which the C allocator maps and unmaps page by page on every call
        (measured: half of the decoder's time went to page faults). Temporaries of ~8 MB are reused.
        """
        labels = torch.ones(points.shape[:2], dtype=torch.int32)
        tokens = (self.model.image_size // 16) ** 2
        step = max(1, _DECODER_TEMP_BYTES // (tokens * self.model.cfg.d_model * 4))
        lows, ious = [], []
        for s in range(0, points.shape[0], step):
            masks = None if mask_input is None else mask_input[s : s + step]
            low, iou = self.predictor.decode_points(
                points[s : s + step], labels[s : s + step], masks, multimask
            )
            lows.append(low)
            ious.append(iou)
        return torch.cat(lows), torch.cat(ious)

    def _refine(self, pts: torch.Tensor, low: torch.Tensor):
        """One more decoder pass per mask with its own low-res logits as the mask prompt (``use_m2m``)."""
        n = self.config.points_per_batch
        outs, ious = [], []
        for s in range(0, pts.shape[0], n):
            # the mask prompt is the first pass's logits clamped as the official predictor returns them
            prompt = low[s : s + n, None].clamp(-32.0, 32.0)
            lo, io = self._decode(pts[s : s + n, None, :], prompt, False)
            outs.append(lo[:, 0])
            ious.append(io[:, 0])
        if not outs:
            return low, torch.zeros(0)
        return torch.cat(outs), torch.cat(ious)

    def _finish(self, low, iou, pts, crop_hw, crop_box, image_hw) -> MaskSet:
        """Upsample, score stability, threshold, box, drop masks cut by the crop, encode as RLE."""
        cfg = self.config
        if low.shape[0] == 0:
            return MaskSet()
        logits = self.predictor.upscale_logits(low[:, None], crop_hw)[:, 0]
        stab = _stability(logits, cfg.stability_score_offset, cfg.mask_threshold)
        if cfg.stability_score_thresh > 0.0:
            keep = torch.nonzero(stab >= cfg.stability_score_thresh).flatten()
            logits, iou, pts, stab = logits[keep], iou[keep], pts[keep], stab[keep]
        masks = logits > cfg.mask_threshold
        del logits
        boxes = masks_to_boxes(masks)
        ih, iw = image_hw
        keep = torch.nonzero(~near_crop_edge(boxes, crop_box, [0, 0, iw, ih])).flatten()
        if keep.numel() < masks.shape[0]:
            masks, boxes, iou, pts, stab = masks[keep], boxes[keep], iou[keep], pts[keep], stab[keep]
        rles = _uncropped_rles(masks, crop_box, image_hw)
        return MaskSet(rles, boxes.float(), iou.float(), stab.float(), pts, torch.zeros(len(rles), 4))


def _stability(logits: torch.Tensor, offset: float, threshold: float) -> torch.Tensor:
    """:func:`masklet.modeling.mask_decoder.stability_score` with ``empty=nan`` (0 / 0, as officially),
    counting pixels with numpy on the CPU: ``count_nonzero`` of a contiguous bool row is an order of
    magnitude faster than a torch sum over it. Exact integer counts either way."""
    if logits.device.type != "cpu":
        return stability_score(logits, offset, threshold, empty=float("nan"))
    flat = logits.reshape(logits.shape[0], -1)
    high = (flat > threshold + offset).numpy()
    low = (flat > threshold - offset).numpy()
    inter = torch.tensor([np.count_nonzero(row) for row in high], dtype=torch.float32)
    union = torch.tensor([np.count_nonzero(row) for row in low], dtype=torch.float32)
    return inter / union


def _uncropped_rles(masks: torch.Tensor, crop_box: list, image_hw) -> list[dict]:
    """RLEs at the full image size of (N, h, w) crop masks placed at ``crop_box``."""
    x0, y0, x1, y1 = crop_box
    ih, iw = image_hw
    if (x0, y0, x1, y1) != (0, 0, iw, ih):
        masks = torch.nn.functional.pad(masks, (x0, iw - x1, y0, ih - y1), value=False)
    return masks_to_rle_torch(masks)
