"""Prompts of ``batch track``: a JSON/JSONL manifest, or a DAVIS-style folder of annotation PNGs.

Manifest: one record per object and frame, as a JSON list (or ``{"prompts": [...]}``), or JSON
Lines (one record per line; blank lines and lines starting with ``#`` are skipped)::

    {"video": "bear", "frame": 0, "object": 1, "points": [[320, 240], [300, 200]], "labels": [1, 0]}
    {"video": "bear", "frame": 0, "object": 2, "box": [100, 80, 300, 260]}
    {"video": "cows", "frame": 12, "object": 1, "mask": "masks/cows_1.png"}

* ``video`` (required): the video's name in VIDEOS (file name without suffix, or the frame folder);
* ``object`` (required): the object id, 1..255 (the pixel value of its masks in the output PNGs);
* ``frame``: the frame the prompt is on, 0 = the first (default 0);
* ``points``: ``[[x, y], ...]`` in pixels of the frame, with ``labels`` (1 = object, 0 = background;
  default all 1); ``box``: ``[x0, y0, x1, y1]`` in pixels; points and a box may go together;
* ``mask``: a PNG of the frame's size, nonzero = the object; a path relative to the manifest's folder
  (or absolute); a mask goes alone.

Annotation folder: one sub-folder per video (named as the video) of mask PNGs named by frame
(``00000.png``: frame 0 of a video file, or the frame of that name in a frame folder), pixel value
= object id (palette or gray PNGs; 0 background, 255 void, as DAVIS). Each object becomes a mask
prompt on the first frame it appears in; the folders are read by the workers, not here.

Everything that can be checked without opening a video is checked here (before any work); a prompt
for a frame a video does not have fails that video only.
"""

from __future__ import annotations

import json
import numbers
from pathlib import Path

from .items import BatchInputError, few

__all__ = ["MAX_OBJECT_ID", "read_prompts"]

MAX_OBJECT_ID = 255  # the object id is the pixel value of the palette PNGs
_KEYS = {"video", "frame", "object", "points", "labels", "box", "mask"}


def read_prompts(source: str | Path, videos: dict[str, Path]) -> dict[str, dict]:
    """video name -> the prompt part of its item: ``{"prompts": [record, ...]}`` (manifest; mask paths
    made absolute) or ``{"annotations": folder}``; only videos with prompts appear."""
    source = Path(source)
    if not source.exists():
        raise BatchInputError(f"prompts {source} not found: give a JSON/JSONL manifest or a folder of masks")
    if source.is_dir():
        return _annotation_folders(source, videos)
    records = _load_records(source)
    out: dict[str, dict] = {}
    seen: dict[tuple, str] = {}
    unknown = []
    for where, raw in records:
        rec = _check_record(raw, where, source.parent)
        if rec["video"] not in videos:
            unknown.append(rec["video"])
            continue
        key = (rec["video"], rec["frame"], rec["object"])
        if key in seen:
            raise BatchInputError(
                f"{where}: object {rec['object']} on frame {rec['frame']} of video {rec['video']!r} is "
                f"prompted again (first at {seen[key]}); give its points, box or mask for a frame in one "
                "record"
            )
        seen[key] = where
        out.setdefault(rec["video"], {"prompts": []})["prompts"].append(rec)
    if unknown:
        raise BatchInputError(
            f"{source} prompts videos that are not in the videos folder: {few(sorted(set(unknown)))}"
        )
    return out


def _annotation_folders(folder: Path, videos: dict[str, Path]) -> dict[str, dict]:
    subs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subs:
        raise BatchInputError(
            f"{folder} has no sub-folders: a folder of prompts holds one folder of mask PNGs per video "
            "(named as the video), as DAVIS' Annotations/480p"
        )
    unknown = [p.name for p in subs if p.name not in videos]
    if unknown:
        raise BatchInputError(
            f"{folder} has masks for videos that are not in the videos folder: {few(unknown)}"
        )
    return {p.name: {"annotations": str(p.resolve())} for p in subs}


