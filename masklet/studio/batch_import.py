"""A ``masklet batch track`` run's results as objects of the project: the data engine's review loop.

The run's output folder ``OUT`` holds, per video ``<name>``, ``OUT/<name>.json`` (SA-V style masklets:
one COCO RLE per frame and object) and/or ``OUT/<name>/NNNNN.png`` (palette masks, pixel = object
id). Each object of a video the project holds (matched by media name) becomes a finished object with
a mask on every frame the run wrote, of source ``"machine"``: a model made it and no person confirmed
it. A re-track may replace machine masks, never a person's (see :mod:`.tracking`), and re-tracking
from a corrected frame remembers the machine masks before it (``VideoPredictor.add_mask_memory``).

The JSON is preferred when both are there (it keeps overlapping objects apart; the PNGs keep the
higher id where objects overlap). Videos of the run that the project does not hold are listed in the
result and left out; a folder that is no such output, or whose videos all differ from the project's
(names, frame counts, sizes), is refused before anything is stored.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.masks import MaskFileError, decode_rle, read_id_png
from .errors import Conflict, StudioError
from .store import Media

__all__ = ["BatchVideo", "check_batch_output", "import_batch", "scan_batch_output"]

_FRAME_PNG = re.compile(r"^(\d+)\.png$", re.IGNORECASE)
IMPORTS_SETTING = "batch_imports"
DEFAULT_LABEL = "object"


@dataclass(frozen=True)
class BatchVideo:
    """One video of a batch output: its JSON (``doc`` read) and/or its folder of frame PNGs
    (``pngs``: frame -> path); ``num_frames``/``height``/``width`` as the JSON states them (None
    when there is only the folder)."""

    name: str
    doc: dict | None
    pngs: dict[int, Path]
    num_frames: int | None
    height: int | None
    width: int | None


def _not_batch(out: Path, why: str) -> StudioError:
    return StudioError(
        f"{out} is not the output of masklet batch track ({why}): expected OUT/<video>.json "
        "(SA-V masklets) and/or OUT/<video>/00000.png palette masks; give the --out folder of a "
        "batch track run"
    )


def _read_json(path: Path) -> dict | None:
    """The masklet document of ``path``, or None for a JSON that is no such document."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("masklet"), list):
        return None
    if not isinstance(doc.get("masklet_id"), list):
        return None
    return doc


def _frame_pngs(folder: Path) -> dict[int, Path]:
    found = {}
    for entry in os.scandir(folder):
        m = _FRAME_PNG.match(entry.name)
        if m and entry.is_file():
            found[int(m.group(1))] = Path(entry.path)
    return dict(sorted(found.items()))


def scan_batch_output(out: str | os.PathLike) -> dict[str, BatchVideo]:
    """name -> BatchVideo of every video in a batch track output folder; StudioError when it is none."""
    out = Path(out).expanduser()
    if not out.is_dir():
        raise StudioError(
            f"{out} is not a folder: give the --out folder of a masklet batch track run to import"
        )
    docs: dict[str, dict] = {}
    pngs: dict[str, dict[int, Path]] = {}
    for entry in sorted(out.iterdir()):
        if entry.name.startswith("."):
            continue  # the run's bookkeeping (.masklet) and temporaries
        if entry.is_file() and entry.suffix.lower() == ".json":
            doc = _read_json(entry)
            if doc is not None:
                docs[entry.stem] = doc
        elif entry.is_dir():
            frames = _frame_pngs(entry)
            if frames:
                pngs[entry.name] = frames
    if not docs and not pngs:
        raise _not_batch(out, "it has neither")
    found = {}
    for name in sorted(set(docs) | set(pngs)):
        doc = docs.get(name)
        size = [doc.get(k) for k in ("video_frame_count", "video_height", "video_width")] if doc else []
        if doc is not None and not all(isinstance(v, int) and v > 0 for v in size):
            raise _not_batch(out, f"{name}.json lacks video_frame_count, video_height, video_width")
        found[name] = BatchVideo(name, doc, pngs.get(name, {}), *(size or (None, None, None)))
    return found


def check_batch_output(
    found: dict[str, BatchVideo], videos: list[tuple[str, int, int, int]], out: Path
) -> tuple[list[str], list[str]]:
    """(names to import, names left out) of a scanned output against the project's videos, given as
    (name, frames, width, height); StudioError when none matches or a matching one differs."""
    by_name = {name: (n, w, h) for name, n, w, h in videos}
    matched = [name for name in found if name in by_name]
    if not matched:
        raise StudioError(
            f"the batch output {out} holds the video(s) {_few(list(found))} but the project's videos are "
            f"{_few(list(by_name)) if by_name else 'none'}: open the videos the run tracked (masklet "
            "studio VIDEOS --import OUT, with VIDEOS the run's videos folder)"
        )
    for name in matched:
        v, (n, w, h) = found[name], by_name[name]
        if v.num_frames is not None and (v.num_frames, v.width, v.height) != (n, w, h):
            raise StudioError(
                f"{name} in {out} has {v.num_frames} frames of {v.width}x{v.height} but the project's "
                f"{name} has {n} frames of {w}x{h}: the run tracked another video of that name"
            )
        late = [t for t in v.pngs if t >= n]
        if late:
            raise StudioError(
                f"{out / name} has a mask for frame {late[0]} but the project's {name} has {n} frames "
                f"(0..{n - 1}): the run tracked another video of that name"
            )
    return matched, [name for name in found if name not in by_name]


