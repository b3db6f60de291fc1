"""What a labeler meets through the API: lost objects still listed, exports of annotated frames only,
the random-weights state, frames encoded ahead of the user."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from .conftest import CLIP_FRAMES, CLIP_H, CLIP_W
from .studio_support import close_app, open_app, point, prompt, track


def _finish(client, oid: int, label: str) -> None:
    assert client.post(f"/api/objects/{oid}/finish", json={"label": label}).status_code == 200


def test_objects_not_on_a_frame_are_listed_as_absent(video):
    client, ws = video
    car = prompt(client, 1, 0, point(80, 120))["object_id"]
    _finish(client, car, "car")
    sign = prompt(client, 1, 0, {"kind": "box", "x0": 225, "y0": 35, "x1": 285, "y1": 95})["object_id"]
    _finish(client, sign, "sign")
    track(client, 1, 0, frames=4)
    # tracking lost the car on frame 3 (an empty mask), and never reached frame 8
    ws.project.put_masks([(car, 3, np.zeros((CLIP_H, CLIP_W), bool), "track", None)])
    client.post(f"/api/objects/{sign}/delete_from", json={"frame": 2})
    f1 = client.get("/api/media/1/frames/1").json()
    assert [o["id"] for o in f1["objects"]] == [car, sign] and f1["absent"] == []
    f3 = client.get("/api/media/1/frames/3").json()
    assert [o["id"] for o in f3["objects"]] == []
    absent = {o["id"]: o for o in f3["absent"]}
    assert absent[car] == {
        "id": car, "track_id": 1, "label": "car", "color": absent[car]["color"], "status": "done",
        "end_frame": None,
    }  # fmt: skip
    assert absent[sign]["end_frame"] == 2
    f8 = client.get("/api/media/1/frames/8").json()
    assert [o["id"] for o in f8["absent"]] == [car, sign]
    # a click for the selected (absent) object corrects it there instead of making a new object
    fixed = prompt(client, 1, 8, point(160, 120), object_id=car)
    assert fixed["object_id"] == car and [o["id"] for o in fixed["objects"]] == [car]
    assert [o["id"] for o in fixed["absent"]] == [sign]


def test_image_set_frames_list_no_absent_objects(tmp_path, image_folder, studio_checkpoint):
    client, ws = open_app(tmp_path / "project", [image_folder], studio_checkpoint)
    try:
        oid = prompt(client, 1, 0, point(80, 120))["object_id"]
        _finish(client, oid, "thing")
        assert client.get("/api/media/1/frames/1").json()["absent"] == []
    finally:
        close_app(client, ws)


def _export(client, ws, fmt: str, **body) -> tuple[dict, Path]:
    r = client.post("/api/export", json={"format": fmt, **body})
    assert r.status_code == 200, r.text
    out = r.json()
    return out, ws.project.path / "exports" / out["name"]


def test_exports_hold_annotated_frames_unless_all_are_asked_for(video):
    client, ws = video
    car = prompt(client, 1, 0, point(80, 120))["object_id"]
    _finish(client, car, "car")
    track(client, 1, 0, frames=3)  # frames 0..3 annotated, 4..11 never reached
    ws.project.put_masks([(car, 3, np.zeros((CLIP_H, CLIP_W), bool), "track", None)])  # lost on 3
    prompt(client, 1, 9, point(200, 60))  # a pending object: work in progress, not an annotation

    out, folder = _export(client, ws, "coco")
    coco = json.loads((folder / "annotations.json").read_text())
    assert out["frames"] == 4 and [im["frame_id"] for im in coco["images"]] == [0, 1, 2, 3]
    frames_of = {im["id"]: im["frame_id"] for im in coco["images"]}
    assert sorted(frames_of[a["image_id"]] for a in coco["annotations"]) == [0, 1, 2]  # 3: no objects
    _, folder = _export(client, ws, "yolo_seg")
    labels = sorted(p.name for p in (folder / "labels").iterdir())
    assert labels == [f"clip_{t:06d}.txt" for t in range(4)]
    assert (folder / "labels" / "clip_000003.txt").read_text() == ""
    _, folder = _export(client, ws, "mot")
    assert (folder / "clip.frames.txt").read_text().split() == ["1", "2", "3", "4"]
    assert {line.split(",")[0] for line in (folder / "clip.txt").read_text().splitlines()} == {"1", "2", "3"}
    _, folder = _export(client, ws, "png")
    assert sorted(p.name for p in (folder / "clip").iterdir()) == [f"{t:05d}.png" for t in range(4)]

    out, folder = _export(client, ws, "yolo_det", all_frames=True)
    assert out["frames"] == CLIP_FRAMES and len(list((folder / "labels").iterdir())) == CLIP_FRAMES
    _, folder = _export(client, ws, "mot", all_frames=True)
    assert len((folder / "clip.frames.txt").read_text().split()) == CLIP_FRAMES
    r = client.post("/api/export", json={"format": "coco", "all_frames": "yes"})
    assert r.status_code == 400 and "all_frames must be true or false" in r.json()["error"]


def test_image_set_exports_only_labeled_images(tmp_path, image_folder, studio_checkpoint):
    client, ws = open_app(tmp_path / "project", [image_folder], studio_checkpoint)
    try:
        oid = prompt(client, 1, 1, point(100, 150))["object_id"]
        _finish(client, oid, "thing")
        out, folder = _export(client, ws, "labelme")
        assert out["frames"] == 1 and [f for f in out["files"] if f.endswith(".json")] == ["photos/b.json"]
        out, folder = _export(client, ws, "labelme", all_frames=True)
        jsons = [f for f in out["files"] if f.endswith(".json")]
        assert out["frames"] == 3 and jsons == ["photos/a.json", "photos/b.json", "photos/c.json"]
        assert json.loads((folder / "photos" / "a.json").read_text())["shapes"] == []
    finally:
        close_app(client, ws)


@pytest.mark.parametrize("random_weights", [True, False])
def test_project_says_whether_the_weights_are_random(
    tmp_path, clip_folder, studio_checkpoint, random_weights
):
    client, ws = open_app(tmp_path / "p", [clip_folder], studio_checkpoint, random_weights=random_weights)
    try:
        model = client.get("/api/project").json()["model"]
        assert model == {"name": "sam2.1_hiera_tiny", "random_weights": random_weights}
    finally:
        close_app(client, ws)


@pytest.fixture
def ahead(tmp_path, clip_folder, studio_checkpoint):
    """A video app encoding 2 frames ahead, and a counter of image-encoder runs."""
    client, ws = open_app(tmp_path / "project", [clip_folder], studio_checkpoint, prefetch=2)
    encoded = []
    original = ws.video.core.encode
    ws.video.core.encode = lambda frame: encoded.append(frame) or original(frame)
    yield client, ws, encoded
    close_app(client, ws)


def _cached(ws) -> list[int]:
    return sorted(t for t in range(CLIP_FRAMES) if ws.features.get((1, t)) is not None)


def test_frames_after_the_one_on_screen_are_encoded_ahead(ahead):
    client, ws, encoded = ahead
    client.get("/api/media/1/frames/4")
    assert ws.prefetch.idle(120)
    assert _cached(ws) == [4, 5, 6] and len(encoded) == 3
    # the first click on the next frame runs no image encoder: it was encoded while frame 4 was shown
    prompt(client, 1, 5, point(120, 120))
    assert len(encoded) == 3
    client.get("/api/media/1/frames/10")  # near the end: only the frames that exist
    assert ws.prefetch.idle(120)
    assert _cached(ws) == [4, 5, 6, 10, 11]


def test_encoding_ahead_yields_to_requests_jobs_and_moves(ahead):
    client, ws, encoded = ahead
    with ws.lock:  # a request holds the model: nothing is encoded, and the user moves on meanwhile
        ws.prefetch.viewing(1, 0)
        ws.prefetch.viewing(1, 7)
    assert ws.prefetch.idle(120)
    assert _cached(ws) == [7, 8, 9]

    class Running:
        running = True

    ws.jobs[1] = Running()  # a job (tracking, segment everything) has the model: no encoding
    client.get("/api/media/1/frames/2")
    assert ws.prefetch.idle(120)
    assert _cached(ws) == [7, 8, 9]
    del ws.jobs[1]


def test_images_are_embedded_ahead(tmp_path, image_folder, studio_checkpoint, monkeypatch):
    from masklet.inference.image import ImagePredictor

    client, ws = open_app(tmp_path / "project", [image_folder], studio_checkpoint, prefetch=1)
    try:
        embedded = []
        original = ImagePredictor.set_image
        monkeypatch.setattr(
            ImagePredictor, "set_image", lambda self, im: embedded.append(im.shape) or original(self, im)
        )
        client.get("/api/media/1/frames/0")
        assert ws.prefetch.idle(120)
        assert embedded == [(240, 320, 3), (300, 200, 3)]
        prompt(client, 1, 1, point(100, 150))  # the next image's first click embeds nothing
        assert len(embedded) == 2
    finally:
        close_app(client, ws)


def test_frames_ahead_wait_while_the_user_clicks(ahead, monkeypatch):
    """After a prompt the frames ahead wait for a quiet moment (here: never), so a burst of clicks on the
    frame on screen never waits behind them."""
    from masklet.studio import prefetch

    client, ws, encoded = ahead
    monkeypatch.setattr(prefetch, "QUIET_S", 3600.0)
    prompt(client, 1, 4, point(120, 120))  # encodes frame 4
    client.get("/api/media/1/frames/4")
    assert not ws.prefetch.idle(1.0)  # frames 5 and 6 wait for the user to stop clicking
    prompt(client, 1, 4, point(125, 118))
    assert _cached(ws) == [4] and len(encoded) == 1
