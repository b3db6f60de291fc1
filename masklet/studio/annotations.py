"""A neutral, in-memory form of a labeled dataset: what exporters read and importers produce.

The studio's project store converts to and from it; the format modules (COCO, YOLO, LabelMe, MOT,
PNG masks, overlay video) know only this. Masks are COCO RLE dicts (``masklet.io.masks``) so that a
long video's annotations stay small in memory; ``mask()`` decodes one when needed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..io.masks import decode_rle, encode_rle, mask_to_box_xywh


@dataclass(frozen=True)
class ImageEntry:
    """One image, or one frame of a video.

    - ``key``: unique within the set (e.g. ``"clip/00012"``); annotations refer to it
    - ``file_name``: path relative to the export's image root (``"clip/00012.jpg"``)
    - ``width``, ``height``: pixels
    - ``video``: name of the video it belongs to (None for a plain image); ``frame_index``: 0-based
    """

    key: str
    file_name: str
    width: int
    height: int
    video: str | None = None
    frame_index: int | None = None


@dataclass(frozen=True)
class Annotation:
    """One object on one image/frame.

    - ``rle``: COCO RLE (compressed counts string or uncompressed list) of the (height, width) mask,
      or None for a box-only annotation (YOLO detection, MOT)
    - ``bbox``: (x, y, w, h) float pixels
    - ``track_id``: the object's id across the frames of a video (unique per video); for images any id
    """

    image: str
    label: str
    track_id: int
    bbox: tuple[float, float, float, float]
    rle: dict | None = None
    score: float | None = None

    def mask(self) -> np.ndarray | None:
        """(H, W) bool, or None for a box-only annotation."""
        return None if self.rle is None else decode_rle(self.rle)

    @staticmethod
    def from_mask(image: str, label: str, track_id: int, mask: np.ndarray, score=None) -> Annotation:
        m = np.asarray(mask, dtype=bool)
        bbox = tuple(float(v) for v in mask_to_box_xywh(m))
        return Annotation(image, label, track_id, bbox, encode_rle(m), score)


@dataclass
class AnnotationSet:
    """Images (in order), label names (in order: class index i is ``labels[i]``), annotations."""

    images: list[ImageEntry] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    annotations: list[Annotation] = field(default_factory=list)
    colors: dict[str, str] = field(default_factory=dict)  # label -> "#rrggbb" (optional)

    def image(self, key: str) -> ImageEntry:
        for im in self.images:
            if im.key == key:
                return im
        raise KeyError(f"no image with key {key!r}")

    def on_image(self, key: str) -> list[Annotation]:
        return [a for a in self.annotations if a.image == key]


# Reads an image's RGB pixels ((H, W, 3) uint8) by ImageEntry key: exporters that write images or
# video (overlay mp4, copying images next to the labels) take one of these.
ImageReader = Callable[[str], np.ndarray]