def _few(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _json_frames(v: BatchVideo, hw: tuple[int, int]) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
    """(frame, {batch object id: (H, W) bool}) of a masklet document, frame by frame."""
    ids = v.doc["masklet_id"]
    for t, row in enumerate(v.doc["masklet"]):
        if not isinstance(row, list) or len(row) != len(ids):
            raise StudioError(
                f"{v.name}.json: frame {t} holds {len(row) if isinstance(row, list) else 'no list of'} "
                f"masks for {len(ids)} masklet ids; the file is damaged, run the batch again"
            )
        masks = {}
        for obj, rle in zip(ids, row):
            try:
                mask = decode_rle(rle)
            except (ValueError, TypeError) as exc:
                raise StudioError(f"{v.name}.json: object {obj} on frame {t}: {exc}") from None
            if mask.shape != hw:
                raise StudioError(
                    f"{v.name}.json: object {obj} on frame {t} is {mask.shape[1]}x{mask.shape[0]}, the video "
                    f"{hw[1]}x{hw[0]}; the file is damaged, run the batch again"
                )
            masks[int(obj)] = mask
        yield t, masks


def _png_frames(v: BatchVideo, hw: tuple[int, int]) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
    """(frame, {object id: (H, W) bool}) of a folder of palette PNGs; every object appearing anywhere
    gets a mask (an empty one where it is absent) on every frame that has a PNG."""
    ids: set[int] = set()
    for path in v.pngs.values():  # first the ids, then the masks: one id map in memory at a time
        ids.update(int(i) for i in np.unique(_id_map(path, hw)) if i != 0)
    for t, path in v.pngs.items():
        id_map = _id_map(path, hw)
        yield t, {i: id_map == i for i in sorted(ids)}


def _id_map(path: Path, hw: tuple[int, int]) -> np.ndarray:
    try:
        id_map = read_id_png(path)
    except MaskFileError as exc:
        raise StudioError(str(exc)) from None
    if id_map.shape != hw:
        raise StudioError(
            f"{path} is {id_map.shape[1]}x{id_map.shape[0]} but the video is {hw[1]}x{hw[0]}: the run "
            "tracked another video of that name"
        )
    return id_map


def import_batch(ws, out: str | os.PathLike, label: str = DEFAULT_LABEL, skip_imported: bool = False) -> dict:
    """Import a batch track output into the workspace's project (see the module docstring).

    Returns {"videos": [names imported], "left_out": [names the project lacks], "already": [names
    imported from ``out`` before], "objects": n, "masks": n}. All in one transaction: a damaged file
    stores nothing. Importing the same output into the same video twice would duplicate every object:
    it is refused (Conflict), or with ``skip_imported`` those videos are skipped.
    """
    out = Path(out).expanduser().absolute()
    project = ws.project
    found = scan_batch_output(out)
    videos = {m.name: m for m in project.media() if m.kind == "video"}
    names, left_out = check_batch_output(
        found, [(m.name, m.num_frames, m.width, m.height) for m in videos.values()], out
    )
    done = project.get_setting(IMPORTS_SETTING, [])
    again = [n for n in names if {"path": str(out), "media_id": videos[n].id} in done]
    if skip_imported:
        names = [n for n in names if n not in again]
    elif again:
        raise Conflict(
            f"{out} was already imported into {_few(again)}; delete those objects first to import it again"
        )
    if ws.busy():
        raise Conflict("a job (tracking, segment everything) runs: wait for it or cancel it, then import")
    objects = masks = 0
    with ws.lock, project.transaction():
        for name in names:
            made, stored = _import_video(project, videos[name], found[name], label)
            objects, masks = objects + made, masks + stored
            done = [*done, {"path": str(out), "media_id": videos[name].id}]
        project.set_setting(IMPORTS_SETTING, done)
    return {"videos": names, "left_out": left_out, "already": again, "objects": objects, "masks": masks}


def _import_video(project, media: Media, v: BatchVideo, label: str) -> tuple[int, int]:
    """Store one video's objects and masks; (objects, masks) stored."""
    hw = (media.height, media.width)
    frames = _json_frames(v, hw) if v.doc is not None else _png_frames(v, hw)
    objects: dict[int, int] = {}  # batch object id -> project object id
    stored = 0
    for t, by_id in frames:
        for obj in by_id:
            if obj not in objects:
                record = project.new_object(media.id, t)
                project.finish_object(record.id, label)
                objects[obj] = record.id
        project.put_masks([(objects[obj], t, mask, "machine", None) for obj, mask in by_id.items()])
        stored += len(by_id)
    return len(objects), stored
