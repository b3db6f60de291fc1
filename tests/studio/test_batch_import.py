"""The data-engine loop: a ``masklet batch track`` run's masks imported into the studio as machine-made
objects, a correction re-tracked with the imported masks as memory, and an export.

The batch run uses seeded random weights (tiny preset at 128 px) on the studio's synthetic clip; the
studio its own random checkpoint. Masks mean nothing, but which frames keep which masks, and whether
remembered masks change a re-track, are checked exactly.
"""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from masklet.io.masks import decode_rle
from masklet.studio.batch_import import import_batch
from masklet.studio.errors import StudioError
from tests.cli_support import refuse_model_loading, run

from .conftest import CLIP_FRAMES, CLIP_H, CLIP_W
from .studio_support import close_app, open_app, point, prompt, small_model, track

CORRECTED, TRACKED, HUMAN = 6, (7, 8), 9  # re-tracked from 6 over 3 frames: 7, 8 and the human 9


def _imported(out) -> dict[int, dict[int, np.ndarray]]:
    """batch object id -> frame -> mask, decoded from the run's JSON."""
    doc = json.loads((out / "clip.json").read_text())
    return {
        obj: {t: decode_rle(row[k]) for t, row in enumerate(doc["masklet"])}
        for k, obj in enumerate(doc["masklet_id"])
    }


