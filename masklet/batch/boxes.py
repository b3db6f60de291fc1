"""``batch boxes``: detection boxes become masks (one mask per box), as COCO RLE and YOLO-seg labels.

Inputs: a folder of images and their boxes, a COCO json or YOLO label files (:mod:`.labels`).
Outputs in ``OUT``:

* ``annotations.json``: COCO instances; the input's images (with their real height and width), its
  categories and its annotations (ids and fields kept) each with ``segmentation`` (compressed RLE),
  ``area`` (mask pixels) and ``score`` (the model's predicted IoU). From YOLO labels: images numbered
  from 1 in name order, ``category_id`` = the YOLO class, ``bbox`` = the box in pixels;
* ``labels/<image path without suffix>.txt``: YOLO-seg, one line per box with a non-empty mask,
  ``class x1 y1 x2 y2 ...``, the outline of the mask's largest part normalized to [0, 1] (classes: the
  YOLO input's, or for COCO input the index of the category id in sorted order);
* ``classes.txt``: the class names in YOLO order (COCO categories, or the input's classes.txt).

Each image's COCO part is written by its worker into ``OUT/.masklet/parts/``; the driver joins the
parts of all done images into ``annotations.json`` at the end, one image at a time.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .items import BatchInputError, Item
from .labels import (
    coco_categories,
    coco_items,
    parse_coco_boxes,
    parse_yolo_boxes,
    yolo_class_names,
    yolo_items,
)
from .staging import BOOKKEEPING, item_file_name
from .worker import ItemResult

__all__ = ["BoxesJob"]

PARTS = "parts"


@dataclass(frozen=True)
class BoxesJob:
    """Masks for the boxes of every image (see the module docstring).

    images: the images folder; labels: a COCO ``.json`` file or a folder of YOLO ``.txt`` labels.
    """

    images: str
    labels: str
    mode = "boxes"

    def discover(self) -> tuple[list[Item], list[str]]:
        images, labels = Path(self.images), Path(self.labels)
        if not images.is_dir():
            raise BatchInputError(
                f"images folder {images} not found" if not images.exists() else f"{images} is not a folder"
            )
        if labels.is_dir():
            return yolo_items(images, labels), []
        if labels.is_file():
            return coco_items(images, labels), []
        raise BatchInputError(
            f"labels {labels} not found: give a COCO .json file or a folder of YOLO .txt labels"
        )

    def settings(self) -> dict:
        return {"images": str(Path(self.images).resolve()), "labels": str(Path(self.labels).resolve())}

    def setup(self, model, meta: dict):
        return BoxesWork(model, meta)

    def finish(self, out: Path, done: list[Item]) -> list[str]:
        if not done:
            return []
        is_yolo = Path(self.labels).is_dir()
        parts = [Path(out) / _part_path(item.key) for item in done]
        if is_yolo:
            names = yolo_class_names(Path(self.labels))
            seen = sorted({a["category_id"] for p in parts for a in json.loads(p.read_text())["annotations"]})
            top = max(seen + [len(names or []) - 1, -1])
            names = [(names[i] if names and i < len(names) else str(i)) for i in range(top + 1)]
            categories = [{"id": i, "name": n} for i, n in enumerate(names)]
        else:
            categories = coco_categories(Path(self.labels))
            names = [str(c.get("name", c.get("id"))) for c in sorted(categories, key=_category_order)]
        path = Path(out) / "annotations.json"
        _write_coco(path, parts, categories, renumber=is_yolo)
        (Path(out) / "classes.txt").write_text("".join(f"{n}\n" for n in names))
        return [f"COCO annotations of {len(done)} image(s): {path}; YOLO-seg labels: {Path(out) / 'labels'}"]


def _category_order(c: dict):
    cid = c.get("id")
    return (not isinstance(cid, int), cid if isinstance(cid, int) else str(cid))


def _part_path(key: str) -> str:
    return f"{BOOKKEEPING}/{PARTS}/{item_file_name(key)}.json"


def _compact(doc) -> str:
    return json.dumps(doc, separators=(",", ":"))


def _write_coco(path: Path, parts: list[Path], categories: list, renumber: bool) -> None:
    """Join the per-image parts into one COCO file, reading one part at a time (twice)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w") as f:
            first = json.loads(parts[0].read_text())
            info = {"description": "masklet batch boxes", "model": first.get("model")}
            f.write(f'{{"info":{_compact(info)},"categories":{_compact(categories)},"images":[')
            for i, part in enumerate(parts):
                f.write(("," if i else "") + _compact(json.loads(part.read_text())["image"]))
            f.write('],"annotations":[')
            n = 0
            for part in parts:
                for ann in json.loads(part.read_text())["annotations"]:
                    n += 1
                    if renumber:
                        ann = {"id": n, **ann}
                    f.write(("," if n > 1 else "") + _compact(ann))
            f.write("]}")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class BoxesWork:
    """One worker's box prompter: an ImagePredictor over the worker's model."""

    def __init__(self, model, meta: dict) -> None:
        from ..inference.image import ImagePredictor

        self.predictor = ImagePredictor(model)
        self.meta = meta

    def __call__(self, item: Item, folder: Path) -> ItemResult:
        from ..io.images import load_image

        data = item.data
        image = load_image(data["image"])
        h, w = image.shape[:2]
        if data["format"] == "coco":
            anns = data["annotations"]
            boxes = parse_coco_boxes(anns)
            classes = [a["yolo_class"] for a in anns]
            anns = [{k: v for k, v in a.items() if k != "yolo_class"} for a in anns]
        else:
            boxes, classes = parse_yolo_boxes(data["labels"], w, h)
            anns = [
                {"image_id": data["entry"]["id"], "category_id": c, "bbox": _xywh(b), "iscrowd": 0}
                for b, c in zip(boxes, classes)
            ]
        masks, scores = self._masks(image, boxes)
        lines, kept = [], 0
        for ann, mask, score, cls in zip(anns, masks, scores, classes):
            ann.update(segmentation=_rle(mask), area=int(mask.sum()), score=round(float(score), 6))
            line = _yolo_line(mask, cls, w, h)
            kept += bool(ann["area"])
            if line:
                lines.append(line)
        entry = {**data["entry"], "height": h, "width": w}
        label = f"labels/{item.key}.txt"
        (folder / label).parent.mkdir(parents=True, exist_ok=True)
        (folder / label).write_text("".join(f"{line}\n" for line in lines))
        part = {"image": entry, "annotations": anns, "model": self.meta}
        (folder / _part_path(item.key)).parent.mkdir(parents=True, exist_ok=True)
        (folder / _part_path(item.key)).write_text(_compact(part))
        return ItemResult([label, _part_path(item.key)], frames=1, masks=kept)

    def _masks(self, image: np.ndarray, boxes: list) -> tuple[np.ndarray, np.ndarray]:
        """(B, H, W) bool masks and (B,) predicted IoUs, one per box."""
        h, w = image.shape[:2]
        if not boxes:
            return np.zeros((0, h, w), bool), np.zeros(0, np.float32)
        self.predictor.set_image(image)
        masks, scores, _ = self.predictor.predict(box=np.asarray(boxes, np.float32), multimask_output=False)
        return masks.reshape(len(boxes), h, w).astype(bool), scores.reshape(len(boxes))


def _xywh(box: list[float]) -> list[float]:
    x0, y0, x1, y1 = box
    return [round(x0, 3), round(y0, 3), round(x1 - x0, 3), round(y1 - y0, 3)]


def _rle(mask: np.ndarray) -> dict:
    from ..io.masks import encode_rle

    return encode_rle(mask)


def _yolo_line(mask: np.ndarray, cls: int, w: int, h: int) -> str | None:
    """``class x1 y1 x2 y2 ...`` of the mask's largest outline normalized to [0, 1]; None if empty."""
    from ..io.polygons import mask_to_polygons

    polygons = mask_to_polygons(mask, tolerance=1.0)
    if not polygons or cls < 0:
        return None
    largest = max(polygons, key=_area)
    coords = (largest / np.array([w, h], np.float64)).clip(0.0, 1.0).ravel()
    return f"{cls} " + " ".join(f"{v:.6f}" for v in coords)


def _area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) / 2
