"""YOLO (ultralytics) text labels: detection boxes or segmentation polygons.

Export layout under ``out_dir``::

    labels/<stem>.txt   one line per object; an image without objects gets an empty file
    classes.txt         one class name per line (line i = class index i)
    data.yaml           ``names`` list for ultralytics (train/val point at ``images``)
    images/<stem>.jpg   only when an image reader is given (video frames have no image files otherwise)

Stems follow :func:`image_stems`: ``<video>_<frame:06d>`` for video frames, the image's file name without
suffix (folders kept) for plain images. Lines, coordinates normalised by the image's width and height:

- ``task="detect"``: ``cls cx cy w h``
- ``task="segment"``: ``cls x1 y1 x2 y2 ...``, the outer ring of the mask (holes filled). A mask with
  several parts stays one line, so one object stays one training instance: the parts are joined by
  zero-width bridges (out and back along one segment from the first part to each other part's nearest
  vertex), which fill as the union of the parts. A box-only annotation is written as its rectangle.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ...io.polygons import polygons_to_mask
from ..annotations import Annotation, AnnotationSet, ImageEntry, ImageReader
from ._common import check_set, image_stems, image_suffix, is_empty, polygons_of, write_image, write_text

__all__ = ["export_yolo", "import_yolo"]


def export_yolo(
    aset: AnnotationSet,
    out_dir: str | Path,
    task: str = "segment",
    tolerance: float = 1.0,
    reader: ImageReader | None = None,
) -> list[Path]:
    """Write YOLO label files for every image of ``aset``; returns the files written.

    Args:
        task: ``"segment"`` (polygons simplified at ``tolerance`` pixels) or ``"detect"`` (boxes).
        reader: when given, each image is also written to ``images/<stem>.<jpg|png>``.
    """
    if task not in ("segment", "detect"):
        raise ValueError(f"task must be 'segment' or 'detect', got {task!r}")
    out = Path(out_dir)
    by_key = check_set(aset)
    stems = image_stems(aset.images)
    cls = {name: i for i, name in enumerate(aset.labels)}
    files = []
    for im in aset.images:
        lines = []
        for a in by_key[im.key]:
            if is_empty(a):
                continue
            if task == "detect":
                x, y, w, h = a.bbox
                values = [(x + w / 2) / im.width, (y + h / 2) / im.height, w / im.width, h / im.height]
            else:
                rings = polygons_of(a, tolerance)
                if not rings:
                    continue
                values = (bridge(rings) / [im.width, im.height]).ravel().tolist()
            lines.append(" ".join([str(cls[a.label])] + [f"{min(max(v, 0.0), 1.0):.6f}" for v in values]))
        files.append(write_text(out / "labels" / f"{stems[im.key]}.txt", "".join(f"{s}\n" for s in lines)))
        if reader is not None:
            files.append(write_image(out / "images" / f"{stems[im.key]}{image_suffix(im)}", reader, im))
    files.append(write_text(out / "classes.txt", "".join(f"{name}\n" for name in aset.labels)))
    names = ", ".join(json.dumps(name, ensure_ascii=False) for name in aset.labels)
    yaml = (
        "# YOLO dataset written by masklet; put the images in images/ with the label files' stems\n"
        f"path: .\ntrain: images\nval: images\nnc: {len(aset.labels)}\nnames: [{names}]\n"
    )
    files.append(write_text(out / "data.yaml", yaml))
    return files


def bridge(rings: list[np.ndarray]) -> np.ndarray:
    """One (N, 2) ring visiting every ring: each later ring hangs off the first by a zero-width bridge.

    The bridge leaves the first ring at its vertex nearest to the other ring, goes round that ring from
    its nearest vertex and comes back the same way, so the fill (non-zero or even-odd) is unchanged.
    """
    if len(rings) == 1:
        return rings[0]
    base = rings[0]
    detours: dict[int, list[np.ndarray]] = {}
    for ring in rings[1:]:
        i, k = _nearest_pair(base, ring)
        detour = np.concatenate([np.roll(ring, -k, axis=0), ring[k : k + 1], base[i : i + 1]])
        detours.setdefault(i, []).append(detour)
    parts = []
    for i in range(len(base)):
        parts.append(base[i : i + 1])
        parts.extend(detours.get(i, []))
    return np.concatenate(parts)


def _nearest_pair(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """Indices (i, k) of the closest vertices a[i], b[k], scanning ``a`` in chunks to bound memory."""
    best, pair = np.inf, (0, 0)
    step = max(1, 1_000_000 // len(b))
    for start in range(0, len(a), step):
        d2 = ((a[start : start + step, None, :] - b[None, :, :]) ** 2).sum(axis=2)
        flat = int(np.argmin(d2))
        if d2.flat[flat] < best:
            best = float(d2.flat[flat])
            pair = (start + flat // len(b), flat % len(b))
    return pair


def import_yolo(
    labels_dir: str | Path, images: list[ImageEntry], classes: list[str] | None = None
) -> AnnotationSet:
    """Read YOLO label files (detection or segmentation lines, mixed is fine) for the given images.

    Args:
        labels_dir: the ``labels`` folder, or the dataset folder holding it.
        images: the images the labels belong to; ``labels/<stem>.txt`` is matched to an image by the
            stems of :func:`image_stems` over this list (sizes come from the entries).
        classes: class names by index; default: ``classes.txt`` (in the folder or its parent), else
            the ``names`` of ``data.yaml``.

    Each line becomes one annotation with track id = its line number (1-based, blank lines skipped):
    segmentation lines a mask, detection lines a box-only annotation. Images without a label file get
    no annotations; label files that match no image are ignored unless none match at all (ValueError).
    """
    root = Path(labels_dir)
    if not root.is_dir():
        raise FileNotFoundError(
            f"YOLO labels folder {root} does not exist; pass the dataset or labels folder"
        )
    if (root / "labels").is_dir():
        root = root / "labels"
    names = list(classes) if classes is not None else _find_classes(root)
    stems = image_stems(images)
    found = {p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.txt")} - {"classes"}
    matched = found & set(stems.values())
    if found and not matched:
        raise ValueError(
            f"none of the {len(found)} label files in {root} (e.g. {sorted(found)[:3]}) matches an image; "
            f"expected names like {list(stems.values())[:3]} (see image_stems for the naming rule)"
        )
    annotations = []
    for im in images:
        path = root / f"{stems[im.key]}.txt"
        if stems[im.key] in matched:
            annotations += _read_labels(path, im, names)
    return AnnotationSet(images=list(images), labels=names, annotations=annotations)


def _read_labels(path: Path, im: ImageEntry, names: list[str]) -> list[Annotation]:
    out = []
    lines = [s for s in path.read_text(encoding="utf-8").splitlines() if s.strip()]
    for n, line in enumerate(lines, start=1):
        where = f"{path}, line {n}"
        try:
            cls, *values = line.split()
            index, values = int(cls), [float(v) for v in values]
        except ValueError:
            raise ValueError(f"{where}: expected a class index and numbers, got {line!r}") from None
        if not 0 <= index < len(names):
            raise ValueError(f"{where}: class {index} is out of range for the {len(names)} classes {names}")
        if len(values) == 4:
            cx, cy, w, h = values
            box = ((cx - w / 2) * im.width, (cy - h / 2) * im.height, w * im.width, h * im.height)
            out.append(Annotation(im.key, names[index], n, box))
        elif len(values) >= 6 and len(values) % 2 == 0:
            points = np.asarray(values).reshape(-1, 2) * [im.width, im.height]
            mask = polygons_to_mask([points], im.height, im.width)
            if mask.any():
                out.append(Annotation.from_mask(im.key, names[index], n, mask))
        else:
            raise ValueError(
                f"{where}: {len(values)} coordinates; expected 4 (cx cy w h) or an even count >= 6 (polygon)"
            )
    return out


def _find_classes(root: Path) -> list[str]:
    for folder in (root, root.parent):
        if (folder / "classes.txt").is_file():
            text = (folder / "classes.txt").read_text(encoding="utf-8")
            return [s.strip() for s in text.splitlines() if s.strip()]
    for folder in (root.parent, root):
        for name in ("data.yaml", "data.yml"):
            if (folder / name).is_file():
                names = _yaml_names((folder / name).read_text(encoding="utf-8"))
                if names is not None:
                    return names
    raise ValueError(
        f"no class names for {root}: add classes.txt (one name per line) or a data.yaml with 'names', "
        "or pass classes=[...]"
    )


def _yaml_names(text: str) -> list[str] | None:
    """``names`` of a data.yaml: a flow list ``[a, "b"]`` or a block of ``- a`` / ``0: a`` lines."""
    flow = re.search(r"^names:\s*\[(.*)\]\s*$", text, re.M)
    if flow:
        items = re.findall(r'"((?:[^"\\]|\\.)*)"|\'([^\']*)\'|([^,\s][^,]*)', flow.group(1))
        return [json.loads(f'"{d}"') if d else (s or p).strip() for d, s, p in items]
    block = re.search(r"^names:\s*\n((?:[ \t]+.*\n?)+)", text, re.M)
    if not block:
        return None
    entries = [re.sub(r"^\s*(-|\d+\s*:)\s*", "", line).strip() for line in block.group(1).splitlines()]
    return [e.strip("'\"") for e in entries if e]
