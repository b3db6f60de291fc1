"""Between the project and the neutral AnnotationSet that the export/import formats read and write.

Image keys: a video frame is ``"<media name>/<frame:06d>"`` (file name ``<media name>/<frame:06d>.jpg``,
``video`` = media name, ``frame_index`` = frame); an image of an image set is ``"<media name>/<file
name>"``. Only finished objects are exported, pending ones are work in progress.

An export holds the *annotated* frames: those where a finished object has a mask (prompted, tracked,
imported or from segment everything; an empty mask counts too: tracking reached the frame and found the
object gone). Frames never labeled or reached by tracking are left out instead of becoming "no objects
here"; ``all_frames=True`` writes every frame (unannotated ones without objects). Importing matches
images by key, by file name, and (for files written by other tools) by the frame number in a file stem
under a folder named like the video, or by the bare file name within an image set.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

import numpy as np

from .annotations import Annotation, AnnotationSet, ImageEntry
from .engine import Workspace
from .errors import StudioError


def _media_names(ws: Workspace, media_ids: list[int] | None) -> dict[int, str]:
    names: dict[int, str] = {}
    for m in ws.project.media():
        if media_ids is not None and m.id not in media_ids:
            continue
        name = m.name
        while name in names.values():
            name = f"{m.name}-{m.id}"
        names[m.id] = name
    if media_ids is not None:
        missing = set(media_ids) - set(names)
        if missing:
            raise StudioError(f"no media with id(s) {sorted(missing)}")
    return names


def project_to_set(ws: Workspace, media_ids: list[int] | None = None, all_frames: bool = False):
    """(AnnotationSet, reader: key -> RGB frame) of the project's finished objects, on the annotated
    frames (every frame with ``all_frames``)."""
    project = ws.project
    names = _media_names(ws, media_ids)
    labels = project.labels()
    label_name = {lab.id: lab.name for lab in labels}
    aset = AnnotationSet(labels=[lab.name for lab in labels], colors={lab.name: lab.color for lab in labels})
    where: dict[str, tuple[int, int]] = {}
    for mid, name in names.items():
        m = project.get_media(mid)
        objects = {o.id: o for o in project.objects(mid, status="done")}
        infos = [i for i in project.all_mask_infos(mid) if i.object_id in objects]
        annotated = {i.frame for i in infos}
        keys = {}
        for t in range(m.num_frames):
            if not all_frames and t not in annotated:
                continue
            if m.kind == "video":
                key = f"{name}/{t:06d}"
                entry = ImageEntry(key, key + ".jpg", m.width, m.height, name, t)
            else:
                info = project.frame_info(mid, t)
                key = f"{name}/{info.name}"
                entry = ImageEntry(key, key, info.width, info.height)
            aset.images.append(entry)
            keys[t] = key
            where[key] = (mid, t)
        for info in infos:
            o = objects[info.object_id]
            if info.area == 0:
                continue
            mask = project.mask(o.id, info.frame)
            label = label_name.get(o.label_id, "object")
            aset.annotations.append(
                Annotation.from_mask(keys[info.frame], label, o.track_id, mask, info.score)
            )
    aset.annotations.sort(key=lambda a: (a.image, a.track_id))

    def reader(key: str) -> np.ndarray:
        mid, t = where[key]
        return ws.reader(mid).rgb(t)

    return aset, reader


def _lookup(ws: Workspace) -> dict[str, tuple[int, int]]:
    table: dict[str, tuple[int, int]] = {}
    for m in ws.project.media():
        for t in range(m.num_frames):
            if m.kind == "video":
                names = [f"{m.name}/{t:06d}", f"{m.name}/{t:06d}.jpg"]
            else:
                fname = ws.project.frame_info(m.id, t).name
                names = [f"{m.name}/{fname}", fname, PurePosixPath(fname).stem]
            for n in names:
                table.setdefault(n, (m.id, t))
    return table


def _find(table, videos: dict[str, int], entry: ImageEntry) -> tuple[int, int] | None:
    for cand in (entry.key, entry.file_name, str(PurePosixPath(entry.file_name).with_suffix(""))):
        if cand in table:
            return table[cand]
    path = PurePosixPath(entry.file_name)
    video = entry.video or path.parent.name
    if video in videos:
        if entry.frame_index is not None:
            return videos[video], entry.frame_index
        m = re.search(r"(\d+)$", path.stem)
        if m:
            return videos[video], int(m.group(1))
    return table.get(path.name) or table.get(path.stem)


def import_set(ws: Workspace, aset: AnnotationSet) -> dict:
    """Add the set's annotations to the project as finished objects (one per image/video track) with
    masks of source "import". All in one transaction; unmatched images make it fail with a list."""
    project = ws.project
    table = _lookup(ws)
    videos = {m.name: m.id for m in project.media() if m.kind == "video"}
    place: dict[str, tuple[int, int]] = {}
    unmatched = []
    for entry in aset.images:
        hit = _find(table, videos, entry)
        if hit is None:
            unmatched.append(entry.file_name)
        else:
            place[entry.key] = hit
    used = {a.image for a in aset.annotations}
    missing = sorted(n for n in unmatched if any(e.file_name == n and e.key in used for e in aset.images))
    if missing:
        raise StudioError(
            f"{len(missing)} annotated image(s) match no frame of the project, e.g. {missing[:3]}; open "
            "the images/videos they belong to (file names must match) and import again"
        )
    objects: dict[tuple[int, str, int], int] = {}
    items = []
    with project.transaction():
        for a in aset.annotations:
            if a.image not in place:
                continue
            mid, t = place[a.image]
            m = project.get_media(mid)
            video_key = (mid, a.image.rsplit("/", 1)[0] if m.kind == "video" else a.image, a.track_id)
            if video_key not in objects:
                obj = project.new_object(mid, t)
                project.finish_object(obj.id, a.label)
                objects[video_key] = obj.id
            w, h = ws.frame_size(mid, t)
            mask = a.mask()
            if mask is None:  # box-only formats: the box becomes a rectangular mask
                mask = np.zeros((h, w), bool)
                x, y, bw, bh = (int(round(v)) for v in a.bbox)
                mask[max(y, 0) : y + bh, max(x, 0) : x + bw] = True
            if mask.shape != (h, w):
                raise StudioError(
                    f"annotation on {a.image} has a {mask.shape[1]}x{mask.shape[0]} mask but the frame is "
                    f"{w}x{h}: the labels belong to differently sized images"
                )
            items.append((objects[video_key], t, mask, "import", a.score))
        project.put_masks(items)
    return {"objects": len(objects), "masks": len(items)}
