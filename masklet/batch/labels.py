"""Detection boxes for ``batch boxes``: a COCO json, or a folder of YOLO label files.

COCO: ``{"images": [{"id", "file_name", ...}], "annotations": [{"id", "image_id", "category_id",
"bbox": [x, y, w, h], ...}], "categories": [...]}``; ``file_name`` is relative to the images folder.
The file is read once by the driver (a file that does not parse stops the run before any work); each
image's annotations travel with its item, and a bad ``bbox`` fails that image only.

YOLO: ``LABELS/<image path without suffix>.txt`` next to ``IMAGES/<image path>``, one line per box,
``class cx cy w h`` normalized to [0, 1] by the image's width and height (a sixth value, a confidence,
is ignored). An image without a label file has no boxes. Label files are parsed by the workers: one
that does not parse fails its image only. ``LABELS/classes.txt`` (one class name per line), when
present, names the classes.
"""

from __future__ import annotations

import json
import numbers
from pathlib import Path

from .items import BatchInputError, Item, ItemError, few, find_images

__all__ = ["coco_items", "parse_coco_boxes", "parse_yolo_boxes", "yolo_class_names", "yolo_items"]


def _load_coco(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise BatchInputError(f"cannot read the COCO file {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise BatchInputError(
            f"{path} is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise BatchInputError(f"{path} is not a COCO file: expected an object with an 'images' list")
    if not isinstance(doc.get("annotations", []), list) or not isinstance(doc.get("categories", []), list):
        raise BatchInputError(f"{path}: 'annotations' and 'categories' must be lists")
    return doc


def coco_categories(path: Path) -> list[dict]:
    return _load_coco(path).get("categories", [])


def coco_items(images: Path, labels: Path) -> list[Item]:
    """One item per image entry of the COCO file, with its annotations (segmentations dropped)."""
    doc = _load_coco(labels)
    cat_ids = sorted(
        {c.get("id") for c in doc.get("categories", []) if isinstance(c, dict)},
        key=lambda c: (not isinstance(c, int), c if isinstance(c, int) else str(c)),
    )
    yolo_index = {cid: i for i, cid in enumerate(cat_ids)}
    by_image: dict = {}
    for ann in doc.get("annotations", []):
        if not isinstance(ann, dict) or "image_id" not in ann:
            raise BatchInputError(f"{labels}: every annotation needs an 'image_id'")
        slim = {k: v for k, v in ann.items() if k != "segmentation"}
        slim["yolo_class"] = yolo_index.get(ann.get("category_id"), -1)
        by_image.setdefault(ann["image_id"], []).append(slim)
    items, missing, keys = [], [], {}
    for entry in doc["images"]:
        if not isinstance(entry, dict) or "id" not in entry or not isinstance(entry.get("file_name"), str):
            raise BatchInputError(f"{labels}: every image needs an 'id' and a 'file_name'")
        path = Path(images) / entry["file_name"]
        if not path.is_file():
            missing.append(entry["file_name"])
            continue
        key = Path(entry["file_name"]).with_suffix("").as_posix()
        if key in keys:
            raise BatchInputError(
                f"{labels}: images {keys[key]} and {entry['file_name']} share the name {key!r}"
            )
        keys[key] = entry["file_name"]
        data = {"format": "coco", "image": str(path.resolve()), "entry": entry}
        items.append(Item(key, {**data, "annotations": by_image.get(entry["id"], [])}))
    if missing:
        raise BatchInputError(f"{labels} names images that are not in {images}: {few(missing)}")
    if not items:
        raise BatchInputError(f"{labels} lists no images")
    return sorted(items, key=lambda it: it.key)


def yolo_items(images: Path, labels: Path) -> list[Item]:
    """One item per image of the folder, with the path of its label file (or None: no boxes)."""
    found = find_images(images)
    stray = []
    for txt in sorted(Path(labels).rglob("*.txt")):
        key = txt.relative_to(labels).with_suffix("").as_posix()
        if key != "classes" and key not in found and not any(p.startswith(".") for p in txt.parts):
            stray.append(txt.relative_to(labels).as_posix())
    if stray:
        raise BatchInputError(
            f"label files in {labels} have no image of the same name in {images}: {few(stray)}"
        )
    items = []
    for i, (key, path) in enumerate(found.items()):
        txt = Path(labels) / f"{key}.txt"
        data = {
            "format": "yolo",
            "image": str(path.resolve()),
            "entry": {"id": i + 1, "file_name": path.relative_to(images).as_posix()},
            "labels": str(txt.resolve()) if txt.is_file() else None,
        }
        items.append(Item(key, data))
    return items


def yolo_class_names(labels: Path) -> list[str] | None:
    path = Path(labels) / "classes.txt"
    if not path.is_file():
        return None
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def parse_coco_boxes(annotations: list[dict]) -> list[list[float]]:
    """x0, y0, x1, y1 pixel boxes of COCO annotations; ItemError naming a bad one."""
    boxes = []
    for ann in annotations:
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_number(v) for v in bbox)):
            raise ItemError(f"annotation {ann.get('id')}: 'bbox' must be [x, y, width, height], got {bbox!r}")
        x, y, w, h = (float(v) for v in bbox)
        if w < 0 or h < 0:
            raise ItemError(f"annotation {ann.get('id')}: 'bbox' {bbox} has a negative width or height")
        boxes.append([x, y, x + w, y + h])
    return boxes


def parse_yolo_boxes(path: str | None, width: int, height: int) -> tuple[list[list[float]], list[int]]:
    """(x0, y0, x1, y1 pixel boxes, class ids) of a YOLO label file; ItemError naming the bad line."""
    if path is None:
        return [], []
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ItemError(f"cannot read the label file {Path(path).name}: {exc}") from None
    boxes, classes = [], []
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        where = f"{Path(path).name} line {n}"
        try:
            values = [float(v) for v in parts]
        except ValueError:
            raise ItemError(f"{where}: {line.strip()!r} is not numbers; expected 'class cx cy w h'") from None
        if len(values) not in (5, 6) or values[0] != int(values[0]) or values[0] < 0:
            raise ItemError(
                f"{where}: expected 'class cx cy w h' (a class id >= 0 and 4 numbers in 0..1), "
                f"got {line.strip()!r}"
            )
        cx, cy, w, h = values[1:5]
        if not all(0.0 <= v <= 1.0 for v in (cx, cy, w, h)):
            raise ItemError(f"{where}: box values must be normalized to 0..1, got {line.strip()!r}")
        x0, y0 = (cx - w / 2) * width, (cy - h / 2) * height
        boxes.append([x0, y0, x0 + w * width, y0 + h * height])
        classes.append(int(values[0]))
    return boxes, classes
