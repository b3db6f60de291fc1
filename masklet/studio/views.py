"""What the browser draws: a frame's objects (FrameState JSON), the mask overlay PNG, the timeline."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from .engine import Workspace

PENDING_COLOR = "#ffd400"
SHAPE_MODES = ("mask", "polygon", "rectangle")
DEFAULT_SETTINGS = {"shape_mode": "mask", "polygon_tolerance": 1.5, "everything": {}}


def settings(ws: Workspace) -> dict:
    return {k: ws.project.get_setting(k, v) for k, v in DEFAULT_SETTINGS.items()}


def _prompt_json(p) -> dict:
    if p.kind == "point":
        return {"kind": "point", "x": p.x0, "y": p.y0, "positive": p.positive}
    return {"kind": "box", "x0": p.x0, "y0": p.y0, "x1": p.x1, "y1": p.y1}


def _rgb(color: str) -> tuple[int, int, int]:
    return tuple(int(color[i : i + 2], 16) for i in (1, 3, 5))


def object_styles(ws: Workspace, media_id: int) -> dict[int, dict]:
    """id -> {track_id, label, color, status, end_frame} of every object of a media."""
    labels = {lab.id: lab for lab in ws.project.labels()}
    out = {}
    for o in ws.project.objects(media_id):
        lab = labels.get(o.label_id)
        out[o.id] = {
            "id": o.id,
            "track_id": o.track_id,
            "label": lab.name if lab else None,
            "color": lab.color if lab else PENDING_COLOR,
            "status": o.status,
            "end_frame": o.end_frame,
        }
    return out


def frame_state(ws: Workspace, media_id: int, frame: int) -> dict:
    """The FrameState of docs/studio-api.md."""
    width, height = ws.frame_size(media_id, frame)
    project = ws.project
    styles = object_styles(ws, media_id)
    infos = {i.object_id: i for i in project.mask_infos(media_id, frame)}
    prompts = project.prompts_on(media_id, frame)
    pending = project.pending_object(media_id)
    ids = {oid for oid, i in infos.items() if i.area > 0} | set(prompts)
    if pending is not None:
        ids.add(pending.id)
    opts = settings(ws)
    objects = []
    for oid in sorted(ids, key=lambda i: styles[i]["track_id"]):
        info = infos.get(oid)
        polygons = []
        if opts["shape_mode"] == "polygon" and info is not None and info.area > 0:
            from ..io.polygons import mask_to_polygons

            mask = project.mask(oid, frame)
            polygons = [
                [round(float(v), 2) for v in poly.reshape(-1)]
                for poly in mask_to_polygons(mask, tolerance=float(opts["polygon_tolerance"]))
            ]
        can_undo, can_redo = ws.history(oid, frame)
        objects.append(
            {
                **{k: styles[oid][k] for k in ("id", "track_id", "label", "color", "status")},
                "area": info.area if info else 0,
                "bbox": list(info.bbox) if info and info.area > 0 else None,
                "polygons": polygons,
                "prompts": [_prompt_json(p) for p in prompts.get(oid, [])],
                "source": info.source if info else None,
                "can_undo": can_undo,
                "can_redo": can_redo,
            }
        )
    return {
        "media_id": media_id,
        "frame": frame,
        "width": width,
        "height": height,
        "name": project.frame_info(media_id, frame).name,
        "revision": project.revision(),
        "objects": objects,
        "absent": _absent(ws, media_id, styles, ids),
    }


def _absent(ws: Workspace, media_id: int, styles: dict[int, dict], shown: set[int]) -> list[dict]:
    """The other objects of a video (none on this frame: no mask, an empty one, or no prompts), so the
    app lists every object and a lost one can be corrected. Image-set objects belong to one image."""
    if ws.media(media_id).kind != "video":
        return []
    keys = ("id", "track_id", "label", "color", "status", "end_frame")
    rest = sorted((st for oid, st in styles.items() if oid not in shown), key=lambda st: st["track_id"])
    return [{k: st[k] for k in keys} for st in rest]


def overlay_png(ws: Workspace, media_id: int, frame: int, selected: int | None = None) -> bytes:
    """RGBA PNG of the frame size: masks filled in their colors, outlines opaque, the selected one
    brighter. Later (higher track id) objects are drawn over earlier ones."""
    width, height = ws.frame_size(media_id, frame)
    styles = object_styles(ws, media_id)
    rgba = np.zeros((height, width, 4), np.uint8)
    masks = ws.project.masks_on(media_id, frame)
    for oid in sorted(masks, key=lambda i: styles[i]["track_id"]):
        m = masks[oid]
        if not m.any():
            continue
        color = _rgb(styles[oid]["color"])
        alpha = 150 if oid == selected else 105
        rgba[m] = (*color, alpha)
        edge = m.copy()
        edge[1:-1, 1:-1] = ~(m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]) & m[1:-1, 1:-1]
        rgba[edge] = (*color, 255) if oid != selected else (255, 255, 255, 255)
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _runs(frames: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for t in frames:
        if runs and t == runs[-1][1] + 1:
            runs[-1][1] = t
        else:
            runs.append([t, t])
    return runs


def timeline(ws: Workspace, media_id: int) -> dict:
    m = ws.media(media_id)
    styles = object_styles(ws, media_id)
    cover = ws.project.coverage(media_id)
    machine: dict[int, list[int]] = {}  # frames whose mask a model made and no person confirmed
    for info in ws.project.all_mask_infos(media_id):
        if info.source == "machine" and info.area > 0:
            machine.setdefault(info.object_id, []).append(info.frame)
    objects = []
    for oid, st in sorted(styles.items(), key=lambda kv: kv[1]["track_id"]):
        objects.append(
            {
                **{k: st[k] for k in ("id", "track_id", "label", "color", "status")},
                "runs": _runs(cover.get(oid, [])),
                "machine": _runs(sorted(machine.get(oid, []))),
                "prompted": sorted(ws.project.prompts(oid)),
            }
        )
    return {
        "media_id": media_id,
        "num_frames": m.num_frames,
        "revision": ws.project.revision(),
        "objects": objects,
    }
