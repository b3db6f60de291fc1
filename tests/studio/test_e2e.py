"""End-to-end: the studio page in a real browser (Debian's chromium via Playwright) on a real server.

The model has seeded random weights, so masks are meaningless but non-empty: the tests check the
flows (objects, tracks, frames covered, exports, coordinates), never mask shapes.

``MASKLET_UPDATE_SCREENSHOT=1`` also writes the main screen after the video flow to docs/studio.png.
"""

from __future__ import annotations

import os
import shutil

import pytest
from PIL import Image

from tests.studio.conftest import CLIP_FRAMES, ROOT
from tests.studio.e2e_support import CHROMIUM, StudioPage, coco_json, covered, is_prompt_post

sync_api = pytest.importorskip("playwright.sync_api", reason="the e2e tests need the playwright package")
if not CHROMIUM.exists():
    pytest.skip(
        f"the e2e tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)",
        allow_module_level=True,
    )

pytestmark = pytest.mark.slow


def _object(fs: dict, track_id: int) -> dict | None:
    return next((o for o in fs["objects"] if o["track_id"] == track_id), None)


def test_video_flow(start_studio, clip_folder, open_studio, tmp_path):
    sp = start_studio([clip_folder])
    ui = open_studio(sp)
    media = ui.api("/api/project")["media"]
    assert [(m["id"], m["kind"], m["num_frames"]) for m in media] == [(1, "video", CLIP_FRAMES)]
    ui.open()
    page = ui.page

    # Two positive clicks on frame 0 make one pending object; the mask updates after each.
    body, fs = ui.click_image(80, 120)
    prompt = body["prompt"]
    assert body["object_id"] is None and prompt["kind"] == "point" and prompt["positive"] is True
    assert abs(prompt["x"] - 80) <= 1 and abs(prompt["y"] - 120) <= 1
    car_id = fs["object_id"]
    body, fs = ui.click_image(95, 125)
    assert body["object_id"] == car_id
    car = next(o for o in fs["objects"] if o["id"] == car_id)
    assert car["status"] == "pending" and len(car["prompts"]) == 2 and car["area"] > 0
    page.wait_for_selector(f'#object-list .object-row[data-object-id="{car_id}"][data-status="pending"]')

    res = ui.finish("car")
    car_track = res["object"]["track_id"]
    assert res["object"] == {"id": car_id, "track_id": car_track, "label": "car"}
    assert page.locator("#object-list .object-row").count() == 1

    # Track forward: the lane shows the object across frames, as the server reports.
    page.select_option("#track-direction", "forward")
    ui.track()
    runs = next(o for o in ui.timeline(1)["objects"] if o["id"] == car_id)["runs"]
    first_pass = covered(runs)
    assert 0 in first_pass and len(first_pass) >= CLIP_FRAMES // 2, runs
    page.wait_for_function(
        "([tid, n]) => { const l = document.querySelector(`#timeline .tl-lane[data-track-id='${tid}']`);"
        " return l && Number(l.dataset.frames) === n; }",
        arg=[car_track, len(first_pass)],
    )
    assert ui.timeline_dom()[str(car_track)]["runs"] == runs

    # Frame 6: select the car, correct it with a negative point, re-track from there.
    ui.goto_frame(6)
    page.click(f'#object-list .object-row[data-object-id="{car_id}"]')
    page.wait_for_selector(f'#object-list .object-row.selected[data-object-id="{car_id}"]')
    body, fs = ui.click_image(250, 200, shift=True)
    assert body["object_id"] == car_id and body["prompt"]["positive"] is False
    prompts6 = next(o for o in ui.frame_state(1, 6)["objects"] if o["id"] == car_id)["prompts"]
    assert [p["positive"] for p in prompts6] == [False]
    ui.track()
    lane = next(o for o in ui.timeline(1)["objects"] if o["id"] == car_id)
    assert 6 in lane["prompted"] and 0 in lane["prompted"]
    page.wait_for_selector(f'#timeline .tl-lane[data-track-id="{car_track}"] .tl-prompted[data-frame="6"]')

    # Frame 8: a second object from a box, as a new object (N), labeled "sign".
    page.keyboard.press("ArrowRight")
    ui.wait_frame_shown(7)
    page.keyboard.press("ArrowRight")
    ui.wait_frame_shown(8)
    page.keyboard.press("n")
    page.keyboard.press("r")
    body, fs = ui.drag_box(225, 35, 285, 95)
    assert body["object_id"] is None and body["prompt"]["kind"] == "box"
    sign = ui.finish("sign")["object"]
    assert sign["track_id"] != car_track and sign["label"] == "sign"

    # The car's masks before the correction are untouched.
    lanes = {o["id"]: o for o in ui.timeline(1)["objects"]}
    assert set(lanes) == {car_id, sign["id"]}
    kept = first_pass & set(range(6))
    assert kept <= covered(lanes[car_id]["runs"])
    for t in sorted(kept):
        obj = _object(ui.frame_state(1, t), car_track)
        assert obj is not None and obj["area"] > 0, t
    assert 8 in covered(lanes[sign["id"]]["runs"])
    page.wait_for_selector(f'#timeline .tl-lane[data-track-id="{sign["track_id"]}"]')

    # The main screen, for the docs.
    page.keyboard.press("q")
    ui.goto_frame(6)
    page.click(f'#object-list .object-row[data-object-id="{car_id}"]')
    page.evaluate("document.querySelector('#toasts').replaceChildren()")
    page.mouse.move(720, 400)
    shot = tmp_path / "studio.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get("MASKLET_UPDATE_SCREENSHOT") == "1":
        Image.open(shot).convert("RGB").save(ROOT / "docs" / "studio.png", optimize=True)

    # COCO through the export menu and its download link.
    coco = coco_json(ui.export("coco", tmp_path))
    assert len(coco["images"]) == CLIP_FRAMES
    cats = {c["id"]: c["name"] for c in coco["categories"]}
    assert set(cats.values()) == {"car", "sign"}
    tracks = {a["track_id"]: cats[a["category_id"]] for a in coco["annotations"]}
    assert tracks == {car_track: "car", sign["track_id"]: "sign"}
    for a in coco["annotations"]:
        seg = a["segmentation"]
        assert isinstance(seg, dict) and seg["size"] == [240, 320] and seg["counts"], a
    image_ids = {im["id"]: i for i, im in enumerate(coco["images"])}
    car_frames = {image_ids[a["image_id"]] for a in coco["annotations"] if a["track_id"] == car_track}
    assert kept <= car_frames


