"""The studio API on a video: prompts, finish, track, correct, add objects mid-video, delete, export."""

from __future__ import annotations

import json

import numpy as np

from .conftest import CLIP_FRAMES, CLIP_H, CLIP_W
from .studio_support import masks_of, point, prompt, track, wait_job


def _finish(client, oid: int, label: str) -> dict:
    r = client.post(f"/api/objects/{oid}/finish", json={"label": label})
    assert r.status_code == 200, r.text
    return r.json()


def test_project_and_frames(video):
    client, _ = video
    p = client.get("/api/project").json()
    assert [(m["kind"], m["num_frames"], m["width"], m["height"]) for m in p["media"]] == [
        ("video", CLIP_FRAMES, CLIP_W, CLIP_H)
    ]
    assert p["settings"]["shape_mode"] == "mask" and p["labels"] == []
    r = client.get("/api/media/1/frames/3/image")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg" and r.content[:2] == b"\xff\xd8"
    state = client.get("/api/media/1/frames/3").json()
    assert (state["width"], state["height"], state["objects"]) == (CLIP_W, CLIP_H, [])
    png = client.get("/api/media/1/frames/3/overlay.png")
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"


def test_prompt_undo_redo_clear(video):
    client, ws = video
    s1 = prompt(client, 1, 0, point(80, 120))
    oid = s1["object_id"]
    (obj,) = s1["objects"]
    assert obj["status"] == "pending" and obj["label"] is None and obj["area"] > 0
    assert obj["prompts"] == [point(80.0, 120.0)] and obj["can_undo"] and not obj["can_redo"]
    # a null object id reuses the pending object; the box goes first, a second box replaces the first
    s2 = prompt(client, 1, 0, point(200, 60, positive=False))
    s3 = prompt(client, 1, 0, {"kind": "box", "x0": 100, "y0": 150, "x1": 40, "y1": 90})
    s4 = prompt(client, 1, 0, {"kind": "box", "x0": 30, "y0": 80, "x1": 130, "y1": 160})
    assert s2["object_id"] == s3["object_id"] == s4["object_id"] == oid
    kinds = [(p["kind"], p.get("x0")) for p in s4["objects"][0]["prompts"]]
    assert kinds == [("box", 30.0), ("point", None), ("point", None)]
    assert s3["objects"][0]["prompts"][0] == {"kind": "box", "x0": 40.0, "y0": 90.0, "x1": 100.0, "y1": 150.0}
    u = client.post(f"/api/objects/{oid}/undo", json={"frame": 0}).json()
    assert u["objects"][0]["prompts"] == s3["objects"][0]["prompts"] and u["objects"][0]["can_redo"]
    r = client.post(f"/api/objects/{oid}/redo", json={"frame": 0}).json()
    assert r["objects"][0]["prompts"] == s4["objects"][0]["prompts"]
    assert r["objects"][0]["area"] > 0  # re-run on the restored prompts
    assert client.post(f"/api/objects/{oid}/redo", json={"frame": 0}).status_code == 409
    # clearing the only frame of a pending object removes it
    c = client.post(f"/api/objects/{oid}/clear", json={"frame": 0}).json()
    assert c["objects"] == [] and ws.project.objects() == []
    assert client.post(f"/api/objects/{oid}/undo", json={"frame": 0}).status_code == 404


