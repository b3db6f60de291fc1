"""LabelMe / X-AnyLabeling: one JSON file per image.

Export: ``<out_dir>/<stem>.json`` (stems from :func:`image_stems`) holding ``version``, ``flags``,
``shapes``, ``imagePath``, ``imageData`` (null), ``imageHeight``, ``imageWidth``. Each shape is
``{label, points, group_id, shape_type, flags, description}`` with ``group_id`` = the track id.

- ``shape="polygon"``: one polygon shape per part of the mask (outer rings, holes filled), all parts of
  an object sharing its ``group_id``; box-only annotations become rectangles.
- ``shape="rectangle"``: one rectangle ``[[x0, y0], [x1, y1]]`` (pixel-corner coordinates) per object.

``imagePath`` is the image's file name placed next to the JSON (the stem's last part plus the image's
suffix), which is where LabelMe looks: copy the JSON files beside the images, or pass an image reader
and the images are written there.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np

from ...io.polygons import polygons_to_mask
from ..annotations import Annotation, AnnotationSet, ImageEntry, ImageReader
from ._common import (
    check_set,
    image_stems,
    image_suffix,
    is_empty,
    number,
    polygons_of,
    read_json,
    write_image,
    write_json,
)

__all__ = ["export_labelme", "import_labelme"]

LABELME_VERSION = "5.4.1"


def export_labelme(
    aset: AnnotationSet,
    out_dir: str | Path,
    shape: str = "polygon",
    tolerance: float = 1.0,
    reader: ImageReader | None = None,
) -> list[Path]:
    """Write one LabelMe JSON per image of ``aset`` (also images without objects); returns the files."""
    if shape not in ("polygon", "rectangle"):
        raise ValueError(f"shape must be 'polygon' or 'rectangle', got {shape!r}")
    out = Path(out_dir)
    by_key = check_set(aset)
    stems = image_stems(aset.images)
    files = []
    for im in aset.images:
        image_name = PurePosixPath(stems[im.key]).name + image_suffix(im)
        shapes = []
        for a in by_key[im.key]:
            if is_empty(a):
                continue
            if shape == "rectangle" or a.rle is None:
                x, y, w, h = a.bbox
                shapes.append(_shape(a, [[x, y], [x + w, y + h]], "rectangle"))
            else:
                shapes += [_shape(a, ring.tolist(), "polygon") for ring in polygons_of(a, tolerance)]
        doc = {
            "version": LABELME_VERSION,
            "flags": {},
            "shapes": shapes,
            "imagePath": image_name,
            "imageData": None,
            "imageHeight": im.height,
            "imageWidth": im.width,
        }
        path = out / f"{stems[im.key]}.json"
        files.append(write_json(path, doc, indent=2))
        if reader is not None:
            files.append(write_image(path.with_name(image_name), reader, im))
    return files


def _shape(a: Annotation, points: list, kind: str) -> dict:
    shape = {
        "label": a.label,
        "points": [[number(x), number(y)] for x, y in points],
        "group_id": int(a.track_id),
        "shape_type": kind,
        "flags": {},
        "description": "",
    }
    if a.score is not None:
        shape["score"] = float(a.score)  # X-AnyLabeling's field; LabelMe keeps unknown keys
    return shape


def import_labelme(
    directory: str | Path, images: list[ImageEntry] | None = None, labels: list[str] | None = None
) -> AnnotationSet:
    """Read every ``*.json`` under ``directory`` (LabelMe or X-AnyLabeling files).

    Args:
        images: when given, a file ``<stem>.json`` belongs to the image with that stem
            (:func:`image_stems`), so video frames come back as frames; files matching no image are
            ignored unless none match (ValueError). Without it, each file becomes a plain image with
            key = its stem and file name = the stem's folder + ``imagePath``.
        labels: label order to start from; labels met in the files are appended.

    Shapes sharing a ``group_id`` on one image form one object (track id = the group id); a shape
    without one is an object of its own. Polygons, rectangles and circles are filled into the mask;
    a lone rectangle is a box-only annotation. Points, lines and line strips have no area: skipped.
    """
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"LabelMe folder {root} does not exist; pass the folder of .json files")
    files = {p.relative_to(root).with_suffix("").as_posix(): p for p in sorted(root.rglob("*.json"))}
    names = list(labels or [])
    if images is not None:
        by_stem = {stem: key for key, stem in image_stems(images).items()}
        entries = {im.key: im for im in images}
        pairs = [(entries[by_stem[s]], p) for s, p in files.items() if s in by_stem]
        if files and not pairs:
            raise ValueError(
                f"none of the {len(files)} JSON files in {root} (e.g. {sorted(files)[:3]}) matches an image; "
                f"expected names like {list(by_stem)[:3]}"
            )
        out_images = list(images)
    else:
        pairs = [(_entry_from_file(stem, path), path) for stem, path in files.items()]
        out_images = [im for im, _ in pairs]
    annotations = []
    for im, path in pairs:
        annotations += _read_shapes(path, im, names)
    return AnnotationSet(images=out_images, labels=names, annotations=annotations)


def _entry_from_file(stem: str, path: Path) -> ImageEntry:
    doc = read_json(path, "LabelMe")
    if not isinstance(doc, dict) or "imageHeight" not in doc or "imageWidth" not in doc:
        raise ValueError(f"{path}: a LabelMe file needs 'imageHeight' and 'imageWidth' (and 'shapes')")
    image_path = str(doc.get("imagePath") or f"{PurePosixPath(stem).name}.jpg").replace("\\", "/")
    file_name = str(PurePosixPath(stem).parent / PurePosixPath(image_path).name)
    return ImageEntry(stem, file_name.removeprefix("./"), int(doc["imageWidth"]), int(doc["imageHeight"]))


def _read_shapes(path: Path, im: ImageEntry, names: list[str]) -> list[Annotation]:
    doc = read_json(path, "LabelMe")
    shapes = doc.get("shapes") if isinstance(doc, dict) else None
    if not isinstance(shapes, list):
        raise ValueError(f"{path}: a LabelMe file needs a 'shapes' list")
    groups: dict[int, list[dict]] = {}
    used = {int(s["group_id"]) for s in shapes if isinstance(s, dict) and s.get("group_id") is not None}
    next_id = max(used, default=0) + 1
    for n, s in enumerate(shapes):
        if not isinstance(s, dict) or "label" not in s or "points" not in s:
            raise ValueError(f"{path}: shape #{n} needs 'label' and 'points'")
        if s.get("shape_type", "polygon") not in ("polygon", "rectangle", "circle", "rotation"):
            continue
        if s.get("group_id") is None:
            gid, next_id = next_id, next_id + 1
        else:
            gid = int(s["group_id"])
        groups.setdefault(gid, []).append(s)
    out = []
    for gid, members in groups.items():
        label = str(members[0]["label"])
        if label not in names:
            names.append(label)
        score = members[0].get("score")
        score = float(score) if isinstance(score, (int, float)) else None
        rings = [_ring(s, path) for s in members]
        if len(members) == 1 and members[0].get("shape_type") == "rectangle":
            (x0, y0), (x1, y1) = rings[0].min(axis=0).tolist(), rings[0].max(axis=0).tolist()
            out.append(Annotation(im.key, label, gid, (x0, y0, x1 - x0, y1 - y0), None, score))
            continue
        mask = polygons_to_mask(rings, im.height, im.width)
        if mask.any():
            out.append(Annotation.from_mask(im.key, label, gid, mask, score))
    return out


def _ring(shape: dict, path: Path) -> np.ndarray:
    """(N, 2) float polygon of a polygon / rectangle / circle shape."""
    try:
        p = np.asarray(shape["points"], dtype=np.float64).reshape(-1, 2)
    except (TypeError, ValueError):
        raise ValueError(
            f"{path}: shape {shape.get('label')!r} has points that are not [[x, y], ...]"
        ) from None
    kind = shape.get("shape_type", "polygon")
    if kind == "rectangle" and len(p) >= 2:
        (x0, y0), (x1, y1) = p.min(axis=0), p.max(axis=0)
        return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    if kind == "circle" and len(p) >= 2:
        r = float(np.hypot(*(p[1] - p[0])))
        t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        return p[0] + r * np.stack([np.cos(t), np.sin(t)], axis=1)
    return p
