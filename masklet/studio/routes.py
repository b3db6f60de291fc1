"""The studio server's JSON routes (docs/studio-api.md), one ``register_*`` function per group.

Each group closes over the workspace (and the job board for jobs): project and frames, prompts,
objects, jobs (tracking, segment everything), labels. Model work runs in a worker thread
(:func:`threaded`) so that the event loop keeps serving frames and job status meanwhile.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response

from . import views
from .engine import Workspace
from .errors import Conflict, StudioError
from .everything import check_options, start_everything
from .guards import read_json
from .jobs import JobBoard
from .tracking import Tracker

__all__ = [
    "register_job_routes",
    "register_label_routes",
    "register_object_routes",
    "register_project_routes",
    "register_prompt_routes",
    "threaded",
]


def _check_settings(data: dict) -> None:
    """A settings change (PATCH /api/settings), checked before anything is stored."""
    unknown = set(data) - set(views.DEFAULT_SETTINGS)
    if unknown:
        raise StudioError(f"unknown setting(s) {sorted(unknown)}; known: {sorted(views.DEFAULT_SETTINGS)}")
    if "shape_mode" in data and data["shape_mode"] not in views.SHAPE_MODES:
        raise StudioError(f"shape_mode must be one of {', '.join(views.SHAPE_MODES)}")
    tol = data.get("polygon_tolerance", 1.0)
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 <= tol <= 50:
        raise StudioError("polygon_tolerance must be a number of pixels between 0 and 50")
    if "everything" in data:
        check_options(data["everything"])


def register_project_routes(app: FastAPI, ws: Workspace, board: JobBoard) -> None:
    """The project (media, labels, settings, model, running jobs), frames, overlays and the timeline."""

    def project_json() -> dict:
        p = ws.project
        counts = p.label_counts()
        return {
            "name": p.path.name,
            "path": str(p.path),
            "media": [media_json(m) for m in p.media()],
            "labels": [_label_json(ws, lab, counts) for lab in p.labels()],
            "settings": views.settings(ws),
            "model": {"name": ws.model.cfg.name, "random_weights": ws.random_weights},
            "warnings": list(ws.warnings),
            "jobs": [j.to_dict(p.revision()) for j in board.running()],
            "revision": p.revision(),
        }

    def media_json(m) -> dict:
        return {k: getattr(m, k) for k in ("id", "kind", "name", "num_frames", "width", "height", "fps")}

    @app.get("/api/project")
    def get_project():
        return project_json()

    @app.patch("/api/settings")
    async def patch_settings(request: Request):
        data = await read_json(request)
        _check_settings(data)
        with ws.project.transaction():
            for k, v in data.items():
                ws.project.set_setting(k, v)
        return views.settings(ws)

    @app.get("/api/media/{mid}/frames/{t}/image")
    def frame_image(mid: int, t: int):
        ws.frame_size(mid, t)
        return Response(
            ws.reader(mid).jpeg(t), media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"}
        )

    @app.get("/api/media/{mid}/frames/{t}")
    def get_frame(mid: int, t: int):
        state = views.frame_state(ws, mid, t)
        ws.prefetch.viewing(mid, t)  # the user looks at this frame: encode it and the next ones
        return state

    @app.get("/api/media/{mid}/frames/{t}/overlay.png")
    def overlay(mid: int, t: int, selected: int | None = None):
        return Response(views.overlay_png(ws, mid, t, selected), media_type="image/png")

    @app.get("/api/media/{mid}/timeline")
    def get_timeline(mid: int):
        return views.timeline(ws, mid)


def register_prompt_routes(app: FastAPI, ws: Workspace) -> None:
    """Prompts on a frame."""

    @app.post("/api/media/{mid}/frames/{t}/prompts")
    async def add_prompt(mid: int, t: int, request: Request):
        data = await read_json(request)
        oid = _int(data, "object_id", required=False)
        oid = await threaded(ws.add_prompt, mid, t, oid, data.get("prompt"))
        return {**views.frame_state(ws, mid, t), "object_id": oid}


def register_object_routes(app: FastAPI, ws: Workspace) -> None:
    """Undo / redo / clear on a frame, finish with a label, relabel, delete (entirely or from a frame)."""

    async def _frame_of(request: Request) -> int:
        return _int(await read_json(request), "frame")

    async def _on_frame(oid: int, request: Request, fn, *args) -> dict:
        """Run ``fn(oid, frame, *args)`` for the body's frame; the FrameState of that frame after it."""
        t = await _frame_of(request)
        mid = ws.object(oid).media_id
        await threaded(fn, oid, t, *args)
        return views.frame_state(ws, mid, t)

    @app.post("/api/objects/{oid}/undo")
    async def undo(oid: int, request: Request):
        return await _on_frame(oid, request, ws.undo)

    @app.post("/api/objects/{oid}/redo")
    async def redo(oid: int, request: Request):
        return await _on_frame(oid, request, ws.undo, True)

    @app.post("/api/objects/{oid}/clear")
    async def clear(oid: int, request: Request):
        return await _on_frame(oid, request, ws.clear)

    @app.post("/api/objects/{oid}/finish")
    async def finish(oid: int, request: Request):
        label = (await read_json(request)).get("label")
        obj = ws.finish(oid, label)
        lab = ws.project.label(obj.label_id)
        state = views.frame_state(ws, obj.media_id, obj.created_frame)
        return {**state, "object": {"id": obj.id, "track_id": obj.track_id, "label": lab.name}}

    @app.patch("/api/objects/{oid}")
    async def relabel(oid: int, request: Request):
        label = (await read_json(request)).get("label")
        if not isinstance(label, str) or not label.strip():
            raise StudioError("label must be a non-empty name")
        obj = ws.object(oid)
        obj = ws.project.set_object_label(obj.id, label.strip())
        return {"id": obj.id, "track_id": obj.track_id, "label": ws.project.label(obj.label_id).name}

    @app.delete("/api/objects/{oid}")
    async def delete_object(oid: int):
        await threaded(ws.delete, oid)
        return {"deleted": oid}

    @app.post("/api/objects/{oid}/delete_from")
    async def delete_from(oid: int, request: Request):
        return await _on_frame(oid, request, ws.delete)


