"""``masklet studio``: what it opens, its errors (before any model loads), tokens on non-loopback binds."""

from __future__ import annotations

import os

import httpx
import numpy as np
import pytest
from PIL import Image

from masklet.studio.media import MediaError, MediaReader, inspect_path
from tests.cli_support import refuse_model_loading, run, write_clip


def _img(path, w, h, value=100):
    Image.fromarray(np.full((h, w, 3), value, np.uint8)).save(path)
    return path


def test_folder_kind_is_guessed_and_can_be_forced(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        _img(frames / f"{i:05d}.jpg", 64, 48)
    photos = tmp_path / "photos"
    photos.mkdir()
    _img(photos / "cat.png", 64, 48)
    _img(photos / "dog.jpg", 32, 80)
    (photos / "notes.txt").write_text("not an image")
    v = inspect_path(frames)
    assert (v.kind, v.num_frames, v.width, v.height, v.name) == ("video", 3, 64, 48, "frames")
    s = inspect_path(photos)
    assert s.kind == "images" and s.frames == (("cat.png", 64, 48), ("dog.jpg", 32, 80))
    assert inspect_path(frames, "images").kind == "images"
    clip = write_clip(tmp_path / "clip.mp4")
    c = inspect_path(clip)
    assert c.kind == "video" and c.num_frames == 6 and c.fps == pytest.approx(10)
    reader = MediaReader("images", photos, [f for f, _, _ in s.frames])
    assert reader.rgb(1).shape == (80, 32, 3) and reader.jpeg(0)[:2] == b"\xff\xd8"
    with pytest.raises(MediaError, match="out of range"):
        reader.rgb(2)


def test_symlinks_leaving_an_image_folder_are_not_listed(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    _img(photos / "a.png", 20, 10)
    secret = _img(tmp_path / "secret.png", 20, 10, value=7)
    os.symlink(secret, photos / "b.png")
    spec = inspect_path(photos)
    assert [f for f, _, _ in spec.frames] == ["a.png"]


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "give a video file"),
        (["missing.mp4"], "no such file or folder"),
        (["IMAGE", "--as", "video"], "is one image: a video is a video file or a folder of frames"),
        (["EMPTY"], "no JPEG/PNG images"),
        (["EMPTY", "--port", "70000"], "--port must be 0..65535"),
        (["EMPTY", "--as", "images", "--max-upload-mb", "0"], "--max-upload-mb"),
    ],
)
def test_errors_are_one_line_before_the_model_loads(tmp_path, capsys, monkeypatch, argv, message):
    refuse_model_loading(monkeypatch)
    (tmp_path / "empty").mkdir()
    image = _img(tmp_path / "one.png", 8, 8)
    argv = [str(tmp_path / "empty") if a == "EMPTY" else str(image) if a == "IMAGE" else a for a in argv]
    argv = [str(tmp_path / a) if a == "missing.mp4" else a for a in argv]
    rc, out, err = run(capsys, "studio", *argv)
    assert rc == 2 and message in err and err.count("\n") == 1, err


def test_non_loopback_bind_requires_the_printed_token(start_studio, clip_folder):
    sp = start_studio([clip_folder], host="0.0.0.0")
    assert sp.token and len(sp.token) >= 16
    url = sp.url.replace("0.0.0.0", "127.0.0.1")
    assert httpx.get(url + "api/project").status_code == 401
    assert httpx.get(url + "api/project", params={"token": "nope"}).status_code == 401
    r = httpx.get(url + "api/project", params={"token": sp.token})
    assert r.status_code == 200 and r.json()["media"][0]["num_frames"] == 12
    assert httpx.get(url + "api/project", headers={"X-Masklet-Token": sp.token}).status_code == 200


