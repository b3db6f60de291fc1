"""Browser helpers for the studio end-to-end tests: a page object over Playwright's sync API.

Coordinates given to these helpers are pixels of the original frame (x then y); they are turned into
screen positions from the frame <img>'s on-screen box, independently of the app's own conversion, so
the tests check that conversion instead of reusing it.
"""

from __future__ import annotations

import json
import urllib.request
import zipfile
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
VIEWPORT = {"width": 1440, "height": 900}
JOB_TIMEOUT_MS = 180_000


def is_prompt_post(response) -> bool:
    return response.request.method == "POST" and response.url.endswith("/prompts")


class StudioPage:
    """One browser page on a running studio (``url`` without token, loopback bind)."""

    def __init__(self, page, url: str):
        self.page = page
        self.url = url.rstrip("/")
        self.errors: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    # ---- server side ---------------------------------------------------------------------------

    def api(self, path: str, method: str = "GET", body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())

    def frame_state(self, mid: int, t: int) -> dict:
        return self.api(f"/api/media/{mid}/frames/{t}")

    def timeline(self, mid: int) -> dict:
        return self.api(f"/api/media/{mid}/timeline")

    # ---- page ----------------------------------------------------------------------------------

    def open(self) -> None:
        self.page.goto(self.url + "/")
        self.page.wait_for_selector("#media-list .media-item.active")
        self.page.wait_for_selector("#stage.has-frame")
        self.wait_frame_shown(0)

    def wait_frame_shown(self, t: int) -> None:
        """Waits until frame/image t's FrameState is drawn (the object list says which frame it shows)."""
        self.page.wait_for_function(
            "t => document.querySelector('#objects-frame').dataset.frame === String(t)", arg=t
        )
        self.page.wait_for_function("() => document.querySelector('#frame-img').complete")

    def image_size(self) -> tuple[int, int]:
        return tuple(self.page.eval_on_selector("#frame-img", "e => [e.naturalWidth, e.naturalHeight]"))

    def screen_xy(self, x: float, y: float) -> tuple[float, float]:
        """Screen (viewport) position of image pixel coordinate (x, y) as the browser lays it out."""
        box = self.page.locator("#frame-img").bounding_box()
        w, h = self.image_size()
        return box["x"] + x * box["width"] / w, box["y"] + y * box["height"] / h

    def image_xy(self, sx: float, sy: float) -> tuple[float, float]:
        """Image pixel coordinate under screen position (sx, sy): the inverse of screen_xy."""
        box = self.page.locator("#frame-img").bounding_box()
        w, h = self.image_size()
        return (sx - box["x"]) * w / box["width"], (sy - box["y"]) * h / box["height"]

    def click_image(self, x: float, y: float, shift: bool = False) -> tuple[dict, dict]:
        """Clicks image pixel (x, y); returns (request body, FrameState response) of the prompt."""
        sx, sy = self.screen_xy(x, y)
        with self.page.expect_response(is_prompt_post) as info:
            if shift:
                self.page.keyboard.down("Shift")
            self.page.mouse.click(sx, sy)
            if shift:
                self.page.keyboard.up("Shift")
        resp = info.value
        assert resp.ok, resp.text()
        return resp.request.post_data_json, resp.json()

    def drag_box(self, x0: float, y0: float, x1: float, y1: float) -> tuple[dict, dict]:
        """Drags a box (the box tool must be active); returns (request body, FrameState)."""
        a = self.screen_xy(x0, y0)
        b = self.screen_xy(x1, y1)
        with self.page.expect_response(is_prompt_post) as info:
            self.page.mouse.move(*a)
            self.page.mouse.down()
            self.page.mouse.move(*b, steps=6)
            self.page.mouse.up()
        resp = info.value
        assert resp.ok, resp.text()
        return resp.request.post_data_json, resp.json()

    def finish(self, label: str) -> dict:
        """Presses F, types the label, presses Enter; returns the finish response. The label field must
        open empty (never the previous object's label)."""
        self.page.keyboard.press("f")
        self.page.wait_for_selector("#label-dialog[open]")
        assert self.page.input_value("#label-input") == "", "the label dialog must open empty"
        self.page.fill("#label-input", label)
        with self.page.expect_response(lambda r: r.url.endswith("/finish")) as info:
            self.page.keyboard.press("Enter")
        resp = info.value
        assert resp.ok, resp.text()
        self.page.wait_for_selector(f'#object-list .object-row[data-label="{label}"][data-status="done"]')
        return resp.json()

    def goto_frame(self, t: int) -> None:
        """Types frame t (0-based) into the frame field (image sets number their images from 1)."""
        images = self.page.evaluate("() => document.body.classList.contains('kind-images')")
        self.page.fill("#frame-input", str(t + 1 if images else t))
        self.page.keyboard.press("Enter")
        self.wait_frame_shown(t)

    def track(self) -> dict:
        """Ctrl+M, then waits for the job to end; returns the final job record (it must be done)."""
        with self.page.expect_response(lambda r: r.url.endswith("/track")) as info:
            self.page.keyboard.press("Control+m")
        resp = info.value
        assert resp.ok, resp.text()
        job_id = resp.json()["id"]
        self.page.wait_for_selector(
            f'#job[data-job-id="{job_id}"]:not([data-state="running"])',
            state="attached",
            timeout=JOB_TIMEOUT_MS,
        )
        job = self.api(f"/api/jobs/{job_id}")
        assert job["state"] == "done", job
        return job

    def export(self, fmt: str, tmp_dir: Path) -> zipfile.ZipFile:
        """Exports through the menu (scope: this media) and downloads the zip from its link."""
        self.page.click("#btn-export")
        self.page.check("#export-scope-media")
        with self.page.expect_response(lambda r: r.url.endswith("/api/export")) as info:
            self.page.click(f'#export-formats [data-format="{fmt}"]')
        assert info.value.ok, info.value.text()
        link = self.page.locator("#export-result a.export-download")
        link.wait_for()
        with self.page.expect_download() as dl:
            link.click()
        target = tmp_dir / f"{fmt}.zip"
        dl.value.save_as(target)
        self.page.keyboard.press("Escape")
        return zipfile.ZipFile(target)

    def timeline_dom(self) -> dict[int, dict]:
        """Per track id: covered frame count and runs as the timeline lanes show them."""
        return self.page.eval_on_selector_all(
            "#timeline .tl-lane[data-track-id]",
            """lanes => Object.fromEntries(lanes.map(l => [l.dataset.trackId, {
                frames: Number(l.dataset.frames),
                runs: [...l.querySelectorAll('.tl-run')]
                    .map(r => [Number(r.dataset.first), Number(r.dataset.last)])
            }]))""",
        )


def covered(runs: list[list[int]]) -> set[int]:
    return {t for a, b in runs for t in range(a, b + 1)}


def coco_json(zf: zipfile.ZipFile) -> dict:
    names = [n for n in zf.namelist() if n.endswith(".json")]
    assert len(names) == 1, zf.namelist()
    return json.loads(zf.read(names[0]))