def test_track_correct_add_object_mid_video(video):
    client, ws = video
    oid = prompt(client, 1, 0, point(80, 120))["object_id"]
    prompt(client, 1, 0, point(85, 125))
    # tracking with an unfinished object is refused with what to do
    r = client.post("/api/media/1/track", json={"frame": 0})
    assert r.status_code == 409 and "finish" in r.json()["error"]
    fin = _finish(client, oid, "car")
    assert fin["object"] == {"id": oid, "track_id": 1, "label": "car"}
    job = track(client, 1, 0)
    assert job["done"] == CLIP_FRAMES and job["last_frame"] == CLIP_FRAMES - 1
    first = masks_of(ws, oid)
    assert len(first) >= CLIP_FRAMES - 2, "most frames should hold the tracked object"
    assert all(0 < m.sum() < m.size for m in first.values()), "compared masks must be neither empty nor full"
    sources = {i.frame: i.source for i in ws.project.all_mask_infos(1)}
    assert sources[0] == "prompt" and {sources[t] for t in range(1, CLIP_FRAMES) if t in sources} == {"track"}
    # correct on frame 6 and re-track from there: frames before 6 are untouched, frame 6 is a prompt
    prompt(client, 1, 6, point(140, 40, positive=False), object_id=oid)
    track(client, 1, 6)
    after = masks_of(ws, oid)
    for t in range(6):
        if t in first:
            assert np.array_equal(after[t], first[t]), f"frame {t} changed"
    assert ws.project.prompts(oid).keys() == {0, 6}
    # a new object on frame 8 after tracking: the first object's masks everywhere stay
    box = {"kind": "box", "x0": 225, "y0": 35, "x1": 285, "y1": 95}
    oid2 = prompt(client, 1, 8, box)["object_id"]
    assert oid2 != oid
    assert (
        client.post(f"/api/objects/{oid2}/finish", json={"label": "sign"}).json()["object"]["track_id"] == 2
    )
    track(client, 1, 8, "both")
    assert all(np.array_equal(masks_of(ws, oid)[t], m) for t, m in after.items())
    tl = client.get("/api/media/1/timeline").json()
    assert [(o["track_id"], o["label"]) for o in tl["objects"]] == [(1, "car"), (2, "sign")]
    assert tl["objects"][0]["prompted"] == [0, 6] and tl["objects"][1]["prompted"] == [8]
    assert tl["objects"][1]["runs"] and tl["objects"][1]["runs"][0][0] < 8 <= tl["objects"][1]["runs"][-1][1]
    # delete object 2 from frame 10 on, then object 1 entirely
    client.post(f"/api/objects/{oid2}/delete_from", json={"frame": 10})
    assert max(ws.project.coverage(1)[oid2]) < 10
    assert client.delete(f"/api/objects/{oid}").status_code == 200
    assert [o.id for o in ws.project.objects()] == [oid2]
    # tracking again respects the end of object 2; running jobs are listed for reloaded pages
    r = client.post("/api/media/1/track", json={"frame": 8})
    listed = client.get("/api/jobs", params={"media_id": 1}).json()
    assert r.json()["id"] in [j["id"] for j in listed]
    assert wait_job(client, r.json()["id"])["state"] == "done"
    assert client.get("/api/jobs", params={"running": True}).json() == []
    assert client.get("/api/project").json()["jobs"] == []
    assert max(ws.project.coverage(1)[oid2]) < 10
    # deleting from its first frame leaves nothing: the object goes entirely
    first = min(ws.project.coverage(1)[oid2] + list(ws.project.prompts(oid2)))
    client.post(f"/api/objects/{oid2}/delete_from", json={"frame": first})
    assert ws.project.objects() == []


def test_cancel_keeps_finished_frames_and_blocks_edits(video):
    client, ws = video
    oid = prompt(client, 1, 0, point(80, 120))["object_id"]
    _finish(client, oid, "car")
    r = client.post("/api/media/1/track", json={"frame": 0})
    job_id = r.json()["id"]
    blocked = client.post("/api/media/1/frames/3/prompts", json={"object_id": None, "prompt": point(5, 5)})
    running = client.get(f"/api/jobs/{job_id}").json()["state"] == "running"
    if running:  # edits of a tracking video are refused with what to do
        assert blocked.status_code == 409 and "tracking" in blocked.json()["error"]
        assert client.post("/api/media/1/track", json={"frame": 0}).status_code == 409
    # the answer comes at once; the job stops at its next frame, which may come before the answer
    job = client.post(f"/api/jobs/{job_id}/cancel").json()
    assert job["state"] in ("running", "done", "cancelled")
    assert job["cancelling"] == (job["state"] == "running")
    end = wait_job(client, job_id)
    assert end["state"] == ("done" if job["state"] == "done" else "cancelled") and not end["cancelling"]
    assert len(ws.project.coverage(1).get(oid, [])) >= end["done"]


def test_export_coco_content(video, tmp_path):
    client, ws = video
    oid = prompt(client, 1, 0, point(80, 120))["object_id"]
    _finish(client, oid, "car")
    track(client, 1, 0)
    pending = prompt(client, 1, 2, point(250, 60))["object_id"]  # pending objects are not exported
    r = client.post("/api/export", json={"format": "coco"})
    assert r.status_code == 200, r.text
    out = r.json()
    data = json.loads((ws.project.path / "exports" / out["name"] / out["files"][0]).read_text())
    assert len(data["images"]) == CLIP_FRAMES
    assert [c["name"] for c in data["categories"]] == ["car"]
    anns = data["annotations"]
    assert {a["track_id"] for a in anns} == {1} and len(anns) == len(ws.project.coverage(1)[oid])
    assert pending not in {a["track_id"] for a in anns}
    from pycocotools import mask as mask_utils

    a0 = min(anns, key=lambda a: a["image_id"])
    decoded = mask_utils.decode({**a0["segmentation"], "counts": a0["segmentation"]["counts"].encode()})
    frame = next(im for im in data["images"] if im["id"] == a0["image_id"])
    t = int(frame["file_name"].rsplit("/", 1)[1].split(".")[0])
    assert np.array_equal(decoded.astype(bool), ws.project.mask(oid, t))
    z = client.get(out["download"])
    assert z.status_code == 200 and z.content[:2] == b"PK"
