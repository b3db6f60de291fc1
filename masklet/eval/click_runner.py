"""Interactive-click mIoU on image datasets (COCO-style annotations): the SAM evaluation protocol.

For every object: the first click is at the point farthest from the object boundary; each next click at
the center of the largest error region of the current prediction (positive on a missed region, negative
on an extra one; :mod:`masklet.io.mask_geometry`). The model gets all clicks so far: with one click it
returns three candidates and the one with the highest predicted IoU is kept (the ambiguity-aware
setting of the SAM paper); from the second click on it returns one mask and is also given the previous
prediction's low-resolution logits, as interactive tools do. mIoU@k is the mean over objects of the IoU
after k clicks; an object whose prediction became exact stops getting clicks and keeps its IoU of 1.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..inference.image import ImagePredictor
from ..io.images import load_image
from ..io.mask_geometry import first_click, next_click
from ..io.masks import decode_rle


@dataclass
class ClickReport:
    """Per-object IoU after each click, and mIoU@k for the requested click counts."""

    clicks: tuple[int, ...]
    rows: list[dict] = field(default_factory=list)  # image, annotation id, category, area, iou@1..K

    def miou(self, k: int) -> float:
        if not self.rows:
            return float("nan")
        return float(np.mean([r[f"iou@{k}"] for r in self.rows]))

    def summary(self) -> dict[str, float]:
        return {f"mIoU@{k}": self.miou(k) for k in self.clicks} | {"objects": len(self.rows)}

    def table(self) -> str:
        head = " | ".join(f"mIoU@{k}" for k in self.clicks)
        vals = " | ".join(f"{self.miou(k):.4f}" for k in self.clicks)
        return f"| objects | {head} |\n| --- |{' --- |' * len(self.clicks)}\n| {len(self.rows)} | {vals} |"

    def write_csv(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        k = max(self.clicks)
        cols = ["image", "annotation_id", "category", "area"] + [f"iou@{i}" for i in range(1, k + 1)]
        lines = [",".join(cols)]
        for r in self.rows:
            lines.append(",".join(str(r[c]) if not isinstance(r[c], float) else f"{r[c]:.6f}" for c in cols))
        path.write_text("\n".join(lines) + "\n")
        return path


def _segmentation(ann: dict, h: int, w: int) -> np.ndarray:
    seg = ann.get("segmentation")
    if isinstance(seg, dict):
        return decode_rle(seg)
    if isinstance(seg, list) and seg:
        from ..io.polygons import polygons_to_mask

        polys = [np.asarray(p, np.float64).reshape(-1, 2) for p in seg if len(p) >= 6]
        return polygons_to_mask(polys, h, w)
    raise ValueError(f"annotation {ann.get('id')} has no segmentation (RLE or polygons)")


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


@torch.inference_mode()
def clicks_for_object(predictor: ImagePredictor, gt: np.ndarray, max_clicks: int) -> list[float]:
    """IoU after 1..max_clicks clicks on one object (the image must be set on ``predictor``)."""
    x, y = first_click(gt)
    points, labels = [[x, y]], [1]
    ious: list[float] = []
    logits = None
    pred = None
    while len(ious) < max_clicks:
        if pred is not None:
            click = next_click(pred, gt)
            if click is None:  # exact: further clicks change nothing
                ious += [ious[-1]] * (max_clicks - len(ious))
                break
            points.append([click[0], click[1]])
            labels.append(click[2])
        first = len(points) == 1
        masks, scores, low = predictor.predict(
            np.asarray(points, np.float32),
            np.asarray(labels, np.int32),
            mask_input=None if first else logits,
            multimask_output=first,
        )
        best = int(np.argmax(scores))
        pred, logits = masks[best].astype(bool), low[best : best + 1]
        ious.append(_iou(pred, gt))
    return ious


def run_image_clicks(
    predictor: ImagePredictor,
    annotations: str | Path,
    images: str | Path,
    clicks: tuple[int, ...] = (1, 5),
    min_area: int = 1,
    max_images: int | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> ClickReport:
    """mIoU@k over the objects of a COCO annotation file whose images are in ``images``.

    Crowd annotations (iscrowd 1) and objects smaller than ``min_area`` pixels are skipped.
    """
    if not clicks or any(not isinstance(k, int) or k < 1 for k in clicks):
        raise ValueError(f"clicks must be positive integers such as 1,5; got {clicks!r}")
    try:
        data = json.loads(Path(annotations).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read the COCO annotations {annotations}: {exc}") from None
    if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
        raise ValueError(f"{annotations} is not a COCO annotation file (needs 'images' and 'annotations')")
    cats = {c["id"]: c.get("name", str(c["id"])) for c in data.get("categories", [])}
    by_image: dict[int, list[dict]] = {}
    for a in data["annotations"]:
        if not a.get("iscrowd"):
            by_image.setdefault(a["image_id"], []).append(a)
    todo = [im for im in data["images"] if im["id"] in by_image][:max_images]
    report = ClickReport(tuple(sorted(set(clicks))))
    k_max = max(clicks)
    for i, im in enumerate(todo):
        path = Path(images) / im["file_name"]
        if not path.is_file():
            raise ValueError(f"image {im['file_name']} of {annotations} is not in {images}")
        rgb = load_image(path)
        predictor.set_image(rgb)
        h, w = rgb.shape[:2]
        for a in by_image[im["id"]]:
            gt = _segmentation(a, h, w)
            if gt.shape != (h, w):
                raise ValueError(
                    f"annotation {a['id']}: mask {gt.shape} but image {im['file_name']} is {(h, w)}"
                )
            if gt.sum() < min_area:
                continue
            ious = clicks_for_object(predictor, gt, k_max)
            row = {
                "image": im["file_name"],
                "annotation_id": a["id"],
                "category": cats.get(a.get("category_id"), ""),
            }
            row["area"] = int(gt.sum())
            row.update({f"iou@{j + 1}": v for j, v in enumerate(ious)})
            report.rows.append(row)
        if progress is not None:
            progress(i + 1, len(todo), im["file_name"])
    return report