def test_correct_a_lost_object_and_retrack(start_studio, clip_folder, open_studio):
    """Track a range, find the object missing on a later frame, correct it there, track on."""
    sp = start_studio([clip_folder])
    ui = open_studio(sp)
    ui.open()
    page = ui.page
    _, fs = ui.click_image(80, 120)
    car = fs["object_id"]
    ui.finish("car")

    # Track 3 frames past frame 0: frames 1..3 get masks, the rest of the video none.
    page.select_option("#track-range", "count")
    page.fill("#track-range-value", "3")
    page.locator("#track-range-value").blur()  # the shortcuts stay off while a field has the focus
    job = ui.track()
    assert (job["frames"], job["total"], job["last_frame"]) == (3, 4, 3)
    assert covered(next(o for o in ui.timeline(1)["objects"] if o["id"] == car)["runs"]) <= {0, 1, 2, 3}

    # Frame 6: the car has no mask here, yet it is listed, greyed.
    ui.goto_frame(6)
    row = page.locator(f'#object-list .object-row.off-frame[data-object-id="{car}"]')
    row.wait_for()
    assert "not on this frame" in row.text_content()

    # Right after tracking, a click with nothing selected asks what it is for; "correct car" adds the
    # prompt to the car instead of starting a duplicate.
    page.mouse.click(*ui.screen_xy(140, 120))
    page.wait_for_selector("#choice-dialog[open]")
    assert page.text_content("#choice-title") == "New object or correct “car” #1?"
    with page.expect_response(is_prompt_post) as info:
        page.click(f'#choice-options [data-choice="{car}"]')
    assert info.value.request.post_data_json["object_id"] == car
    page.wait_for_selector(f'#object-list .object-row.selected:not(.off-frame)[data-object-id="{car}"]')
    assert [o["id"] for o in ui.frame_state(1, 6)["objects"]] == [car]
    assert len(ui.api("/api/project")["labels"]) == 1 and ui.timeline(1)["objects"][0]["prompted"] == [0, 6]

    # Re-track from the correction to frame 9 (the direction follows from the frame).
    page.select_option("#track-range", "until")
    page.fill("#track-range-value", "9")
    page.locator("#track-range-value").blur()
    job = ui.track()
    assert (job["direction"], job["start"], job["last_frame"], job["total"]) == ("forward", 6, 9, 4)
    runs = covered(next(o for o in ui.timeline(1)["objects"] if o["id"] == car)["runs"])
    assert 4 not in runs and 5 not in runs and 6 in runs

    # Deselect and click again: this time it is a new object; its label field starts empty.
    page.keyboard.press("Escape")
    page.mouse.click(*ui.screen_xy(250, 60))
    page.wait_for_selector("#choice-dialog[open]")
    with page.expect_response(is_prompt_post) as info:
        page.click('#choice-options [data-choice="new"]')
    assert info.value.request.post_data_json["object_id"] is None
    person = info.value.json()["object_id"]
    assert person != car
    assert ui.finish("person")["object"]["label"] == "person"
    assert [o["label"] for o in ui.timeline(1)["objects"]] == ["car", "person"]


