"""Studio jobs through the API: tracking a range of frames, cancels that stop within one frame (or one
batch of points), segment everything's progress in points and its options."""

from __future__ import annotations

import pytest

from masklet.studio import everything as everything_module

from .studio_support import point, prompt, track, wait_job


def _car(client, frame: int) -> int:
    oid = prompt(client, 1, frame, point(80 + 10 * frame, 120))["object_id"]
    assert client.post(f"/api/objects/{oid}/finish", json={"label": "car"}).status_code == 200
    return oid


def _frames_with_masks(ws, oid: int) -> set[int]:
    return {i.frame for i in ws.project.all_mask_infos(1) if i.object_id == oid}


def test_track_a_number_of_frames_or_to_a_frame(video):
    client, ws = video
    oid = _car(client, 4)
    job = track(client, 1, 4, frames=3)
    assert (job["start"], job["frames"], job["total"], job["done"], job["last_frame"]) == (4, 3, 4, 4, 7)
    assert _frames_with_masks(ws, oid) == {4, 5, 6, 7}
    # to a frame before the start: the direction follows from it
    r = client.post("/api/media/1/track", json={"frame": 4, "end_frame": 1, "object_ids": [oid]})
    assert r.status_code == 200, r.text
    assert (r.json()["direction"], r.json()["frames"], r.json()["total"]) == ("backward", 3, 4)
    job = wait_job(client, r.json()["id"])
    assert job["state"] == "done" and job["last_frame"] == 1
    assert _frames_with_masks(ws, oid) == {1, 2, 3, 4, 5, 6, 7}
    # both ways, 2 frames each: frames 2..6 (the start counted in each pass)
    job = track(client, 1, 4, "both", frames=2, object_ids=[oid])
    assert job["total"] == 6 and job["done"] == 6


@pytest.mark.parametrize(
    "body, message",
    [
        ({"frames": 0}, "frames must be at least 1"),
        ({"frames": "5"}, "'frames' must be an integer or null"),
        ({"frames": 2, "end_frame": 6}, "give either frames (how many to track) or end_frame"),
        ({"end_frame": 4}, "end_frame is the start frame 4"),
        ({"end_frame": 12}, "end_frame 12 is not a frame of this video (0..11)"),
        ({"end_frame": 8, "direction": "backward"}, "the direction is forward, not backward"),
    ],
)
def test_bad_tracking_ranges_say_what_to_do(video, body, message):
    client, ws = video
    _car(client, 4)
    r = client.post("/api/media/1/track", json={"frame": 4, **body})
    assert r.status_code == 400 and message in r.json()["error"], r.json()
    assert not ws.jobs


def test_cancel_takes_effect_within_one_frame(video, monkeypatch):
    """A cancel arriving while a frame is computed: that frame is not stored and no later frame starts."""
    client, ws = video
    oid = _car(client, 0)
    asked: list[int] = []
    original = ws.video.propagate_in_video

    def propagate(*args, **kwargs):
        for frame, ids, logits in original(*args, **kwargs):
            asked.append(frame)
            if frame == 3:  # the user cancels while frame 3 is being tracked
                ws.jobs[1].cancel()
            yield frame, ids, logits

    monkeypatch.setattr(ws.video, "propagate_in_video", propagate)
    r = client.post("/api/media/1/track", json={"frame": 0})
    job = wait_job(client, r.json()["id"])
    assert job["state"] == "cancelled" and not job["cancelling"]
    assert asked == [0, 1, 2, 3]
    assert (job["done"], job["last_frame"]) == (3, 2)
    assert _frames_with_masks(ws, oid) == {0, 1, 2}
    # the video is free again at once: a new prompt is accepted
    assert prompt(client, 1, 5, point(130, 120), object_id=oid)["object_id"] == oid


def test_segment_everything_counts_points_and_cancels_between_batches(images, monkeypatch):
    client, ws = images
    monkeypatch.setattr(everything_module, "POINTS_PER_BATCH", 4)  # 16 points in 4 batches
    options = {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}
    seen: list[int] = []
    original = everything_module.segment_everything

    def everything(ws, media_id, frame, progress=None, **kwargs):
        def report(done, total):
            progress(done, total)
            seen.append(ws.jobs[media_id].done)
            if done == 2:  # cancelled after the second batch of points
                ws.jobs[media_id].cancel()

        return original(ws, media_id, frame, progress=report, **kwargs)

    monkeypatch.setattr(everything_module, "segment_everything", everything)
    r = client.post("/api/media/1/frames/0/everything", json=options)
    job = wait_job(client, r.json()["id"])
    assert job["state"] == "cancelled" and (job["done"], job["total"], job["unit"]) == (8, 16, "points")
    assert seen == [4, 8] and job["object_ids"] == []
    assert ws.project.objects() == []  # nothing is kept from a cancelled run
    # the same run to the end counts every point, batch by batch
    seen.clear()
    monkeypatch.setattr(everything_module, "segment_everything", original)
    job = wait_job(client, client.post("/api/media/1/frames/0/everything", json=options).json()["id"])
    assert job["state"] == "done" and job["done"] == 16
    assert len(ws.project.objects()) == len(job["object_ids"]) > 0


@pytest.mark.parametrize(
    "value, message",
    [
        ({"pred_iou_thresh": 2}, "pred_iou_thresh must be a number in [0.0, 1.0]"),
        ({"points_per_side": 0}, "points_per_side must be an integer >= 1"),
        ({"crop_n_layers": 1}, "unknown segment-everything option(s) ['crop_n_layers']"),
        ([16], "segment-everything options must be an object"),
    ],
)
def test_everything_settings_are_checked_when_saved(images, value, message):
    client, ws = images
    r = client.patch("/api/settings", json={"everything": value})
    assert r.status_code == 400 and message in r.json()["error"], r.json()
    assert client.get("/api/project").json()["settings"]["everything"] == {}