def _runs(frames: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for t in frames:
        if runs and runs[-1][1] == t - 1:
            runs[-1][1] = t
        else:
            runs.append([t, t])
    return runs


def _sources(ws, oid: int) -> dict[int, str]:
    return {i.frame: i.source for i in ws.project.all_mask_infos(1) if i.object_id == oid}


def _correct_and_retrack(tmp_path, name, videos, out, checkpoint, memory: bool):
    """Import, correct object 1 on frame CORRECTED, give it a person's mask on HUMAN, re-track 3 frames.
    Returns (client, ws, object ids by batch id, the person's mask)."""
    client, ws = open_app(tmp_path / name, [videos / "clip"], checkpoint, more_roots=[out])
    r = client.post("/api/import", json={"format": "batch", "path": str(out)})
    assert r.status_code == 200, r.text
    assert r.json() == {"videos": ["clip"], "left_out": [], "already": [], "objects": 2, "masks": 24}
    ids = dict(zip((1, 2), (o.id for o in ws.project.objects(1))))  # made in the run's id order
    car = ids[1]
    prompt(client, 1, CORRECTED, point(140, 120), object_id=car)
    human = np.zeros((CLIP_H, CLIP_W), bool)
    human[100:140, 150:200] = True
    ws.project.put_masks([(car, HUMAN, human, "import", None)])  # a person's label (imported)
    client.app.state.tracker.imported_memory = memory
    job = track(client, 1, CORRECTED, frames=3)
    assert (job["last_frame"], job["object_ids"]) == (HUMAN, [car])
    return client, ws, ids, human


def test_import_correct_retrack_export(batch_run, tmp_path, studio_checkpoint):
    videos, out = batch_run
    machine = _imported(out)
    for obj in (1, 2):  # masks the tests can tell apart
        assert sum(m.any() for m in machine[obj].values()) >= CLIP_FRAMES // 2
        assert not any(m.all() for m in machine[obj].values())
    client, ws, ids, human = _correct_and_retrack(tmp_path, "p", videos, out, studio_checkpoint, True)
    try:
        car, square = ids[1], ids[2]
        # the imported objects are finished, with a machine-made mask on every frame the run wrote
        assert [o.status for o in ws.project.objects(1)] == ["done", "done"]
        assert _sources(ws, square) == dict.fromkeys(range(CLIP_FRAMES), "machine")
        assert all(np.array_equal(ws.project.mask(square, t), machine[2][t]) for t in range(CLIP_FRAMES))
        # the re-track replaced the machine masks it reached, kept the rest and the person's ones
        expected = dict.fromkeys(range(CLIP_FRAMES), "machine")
        expected.update({CORRECTED: "prompt", TRACKED[0]: "track", TRACKED[1]: "track", HUMAN: "import"})
        assert _sources(ws, car) == expected
        for t in set(range(CLIP_FRAMES)) - {CORRECTED, *TRACKED, HUMAN}:
            assert np.array_equal(ws.project.mask(car, t), machine[1][t]), t
        assert np.array_equal(ws.project.mask(car, HUMAN), human)
        # the app tells machine-made masks from a person's: per frame, and as runs in the timeline
        sources = {o["id"]: o["source"] for o in client.get(f"/api/media/1/frames/{HUMAN}").json()["objects"]}
        assert sources[car] == "import" and sources.get(square, "machine") == "machine"
        timeline = {o["id"]: o for o in client.get("/api/media/1/timeline").json()["objects"]}
        shown = {obj: sorted(t for t, m in machine[n].items() if m.any()) for n, obj in ids.items()}
        assert timeline[square]["machine"] == _runs(shown[square])
        assert timeline[car]["machine"] == _runs([t for t in shown[car] if expected[t] == "machine"])
        # importing the same run again would duplicate every object
        r = client.post("/api/import", json={"format": "batch", "path": str(out)})
        assert r.status_code == 409 and "was already imported into clip" in r.json()["error"]

        r = client.post("/api/export", json={"format": "coco"})
        assert r.status_code == 200 and r.json()["frames"] == CLIP_FRAMES  # the run annotated every frame
        coco = json.loads((ws.project.path / "exports" / r.json()["name"] / "annotations.json").read_text())
        frame_of = {im["id"]: im["frame_id"] for im in coco["images"]}
        on_human = [a for a in coco["annotations"] if frame_of[a["image_id"]] == HUMAN]
        track_id = ws.project.get_object(car).track_id
        (mine,) = [a for a in on_human if a["track_id"] == track_id]
        assert np.array_equal(decode_rle(mine["segmentation"]), human)
        with_memory = {t: ws.project.mask(car, t) for t in TRACKED}
    finally:
        close_app(client, ws)

    # without the imported masks as memory, the same correction re-tracks to other masks
    client, ws, ids, _ = _correct_and_retrack(tmp_path, "q", videos, out, studio_checkpoint, False)
    try:
        without = {t: ws.project.mask(ids[1], t) for t in TRACKED}
        assert _sources(ws, ids[1])[TRACKED[0]] == "track"
    finally:
        close_app(client, ws)
    assert any(not np.array_equal(with_memory[t], without[t]) for t in TRACKED)


def test_palette_pngs_alone_import_too(batch_run, tmp_path, studio_checkpoint):
    videos, out = batch_run
    pngs = tmp_path / "pngs"
    shutil.copytree(out / "clip", pngs / "clip")
    shutil.copytree(out / "clip", pngs / "street")  # a video of the run the project does not hold
    client, ws = open_app(tmp_path / "p", [videos / "clip"], studio_checkpoint)
    try:
        done = import_batch(ws, pngs)
        assert (done["videos"], done["left_out"]) == (["clip"], ["street"])
        assert done["masks"] == done["objects"] * CLIP_FRAMES
        from masklet.io.masks import read_id_png

        id_map = read_id_png(pngs / "clip" / "00003.png")
        found = sorted(int(i) for i in np.unique(id_map) if i)
        masks = ws.project.masks_on(1, 3)
        assert sorted(np.count_nonzero(m) for m in masks.values() if m.any()) == sorted(
            np.count_nonzero(id_map == i) for i in found
        )
    finally:
        close_app(client, ws)


def _edit_json(src, dst, **changes):
    dst.mkdir()
    doc = json.loads((src / "clip.json").read_text())
    doc.update(changes)
    (dst / "clip.json").write_text(json.dumps(doc))


def test_bad_batch_folders_say_what_to_do(batch_run, tmp_path, studio_checkpoint):
    videos, out = batch_run
    other = tmp_path / "other"
    shutil.copytree(out, other, ignore=shutil.ignore_patterns(".masklet"))
    (other / "clip.json").rename(other / "street.json")
    (other / "clip").rename(other / "street")
    shorter = tmp_path / "shorter"
    _edit_json(out, shorter, video_frame_count=5)
    damaged = tmp_path / "damaged"
    _edit_json(out, damaged, masklet=[[{"size": [CLIP_H, CLIP_W], "counts": "x"}] * 2] * CLIP_FRAMES)
    empty = tmp_path / "empty"
    empty.mkdir()
    client, ws = open_app(tmp_path / "p", [videos / "clip"], studio_checkpoint)
    try:
        cases = [
            (empty, "is not the output of masklet batch track (it has neither): expected OUT/<video>.json"),
            (videos, "is not the output of masklet batch track"),
            (out / "clip.json", "is not a folder: give the --out folder of a masklet batch track run"),
            (other, "holds the video(s) street but the project's videos are clip: open the videos"),
            (shorter, f"clip in {shorter} has 5 frames of 320x240 but the project's clip has 12 frames"),
            (damaged, "clip.json: object 1 on frame 0: "),
        ]
        for folder, message in cases:
            with pytest.raises(StudioError, match=re.escape(message)):
                import_batch(ws, folder)
        assert ws.project.objects() == []  # nothing stored by a refused import
        r = client.post("/api/import", json={"format": "batch", "path": str(out)})
        assert r.status_code == 400 and "start masklet studio with --import OUT" in r.json()["error"]
    finally:
        close_app(client, ws)


def test_cli_opens_the_videos_and_imports_the_run_once(
    batch_run, tmp_path, capsys, monkeypatch, studio_checkpoint
):
    import uvicorn
    from fastapi.testclient import TestClient

    from masklet.cli import studio as studio_cli

    videos, out = batch_run
    seen = {}

    def serve(self, sockets=None):  # instead of serving: what the browser would be shown
        with TestClient(self.config.app) as client:
            seen["media"] = [m["name"] for m in client.get("/api/project").json()["media"]]
            seen["objects"] = client.get("/api/media/1/timeline").json()["objects"]

    monkeypatch.setattr(uvicorn.Server, "run", serve)
    monkeypatch.setattr(studio_cli, "load_model", lambda *a, **k: (small_model(studio_checkpoint), "random"))
    argv = ("studio", videos, "--import", out, "--project", tmp_path / "p", "--port", "0", "--prefetch", "0")
    rc, printed, err = run(capsys, *argv)
    assert rc == 0, err
    assert f"imported 2 machine-made object(s) with 24 masks from {out} into clip" in printed
    assert seen["media"] == ["clip"] and len(seen["objects"]) == 2  # the folder of videos opened its video
    assert all(o["machine"] for o in seen["objects"])
    rc, printed, err = run(capsys, *argv)  # the same command again reopens the project as it is
    assert rc == 0 and f"{out} was imported before into clip: kept as is" in printed
    assert len(seen["objects"]) == 2


def test_cli_refuses_a_bad_import_before_loading_the_model(batch_run, tmp_path, capsys, monkeypatch):
    refuse_model_loading(monkeypatch, "--import")
    videos, out = batch_run
    street = tmp_path / "videos"
    shutil.copytree(videos / "clip", street / "street")
    for paths, message in (
        ((videos, "--import", videos), f"--import: {videos} is not the output of masklet batch track"),
        ((street, "--import", out), "--import: the batch output "),
        ((street, "--import", out), "holds the video(s) clip but the project's videos are street"),
    ):
        rc, _, err = run(capsys, "studio", *paths, "--project", tmp_path / "p", "--port", "0")
        assert rc == 2 and message in err and err.count("\n") == 1, err
        assert not (tmp_path / "p").exists()