def register_job_routes(app: FastAPI, ws: Workspace, board: JobBoard) -> None:
    """Start tracking and segment everything; list, read and cancel jobs."""
    tracker = app.state.tracker = Tracker(ws, board)

    @app.post("/api/media/{mid}/track")
    async def track(mid: int, request: Request):
        data = await read_json(request)
        end = data.get("end_frame")
        direction = data.get("direction", "forward" if end is None else None)
        args = (mid, _int(data, "frame"), direction, data.get("object_ids"), data.get("frames"), end)
        job = await threaded(tracker.start, *args)
        return job.to_dict(ws.project.revision())

    @app.post("/api/media/{mid}/frames/{t}/everything")
    async def everything(mid: int, t: int, request: Request):
        data = await read_json(request) if await request.body() else {}
        job = await threaded(start_everything, ws, board, mid, t, data)
        return job.to_dict(ws.project.revision())

    @app.get("/api/jobs")
    def list_jobs(media_id: int | None = None, running: bool = False):
        rev = ws.project.revision()
        return [
            j.to_dict(rev)
            for j in list(board.jobs.values())
            if (media_id is None or j.media_id == media_id) and (not running or j.running)
        ]

    @app.get("/api/jobs/{job_id}")
    def get_job(job_id: str):
        return board.job(job_id).to_dict(ws.project.revision())

    @app.post("/api/jobs/{job_id}/cancel")
    def cancel_job(job_id: str):
        """Asks the job to stop and answers at once: the job ends within one frame (or batch of points)
        and reads "cancelled" then; meanwhile its record says ``"cancelling": true``."""
        job = board.job(job_id)
        job.cancel()
        return job.to_dict(ws.project.revision())


def register_label_routes(app: FastAPI, ws: Workspace) -> None:
    """The label manager: list, add, rename / recolor, merge, delete."""

    @app.get("/api/labels")
    def get_labels():
        counts = ws.project.label_counts()
        return [_label_json(ws, lab, counts) for lab in ws.project.labels()]

    @app.post("/api/labels")
    async def add_label(request: Request):
        data = await read_json(request)
        return _label_json(ws, ws.project.add_label(_name(data.get("name")), data.get("color")))

    @app.patch("/api/labels/{lid}")
    async def patch_label(lid: int, request: Request):
        data = await read_json(request)
        ws.project.label(lid)
        with ws.project.transaction():
            if "name" in data:
                existing = ws.project.label_by_name(_name(data["name"]))
                if existing is not None and existing.id != lid:
                    raise Conflict(f"a label named {existing.name!r} exists: merge into it instead")
                ws.project.rename_label(lid, _name(data["name"]))
            if "color" in data:
                ws.project.recolor_label(lid, data["color"])
        return _label_json(ws, ws.project.label(lid))

    @app.post("/api/labels/{lid}/merge")
    async def merge_label(lid: int, request: Request):
        into = _int(await read_json(request), "into")
        if into == lid:
            raise StudioError("cannot merge a label into itself")
        return _label_json(ws, ws.project.merge_labels(lid, into))

    @app.delete("/api/labels/{lid}")
    def delete_label(lid: int):
        ws.project.label(lid)
        if ws.project.label_counts().get(lid, 0):
            raise Conflict("the label is used by objects: merge it into another label or relabel them first")
        ws.project.delete_label(lid)
        return {"deleted": lid}


def _label_json(ws: Workspace, lab, counts=None) -> dict:
    counts = ws.project.label_counts() if counts is None else counts
    return {"id": lab.id, "name": lab.name, "color": lab.color, "count": counts.get(lab.id, 0)}


def _int(data: dict, key: str, required: bool = True) -> int | None:
    v = data.get(key)
    if v is None and not required:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise StudioError(f"{key!r} must be an integer, got {v!r}")
    return v


def _name(value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise StudioError("a label name must be a non-empty string")
    return value.strip()


async def threaded(fn, *args, **kwargs):
    """Run model work in a worker thread so the event loop keeps serving frames and job status."""
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args, **kwargs)