def test_loopback_bind_needs_no_token_and_reopens_the_project(start_studio, clip_folder, tmp_path):
    project = tmp_path / "proj"
    sp = start_studio([clip_folder], project=project)
    assert sp.token is None
    r = httpx.post(
        sp.url + "api/media/1/frames/0/prompts",
        json={"object_id": None, "prompt": {"kind": "point", "x": 80, "y": 120, "positive": True}},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    sp.stop()
    sp2 = start_studio([project], project=project)  # the project folder reopens everything
    state = httpx.get(sp2.url + "api/media/1/frames/0").json()
    assert [o["status"] for o in state["objects"]] == ["pending"] and state["objects"][0]["area"] > 0


def test_a_single_image_opens_as_a_set_of_one(tmp_path):
    image = _img(tmp_path / "one.png", 24, 16)
    spec = inspect_path(image)
    assert (spec.kind, spec.name, spec.num_frames, spec.frames) == (
        "images",
        "one",
        1,
        (("one.png", 24, 16),),
    )
    reader = MediaReader("images", spec.source, ["one.png"])
    assert reader.rgb(0).shape == (16, 24, 3)


def test_unreadable_images_are_skipped_with_a_warning(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    _img(photos / "a.png", 20, 10)
    (photos / "b.jpg").write_bytes(b"<html>not an image</html>")
    (photos / "c.png").write_bytes(b"")
    _img(photos / "d.jpg", 30, 12)
    spec = inspect_path(photos)
    assert spec.kind == "images" and [f for f, _, _ in spec.frames] == ["a.png", "d.jpg"]
    assert [name for name, _ in spec.skipped] == ["b.jpg", "c.png"]
    warning = spec.warning()
    assert warning.startswith("photos: skipped 2 file(s) that are not readable images: b.jpg (")
    assert "c.png (" in warning and "open the folder again" in warning
    assert inspect_path(tmp_path / "photos" / "a.png").warning() is None
    for name in ("a.png", "d.jpg"):
        (photos / name).write_bytes(b"broken")
    with pytest.raises(MediaError, match="none of the 4 image file"):
        inspect_path(photos)


def test_image_sizes_follow_the_exif_orientation(tmp_path):
    """A photo stored landscape and shown portrait (EXIF orientation 6) is labeled at its shown size."""
    photos = tmp_path / "photos"
    photos.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.zeros((10, 30, 3), np.uint8)).save(photos / "turned.jpg", exif=exif)
    spec = inspect_path(photos)
    assert spec.frames == (("turned.jpg", 10, 30),)
    assert MediaReader("images", photos, ["turned.jpg"]).rgb(0).shape == (30, 10, 3)


def test_a_failed_start_leaves_no_project_behind(tmp_path, capsys, monkeypatch):
    from masklet.cli import studio as studio_cli

    photos = tmp_path / "photos"
    photos.mkdir()
    _img(photos / "a.png", 20, 10)

    def offline(*args, **kwargs):
        raise studio_cli.CLIError("no checkpoint for sam2.1_hiera_tiny: pass --checkpoint PATH")

    monkeypatch.setattr(studio_cli, "load_model", offline)
    rc, _, err = run(capsys, "studio", photos, "--port", "0")
    assert rc == 2 and "pass --checkpoint PATH" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]  # no photos.masklet
    kept = tmp_path / "mine"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    monkeypatch.setattr(
        studio_cli, "_make_app", lambda *args: (_ for _ in ()).throw(studio_cli.CLIError("boom"))
    )
    monkeypatch.setattr(studio_cli, "load_model", lambda *args, **kwargs: (None, "random"))
    rc, _, err = run(capsys, "studio", photos, "--project", kept, "--port", "0")
    assert rc == 2 and "boom" in err
    assert sorted(p.name for p in kept.iterdir()) == ["notes.txt"]  # the folder stays, the project goes
    rc, _, err = run(capsys, "studio", "--project", tmp_path / "new", "--port", "0")
    assert rc == 2 and "has no media yet" in err and not (tmp_path / "new").exists()


def test_the_app_learns_random_weights_and_skipped_files(tmp_path, capsys, monkeypatch, studio_checkpoint):
    import uvicorn
    from fastapi.testclient import TestClient

    from masklet.cli import studio as studio_cli
    from tests.studio.studio_support import small_model

    photos = tmp_path / "photos"
    photos.mkdir()
    _img(photos / "a.png", 20, 10)
    (photos / "b.jpg").write_bytes(b"not a jpeg")
    seen = {}

    def serve(self, sockets=None):  # instead of serving: what the browser would be told
        with TestClient(self.config.app) as client:
            seen["project"] = client.get("/api/project").json()

    monkeypatch.setattr(uvicorn.Server, "run", serve)
    monkeypatch.setattr(studio_cli, "load_model", lambda *a, **k: (small_model(studio_checkpoint), "random"))
    rc, out, err = run(capsys, "studio", photos, "--port", "0", "--prefetch", "0")
    assert rc == 0, err
    assert "[RANDOM WEIGHTS]" in out and "warning: photos: skipped 1 file(s)" in err
    project = seen["project"]
    assert project["model"] == {"name": "sam2.1_hiera_tiny", "random_weights": True}
    assert len(project["warnings"]) == 1 and "b.jpg" in project["warnings"][0]
    assert project["media"][0]["num_frames"] == 1
