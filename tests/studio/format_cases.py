"""A small hand-made AnnotationSet for the format tests: two images and a three-frame video."""

from __future__ import annotations

import numpy as np

from masklet.studio.annotations import Annotation, AnnotationSet, ImageEntry

A_H, A_W = 30, 40  # photos/a.jpg
B_H, B_W = 24, 32  # photos/b.png
V_H, V_W = 28, 36  # clip frames


def rect(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    """(h, w) bool mask, rows y0..y1-1 and columns x0..x1-1 set."""
    m = np.zeros((h, w), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def disc(h: int, w: int, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (yy + 0.5 - cy) ** 2 + (xx + 0.5 - cx) ** 2 < r * r


def sample_set() -> AnnotationSet:
    """Labels cat, dog, bird (bird unused). Tracks: image a: 1 cat rectangle, 2 dog disc (score 0.9);
    image b: 7 dog in two parts; clip: track 1 cat square moving right on frames 0..2, track 5 dog L
    shape on frames 1..2 (no objects on no frame: frame 0 has the cat only)."""
    images = [
        ImageEntry("a", "photos/a.jpg", A_W, A_H),
        ImageEntry("b", "photos/b.png", B_W, B_H),
    ] + [ImageEntry(f"clip/{t:05d}", f"clip/{t:05d}.jpg", V_W, V_H, "clip", t) for t in range(3)]
    two_parts = rect(B_H, B_W, 2, 8, 2, 10) | rect(B_H, B_W, 14, 20, 20, 30)
    ann = [
        Annotation.from_mask("a", "cat", 1, rect(A_H, A_W, 5, 15, 3, 13)),
        Annotation.from_mask("a", "dog", 2, disc(A_H, A_W, 18, 28, 8), score=0.9),
        Annotation.from_mask("b", "dog", 7, two_parts),
    ]
    for t in range(3):
        ann.append(
            Annotation.from_mask(f"clip/{t:05d}", "cat", 1, rect(V_H, V_W, 4, 12, 2 + 4 * t, 10 + 4 * t))
        )
    for t in (1, 2):
        ell = rect(V_H, V_W, 15, 25, 20, 24) | rect(V_H, V_W, 21, 25, 20, 32)
        ann.append(Annotation.from_mask(f"clip/{t:05d}", "dog", 5, ell))
    return AnnotationSet(images, ["cat", "dog", "bird"], ann, colors={"cat": "#ff0000"})


def frame_rgb(key: str) -> np.ndarray:
    """An image reader for the sample set: a flat colour per image at the entry's size."""
    h, w = (A_H, A_W) if key == "a" else (B_H, B_W) if key == "b" else (V_H, V_W)
    return np.full((h, w, 3), 40 + 30 * (sum(map(ord, key)) % 5), dtype=np.uint8)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def by_track(aset: AnnotationSet) -> dict[tuple[str, int], Annotation]:
    """(image key, track id) -> annotation; asserts the pairs are unique."""
    out = {(a.image, a.track_id): a for a in aset.annotations}
    assert len(out) == len(aset.annotations)
    return out
