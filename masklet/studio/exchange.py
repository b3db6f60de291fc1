"""Export and import routes of the studio server.

Exports are written under ``<project>/exports/<format>-<timestamp>/`` and offered as a zip; they hold the
annotated frames unless every frame is asked for (see :mod:`.transfer`; the overlay video always shows
every frame). Imports read
a server path (inside the opened folders or the project, after resolving symlinks) or an uploaded body
(size-limited); format "batch" reads the output folder of ``masklet batch track`` (:mod:`.batch_import`).
"""

from __future__ import annotations

import io
import re
import tempfile
import time
import zipfile
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import Response

from .batch_import import import_batch
from .engine import Workspace
from .errors import Conflict, NotFound, StudioError, TooLarge
from .guards import is_inside, read_json
from .transfer import import_set, project_to_set

EXPORT_FORMATS = ("coco", "coco_polygon", "yolo_seg", "yolo_det", "labelme", "mot", "png", "mp4")
IMPORT_FORMATS = ("coco", "yolo", "labelme", "batch")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def export_project(
    ws: Workspace, fmt: str, media_ids: list[int] | None = None, all_frames: bool = False
) -> dict:
    """Write an export; returns {name, path, files, frames, download} (``frames``: images/frames in it)."""
    from . import formats

    if fmt not in EXPORT_FORMATS:
        raise StudioError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    if media_ids is not None and (
        not isinstance(media_ids, list)
        or not all(isinstance(i, int) and not isinstance(i, bool) for i in media_ids)
    ):
        raise StudioError("media_ids must be a list of media ids or null (all media)")
    if not isinstance(all_frames, bool):
        raise StudioError(f"all_frames must be true or false, got {all_frames!r}")
    aset, reader = project_to_set(ws, media_ids, all_frames=all_frames or fmt == "mp4")
    if fmt == "mot" and not any(im.video for im in aset.images):
        raise StudioError("MOT export needs a video: the project holds only image sets")
    root = ws.project.path / "exports"
    root.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"{fmt}-{stamp}"
    n = 1
    while (root / name).exists():
        n += 1
        name = f"{fmt}-{stamp}-{n}"
    out = root / name
    tmp = root / f".{name}.partial"
    files = formats.export(aset, fmt, tmp, reader=reader, **_style(ws, fmt))
    tmp.rename(out)
    rel = sorted(str(Path(f).resolve().relative_to(tmp.resolve())) for f in files)
    return {
        "name": name,
        "path": str(out),
        "files": rel,
        "frames": len(aset.images),
        "download": f"/api/exports/{name}.zip",
    }


def _style(ws: Workspace, fmt: str) -> dict:
    tol = float(ws.project.get_setting("polygon_tolerance", 1.5))
    if fmt in ("coco_polygon", "yolo_seg"):
        return {"tolerance": tol}
    if fmt == "labelme":
        mode = ws.project.get_setting("shape_mode", "mask")
        return {"shape": "rectangle" if mode == "rectangle" else "polygon", "tolerance": tol}
    return {}


def _zip(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file() and not f.is_symlink():
                zf.write(f, f.relative_to(folder).as_posix())
    return buf.getvalue()


def import_file(ws: Workspace, fmt: str, path: Path, shown: str | None = None) -> dict:
    """Import annotations from ``path``; ``shown`` names it in errors (an upload has no user path)."""
    from . import formats

    if fmt not in IMPORT_FORMATS:
        raise StudioError(f"unknown import format {fmt!r}; choose one of {', '.join(IMPORT_FORMATS)}")
    if not path.exists():
        raise StudioError(f"{path} does not exist")
    if fmt == "batch":  # a batch track run's output folder: machine-made masks (see batch_import)
        return import_batch(ws, path)
    try:
        if fmt == "coco":
            aset = formats.import_coco(path)
        elif fmt == "yolo":
            images, _ = project_to_set(ws, all_frames=True)
            aset = formats.import_yolo(path, images.images, None)
        else:
            aset = formats.import_labelme(path)
    except (ValueError, KeyError, OSError) as exc:
        text = str(exc).replace(str(path), shown or str(path))
        raise StudioError(f"cannot import {shown or path.name} as {fmt.upper()}: {text}") from None
    return import_set(ws, aset)


def _import_path(ws: Workspace, opts, data: dict) -> Path:
    """The server-side path of an import request, refused unless it lies inside the opened folders or
    the project folder (relative paths are the project folder's)."""
    raw = data.get("path")
    if not isinstance(raw, str) or not raw:
        raise StudioError("path must be the server-side path of the annotation file or folder")
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = ws.project.path / path
    roots = [*opts.roots, ws.project.path]
    if not is_inside(path, roots):
        raise StudioError(
            "import paths must be inside the opened folders or the project folder; "
            + (
                "start masklet studio with --import OUT to open a batch run's folder elsewhere"
                if data.get("format") == "batch"
                else "upload the file instead (POST /api/import/upload)"
            )
        )
    return path


def register_exchange(app: FastAPI, ws: Workspace, opts) -> None:
    @app.post("/api/export")
    async def export(request: Request):
        data = await read_json(request)
        from starlette.concurrency import run_in_threadpool

        args = (ws, data.get("format"), data.get("media_ids"), data.get("all_frames", False))
        return await run_in_threadpool(export_project, *args)

    @app.get("/api/exports/{name}.zip")
    def download(name: str):
        root = ws.project.path / "exports"
        folder = root / name
        if (
            not _NAME.match(name)
            or name.startswith(".")
            or not is_inside(folder, [root])
            or not folder.is_dir()
        ):
            raise NotFound(f"no export named {name!r}")
        headers = {"Content-Disposition": f'attachment; filename="{name}.zip"'}
        return Response(_zip(folder), media_type="application/zip", headers=headers)

    @app.post("/api/import")
    async def import_path(request: Request):
        data = await read_json(request)
        path = _import_path(ws, opts, data)
        if ws.busy():
            raise Conflict("a job (tracking, segment everything) runs: wait for it or cancel it, then import")
        from starlette.concurrency import run_in_threadpool

        # a batch run can hold many masks: read them off the event loop, which keeps serving frames
        return await run_in_threadpool(import_file, ws, data.get("format"), path)

    @app.post("/api/import/upload")
    async def import_upload(request: Request, format: str = "coco"):
        if format != "coco":
            raise StudioError("uploads take a COCO JSON file (format=coco); import YOLO folders by path")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > opts.max_upload_bytes:
            raise TooLarge(f"the upload is larger than the limit of {opts.max_upload_bytes // 2**20} MiB")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > opts.max_upload_bytes:
                raise TooLarge(f"the upload is larger than the limit of {opts.max_upload_bytes // 2**20} MiB")
            chunks.append(chunk)
        if not size:
            raise StudioError("the upload is empty: send the COCO JSON file as the request body")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "upload.json"
            path.write_bytes(b"".join(chunks))
            return import_file(ws, "coco", path, shown="the uploaded file")