def test_image_folder_flow(start_studio, image_folder, open_studio, tmp_path):
    photos = tmp_path / "photos"
    shutil.copytree(image_folder, photos)
    (photos / "broken.jpg").write_bytes(b"<html>a download that went wrong</html>")
    sp = start_studio([photos])
    ui = open_studio(sp)
    (media,) = ui.api("/api/project")["media"]
    assert media["kind"] == "images" and media["num_frames"] == 3
    ui.open()
    page = ui.page
    assert page.locator("body.kind-images").count() == 1
    assert not page.locator("#timeline").is_visible() and not page.locator("#btn-track").is_visible()
    assert ui.image_size() == (320, 240)
    # the unreadable file is named in a banner; images are counted from 1 and show their file name
    warning = page.text_content("#banners .banner.warn")
    assert "skipped 1 file(s)" in warning and "broken.jpg" in warning
    assert page.locator('#banners [data-banner="random-weights"]').count() == 0
    assert (page.input_value("#frame-input"), page.text_content("#frame-count")) == ("1", "/ 3")
    assert page.text_content("#frame-name") == "a.png"
    assert page.text_content("#objects-frame") == "image 1 / 3"

    body, fs = ui.click_image(80, 120)
    assert body["object_id"] is None and fs["objects"][0]["area"] > 0
    thing = ui.finish("thing")["object"]

    page.keyboard.press("ArrowRight")
    ui.wait_frame_shown(1)
    page.wait_for_function("() => document.querySelector('#frame-img').naturalWidth === 200")
    assert ui.image_size() == (200, 300)
    assert page.input_value("#frame-input") == "2" and page.text_content("#frame-name") == "b.jpg"
    assert page.text_content("#objects-frame") == "image 2 / 3"
    assert page.locator("#object-list .object-row").count() == 0

    # Segment everything: thresholds set in its menu (random weights rarely pass the default ones),
    # then a job whose bar counts points.
    page.click("#btn-everything-options")
    for name, value in [("points_per_side", "4"), ("pred_iou_thresh", "0"), ("stability_score_thresh", "0")]:
        with page.expect_response(lambda r: r.request.method == "PATCH"):
            page.fill(f"#everything-menu [name={name}]", value)
            page.keyboard.press("Enter")
    saved = ui.api("/api/project")["settings"]["everything"]
    assert saved == {
        "points_per_side": 4, "pred_iou_thresh": 0, "stability_score_thresh": 0, "min_mask_region_area": 0
    }  # fmt: skip
    page.click("#btn-everything-options")
    with page.expect_response(lambda r: r.url.endswith("/everything")) as info:
        page.click("#btn-everything")
    assert info.value.ok, info.value.text()
    job = info.value.json()
    assert (job["kind"], job["unit"], job["total"]) == ("everything", "points", 16)
    page.wait_for_selector(f'#job[data-job-id="{job["id"]}"][data-state="done"]', state="attached")
    assert page.text_content("#job-text").startswith("Segment everything: ")
    auto = ui.frame_state(media["id"], 1)["objects"]
    assert auto and all(o["label"] == "object" and o["status"] == "done" for o in auto)
    rows = "n => document.querySelectorAll('#object-list .object-row').length === n"
    page.wait_for_function(rows, arg=len(auto))

    # Shape modes: polygons and rectangles are drawn as vectors instead of the mask overlay.
    for mode, shape in [("polygon", "polygon"), ("rectangle", "rect")]:
        with page.expect_response(lambda r: r.request.method == "PATCH"):
            page.select_option("#shape-mode", mode)
        page.wait_for_selector(f"#vectors {shape}.shape", state="attached")
        assert page.locator("#overlay-img").is_hidden()
    with page.expect_response(lambda r: r.request.method == "PATCH"):
        page.select_option("#shape-mode", "mask")
    page.wait_for_selector("#overlay-img", state="visible")
    assert page.locator("#vectors .shape").count() == 0

    coco = coco_json(ui.export("coco", tmp_path))  # the labeled images only: c was never labeled
    names = [im["file_name"].rsplit("/", 1)[-1] for im in coco["images"]]
    assert [n.rsplit(".", 1)[0] for n in names] == ["a", "b"]
    cats = {c["id"]: c["name"] for c in coco["categories"]}
    assert set(cats.values()) == {"thing", "object"}
    by_image = {}
    for a in coco["annotations"]:
        by_image.setdefault(names[[im["id"] for im in coco["images"]].index(a["image_id"])], []).append(a)
    assert [cats[a["category_id"]] for a in by_image[names[0]]] == ["thing"]
    assert by_image[names[0]][0]["track_id"] == thing["track_id"]
    assert len(by_image[names[1]]) == len(auto)
    assert all(a["segmentation"]["size"] == [300, 200] for a in by_image[names[1]])

    # Label manager: rename, recolor, merge, add and delete an unused label.
    page.click("#btn-labels")
    page.wait_for_selector("#labels-dialog[open]")
    counts = dict(
        zip(
            page.eval_on_selector_all("#labels-body tr", "rs => rs.map(r => r.dataset.name)"),
            page.eval_on_selector_all("#labels-body td.num", "ts => ts.map(t => Number(t.textContent))"),
        )
    )
    assert counts == {"thing": 1, "object": len(auto)}
    with page.expect_response(lambda r: r.request.method == "PATCH"):
        page.fill('#labels-body tr[data-name="thing"] .label-name', "stuff")
        page.keyboard.press("Enter")
    page.wait_for_selector('#labels-body tr[data-name="stuff"]')
    with page.expect_response(lambda r: r.request.method == "PATCH"):
        page.fill('#labels-body tr[data-name="stuff"] input[type="color"]', "#123456")
    page.select_option('#labels-body tr[data-name="object"] .merge-target', label="stuff")
    page.wait_for_selector("#confirm-dialog[open]")
    with page.expect_response(lambda r: r.url.endswith("/merge")):
        page.click("#confirm-ok")
    page.wait_for_selector('#labels-body tr[data-name="object"]', state="detached")
    page.fill("#label-add-form input[name=name]", "unused")
    page.keyboard.press("Enter")
    page.wait_for_selector('#labels-body tr[data-name="unused"]')
    assert page.is_disabled('#labels-body tr[data-name="stuff"] button.delete')
    with page.expect_response(lambda r: r.request.method == "DELETE"):
        page.click('#labels-body tr[data-name="unused"] button.delete')
    page.wait_for_selector('#labels-body tr[data-name="unused"]', state="detached")
    labels = ui.api("/api/labels")
    assert [(lab["name"], lab["color"], lab["count"]) for lab in labels] == [
        ("stuff", "#123456", 1 + len(auto))
    ]
    page.keyboard.press("Escape")
    page.wait_for_selector("#labels-dialog:not([open])", state="attached")
    page.wait_for_selector('#object-list .object-row[data-label="stuff"]')

    # Delete one object from the list, with the confirmation.
    victim = auto[0]["id"]
    page.hover(f'#object-list .object-row[data-object-id="{victim}"]')
    page.click(f'#object-list .object-row[data-object-id="{victim}"] button.delete')
    page.wait_for_selector("#confirm-dialog[open]")
    with page.expect_response(lambda r: r.request.method == "DELETE"):
        page.click("#confirm-ok")
    page.wait_for_selector(f'#object-list .object-row[data-object-id="{victim}"]', state="detached")
    assert victim not in [o["id"] for o in ui.frame_state(media["id"], 1)["objects"]]


