"""Fixtures of the studio tests: a seeded random checkpoint, a short clip, an image folder, a server."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.oracle import write_video_checkpoint

ROOT = Path(__file__).resolve().parents[2]
CLIP_FRAMES, CLIP_H, CLIP_W = 12, 240, 320
STUDIO_IMAGE_SIZE = 256  # small model input: the studio's flows, not the model's accuracy, are tested


def frame_image(t: int, h: int = CLIP_H, w: int = CLIP_W) -> np.ndarray:
    """A red disc moving right and a blue square over a smooth background: (h, w, 3) uint8."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 200 // w + 30, yy * 180 // h + 40, np.full_like(xx, 90)], -1).astype(np.uint8)
    cx, cy = 80 + 10 * t, h // 2
    img[(xx - cx) ** 2 + (yy - cy) ** 2 < 30**2] = (220, 30, 30)
    img[40:90, w - 90 : w - 40] = (30, 40, 210)
    return img


@pytest.fixture(scope="session")
def studio_checkpoint(ckpt_dir) -> Path:
    """sam2.1_hiera_tiny with seeded random weights (official format); objects mostly 'present'."""
    return write_video_checkpoint(
        "sam2.1_hiera_tiny", ckpt_dir / "studio-tiny-s10.pt", seed=3, score_shift=10.0
    )


@pytest.fixture(scope="session")
def clip_folder(tmp_path_factory) -> Path:
    """A folder of CLIP_FRAMES JPEG frames (CLIP_W x CLIP_H) named 00000.jpg ..."""
    d = tmp_path_factory.mktemp("studio") / "clip"
    d.mkdir()
    for t in range(CLIP_FRAMES):
        Image.fromarray(frame_image(t)).save(d / f"{t:05d}.jpg", quality=95)
    return d


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    """A folder of 3 images of different sizes (a.png 320x240, b.jpg 200x300, c.png 256x256)."""
    d = tmp_path_factory.mktemp("studio") / "photos"
    d.mkdir()
    Image.fromarray(frame_image(0)).save(d / "a.png")
    Image.fromarray(frame_image(3, 300, 200)).save(d / "b.jpg", quality=95)
    Image.fromarray(frame_image(6, 256, 256)).save(d / "c.png")
    return d


@pytest.fixture
def video(tmp_path, clip_folder, studio_checkpoint):
    """(TestClient, Workspace) of an in-process studio on the clip (studio_support.open_app)."""
    from .studio_support import close_app, open_app

    client, ws = open_app(tmp_path / "project", [clip_folder], studio_checkpoint)
    yield client, ws
    close_app(client, ws)


@pytest.fixture
def images(tmp_path, image_folder, studio_checkpoint):
    """(TestClient, Workspace) of an in-process studio on the image folder."""
    from .studio_support import close_app, open_app

    client, ws = open_app(tmp_path / "project", [image_folder], studio_checkpoint)
    yield client, ws
    close_app(client, ws)


@dataclass
class StudioProcess:
    url: str  # "http://127.0.0.1:PORT/" (no token)
    token: str | None
    proc: subprocess.Popen
    log: Path

    def kill(self) -> None:
        """SIGKILL: the crash the persistence guarantees are about."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def start_studio(studio_checkpoint, tmp_path):
    """Factory: start_studio(paths, project=None, host="127.0.0.1", extra=(), random_weights=False)
    -> StudioProcess.

    Runs ``python -m masklet.cli studio PATHS --project DIR --checkpoint CKPT --port 0`` (or
    ``--random-weights`` instead of the checkpoint) in a subprocess and waits for its "masklet studio
    running at URL" line. Every process is stopped at the end of the test.
    """
    procs: list[StudioProcess] = []

    def start(
        paths, project: Path | None = None, host="127.0.0.1", extra=(), timeout=120.0, random_weights=False
    ):
        project = project or tmp_path / "project"
        log = tmp_path / f"studio-{len(procs)}.log"
        cmd = [sys.executable, "-m", "masklet.cli", "studio", *map(str, paths), "--project", str(project)]
        weights = ["--random-weights"] if random_weights else ["--checkpoint", str(studio_checkpoint)]
        cmd += [*weights, "--image-size", str(STUDIO_IMAGE_SIZE)]
        cmd += ["--dtype", "fp32", "--device", "cpu", "--host", host, "--port", "0", *extra]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        fh = open(log, "w")
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        fh.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = log.read_text()
            m = re.search(r"masklet studio running at (http://\S+?/)(?:\?token=(\S+))?\s", text)
            if m:
                sp = StudioProcess(m.group(1), m.group(2), proc, log)
                procs.append(sp)
                return sp
            if proc.poll() is not None:
                raise AssertionError(f"studio exited with {proc.returncode}:\n{text}")
            time.sleep(0.2)
        proc.kill()
        raise AssertionError(f"studio did not start within {timeout} s:\n{log.read_text()}")

    yield start
    for sp in procs:
        sp.stop()


@pytest.fixture(scope="session")
def batch_run(tmp_path_factory, clip_folder, studio_checkpoint):
    """(videos folder holding the clip as "clip", the batch track output folder). The run uses the
    studio's seeded random checkpoint (objects mostly present) at 128 px."""
    root = tmp_path_factory.mktemp("batch_import")
    videos = root / "videos"
    shutil.copytree(clip_folder, videos / "clip")
    manifest = root / "prompts.json"
    records = [
        {"video": "clip", "frame": 0, "object": 1, "points": [[80, 120]]},
        {"video": "clip", "frame": 0, "object": 2, "box": [230, 40, 280, 90]},
    ]
    manifest.write_text(json.dumps(records))
    out = root / "out"
    from masklet.batch import ModelSpec, RunOptions, run_job
    from masklet.batch.track import TrackJob

    options = RunOptions(threads_per_worker=1, progress=False)
    model = ModelSpec("auto", str(studio_checkpoint), dtype="fp32", device="cpu", image_size=128)
    summary = run_job(TrackJob(str(videos), str(manifest)), out, model, options)
    assert summary.ok, summary.lines()
    return videos, out


@pytest.fixture(scope="module")
def browser():
    """Headless Debian chromium through playwright (skips without the package)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the e2e tests need the playwright package")
    from tests.studio.e2e_support import CHROMIUM

    if not CHROMIUM.exists():
        pytest.skip(f"the e2e tests need chromium at {CHROMIUM}")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def open_studio(browser):
    """open_studio(studio_process) -> StudioPage in a fresh 1440x900 context; no uncaught page errors."""
    pages: list[StudioPage] = []
    contexts = []

    from tests.studio.e2e_support import VIEWPORT, StudioPage

    def open_(sp):
        ctx = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
        ctx.set_default_timeout(30_000)
        contexts.append(ctx)
        sp_page = StudioPage(ctx.new_page(), sp.url)
        pages.append(sp_page)
        return sp_page

    yield open_
    for ctx in contexts:
        ctx.close()
    for p in pages:
        assert not p.errors, f"uncaught errors in the page: {p.errors}"
