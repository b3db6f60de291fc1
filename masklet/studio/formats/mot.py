"""MOTChallenge tracking boxes: one text file per video.

``<out_dir>/<video>.txt``, one line per object per frame, sorted by frame then track id::

    frame,id,x,y,w,h,conf,-1,-1,-1

with 1-based frame numbers (frame index + 1), the track id, the box in pixels (top-left corner and
size, pixel-corner coordinates), ``conf`` = the annotation's score (1 when it has none). Numbers are
written with up to 3 decimals and no trailing zeros. MOT has no classes, so ``<video>.labels.json``
maps each track id to its label: ``{"<track id>": "<label>"}``. A frame without lines holds no object
only if it is one of the frames the export covers: ``<video>.frames.txt`` lists them (1-based frame
numbers, one per line), as a set may hold only some frames of a video (the annotated ones). Plain images
(not video frames) are not part of a MOT export.
"""

from __future__ import annotations

from pathlib import Path

from ..annotations import AnnotationSet
from ._common import check_set, fmt, is_empty, safe_name, videos, write_json, write_text

__all__ = ["export_mot"]


def export_mot(aset: AnnotationSet, out_dir: str | Path) -> list[Path]:
    """Write ``<video>.txt``, ``<video>.labels.json`` and ``<video>.frames.txt`` for every video of
    ``aset``; returns the files."""
    by_key = check_set(aset)
    groups = videos(aset)
    if not groups:
        raise ValueError(
            "the MOT format holds video tracks, but the set has no video frames (images with a 'video'); "
            "export images as coco, yolo or labelme instead"
        )
    out = Path(out_dir)
    files = []
    for name, frames in groups.items():
        rows, labels, numbers = [], {}, []
        for position, im in enumerate(frames):
            frame = (im.frame_index if im.frame_index is not None else position) + 1
            numbers.append(frame)
            for a in by_key[im.key]:
                if is_empty(a):
                    continue
                conf = 1.0 if a.score is None else a.score
                rows.append((frame, int(a.track_id), [*a.bbox, conf]))
                labels.setdefault(int(a.track_id), a.label)
        rows.sort(key=lambda r: (r[0], r[1]))
        text = "".join(f"{f},{t},{','.join(fmt(v) for v in values)},-1,-1,-1\n" for f, t, values in rows)
        files.append(write_text(out / f"{safe_name(name)}.txt", text))
        label_map = {str(t): labels[t] for t in sorted(labels)}
        files.append(write_json(out / f"{safe_name(name)}.labels.json", label_map, indent=2))
        files.append(write_text(out / f"{safe_name(name)}.frames.txt", "".join(f"{n}\n" for n in numbers)))
    return files
