"""COCO instance annotations (one JSON file), with masks as RLE or polygons.

Export layout (standard COCO plus a few extra keys other tools ignore):

- ``images``: ``{"id", "file_name", "width", "height", "key"}``; frames of a video add ``"video_id"``
  (an id from the top-level ``"videos": [{"id", "name"}]``) and ``"frame_id"`` (0-based frame index)
- ``categories``: ``{"id": 1 + label index, "name", "supercategory": ""}`` (plus ``"color"`` if known)
- ``annotations``: ``{"id", "image_id", "category_id", "segmentation", "area", "bbox": [x, y, w, h],
  "iscrowd": 0, "track_id"}`` (plus ``"score"`` when set). ``segmentation`` is a compressed RLE with
  ``counts`` as a str, or a list of flat ``[x0, y0, x1, y1, ...]`` outer rings in pixel-corner
  coordinates (holes are filled, see :mod:`masklet.io.polygons`); ``[]`` for a box-only annotation.
  ``area`` is the mask's pixel count (the box area for box-only ones).

Import reads these files and plain COCO files from other tools: categories with any ids, RLE with
compressed or uncompressed counts, polygons, ``iscrowd`` (kept as an ordinary object), and no video
fields (then every image is a plain image and each annotation's track id is its COCO id).
"""

from __future__ import annotations

from pathlib import Path

from ...io.masks import compress_rle, decode_rle, encode_rle, mask_to_box_xywh, rle_area
from ...io.polygons import polygons_to_mask
from ..annotations import Annotation, AnnotationSet, ImageEntry
from ._common import check_set, is_empty, number, polygons_of, read_json, write_json

__all__ = ["export_coco", "import_coco"]


def export_coco(
    aset: AnnotationSet, out_json: str | Path, segmentation: str = "rle", tolerance: float = 1.0
) -> list[Path]:
    """Write ``aset`` as one COCO JSON file; returns ``[out_json]``.

    Args:
        segmentation: ``"rle"`` (exact masks, holes kept) or ``"polygon"`` (outer rings simplified with
            Douglas-Peucker at ``tolerance`` pixels).
    Annotations with an empty mask/box are left out.
    """
    if segmentation not in ("rle", "polygon"):
        raise ValueError(f"segmentation must be 'rle' or 'polygon', got {segmentation!r}")
    by_key = check_set(aset)
    video_ids: dict[str, int] = {}
    images, image_ids = [], {}
    for i, im in enumerate(aset.images):
        image_ids[im.key] = i + 1
        doc = {"id": i + 1, "file_name": im.file_name, "width": im.width, "height": im.height, "key": im.key}
        if im.video is not None:
            doc["video_id"] = video_ids.setdefault(im.video, len(video_ids) + 1)
            doc["frame_id"] = im.frame_index
        images.append(doc)
    categories = []
    for i, name in enumerate(aset.labels):
        cat = {"id": i + 1, "name": name, "supercategory": ""}
        if name in aset.colors:
            cat["color"] = aset.colors[name]
        categories.append(cat)
    category_ids = {name: i + 1 for i, name in enumerate(aset.labels)}
    annotations = []
    for im in aset.images:
        for a in by_key[im.key]:
            if is_empty(a):
                continue
            ann = {
                "id": len(annotations) + 1,
                "image_id": image_ids[im.key],
                "category_id": category_ids[a.label],
            }
            ann.update(_segmentation(a, segmentation, tolerance))
            ann.update(bbox=[number(v) for v in a.bbox], iscrowd=0, track_id=int(a.track_id))
            if a.score is not None:
                ann["score"] = float(a.score)
            annotations.append(ann)
    doc = {
        "info": {"description": "exported by masklet"},
        "videos": [{"id": vid, "name": name} for name, vid in video_ids.items()],
        "images": images,
        "categories": categories,
        "annotations": annotations,
    }
    return [write_json(Path(out_json), doc)]


def _segmentation(a: Annotation, kind: str, tolerance: float) -> dict:
    if a.rle is None:
        return {"segmentation": [], "area": number(a.bbox[2] * a.bbox[3])}
    if kind == "rle":
        return {"segmentation": compress_rle(a.rle), "area": rle_area(a.rle)}
    rings = [[number(v) for v in ring.ravel()] for ring in polygons_of(a, tolerance)]
    return {"segmentation": rings, "area": rle_area(a.rle)}


