"""``masklet studio``: the labeling web app (see docs/studio-api.md for its HTTP API).

    masklet studio clip.mp4 photos/ [--project DIR] [--host 127.0.0.1] [--port 8000]
                                    [--model NAME | --checkpoint PATH]
    masklet studio VIDEOS --import OUT       review a `masklet batch track` run (VIDEOS: its videos)

Paths are video files, frame folders, image folders, single images, folders of videos (each video
file and frame folder in it), or a project folder (one holding project.db). The project (default:
``<first path>.masklet`` beside the first path) keeps every prompt, object, label and mask; reopening it
restores the work; a start that fails (a port in use, a missing checkpoint) leaves no new project
behind. Image files of a folder that cannot be read are skipped with a warning (printed and shown in
the app). ``--import OUT`` adds a batch track run's masks as machine-made objects (once per project;
see masklet/studio/batch_import.py). Binding anything but loopback prints a token that every request
needs.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
import sys
from contextlib import contextmanager
from pathlib import Path

from .common import CLIError, add_model_args, load_model

PROJECT_FILE = "project.db"


def add_studio_parser(sub) -> None:
    st = sub.add_parser("studio", help="label images and videos in the browser (web app)")
    st.add_argument(
        "paths", nargs="*", type=Path, help="video files, frame/image folders or a project folder"
    )
    st.add_argument("--project", type=Path, help="project folder (default: <first path>.masklet)")
    st.add_argument(
        "--as",
        dest="kind",
        choices=("video", "images"),
        help="open folders as video frames or as an image set (default: guessed from the file names)",
    )
    st.add_argument("--fps", type=float, help="playback rate of frame folders (default: 10 in the app)")
    st.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine)")
    st.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    st.add_argument("--token", help="access token for non-loopback binds (default: a random one)")
    st.add_argument("--max-upload-mb", type=int, default=64, help="upload size limit (default 64 MiB)")
    st.add_argument(
        "--cache-mb", type=int, default=512, help="memory for cached frame features (default 512 MiB)"
    )
    st.add_argument(
        "--prefetch",
        type=int,
        default=3,
        help="frames after the one on screen to encode while the model is idle (default 3; 0: off)",
    )
    st.add_argument(
        "--import",
        dest="import_out",
        type=Path,
        metavar="OUT",
        help="load the masks of a `masklet batch track` run (its --out folder) as machine-made objects",
    )
    add_model_args(st)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _project_folder(args) -> Path:
    if args.project is not None:
        return args.project
    if len(args.paths) == 1 and (args.paths[0] / PROJECT_FILE).is_file():
        return args.paths[0]
    if not args.paths:
        raise CLIError("give a video file, a frame or image folder, or a project folder (or --project DIR)")
    first = args.paths[0].expanduser().resolve()
    return first.parent / f"{first.name}.masklet"


def cmd_studio(args) -> int:
    from ..studio.media import MediaError, inspect_paths

    if not 0 <= args.port <= 65535:
        raise CLIError(f"--port must be 0..65535, got {args.port}")
    if args.fps is not None and not 0 < args.fps <= 1000:
        raise CLIError(f"--fps must be a positive frame rate, got {args.fps}")
    if args.max_upload_mb < 1 or args.cache_mb < 0 or args.prefetch < 0:
        raise CLIError("--max-upload-mb must be >= 1, --cache-mb >= 0 and --prefetch >= 0")
    folder = _project_folder(args)
    specs = []
    for p in args.paths:
        if (p / PROJECT_FILE).is_file():
            if p.resolve() == folder.resolve():
                continue
            raise CLIError(
                f"{p} is a masklet project: open it alone (masklet studio {p}) or with --project {p}"
            )
        try:
            specs.extend(inspect_paths(p, args.kind))
        except MediaError as exc:
            raise CLIError(str(exc)) from None
    if not specs and not (folder / PROJECT_FILE).is_file():
        raise CLIError(f"the project {folder} has no media yet: give a video or an image folder to open")
    batch = _check_import(args, specs)
    warnings = [w for w in (spec.warning() for spec in specs) if w]
    for text in warnings:
        print(f"masklet studio: warning: {text}", file=sys.stderr)
    # everything that can fail without a project comes first, so a failed start leaves no folder behind
    sock = _listen(args)
    try:
        print(f"masklet studio: {len(specs)} path(s) for the project {folder}; loading the model ...")
        model, weights = load_model(args, allow_random_fallback=False)
        with _undone_on_failure(folder):
            project = _open_project(folder, specs, args.fps)
            try:
                ws, app = _make_app(args, project, model, weights, warnings)
                if batch is not None:
                    _import_batch(ws, args.import_out)
            except BaseException:
                project.close()
                raise
        try:
            return _serve(args, sock, app, ws)
        finally:
            ws.close()
            project.close()
    finally:
        sock.close()


def _check_import(args, specs):
    """The scanned batch output of ``--import`` (None without it), checked against the videos given
    before any model loads (a reopened project's videos are checked when importing)."""
    if args.import_out is None:
        return None
    from ..studio.batch_import import check_batch_output, scan_batch_output
    from ..studio.errors import StudioError

    try:
        found = scan_batch_output(args.import_out)
        videos = [(s.name, s.num_frames, s.width, s.height) for s in specs if s.kind == "video"]
        if videos:
            check_batch_output(found, videos, args.import_out)
    except StudioError as exc:
        raise CLIError(f"--import: {exc}") from None
    return found


def _import_batch(ws, out: Path) -> None:
    from ..studio.batch_import import import_batch
    from ..studio.errors import StudioError

    try:
        done = import_batch(ws, out, skip_imported=True)
    except StudioError as exc:
        raise CLIError(f"--import: {exc}") from None
    if done["already"]:
        print(f"masklet studio: {out} was imported before into {', '.join(done['already'])}: kept as is")
    if done["videos"]:
        print(
            f"masklet studio: imported {done['objects']} machine-made object(s) with {done['masks']} masks "
            f"from {out} into {', '.join(done['videos'])}"
        )
    if done["left_out"]:
        text = f"{out}: the project has no video named {', '.join(done['left_out'])}; those are left out"
        print(f"masklet studio: warning: {text}", file=sys.stderr)
        ws.warnings.append(text)


def _listen(args) -> socket.socket:
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    except OSError as exc:
        raise CLIError(f"cannot listen on {args.host}:{args.port}: {exc}; try another --host") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host, args.port))
        # listening before the URL is printed: a client connecting at once waits in the backlog
        # instead of being refused while the server starts
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise CLIError(f"cannot listen on {args.host}:{args.port}: {exc}; try another --port") from None
    return sock


