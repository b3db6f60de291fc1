"""The studio API on an image set: prompts per image, segment everything, labels, import round trip."""

from __future__ import annotations

import numpy as np
import pytest

from .studio_support import close_app, open_app, point, prompt, wait_job


def test_image_set_prompts_and_sizes(images):
    client, ws = images
    (m,) = client.get("/api/project").json()["media"]
    assert m["kind"] == "images" and m["num_frames"] == 3
    sizes = [
        (s["name"], s["width"], s["height"])
        for s in (client.get(f"/api/media/1/frames/{t}").json() for t in range(3))
    ]
    assert sizes == [("a.png", 320, 240), ("b.jpg", 200, 300), ("c.png", 256, 256)]
    s = prompt(client, 1, 1, point(100, 150))
    oid = s["object_id"]
    assert ws.project.mask(oid, 1).shape == (300, 200)
    assert s["objects"][0]["area"] > 0
    # points outside an image are refused, state unchanged
    r = client.post("/api/media/1/frames/1/prompts", json={"object_id": oid, "prompt": point(250, 10)})
    assert r.status_code == 400 and "outside" in r.json()["error"]
    assert len(ws.project.prompts(oid)[1]) == 1
    client.post(f"/api/objects/{oid}/finish", json={"label": "thing"})
    r = client.post("/api/media/1/track", json={"frame": 0})
    assert r.status_code == 400 and "image set" in r.json()["error"]


def test_segment_everything_creates_objects(images):
    client, ws = images
    r = client.patch(
        "/api/settings", json={"everything": {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}}
    )
    assert r.json()["everything"] == {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}
    r = client.post("/api/media/1/frames/2/everything", json={"points_per_side": 4})
    assert r.status_code == 200, r.text
    started = r.json()
    assert (started["kind"], started["unit"], started["total"], started["frame"]) == (
        "everything",
        "points",
        16,
        2,
    )
    job = wait_job(client, started["id"])
    assert job["state"] == "done" and job["done"] == job["total"] == 16, job
    objs = client.get("/api/media/1/frames/2").json()["objects"]
    assert sorted(o["id"] for o in objs) == sorted(job["object_ids"]) and objs
    assert all(o["label"] == "object" and o["status"] == "done" for o in objs)
    assert all(o["source"] == "auto" and o["area"] > 0 for o in objs)
    bad = client.post("/api/media/1/frames/2/everything", json={"points_per_side": 0})
    assert bad.status_code == 400 and "points_per_side must be an integer >= 1" in bad.json()["error"]
    bad = client.post("/api/media/1/frames/2/everything", json={"bogus": 1})
    assert bad.status_code == 400 and "unknown segment-everything option(s) ['bogus']" in bad.json()["error"]


def test_labels_rename_recolor_merge_delete(images):
    client, ws = images
    a = prompt(client, 1, 0, point(80, 120))["object_id"]
    client.post(f"/api/objects/{a}/finish", json={"label": "car"})
    b = prompt(client, 1, 1, point(60, 60))["object_id"]
    client.post(f"/api/objects/{b}/finish", json={"label": "auto"})
    labels = {lab["name"]: lab for lab in client.get("/api/labels").json()}
    assert labels["car"]["count"] == 1 and labels["car"]["color"].startswith("#")
    r = client.patch(f"/api/labels/{labels['auto']['id']}", json={"name": "car"})
    assert r.status_code == 409 and "merge" in r.json()["error"]
    assert (
        client.patch(f"/api/labels/{labels['car']['id']}", json={"color": "#12ab34"}).json()["color"]
        == "#12ab34"
    )
    assert client.patch(f"/api/labels/{labels['car']['id']}", json={"color": "red"}).status_code == 400
    assert client.delete(f"/api/labels/{labels['car']['id']}").status_code == 409
    merged = client.post(
        f"/api/labels/{labels['auto']['id']}/merge", json={"into": labels["car"]["id"]}
    ).json()
    assert merged["name"] == "car" and merged["count"] == 2
    assert [lab["name"] for lab in client.get("/api/labels").json()] == ["car"]
    assert client.patch(f"/api/objects/{b}", json={"label": "truck"}).json()["label"] == "truck"
    new = client.post("/api/labels", json={"name": "unused"}).json()
    assert client.delete(f"/api/labels/{new['id']}").status_code == 200