def test_shortcuts_and_zoom_coordinates(start_studio, clip_folder, open_studio):
    sp = start_studio([clip_folder], random_weights=True)  # the flows here do not need masks
    ui = open_studio(sp)
    ui.open()
    page = ui.page
    banner = page.text_content('#banners [data-banner="random-weights"]')
    assert banner.startswith("Random weights: the model (sam2.1_hiera_tiny) was started with --random")

    for key, tool, cursor in [("e", "neg", "point"), ("r", "box", "box"), ("q", "pos", "point")]:
        page.keyboard.press(key)
        assert page.locator(f'[data-tool="{tool}"].active').count() == 1
        assert page.locator(".tool.active").count() == 1
        assert page.get_attribute("#stage", "data-cursor") == cursor
    page.keyboard.press("?")
    page.wait_for_selector("#help-dialog[open]")
    assert page.locator("#help-body .help-row").count() >= 15
    page.keyboard.press("Escape")
    page.wait_for_selector("#help-dialog:not([open])", state="attached")

    # Zoom in around an image point: it stays under the cursor.
    zoom0 = int(page.text_content("#hud-zoom").rstrip("%"))
    # Wheel events carry whole-pixel positions: anchor the zoom at one.
    before = tuple(round(v) for v in ui.screen_xy(123.25, 77.75))
    anchor = ui.image_xy(*before)
    page.mouse.move(*before)
    for _ in range(3):
        page.mouse.wheel(0, -200)
    zoomed = "z => parseInt(document.querySelector('#hud-zoom').textContent) > 2 * z"
    page.wait_for_function(zoomed, arg=zoom0)
    page.wait_for_timeout(100)
    after = ui.screen_xy(*anchor)
    assert abs(after[0] - before[0]) < 1 and abs(after[1] - before[1]) < 1

    # A click at a known pixel reaches the server as that pixel, zoomed, then panned and zoomed again.
    target = (140.5, 90.5)
    _assert_on_stage(ui, target)
    body, fs = ui.click_image(*target)
    oid = fs["object_id"]
    recorded = _only(ui.frame_state(1, 0), oid)["prompts"][-1]
    assert abs(recorded["x"] - target[0]) <= 1 and abs(recorded["y"] - target[1]) <= 1, recorded

    start = ui.screen_xy(*target)
    page.mouse.move(*start)
    page.mouse.down(button="right")
    page.mouse.move(start[0] - 120, start[1] - 50, steps=5)
    page.mouse.up(button="right")
    moved = ui.screen_xy(*target)
    assert abs(moved[0] - (start[0] - 120)) < 1 and abs(moved[1] - (start[1] - 50)) < 1
    target2 = (151.25, 97.75)
    page.mouse.move(*ui.screen_xy(*target2))
    page.mouse.wheel(0, -200)
    page.wait_for_timeout(100)
    _assert_on_stage(ui, target2)
    body, fs = ui.click_image(*target2, shift=True)
    assert body["object_id"] == oid
    recorded = _only(ui.frame_state(1, 0), oid)["prompts"][-1]
    assert recorded["positive"] is False
    assert abs(recorded["x"] - target2[0]) <= 1 and abs(recorded["y"] - target2[1]) <= 1, recorded

    # Undo / redo / clear through the keyboard.
    with page.expect_response(lambda r: r.url.endswith("/undo")):
        page.keyboard.press("Control+z")
    assert len(_only(ui.frame_state(1, 0), oid)["prompts"]) == 1
    with page.expect_response(lambda r: r.url.endswith("/redo")):
        page.keyboard.press("Control+Shift+z")
    assert len(_only(ui.frame_state(1, 0), oid)["prompts"]) == 2
    with page.expect_response(lambda r: r.url.endswith("/undo")):
        page.keyboard.press("Control+z")
    with page.expect_response(lambda r: r.url.endswith("/redo")):
        page.keyboard.press("Control+y")
    assert len(_only(ui.frame_state(1, 0), oid)["prompts"]) == 2
    with page.expect_response(lambda r: r.url.endswith("/clear")):
        page.keyboard.press("b")
    assert all(o["id"] != oid for o in ui.frame_state(1, 0)["objects"])
    page.wait_for_selector("#object-list .object-row", state="detached")

    # A tracking job can be cancelled from the progress bar; the frames it finished are kept.
    page.keyboard.press("0")  # fit the frame to the view again
    _assert_on_stage(ui, (0, 0))
    _assert_on_stage(ui, (319, 239))
    ui.click_image(80, 120)
    car = ui.finish("car")["object"]
    with page.expect_response(lambda r: r.url.endswith("/track")) as info:
        page.keyboard.press("Control+m")
    job_id = info.value.json().get("job_id", info.value.json().get("id"))
    page.wait_for_selector(f'#job[data-job-id="{job_id}"][data-state="running"] #job-cancel')
    with page.expect_response(lambda r: r.url.endswith("/cancel")):
        page.click("#job-cancel")
    page.wait_for_selector(f'#job[data-job-id="{job_id}"][data-state="cancelled"]', state="attached")
    job = ui.api(f"/api/jobs/{job_id}")
    assert job["state"] == "cancelled" and job["done"] < job["total"], job
    runs = next(o for o in ui.timeline(1)["objects"] if o["id"] == car["id"])["runs"]
    assert covered(runs) <= set(range(job["done"] + 1)), (runs, job)

    # Playback (K) runs to the last frame and stops; frame navigation keys.
    page.keyboard.press("k")
    page.wait_for_selector("body.playing", state="attached")
    page.wait_for_selector("body:not(.playing)", state="attached", timeout=60_000)
    assert page.input_value("#frame-input") == str(CLIP_FRAMES - 1)
    ui.wait_frame_shown(CLIP_FRAMES - 1)
    page.keyboard.press("Home")
    ui.wait_frame_shown(0)
    page.keyboard.press("End")
    ui.wait_frame_shown(CLIP_FRAMES - 1)
    page.keyboard.press("Shift+ArrowLeft")
    ui.wait_frame_shown(CLIP_FRAMES - 11)
    page.keyboard.press("ArrowLeft")
    ui.wait_frame_shown(0)


def _only(fs: dict, oid: int) -> dict:
    return next(o for o in fs["objects"] if o["id"] == oid)


def _assert_on_stage(ui: StudioPage, xy: tuple[float, float]) -> None:
    box = ui.page.locator("#stage").bounding_box()
    sx, sy = ui.screen_xy(*xy)
    assert box["x"] < sx < box["x"] + box["width"] and box["y"] < sy < box["y"] + box["height"], (xy, sx, sy)