@contextmanager
def _undone_on_failure(folder: Path):
    """Remove the project the block makes when the block fails: the whole folder when it did not exist,
    else only the project's own files (a folder given with --project may hold other things). A project
    that existed before is never touched."""
    existed = folder.exists()
    had_project = (folder / PROJECT_FILE).is_file()
    try:
        yield
    except BaseException:
        if not had_project:
            _discard(folder, existed)
        raise


def _discard(folder: Path, existed: bool) -> None:
    import shutil

    from ..studio.store_core import DB_NAME, MASKS_DIR

    if not existed:
        shutil.rmtree(folder, ignore_errors=True)
        return
    if not folder.is_dir():
        return
    for name in (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", f".{DB_NAME}.creating"):
        (folder / name).unlink(missing_ok=True)
    shutil.rmtree(folder / MASKS_DIR, ignore_errors=True)


def _open_project(folder: Path, specs, fps: float | None):
    """The project with the given media added (closed again when adding fails)."""
    from ..studio.store import Project, ProjectError

    try:
        project = Project.open_or_create(folder)
    except (ProjectError, OSError) as exc:
        raise CLIError(
            f"cannot open the project {folder}: {exc}; choose another folder with --project"
        ) from None
    try:
        for spec in specs:
            project.add_media(
                spec.kind, str(spec.source), spec.name, spec.num_frames, spec.width, spec.height,
                spec.fps if spec.fps or spec.kind != "video" else fps,
                list(spec.frames) if spec.frames else None,
            )  # fmt: skip
        if not project.media():
            raise CLIError(f"the project {folder} has no media yet: give a video or an image folder to open")
    except ProjectError as exc:
        project.close()
        raise CLIError(f"cannot add the media to the project {folder}: {exc}") from None
    except BaseException:
        project.close()
        raise
    return project


def _make_app(args, project, model, weights: str, warnings: list[str]):
    """(Workspace, FastAPI app) of the project."""
    from ..studio.engine import Workspace
    from ..studio.server import ServerOptions, create_app

    token = None
    if not _is_loopback(args.host):
        token = args.token or secrets.token_urlsafe(18)
    ws = Workspace(
        project, model, args.cache_mb * 2**20, random_weights=weights == "random", prefetch=args.prefetch
    )
    ws.warnings.extend(warnings)
    roots = [Path(m.source) for m in project.media()]
    if args.import_out is not None:
        roots.append(args.import_out.expanduser().resolve())
    app = create_app(ws, ServerOptions(token, roots, args.max_upload_mb * 2**20))
    app.state.token = token
    return ws, app


def _serve(args, sock, app, ws) -> int:
    import uvicorn

    token = app.state.token
    port = sock.getsockname()[1]
    shown = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    label = " [RANDOM WEIGHTS]" if ws.random_weights else ""
    print(f"project {ws.project.path} ({len(ws.project.media())} media); model {ws.model.cfg.name}{label}")
    print("press Ctrl+C to stop")
    print(f"masklet studio running at {url}", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])
    print("masklet studio stopped", file=sys.stderr)
    return 0
