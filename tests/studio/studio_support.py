"""In-process studio apps for API tests: a project, a small seeded random model, a TestClient."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from masklet.checkpoints import build_model
from masklet.studio.engine import Workspace
from masklet.studio.media import inspect_path
from masklet.studio.server import ServerOptions, create_app
from masklet.studio.store import Project

from .conftest import STUDIO_IMAGE_SIZE

_MODELS: dict[str, object] = {}


def small_model(checkpoint: Path):
    """The studio checkpoint at the tests' small input size (built once per test run)."""
    key = str(checkpoint)
    if key not in _MODELS:
        _MODELS[key] = build_model(
            "auto", checkpoint, device="cpu", dtype="fp32", image_size=STUDIO_IMAGE_SIZE
        )
    return _MODELS[key]


def open_app(
    project_dir: Path,
    paths,
    checkpoint: Path,
    prefetch: int = 0,
    random_weights: bool = False,
    more_roots=(),
    **options,
) -> tuple[TestClient, Workspace]:
    """A TestClient over a studio app on ``paths`` (videos/folders) in ``project_dir``. Encoding ahead
    is off unless ``prefetch`` asks for it (its background work would only slow the other tests)."""
    project = Project.open_or_create(project_dir)
    for p in paths:
        s = inspect_path(p)
        frames = list(s.frames) if s.frames else None
        project.add_media(s.kind, str(s.source), s.name, s.num_frames, s.width, s.height, s.fps, frames)
    ws = Workspace(project, small_model(checkpoint), prefetch=prefetch, random_weights=random_weights)
    roots = [Path(m.source) for m in project.media()] + [Path(r).resolve() for r in more_roots]
    app = create_app(ws, ServerOptions(roots=roots, **options))
    return TestClient(app), ws


def close_app(client: TestClient, ws: Workspace) -> None:
    client.close()
    for job in list(ws.jobs.values()):
        job.cancel()
        job.wait(30)
    ws.close()
    ws.project.close()


def point(x: float, y: float, positive: bool = True) -> dict:
    return {"kind": "point", "x": x, "y": y, "positive": positive}


def prompt(client: TestClient, mid: int, t: int, p: dict, object_id: int | None = None) -> dict:
    r = client.post(f"/api/media/{mid}/frames/{t}/prompts", json={"object_id": object_id, "prompt": p})
    assert r.status_code == 200, r.text
    return r.json()


def wait_job(client: TestClient, job_id: str, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] != "running":
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still running after {timeout} s")


def track(client: TestClient, mid: int, t: int, direction: str = "forward", **extra) -> dict:
    r = client.post(f"/api/media/{mid}/track", json={"frame": t, "direction": direction, **extra})
    assert r.status_code == 200, r.text
    job = wait_job(client, r.json()["id"])
    assert job["state"] == "done", job
    return job


def masks_of(ws: Workspace, object_id: int) -> dict[int, np.ndarray]:
    obj = ws.project.get_object(object_id)
    return {t: ws.project.mask(object_id, t) for t in ws.project.coverage(obj.media_id).get(object_id, [])}
