"""What the format modules share: validation, file stems, atomic writes, number formatting."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from ...io.polygons import mask_to_polygons
from ..annotations import Annotation, AnnotationSet, ImageEntry, ImageReader

_UNSAFE = re.compile(r'[\x00-\x1f\\:*?"<>|]')


def check_set(aset: AnnotationSet) -> dict[str, list[Annotation]]:
    """Validate a set for export; returns each image key's annotations (every key present, set order).

    Raises ValueError naming the offending image/annotation: duplicate image keys, annotations on an
    unknown image or with a label missing from ``aset.labels``, masks whose size is not the image's.
    """
    by_key: dict[str, list[Annotation]] = {}
    for im in aset.images:
        if im.key in by_key:
            raise ValueError(f"image key {im.key!r} appears twice in the set's images; keys must be unique")
        by_key[im.key] = []
    sizes = {im.key: [im.height, im.width] for im in aset.images}
    labels = set(aset.labels)
    for a in aset.annotations:
        if a.image not in by_key:
            raise ValueError(
                f"annotation of track {a.track_id} refers to image {a.image!r}, which is not in the set's "
                "images; add its ImageEntry or drop the annotation"
            )
        if a.label not in labels:
            raise ValueError(
                f"annotation of track {a.track_id} on image {a.image!r} has label {a.label!r}, which is not "
                f"in the set's labels {aset.labels}; add it to AnnotationSet.labels"
            )
        if a.rle is not None and [int(s) for s in a.rle.get("size", ())] != sizes[a.image]:
            raise ValueError(
                f"the mask of track {a.track_id} on image {a.image!r} is {a.rle.get('size')} (height, "
                f"width) but the image is {sizes[a.image]}; masks must be at the image's resolution"
            )
        by_key[a.image].append(a)
    return by_key


def is_empty(a: Annotation) -> bool:
    """No pixels and no box: such annotations are left out of every export."""
    return a.bbox[2] <= 0 or a.bbox[3] <= 0


def videos(aset: AnnotationSet) -> dict[str, list[ImageEntry]]:
    """Video name -> its frames sorted by frame index (videos in order of first appearance)."""
    out: dict[str, list[ImageEntry]] = {}
    for im in aset.images:
        if im.video is not None:
            out.setdefault(im.video, []).append(im)
    for frames in out.values():
        frames.sort(key=lambda im: -1 if im.frame_index is None else im.frame_index)
    return out


def safe_name(name: str) -> str:
    """One path component: separators and characters Windows rejects become ``_``."""
    cleaned = _UNSAFE.sub("_", str(name)).replace("/", "_").strip()
    return "_" if cleaned in ("", ".", "..") else cleaned


def image_stems(images: list[ImageEntry]) -> dict[str, str]:
    """Image key -> file stem (a relative POSIX path without suffix) for per-image files.

    - a video frame: ``<video>_<frame_index:06d>`` (e.g. ``clip_000012``)
    - a plain image: its ``file_name`` without the suffix, folders kept (``shots/a.jpg`` ->
      ``shots/a``), so label files sit where YOLO and LabelMe look for them next to the images

    Names are made file-system safe (``..`` and separators inside a name become ``_``). When two
    images would share a stem, the later one (in set order) gets ``-2``, ``-3``, ...: the mapping
    depends only on the image list, so exporting and importing with the same list agree.
    """
    stems: dict[str, str] = {}
    used: set[str] = set()
    for im in images:
        if im.video is not None and im.frame_index is not None:
            stem = f"{safe_name(im.video)}_{int(im.frame_index):06d}"
        else:
            parts = PurePosixPath(str(im.file_name).replace("\\", "/")).with_suffix("").parts
            stem = "/".join(safe_name(p) for p in parts if p != "/") or safe_name(im.key)
        candidate, n = stem, 1
        while candidate.lower() in used:  # case-insensitive file systems
            n += 1
            candidate = f"{stem}-{n}"
        used.add(candidate.lower())
        stems[im.key] = candidate
    return stems


def track_values(frames: list[ImageEntry], by_key: dict[str, list[Annotation]]) -> dict[int, int]:
    """Track id -> object value 1..N (by increasing track id) over one video's frames or one image."""
    ids = sorted({a.track_id for im in frames for a in by_key[im.key] if not is_empty(a)})
    return {tid: i + 1 for i, tid in enumerate(ids)}


def polygons_of(a: Annotation, tolerance: float) -> list[np.ndarray]:
    """The (N, 2) pixel-corner polygons of an annotation's mask; its box as a rectangle if box-only."""
    mask = a.mask()
    if mask is None:
        x, y, w, h = a.bbox
        return [np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], dtype=np.float64)]
    return mask_to_polygons(mask, tolerance=tolerance)


def fmt(value: float, digits: int = 3) -> str:
    """A number with at most ``digits`` decimals and no trailing zeros (``10.0`` -> ``"10"``)."""
    text = f"{float(value):.{digits}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def number(value: float) -> int | float:
    """int when integral (compact JSON), else the float."""
    f = float(value)
    return int(f) if f.is_integer() else f


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary sibling of ``path`` (same suffix) that replaces ``path`` only if the block succeeds.

    A crash or error part way leaves the old file (or none), never a truncated one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> Path:
    """Write UTF-8 text atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def write_json(path: Path, doc, indent: int | None = None) -> Path:
    """Write a JSON document atomically (UTF-8, non-ASCII kept); returns ``path``."""
    return write_text(path, json.dumps(doc, indent=indent, ensure_ascii=False))


def write_image(path: Path, reader: ImageReader, im: ImageEntry) -> Path:
    """Write an image's pixels (read by key) atomically: JPEG for .jpg/.jpeg, else by suffix (PNG)."""
    rgb = np.asarray(reader(im.key))
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(
            f"the image reader returned {rgb.dtype} {rgb.shape} for {im.key!r}; expected (H, W, 3) uint8"
        )
    if rgb.shape[:2] != (im.height, im.width):
        raise ValueError(
            f"image {im.key!r} is {rgb.shape[:2]} (height, width) but its entry says {(im.height, im.width)}"
        )
    with atomic_path(path) as tmp:
        if path.suffix.lower() in (".jpg", ".jpeg"):
            Image.fromarray(rgb).save(tmp, format="JPEG", quality=95)
        else:
            Image.fromarray(rgb).save(tmp, format="PNG")
    return path


def image_suffix(im: ImageEntry) -> str:
    """The image file's suffix (``.jpg`` when it has none)."""
    suffix = PurePosixPath(str(im.file_name)).suffix.lower()
    return suffix if suffix in (".jpg", ".jpeg", ".png") else ".jpg"


def read_json(path: Path, what: str):
    """Load a JSON file with errors that name the file and what was expected."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file {path} does not exist; pass the path of the .json file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a UTF-8 text file; expected a {what} JSON file") from None
