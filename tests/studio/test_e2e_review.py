"""End-to-end: reviewing a batch run in the browser (import menu, machine-made marks, a correction
re-tracked, the marks gone where a person or the re-track replaced the machine's masks)."""

from __future__ import annotations

import shutil

import pytest

from tests.studio.conftest import CLIP_FRAMES
from tests.studio.e2e_support import is_prompt_post

pytestmark = pytest.mark.slow


def test_review_a_batch_run(start_studio, batch_run, open_studio, tmp_path):
    videos, out = batch_run
    project = tmp_path / "project"
    sp = start_studio([videos], project=project)  # a folder of videos opens each video
    shutil.copytree(out, project / "run")  # import paths lie inside the opened folders or the project
    ui = open_studio(sp)
    ui.open()
    page = ui.page

    page.click("#btn-import")
    page.select_option("#import-format", "batch")
    page.fill("#import-path", str(project / "run"))
    with page.expect_response(lambda r: r.url.endswith("/api/import")) as info:
        page.click("#import-run")
    assert info.value.ok, info.value.text()
    assert page.text_content("#import-result") == "2 objects, 24 masks imported into clip (machine-made)"
    page.click("#btn-import")  # closes the menu

    car, square = (o["id"] for o in ui.timeline(1)["objects"])
    machine_frames = {o["id"]: o["machine"] for o in ui.timeline(1)["objects"]}
    page.wait_for_selector("#timeline .tl-machine")
    lanes = page.eval_on_selector_all(
        "#timeline .tl-lane[data-object-id]",
        "ls => ls.map(l => [Number(l.dataset.objectId), l.querySelectorAll('.tl-machine').length])",
    )
    assert {oid: n for oid, n in lanes} == {oid: len(runs) for oid, runs in machine_frames.items()}

    # Frame 6: the car's row says its mask is machine-made; select it and click: a correction
    ui.goto_frame(6)
    shown = {o["id"] for o in ui.frame_state(1, 6)["objects"]}
    row = page.locator(f'#object-list .object-row[data-object-id="{car}"]')
    row.wait_for()
    if car in shown:
        assert row.locator(".machine-tag").count() == 1 and row.get_attribute("data-source") == "machine"
    row.click()
    with page.expect_response(is_prompt_post) as info:
        page.mouse.click(*ui.screen_xy(140, 120))
    assert info.value.request.post_data_json["object_id"] == car
    page.wait_for_selector(f'#object-list .object-row[data-object-id="{car}"][data-source="prompt"]')
    assert page.locator(f'#object-list .object-row[data-object-id="{car}"] .machine-tag').count() == 0

    page.select_option("#track-range", "count")
    page.fill("#track-range-value", "2")
    page.locator("#track-range-value").blur()
    job = ui.track()
    assert (job["start"], job["last_frame"], job["object_ids"]) == (6, 8, [car])
    sources = {}
    for t in range(CLIP_FRAMES):
        for o in ui.frame_state(1, t)["objects"]:
            sources.setdefault(o["id"], {})[t] = o["source"]
    assert sources[car].get(6) == "prompt"
    assert {sources[car].get(t) for t in (7, 8)} <= {"track", None}  # None: tracked to an empty mask
    assert {s for t, s in sources[car].items() if t not in (6, 7, 8)} <= {"machine"}
    assert set(sources.get(square, {}).values()) <= {"machine"}
