"""Studio server safety: tokens, path traversal, upload limits, malformed requests -> 4xx JSON."""

from __future__ import annotations

import os

import pytest

from .studio_support import close_app, open_app, point


@pytest.fixture
def app(tmp_path, clip_folder, studio_checkpoint):
    client, ws = open_app(tmp_path / "project", [clip_folder], studio_checkpoint, max_upload_bytes=4096)
    yield client, ws
    close_app(client, ws)


def _is_json_error(r, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json"), r.headers["content-type"]
    body = r.json()
    assert set(body) == {"error"} and "Traceback" not in body["error"]
    return body["error"]


@pytest.mark.parametrize(
    "method, url, body",
    [
        ("post", "/api/media/1/frames/0/prompts", "not json"),
        ("post", "/api/media/1/frames/0/prompts", "[1, 2]"),
        ("post", "/api/media/1/frames/0/prompts", '{"prompt": {"kind": "lasso"}}'),
        ("post", "/api/media/1/frames/0/prompts", '{"prompt": {"kind": "point", "x": "a", "y": 1}}'),
        ("post", "/api/media/1/frames/0/prompts", '{"object_id": "x", "prompt": {}}'),
        (
            "post",
            "/api/media/1/frames/0/prompts",
            '{"prompt": {"kind": "box", "x0": 1, "y0": 1, "x1": 1, "y1": 9}}',
        ),
        ("post", "/api/media/1/frames/0/prompts", '{"prompt": {"kind": "point", "x": 1e9, "y": 1}}'),
        ("post", "/api/media/1/track", '{"frame": 0, "direction": "sideways"}'),
        ("post", "/api/media/1/track", '{"frame": "0"}'),
        ("patch", "/api/settings", '{"shape_mode": "blob"}'),
        ("patch", "/api/settings", '{"nonsense": 1}'),
        ("post", "/api/export", '{"format": "pdf"}'),
        ("post", "/api/labels", '{"name": ""}'),
        ("post", "/api/import", '{"format": "coco"}'),
    ],
)
def test_malformed_requests_get_400(app, method, url, body):
    client, ws = app
    r = getattr(client, method)(url, content=body, headers={"content-type": "application/json"})
    _is_json_error(r, 400)
    assert ws.project.objects() == []


@pytest.mark.parametrize(
    "url",
    [
        "/api/media/9/frames/0",
        "/api/media/1/frames/12",
        "/api/media/1/frames/-1/image",
        "/api/objects/5/undo",
        "/api/jobs/track-999",
        "/api/nothing",
        "/static/../server.py",
        "/static/%2e%2e/server.py",
        "/static/..%2fserver.py",
        "/api/exports/..%2f..%2fproject.db.zip",
    ],
)
def test_unknown_things_get_404(app, url):
    client, _ = app
    method = client.post if url.endswith("undo") else client.get
    kwargs = {"json": {"frame": 0}} if url.endswith("undo") else {}
    r = method(url, **kwargs)
    assert r.status_code in (404, 422) if "frames/-1" in url else r.status_code == 404, r.text
    assert r.headers["content-type"].startswith("application/json")


def test_import_paths_must_stay_inside_the_opened_folders(app, tmp_path, clip_folder):
    client, ws = app
    outside = tmp_path / "secret.json"
    outside.write_text("{}")
    link = clip_folder / "escape.json"
    if not link.exists():
        os.symlink(outside, link)
    try:
        for path in (
            str(outside),
            str(clip_folder / ".." / "secret.json"),
            str(link),
            "/etc/passwd",
            "../secret.json",
        ):
            msg = _is_json_error(client.post("/api/import", json={"format": "coco", "path": path}), 400)
            assert "inside the opened folders" in msg
    finally:
        link.unlink()


def test_upload_limit_and_bad_uploads(app):
    client, ws = app
    r = client.post("/api/import/upload?format=coco", content=b"x" * 5000)
    assert "limit" in _is_json_error(r, 413)
    assert "COCO" in _is_json_error(client.post("/api/import/upload?format=coco", content=b"{nope"), 400)
    _is_json_error(client.post("/api/import/upload?format=yolo", content=b"{}"), 400)
    assert ws.project.objects() == []


def test_token_required_when_set(tmp_path, clip_folder, studio_checkpoint):
    client, ws = open_app(tmp_path / "p", [clip_folder], studio_checkpoint, token="s3cret")
    try:
        assert "token" in _is_json_error(client.get("/api/project"), 401)
        page = client.get("/")
        assert (
            page.status_code == 401
            and "?token=" in page.text
            and page.headers["content-type"].startswith("text/html")
        )
        assert client.get("/api/project", headers={"X-Masklet-Token": "wrong"}).status_code == 401
        assert client.get("/api/project", headers={"X-Masklet-Token": "s3cret"}).status_code == 200
        r = client.get("/?token=s3cret")
        assert r.status_code == 200 and "masklet_token" in r.headers.get("set-cookie", "")
        assert client.get("/api/project").status_code == 200  # the cookie now carries it
        client.cookies.clear()
        assert client.get("/api/media/1/frames/0/image").status_code == 401
        r = client.post(
            "/api/media/1/frames/0/prompts?token=s3cret", json={"object_id": None, "prompt": point(5, 5)}
        )
        assert r.status_code == 200
    finally:
        close_app(client, ws)