def test_export_import_round_trip(images, tmp_path, image_folder, studio_checkpoint):
    client, ws = images
    for t, (x, y) in enumerate([(80, 120), (100, 150), (128, 128)]):
        oid = prompt(client, 1, t, point(x, y))["object_id"]
        client.post(f"/api/objects/{oid}/finish", json={"label": ["car", "tree", "car"][t]})
    want = {
        (ws.project.get_object(o.id).created_frame, o.track_id): ws.project.mask(o.id, o.created_frame)
        for o in ws.project.objects()
    }
    out = client.post("/api/export", json={"format": "coco"}).json()
    path = ws.project.path / "exports" / out["name"] / out["files"][0]
    client2, ws2 = open_app(tmp_path / "fresh", [image_folder], studio_checkpoint)
    try:
        r = client2.post("/api/import/upload?format=coco", content=path.read_bytes())
        assert r.status_code == 200, r.text
        assert r.json() == {"objects": 3, "masks": 3}
        got = {}
        for o in ws2.project.objects():
            (t,) = ws2.project.coverage(1)[o.id]
            got[t] = (ws2.project.label(o.label_id).name, ws2.project.mask(o.id, t))
        assert sorted(got) == [0, 1, 2]
        for (t, _), mask in want.items():
            assert np.array_equal(got[t][1], mask)
        assert [got[t][0] for t in range(3)] == ["car", "tree", "car"]
    finally:
        close_app(client2, ws2)


@pytest.mark.parametrize(
    "fmt, import_fmt, min_iou", [("yolo_seg", "yolo", 0.97), ("labelme", "labelme", 0.99)]
)
def test_yolo_and_labelme_import_back(
    images, tmp_path, image_folder, studio_checkpoint, fmt, import_fmt, min_iou
):
    import shutil

    client, ws = images
    for t, (x, y) in enumerate([(80, 120), (100, 150)]):
        oid = prompt(client, 1, t, point(x, y))["object_id"]
        client.post(f"/api/objects/{oid}/finish", json={"label": ["car", "tree"][t]})
    want = {o.created_frame: ws.project.mask(o.id, o.created_frame) for o in ws.project.objects()}
    out = client.post("/api/export", json={"format": fmt}).json()
    client2, ws2 = open_app(tmp_path / "fresh", [image_folder], studio_checkpoint)
    try:
        folder = ws2.project.path / "incoming"
        shutil.copytree(ws.project.path / "exports" / out["name"], folder)
        target = folder / "labels" if (folder / "labels").is_dir() and import_fmt == "yolo" else folder
        r = client2.post("/api/import", json={"format": import_fmt, "path": str(target)})
        assert r.status_code == 200, r.text
        assert r.json()["objects"] == 2
        for o in ws2.project.objects():
            (t,) = ws2.project.coverage(1)[o.id]
            # polygons keep outer rings only (holes filled): compare with what a polygon can hold
            from masklet.io.polygons import mask_to_polygons, polygons_to_mask

            got = ws2.project.mask(o.id, t)
            tol = ws.project.get_setting("polygon_tolerance", 1.5)
            ref = polygons_to_mask(mask_to_polygons(want[t], tolerance=tol), *want[t].shape)
            iou = (got & ref).sum() / max((got | ref).sum(), 1)
            assert iou >= min_iou, (fmt, t, iou)
            assert ws2.project.label(o.label_id).name == ["car", "tree"][t]
    finally:
        close_app(client2, ws2)
