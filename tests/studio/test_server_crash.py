"""Nothing confirmed is lost: SIGKILL the studio server during tracking and during edits, restart it on
the same project, and find every confirmed object, prompt, label and mask."""

from __future__ import annotations

import threading
import time

import httpx

from .conftest import CLIP_FRAMES


def _post(c: httpx.Client, url: str, body: dict) -> dict:
    r = c.post(url, json=body, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def _prompt(c, t, p, oid=None) -> dict:
    return _post(c, f"/api/media/1/frames/{t}/prompts", {"object_id": oid, "prompt": p})


def _pt(x, y, positive=True):
    return {"kind": "point", "x": x, "y": y, "positive": positive}


def _rows(c: httpx.Client) -> dict[int, set[int]]:
    """track id -> frames with a mask (non-empty), through the API."""
    tl = c.get("/api/media/1/timeline").json()
    return {o["track_id"]: {t for a, b in o["runs"] for t in range(a, b + 1)} for o in tl["objects"]}


def test_sigkill_during_tracking_and_edits_loses_nothing(start_studio, clip_folder, tmp_path):
    project = tmp_path / "project"
    sp = start_studio([clip_folder], project=project)
    with httpx.Client(base_url=sp.url) as c:
        car = _prompt(c, 0, _pt(80, 120))["object_id"]
        _prompt(c, 0, _pt(85, 118))
        _post(c, f"/api/objects/{car}/finish", {"label": "car"})
        sign = _prompt(c, 3, {"kind": "box", "x0": 225, "y0": 35, "x1": 285, "y1": 95})["object_id"]
        _post(c, f"/api/objects/{sign}/finish", {"label": "sign"})
        job = _post(c, "/api/media/1/track", {"frame": 0, "direction": "forward"})
        seen = job
        while seen["state"] == "running" and seen["done"] < 5:
            time.sleep(0.05)
            seen = c.get(f"/api/jobs/{job['id']}").json()
        before_kill = _rows(c)
    sp.kill()  # mid-tracking (or just after it, on a fast machine)
    assert seen["done"] >= 5
    confirmed_frames = range(seen["last_frame"] + 1)

    sp2 = start_studio([clip_folder], project=project)
    with httpx.Client(base_url=sp2.url) as c:
        p = c.get("/api/project").json()
        assert [lab["name"] for lab in p["labels"]] == ["car", "sign"]
        after = _rows(c)
        for track_id, frames in before_kill.items():
            assert frames <= after[track_id], (
                f"track {track_id} lost frames {sorted(frames - after[track_id])}"
            )
        state0 = c.get("/api/media/1/frames/0").json()
        car0 = next(o for o in state0["objects"] if o["id"] == car)
        assert car0["label"] == "car" and car0["status"] == "done" and len(car0["prompts"]) == 2
        assert car0["source"] == "prompt"
        for t in confirmed_frames:  # every frame the job reported done has both objects' results
            ids = {o["id"] for o in c.get(f"/api/media/1/frames/{t}").json()["objects"]}
            assert car in ids or t not in after.get(1, set()), t
        # edits keep going after the restart (the model state is rebuilt from the stored prompts)
        _prompt(c, 6, _pt(150, 40, positive=False), oid=car)
        job = _post(c, "/api/media/1/track", {"frame": 6})
        while c.get(f"/api/jobs/{job['id']}").json()["state"] == "running":
            time.sleep(0.1)
        assert c.get(f"/api/jobs/{job['id']}").json()["state"] == "done"

        # SIGKILL while edits stream in: every edit that got its answer is there after a restart
        answered: list[tuple[int, dict]] = []
        stop = threading.Event()

        def edit_loop():
            with httpx.Client(base_url=sp2.url) as c2:
                for i in range(200):
                    if stop.is_set():
                        return
                    t = 1 + i % (CLIP_FRAMES - 2)
                    p = _pt(20 + (7 * i) % 280, 20 + (5 * i) % 200, positive=bool(i % 2))
                    try:
                        r = c2.post(
                            f"/api/media/1/frames/{t}/prompts",
                            json={"object_id": sign, "prompt": p},
                            timeout=60,
                        )
                    except httpx.HTTPError:
                        return
                    if r.status_code == 200:
                        answered.append((t, p))

        th = threading.Thread(target=edit_loop)
        th.start()
        while len(answered) < 6 and th.is_alive():
            time.sleep(0.02)
    sp2.kill()
    stop.set()
    th.join(30)
    assert len(answered) >= 6

    sp3 = start_studio([project], project=project)
    with httpx.Client(base_url=sp3.url) as c:
        for t in {t for t, _ in answered}:
            obj = next(o for o in c.get(f"/api/media/1/frames/{t}").json()["objects"] if o["id"] == sign)
            stored = [(q["x"], q["y"], q["positive"]) for q in obj["prompts"] if q["kind"] == "point"]
            for pt in (p for tt, p in answered if tt == t):
                assert (float(pt["x"]), float(pt["y"]), pt["positive"]) in stored
        assert [lab["name"] for lab in c.get("/api/labels").json()] == ["car", "sign"]