def import_coco(json_path: str | Path) -> AnnotationSet:
    """Read a COCO instances JSON file (ours or another tool's) into an :class:`AnnotationSet`.

    Image keys are the images' ``"key"`` field when present (our exports), else their ``file_name``.
    Labels follow the order of ``categories`` in the file (two categories with one name become one
    label). Masks become compressed RLE; box-only annotations (no or empty ``segmentation``) keep
    their ``bbox``. Raises ValueError naming the entry and the missing/invalid field.
    """
    path = Path(json_path)
    doc = read_json(path, "COCO annotation")
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: a COCO file is a JSON object with 'images', 'annotations', 'categories'")
    for key in ("images", "annotations", "categories"):
        if not isinstance(doc.get(key), list):
            raise ValueError(
                f"{path}: missing the {key!r} list; a COCO annotation file needs 'images', 'annotations' "
                "and 'categories' lists (is this a results file or a different format?)"
            )
    video_names = {}
    for v in doc.get("videos") or []:
        _require(v, ("id", "name"), path, "videos")
        video_names[v["id"]] = str(v["name"])
    images, by_id = _read_images(doc["images"], video_names, path)
    labels, label_of = [], {}
    colors = {}
    for c in doc["categories"]:
        _require(c, ("id", "name"), path, "categories")
        name = str(c["name"])
        if name not in labels:
            labels.append(name)
        label_of[c["id"]] = name
        if isinstance(c.get("color"), str):
            colors[name] = c["color"]
    annotations = []
    for n, ann in enumerate(doc["annotations"]):
        _require(ann, ("image_id", "category_id"), path, "annotations")
        where = f"{path}: annotation {ann.get('id', f'#{n}')}"
        if ann["image_id"] not in by_id:
            raise ValueError(f"{where} refers to image_id {ann['image_id']!r}, which is not in 'images'")
        if ann["category_id"] not in label_of:
            raise ValueError(
                f"{where} refers to category_id {ann['category_id']!r}, which is not in 'categories'"
            )
        im = by_id[ann["image_id"]]
        track = ann.get("track_id", ann.get("id", n + 1))
        score = ann.get("score")
        rle = _read_segmentation(ann.get("segmentation"), im, where)
        if rle is None:
            bbox = ann.get("bbox")
            if not isinstance(bbox, list) or len(bbox) != 4:
                raise ValueError(f"{where} has neither a segmentation nor a 'bbox' [x, y, w, h]")
            box = tuple(float(v) for v in bbox)
        else:
            box = tuple(float(v) for v in mask_to_box_xywh(decode_rle(rle)))
        score = None if score is None else float(score)
        annotations.append(Annotation(im.key, label_of[ann["category_id"]], int(track), box, rle, score))
    return AnnotationSet(images=images, labels=labels, annotations=annotations, colors=colors)


def _require(entry, keys: tuple[str, ...], path: Path, section: str) -> None:
    if not isinstance(entry, dict):
        raise ValueError(f"{path}: every entry of {section!r} must be a JSON object, got {entry!r}")
    missing = [k for k in keys if k not in entry]
    if missing:
        name = entry.get("id", entry.get("file_name", "?"))
        raise ValueError(f"{path}: an entry of {section!r} (id {name!r}) lacks {missing}; add them")


def _read_images(entries: list, video_names: dict, path: Path) -> tuple[list[ImageEntry], dict]:
    images, by_id, keys = [], {}, set()
    for e in entries:
        _require(e, ("id", "file_name", "width", "height"), path, "images")
        if e["id"] in by_id:
            raise ValueError(f"{path}: image id {e['id']!r} appears twice in 'images'; ids must be unique")
        key = str(e.get("key") or e["file_name"])
        if key in keys:
            raise ValueError(f"{path}: two images share the file_name/key {key!r}; they must be unique")
        keys.add(key)
        video, frame = None, None
        if e.get("video_id") is not None:
            video = video_names.get(e["video_id"], f"video{e['video_id']}")
            frame = e.get("frame_id", e.get("frame_index"))
            frame = None if frame is None else int(frame)
        im = ImageEntry(key, str(e["file_name"]), int(e["width"]), int(e["height"]), video, frame)
        images.append(im)
        by_id[e["id"]] = im
    return images, by_id


def _read_segmentation(seg, im: ImageEntry, where: str) -> dict | None:
    """Compressed RLE of a COCO segmentation (RLE dict or polygon list); None when there is none."""
    if seg is None or (isinstance(seg, list) and len(seg) == 0):
        return None
    if isinstance(seg, dict):
        try:
            rle = compress_rle(seg)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{where}: invalid RLE segmentation: {e}") from None
        if rle["size"] != [im.height, im.width]:
            raise ValueError(
                f"{where}: the RLE size {rle['size']} differs from its image's [height, width] "
                f"{[im.height, im.width]}"
            )
        return rle
    if isinstance(seg, list):
        if all(isinstance(v, (int, float)) for v in seg):
            seg = [seg]  # one polygon written without the outer list
        try:
            mask = polygons_to_mask(seg, im.height, im.width)
        except ValueError as e:
            raise ValueError(f"{where}: invalid polygon segmentation: {e}") from None
        return encode_rle(mask)
    raise ValueError(
        f"{where}: 'segmentation' must be an RLE dict or a list of polygons, got {type(seg).__name__}"
    )
