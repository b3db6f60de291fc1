"""The studio's HTTP server (FastAPI): the JSON API of docs/studio-api.md and the single-page app.

Safety: only loopback binds run without a token; every other bind requires the token (header, query or
cookie). Files are served only from the app's static folder, the opened media (by id and frame index,
never by path) and the project's export folder; import paths must lie inside the opened folders or the
project after resolving symlinks. Every error is a JSON ``{"error": ...}`` with a 4xx status (5xx only
for bugs, without a traceback in the response).
"""

from __future__ import annotations

import hmac
import mimetypes
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import views
from .engine import Workspace
from .errors import Conflict, NotFound, StudioError
from .exchange import register_exchange
from .guards import is_inside, read_json
from .store import ProjectError
from .tracking import Tracker

STATIC = Path(__file__).resolve().parent / "static"
_TOKEN_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>masklet studio</title></head>
<body style="font-family:system-ui,sans-serif;background:#111318;color:#e6e8ee;padding:3em">
<h1>masklet studio</h1><p>This studio is shared on the network, so it needs its access token.</p>
<p>Open the full URL that <code>masklet studio</code> printed when it started
(it ends with <code>?token=...</code>).</p></body></html>"""


@dataclass
class ServerOptions:
    token: str | None = None  # required on every request when set
    roots: list[Path] = field(default_factory=list)  # opened folders/files: import paths must be inside
    max_upload_bytes: int = 64 * 2**20


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _int(data: dict, key: str, required: bool = True) -> int | None:
    v = data.get(key)
    if v is None and not required:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise StudioError(f"{key!r} must be an integer, got {v!r}")
    return v


def create_app(ws: Workspace, options: ServerOptions | None = None) -> FastAPI:
    opts = options or ServerOptions()
    tracker = Tracker(ws)
    app = FastAPI(title="masklet studio", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.workspace, app.state.tracker = ws, tracker

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if opts.token is not None:
            given = (
                request.headers.get("x-masklet-token")
                or request.query_params.get("token")
                or request.cookies.get("masklet_token")
                or ""
            )
            if not hmac.compare_digest(given.encode(), opts.token.encode()):
                if request.url.path == "/":
                    return HTMLResponse(_TOKEN_PAGE, status_code=401)
                return _error(
                    401, "this studio needs its token: open the URL printed at start (with ?token=)"
                )
        try:
            response = await call_next(request)
        except StudioError as exc:  # raised inside async handlers
            return _error(exc.status, str(exc))
        if opts.token is not None and request.query_params.get("token"):
            response.set_cookie("masklet_token", opts.token, httponly=True, samesite="strict")
        return response

    @app.exception_handler(StudioError)
    async def studio_error(request: Request, exc: StudioError):
        return _error(exc.status, str(exc))

    @app.exception_handler(ProjectError)
    async def project_error(request: Request, exc: ProjectError):
        text = str(exc)
        return _error(404 if "no " in text.lower()[:12] or "unknown" in text.lower() else 400, text)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        parts = [f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()]
        return _error(422, "invalid request: " + "; ".join(parts))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        message = "no such page or API route" if exc.status_code == 404 else str(exc.detail)
        return _error(exc.status_code, message)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        traceback.print_exception(exc, file=sys.stderr)
        return _error(500, f"internal error ({type(exc).__name__}); the server log has the details")

    # ------------------------------------------------------------------ app files
    def static_file(rel: str) -> Response:
        path = STATIC / rel
        if ".." in Path(rel).parts or not is_inside(path, [STATIC]) or not path.is_file():
            raise NotFound(f"no such file: {rel}")
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if path.suffix == ".js":
            kind = "text/javascript"
        return Response(path.read_bytes(), media_type=kind, headers={"Cache-Control": "no-cache"})

    @app.get("/")
    def index():
        return static_file("index.html")

    @app.get("/static/{rel:path}")
    def static(rel: str):
        return static_file(rel)

    # ------------------------------------------------------------------ project
    def project_json() -> dict:
        p = ws.project
        counts = p.label_counts()
        return {
            "name": p.path.name,
            "path": str(p.path),
            "media": [media_json(m) for m in p.media()],
            "labels": [label_json(lab, counts) for lab in p.labels()],
            "settings": views.settings(ws),
            "jobs": [j.to_dict(p.revision()) for j in tracker.jobs.values() if j.running],
            "revision": p.revision(),
        }

    def media_json(m) -> dict:
        return {k: getattr(m, k) for k in ("id", "kind", "name", "num_frames", "width", "height", "fps")}

    def label_json(lab, counts=None) -> dict:
        counts = ws.project.label_counts() if counts is None else counts
        return {"id": lab.id, "name": lab.name, "color": lab.color, "count": counts.get(lab.id, 0)}

    @app.get("/api/project")
    def get_project():
        return project_json()

    @app.patch("/api/settings")
    async def patch_settings(request: Request):
        data = await read_json(request)
        unknown = set(data) - set(views.DEFAULT_SETTINGS)
        if unknown:
            raise StudioError(
                f"unknown setting(s) {sorted(unknown)}; known: {sorted(views.DEFAULT_SETTINGS)}"
            )
        if "shape_mode" in data and data["shape_mode"] not in views.SHAPE_MODES:
            raise StudioError(f"shape_mode must be one of {', '.join(views.SHAPE_MODES)}")
        tol = data.get("polygon_tolerance", 1.0)
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 <= tol <= 50:
            raise StudioError("polygon_tolerance must be a number of pixels between 0 and 50")
        if "everything" in data and not isinstance(data["everything"], dict):
            raise StudioError("everything must be an object of segment-everything options")
        with ws.project.transaction():
            for k, v in data.items():
                ws.project.set_setting(k, v)
        return views.settings(ws)

    # ------------------------------------------------------------------ frames
    @app.get("/api/media/{mid}/frames/{t}/image")
    def frame_image(mid: int, t: int):
        ws.frame_size(mid, t)
        return Response(
            ws.reader(mid).jpeg(t), media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"}
        )

    @app.get("/api/media/{mid}/frames/{t}")
    def get_frame(mid: int, t: int):
        return views.frame_state(ws, mid, t)

    @app.get("/api/media/{mid}/frames/{t}/overlay.png")
    def overlay(mid: int, t: int, selected: int | None = None):
        return Response(views.overlay_png(ws, mid, t, selected), media_type="image/png")

    @app.get("/api/media/{mid}/timeline")
    def get_timeline(mid: int):
        return views.timeline(ws, mid)

    # ------------------------------------------------------------------ prompts and objects
    @app.post("/api/media/{mid}/frames/{t}/prompts")
    async def add_prompt(mid: int, t: int, request: Request):
        data = await read_json(request)
        oid = _int(data, "object_id", required=False)
        oid = await _threaded(ws.add_prompt, mid, t, oid, data.get("prompt"))
        return {**views.frame_state(ws, mid, t), "object_id": oid}

    async def _frame_of(request: Request) -> int:
        return _int(await read_json(request), "frame")

    async def _on_frame(oid: int, request: Request, fn, *args) -> dict:
        """Run ``fn(oid, frame, *args)`` for the body's frame; the FrameState of that frame after it."""
        t = await _frame_of(request)
        mid = ws.object(oid).media_id
        await _threaded(fn, oid, t, *args)
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
        await _threaded(ws.delete, oid)
        return {"deleted": oid}

    @app.post("/api/objects/{oid}/delete_from")
    async def delete_from(oid: int, request: Request):
        return await _on_frame(oid, request, ws.delete)

    @app.post("/api/media/{mid}/frames/{t}/everything")
    async def everything(mid: int, t: int, request: Request):
        data = await read_json(request) if await request.body() else {}
        options = {**(ws.project.get_setting("everything", {}) or {}), **data}
        allowed = {"points_per_side", "pred_iou_thresh", "stability_score_thresh", "min_mask_region_area"}
        if set(options) - allowed:
            raise StudioError(f"unknown segment-everything option(s) {sorted(set(options) - allowed)}")
        options.setdefault("points_per_side", 16)
        try:
            await _threaded(ws.everything, mid, t, **options)
        except (TypeError, ValueError) as exc:
            raise StudioError(str(exc)) from None
        return views.frame_state(ws, mid, t)

    # ------------------------------------------------------------------ tracking
    @app.post("/api/media/{mid}/track")
    async def track(mid: int, request: Request):
        data = await read_json(request)
        direction = data.get("direction", "forward")
        job = await _threaded(tracker.start, mid, _int(data, "frame"), direction, data.get("object_ids"))
        return job.to_dict(ws.project.revision())

    @app.get("/api/jobs")
    def list_jobs(media_id: int | None = None, running: bool = False):
        rev = ws.project.revision()
        return [
            j.to_dict(rev)
            for j in tracker.jobs.values()
            if (media_id is None or j.media_id == media_id) and (not running or j.running)
        ]

    @app.get("/api/jobs/{job_id}")
    def get_job(job_id: str):
        return tracker.job(job_id).to_dict(ws.project.revision())

    @app.post("/api/jobs/{job_id}/cancel")
    def cancel_job(job_id: str):
        job = tracker.job(job_id)
        job.cancel()
        job.wait(30)
        return job.to_dict(ws.project.revision())

    # ------------------------------------------------------------------ labels
    @app.get("/api/labels")
    def get_labels():
        counts = ws.project.label_counts()
        return [label_json(lab, counts) for lab in ws.project.labels()]

    @app.post("/api/labels")
    async def add_label(request: Request):
        data = await read_json(request)
        return label_json(ws.project.add_label(_name(data.get("name")), data.get("color")))

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
        return label_json(ws.project.label(lid))

    @app.post("/api/labels/{lid}/merge")
    async def merge_label(lid: int, request: Request):
        into = _int(await read_json(request), "into")
        if into == lid:
            raise StudioError("cannot merge a label into itself")
        return label_json(ws.project.merge_labels(lid, into))

    @app.delete("/api/labels/{lid}")
    def delete_label(lid: int):
        ws.project.label(lid)
        if ws.project.label_counts().get(lid, 0):
            raise Conflict("the label is used by objects: merge it into another label or relabel them first")
        ws.project.delete_label(lid)
        return {"deleted": lid}

    # ------------------------------------------------------------------ export / import
    register_exchange(app, ws, opts)
    return app


def _name(value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise StudioError("a label name must be a non-empty string")
    return value.strip()


async def _threaded(fn, *args, **kwargs):
    """Run model work in a worker thread so the event loop keeps serving frames and job status."""
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args, **kwargs)