def _load_records(path: Path) -> list[tuple[str, object]]:
    """(where, record) pairs; ``where`` names the file and line or index for messages."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise BatchInputError(f"cannot read the prompts file {path}: {exc}") from None
    if path.suffix.lower() == ".jsonl":
        records = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                records.append((f"{path.name} line {n}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise BatchInputError(
                    f"{path.name} line {n} is not JSON: {exc.msg} (column {exc.colno})"
                ) from None
        return records
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BatchInputError(
            f"{path.name} is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}); a JSON Lines "
            "manifest must end in .jsonl"
        ) from None
    if isinstance(doc, dict) and isinstance(doc.get("prompts"), list):
        doc = doc["prompts"]
    if not isinstance(doc, list):
        raise BatchInputError(f'{path.name}: expected a list of prompt records (or {{"prompts": [...]}})')
    return [(f"{path.name} record {i}", rec) for i, rec in enumerate(doc)]


def _number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_record(raw, where: str, base: Path) -> dict:
    """The record with defaults filled in and types checked; BatchInputError naming ``where``."""
    if not isinstance(raw, dict):
        raise BatchInputError(f'{where}: expected an object like {{"video": ..., "object": 1, ...}}')
    extra = sorted(set(raw) - _KEYS)
    if extra:
        raise BatchInputError(f"{where}: unknown key(s) {extra}; known: {', '.join(sorted(_KEYS))}")
    if not isinstance(raw.get("video"), str) or not raw["video"]:
        raise BatchInputError(f"{where}: 'video' must be the name of a video (a string)")
    obj, frame = raw.get("object"), raw.get("frame", 0)
    if not _int(obj) or not 1 <= obj <= MAX_OBJECT_ID:
        raise BatchInputError(f"{where}: 'object' must be a whole number 1..{MAX_OBJECT_ID}, got {obj!r}")
    if not _int(frame) or frame < 0:
        raise BatchInputError(
            f"{where}: 'frame' must be a whole number >= 0 (0 = first frame), got {frame!r}"
        )
    rec = {"video": raw["video"], "frame": frame, "object": obj}
    if "mask" in raw:
        if any(k in raw for k in ("points", "labels", "box")):
            raise BatchInputError(f"{where}: a mask goes alone; give points or a box in another record")
        mask = raw["mask"]
        path = base / mask if isinstance(mask, str) else None
        if path is None or not path.is_file():
            raise BatchInputError(
                f"{where}: mask {mask!r} is not a file (paths are relative to the manifest)"
            )
        rec["mask"] = str(path.resolve())
        return rec
    if "points" not in raw and "box" not in raw:
        raise BatchInputError(f"{where}: give 'points' (with 'labels'), a 'box' or a 'mask'")
    if "points" in raw:
        rec["points"], rec["labels"] = _points(raw["points"], raw.get("labels"), where)
    elif "labels" in raw:
        raise BatchInputError(f"{where}: 'labels' without 'points'")
    if "box" in raw:
        box = raw["box"]
        if not (isinstance(box, list) and len(box) == 4 and all(_number(v) for v in box)):
            raise BatchInputError(f"{where}: 'box' must be [x0, y0, x1, y1] in pixels, got {box!r}")
        if box[2] < box[0] or box[3] < box[1]:
            raise BatchInputError(f"{where}: 'box' {box} has x1 < x0 or y1 < y0; give [x0, y0, x1, y1]")
        rec["box"] = [float(v) for v in box]
    return rec


def _points(points, labels, where: str) -> tuple[list, list]:
    ok = isinstance(points, list) and points
    ok = ok and all(isinstance(p, list) and len(p) == 2 and all(_number(v) for v in p) for p in points)
    if not ok:
        raise BatchInputError(f"{where}: 'points' must be [[x, y], ...] in pixels, got {points!r}")
    if labels is None:
        labels = [1] * len(points)
    if not (isinstance(labels, list) and len(labels) == len(points) and all(v in (0, 1) for v in labels)):
        raise BatchInputError(
            f"{where}: 'labels' must list 1 (object) or 0 (background) for each of the {len(points)} points"
        )
    return [[float(x), float(y)] for x, y in points], [int(v) for v in labels]
