"""``masklet demo``: photos and a short video end to end, the random-weights fallback when the official
checkpoint cannot be had, and one-line errors for inputs that do not exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from masklet.cli import demo as demo_module
from masklet.io.exporters import read_palette_png
from tests.cli_support import CLIP_H, CLIP_W, refuse_model_loading, run, write_clip
from tests.conftest import synthetic_image
from tests.test_cli import FAST, check_outputs, offline  # noqa: F401  (offline: autouse fixture)

av = pytest.importorskip("av")


@pytest.fixture
def images(tmp_path) -> Path:
    """Two small photos of different shapes, and a file that is not an image."""
    folder = tmp_path / "images"
    folder.mkdir()
    for stem, (h, w) in {"a": (64, 80), "b": (80, 64)}.items():
        Image.fromarray(synthetic_image(h, w, seed=len(stem) + h)).save(folder / f"{stem}.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture
def clip(tmp_path) -> Path:
    return write_clip(tmp_path / "clip.mp4")


def check_video_outputs(out: Path, n_frames: int, hw: tuple[int, int]) -> dict:
    """The video part's files: one palette PNG per frame, masks.json (labelled) and the overlay mp4."""
    assert sorted(p.name for p in out.iterdir()) == ["masks", "masks.json", "overlay.mp4"]
    assert sorted(p.name for p in (out / "masks").iterdir()) == [f"{i:05d}.png" for i in range(n_frames)]
    doc = json.loads((out / "masks.json").read_text())
    assert list(doc["frames"]) == [str(i) for i in range(n_frames)]
    assert all(list(objs) == ["1", "2"] for objs in doc["frames"].values())
    assert (doc["height"], doc["width"]) == hw
    assert set(read_palette_png(out / "masks" / "00000.png")) <= {1, 2}
    with av.open(str(out / "overlay.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == n_frames and frames[0].shape[:2] == hw
    return doc


def test_demo_offline_falls_back_to_random_weights(capsys, tmp_path, offline, images, clip):  # noqa: F811
    out = tmp_path / "demo"
    argv = ["demo", "--images", images, "--video", clip, "--video-frames", 3, "--out", out, *FAST]
    rc, stdout, stderr = run(capsys, *argv)
    assert rc == 0
    assert re.fullmatch(
        rf"official sam2\.1_hiera_tiny checkpoint unavailable \(could not download "
        rf"{re.escape(offline)}/092824/sam2\.1_hiera_tiny\.pt .*, or pass --checkpoint PATH\): "
        r"running on RANDOM weights, "
        r"masks are meaningless\n",
        stderr,
    ), stderr
    assert [line.split(":")[0] for line in stdout.splitlines()] == ["a", "b", "clip.mp4"]
    assert stdout.count("[RANDOM WEIGHTS]") == 3
    assert re.search(r"clip\.mp4: 96x64, tracked 2 objects over 3 frames, \d+\.\d\d s/frame", stdout)
    for stem, hw in {"a": (64, 80), "b": (80, 64)}.items():
        for kind in ("point", "box"):
            result = check_outputs(out, f"{stem}_{kind}", hw, 1)
            assert (result["weights"], result["prompt"], result["image"]) == ("random", kind, stem)
    doc = check_video_outputs(out / "video", 3, (CLIP_H, CLIP_W))
    assert (doc["video"], doc["weights"], doc["model"]) == ("clip.mp4", "random", "sam2.1_hiera_tiny")
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


def test_demo_video_frames_0_skips_the_video(capsys, tmp_path, images):
    out = tmp_path / "demo"
    rc, stdout, _ = run(capsys, "demo", "--images", images, "--video-frames", 0, "--out", out, *FAST)
    assert rc == 0 and [line.split(":")[0] for line in stdout.splitlines()] == ["a", "b"]
    assert not (out / "video").exists()


def test_demo_without_sample_data_uses_synthetic_stand_ins(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(demo_module, "shared_data", lambda *parts: None)
    out = tmp_path / "demo"
    rc, stdout, stderr = run(capsys, "demo", "--video-frames", 2, "--out", out, *FAST)
    assert rc == 0
    assert "using a synthetic image" in stderr and "using a synthetic clip" in stderr
    assert [line.split(":")[0] for line in stdout.splitlines()] == ["synthetic", "synthetic"]
    check_outputs(out, "synthetic_point", (480, 640), 1)
    doc = check_video_outputs(out / "video", 2, (270, 480))
    assert doc["video"] == "synthetic"


def test_demo_tracks_frames_of_the_sample_clip_when_present(capsys, tmp_path, images):
    sample = demo_module.shared_data("videos", "bedroom.mp4")
    if sample is None:
        pytest.skip("../shared/data/videos/bedroom.mp4 is absent (the synthetic clip is tested above)")
    out = tmp_path / "demo"
    rc, stdout, _ = run(capsys, "demo", "--images", images, "--video-frames", 2, "--out", out, *FAST)
    assert rc == 0 and "bedroom.mp4: 960x540, tracked 2 objects over 2 frames" in stdout
    check_video_outputs(out / "video", 2, (540, 960))


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--images", "{tmp}/empty"], "no .jpg/.png images in {tmp}/empty"),
        (["--images", "{tmp}/absent"], "--images {tmp}/absent is not a folder"),
        (["--video", "{tmp}/absent.mp4"], "--video {tmp}/absent.mp4: no such video file or frame folder"),
        (["--video-frames", "-1"], "--video-frames must be >= 0"),
    ],
    ids=["no images", "images folder absent", "video absent", "negative video frames"],
)
def test_demo_bad_inputs_are_one_line_before_the_model_loads(extra, message, capsys, tmp_path, monkeypatch):
    refuse_model_loading(monkeypatch, "the demo's inputs")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    argv = [a.format(tmp=tmp_path) for a in extra]
    rc, stdout, stderr = run(capsys, "demo", *argv, "--out", tmp_path / "out", *FAST)
    assert (rc, stdout) == (2, "")
    assert stderr.count("\n") == 1 and stderr.startswith("masklet demo: error: ")
    assert message.format(tmp=tmp_path) in stderr
    assert not (tmp_path / "out").exists()


def test_demo_does_not_replace_a_named_checkpoint_by_random_weights(capsys, tmp_path, images):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"junk")
    rc, stdout, stderr = run(
        capsys, "demo", "--images", images, "--checkpoint", bad, "--out", tmp_path / "o", *FAST
    )
    assert (rc, stdout) == (2, "")
    assert (
        stderr.count("\n") == 1 and "bad.pt is not a PyTorch checkpoint" in stderr and "RANDOM" not in stderr
    )
