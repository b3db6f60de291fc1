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

from .engine import Workspace
from .errors import NotFound, StudioError
from .exchange import register_exchange
from .guards import is_inside
from .jobs import JobBoard
from .media import MediaError
from .routes import (
    register_job_routes,
    register_label_routes,
    register_object_routes,
    register_project_routes,
    register_prompt_routes,
)
from .store import ProjectError

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


def create_app(ws: Workspace, options: ServerOptions | None = None) -> FastAPI:
    opts = options or ServerOptions()
    board = JobBoard(ws)
    app = FastAPI(title="masklet studio", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.workspace, app.state.jobs = ws, board

    _install_guards(app, opts)

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

    register_project_routes(app, ws, board)
    register_prompt_routes(app, ws)
    register_object_routes(app, ws)
    register_job_routes(app, ws, board)
    register_label_routes(app, ws)
    register_exchange(app, ws, opts)
    return app


def _install_guards(app: FastAPI, opts: ServerOptions) -> None:
    """The token check on every request and the JSON error responses."""

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

    @app.exception_handler(MediaError)
    async def media_error(request: Request, exc: MediaError):
        return _error(422, str(exc))

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
