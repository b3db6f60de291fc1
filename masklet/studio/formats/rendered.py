"""Pixel exports: indexed palette PNG masks and overlay mp4 videos.

PNG masks (:func:`export_png_masks`), one ``P``-mode PNG per image/frame, pixel value = object value
(0 = background):

- video frames: ``<out_dir>/<video>/<frame_index:05d>.png`` (the DAVIS layout ``masklet track``
  writes too); plain images: ``<out_dir>/<stem>.png`` (stems from :func:`image_stems`)
- values 1..N number a video's track ids in increasing order, the same in all of its frames (each
  plain image has its own numbering); where masks overlap, the higher value wins
- ``<out_dir>/objects.json``: ``{"videos": {video: {"folder": str, "objects": {value: {"track_id",
  "label"}}}}, "images": {"<stem>.png": {"image": key, "objects": {...}}}}``
- palette colours are :func:`masklet.io.exporters.object_colors` of the values

Box-only annotations have no pixels and are left out of both exports.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image

from ...io.exporters import DEFAULT_FPS, MAX_PALETTE_ID, OverlayVideoWriter, object_colors
from ..annotations import Annotation, AnnotationSet, ImageEntry, ImageReader
from ._common import (
    atomic_path,
    check_set,
    image_stems,
    is_empty,
    safe_name,
    track_values,
    videos,
    write_json,
)

__all__ = ["export_overlay_video", "export_png_masks"]


def _palette() -> list[int]:
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[1:] = object_colors(list(range(1, MAX_PALETTE_ID + 1)))
    return palette.ravel().tolist()


def _values(frames: list[ImageEntry], by_key: dict[str, list[Annotation]], where: str) -> dict[int, int]:
    values = track_values(frames, by_key)
    if len(values) > MAX_PALETTE_ID:
        raise ValueError(
            f"{where} has {len(values)} objects but a palette PNG holds at most {MAX_PALETTE_ID}; "
            "export it as coco (RLE) instead"
        )
    return values


def _objects(values: dict[int, int], frames: list[ImageEntry], by_key) -> dict[str, dict]:
    labels = {a.track_id: a.label for im in frames for a in by_key[im.key]}
    return {str(v): {"track_id": t, "label": labels[t]} for t, v in values.items()}


def _frame_masks(im: ImageEntry, by_key, values: dict[int, int]) -> tuple[list[int], np.ndarray]:
    """(object values increasing, (N, H, W) bool masks) of one image's mask annotations."""
    found = {values[a.track_id]: a.mask() for a in by_key[im.key] if a.rle is not None and not is_empty(a)}
    ids = sorted(found)
    masks = np.stack([found[i] for i in ids]) if ids else np.zeros((0, im.height, im.width), dtype=bool)
    return ids, masks


def _write_png(path: Path, im: ImageEntry, ids: list[int], masks: np.ndarray, palette: list[int]) -> Path:
    label = np.zeros((im.height, im.width), dtype=np.uint8)
    for value, mask in zip(ids, masks):
        label[mask] = value
    image = Image.fromarray(label, mode="P")
    image.putpalette(palette)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return path


def export_png_masks(aset: AnnotationSet, out_dir: str | Path) -> list[Path]:
    """Write a palette PNG per image and frame of ``aset`` plus ``objects.json``; returns the files."""
    by_key = check_set(aset)
    out = Path(out_dir)
    palette = _palette()
    files, doc = [], {"videos": {}, "images": {}}
    for name, frames in videos(aset).items():
        folder = safe_name(name)
        values = _values(frames, by_key, f"video {name!r}")
        for position, im in enumerate(frames):
            index = im.frame_index if im.frame_index is not None else position
            ids, masks = _frame_masks(im, by_key, values)
            files.append(_write_png(out / folder / f"{index:05d}.png", im, ids, masks, palette))
        doc["videos"][name] = {"folder": folder, "objects": _objects(values, frames, by_key)}
    stems = image_stems(aset.images)
    for im in aset.images:
        if im.video is not None:
            continue
        values = _values([im], by_key, f"image {im.key!r}")
        ids, masks = _frame_masks(im, by_key, values)
        files.append(_write_png(out / f"{stems[im.key]}.png", im, ids, masks, palette))
        doc["images"][f"{stems[im.key]}.png"] = {"image": im.key, "objects": _objects(values, [im], by_key)}
    files.append(write_json(out / "objects.json", doc, indent=2))
    return files


def export_overlay_video(
    aset: AnnotationSet,
    out_dir: str | Path,
    reader: ImageReader,
    fps: float | Mapping[str, float] | None = None,
    alpha: float = 0.5,
) -> list[Path]:
    """Write ``<out_dir>/<video>.mp4`` for every video of ``aset``: its frames with the masks drawn.

    Args:
        reader: image key -> (H, W, 3) uint8 RGB frame.
        fps: frame rate for all videos, or video name -> frame rate; missing/None:
            :data:`masklet.io.exporters.DEFAULT_FPS`.
        alpha: opacity of the mask fill in [0, 1].

    Every frame of a video in the set is encoded, in frame order (frames without masks appear as
    they are); colours follow the PNG export's object values. Returns the mp4 files.
    """
    if reader is None or not callable(reader):
        raise ValueError("the mp4 export draws masks over the frames: pass reader=<image key -> RGB array>")
    by_key = check_set(aset)
    groups = videos(aset)
    if not groups:
        raise ValueError(
            "the mp4 export renders videos, but the set has no video frames; export images as png instead"
        )
    files = []
    for name, frames in groups.items():
        rate = fps.get(name) if isinstance(fps, Mapping) else fps
        if rate is not None and not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"fps for video {name!r} must be a positive number, got {rate!r}")
        values = _values(frames, by_key, f"video {name!r}")
        indices = [im.frame_index if im.frame_index is not None else i for i, im in enumerate(frames)]
        if len(set(indices)) != len(indices):
            raise ValueError(f"video {name!r} lists a frame index twice; each frame must appear once")
        key_of = dict(zip(indices, (im.key for im in frames)))
        path = Path(out_dir) / f"{safe_name(name)}.mp4"
        with atomic_path(path) as tmp:
            writer = OverlayVideoWriter(
                tmp, rate or DEFAULT_FPS, lambda i, k=key_of: reader(k[i]), alpha=alpha
            )
            with writer:
                for index, im in zip(indices, frames):
                    writer.write(index, *_frame_masks(im, by_key, values))
            if not os.path.exists(tmp):
                raise ValueError(f"video {name!r} has no frames to encode")
        files.append(path)
    return files
