"""``masklet everything``: overlay, COCO-style JSON and per-mask PNGs, and one-line errors before the model
loads. Model runs use seeded random weights at ``--image-size 256`` (masks are meaningless; the tests
check that the outputs agree with each other)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from tests.cli_support import FAST, refuse_model_loading, run
from tests.conftest import synthetic_image

OPEN = [
    "--points-per-side",
    "4",
    "--pred-iou-thresh",
    "0",
    "--stability-thresh",
    "0",
    "--box-nms-thresh",
    "1",
]


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "scene.png"
    Image.fromarray(synthetic_image(90, 120, seed=4)).save(path)
    return path


def test_everything_writes_overlay_json_and_mask_pngs(capsys, tmp_path, photo):
    out = tmp_path / "out"
    rc, stdout, stderr = run(capsys, "everything", photo, *OPEN, "--mask-pngs", "--out", out, *FAST)
    assert (rc, stderr) == (0, ""), stderr
    assert re.fullmatch(r"scene\.png: (\d+) mask\(s\), \d+\.\d\d s \[RANDOM WEIGHTS\] -> .*\n", stdout), (
        stdout
    )
    n = int(re.match(r"scene\.png: (\d+)", stdout).group(1))
    assert n > 0
    doc = json.loads((out / "scene_everything.json").read_text())
    assert doc["images"] == [{"id": 1, "file_name": "scene.png", "height": 90, "width": 120}]
    assert doc["info"]["weights"] == "random" and doc["info"]["settings"]["points_per_side"] == 4
    anns = doc["annotations"]
    assert [a["id"] for a in anns] == list(range(1, n + 1))
    areas = [a["area"] for a in anns]
    assert areas == sorted(areas, reverse=True)  # largest first
    pngs = sorted((out / "scene_masks").iterdir())
    assert [p.name for p in pngs] == [f"{i:04d}.png" for i in range(n)]
    for ann, png in zip(anns, pngs):
        rle = {"size": ann["segmentation"]["size"], "counts": ann["segmentation"]["counts"].encode()}
        decoded = mask_utils.decode(rle).astype(bool)
        with Image.open(png) as im:
            np.testing.assert_array_equal(np.asarray(im) == 255, decoded)
        assert ann["area"] == int(decoded.sum()) and ann["image_id"] == 1 and ann["category_id"] == 1
        assert len(ann["bbox"]) == 4 and len(ann["point_coords"]) == 1
        assert ann["stability_score"] is None or 0 <= ann["stability_score"] <= 1
    with Image.open(out / "scene_everything.png") as overlay:
        assert overlay.size == (120, 90) and overlay.mode == "RGB"


def test_without_mask_pngs_only_overlay_and_json(capsys, tmp_path, photo):
    out = tmp_path / "out"
    rc, _, _ = run(capsys, "everything", photo, *OPEN, "--crop-layers", "1", "--out", out, *FAST)
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["scene_everything.json", "scene_everything.png"]
    doc = json.loads((out / "scene_everything.json").read_text())
    assert doc["info"]["settings"]["crop_n_layers"] == 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["missing.png"], "no such image file"),
        (["{photo}", "--points-per-side", "0"], "--points-per-side must be an integer >= 1, got 0"),
        (
            ["{photo}", "--pred-iou-thresh", "2"],
            r"--pred-iou-thresh must be a number in \[0.0, 1.0\], got 2.0",
        ),
        (["{photo}", "--crop-layers", "8"], r"the image \(120x90\) is too small for --crop-layers 8"),
        (["{photo}", "--points-per-batch", "0"], "--points-per-batch must be an integer >= 1"),
    ],
    ids=["no image", "zero points", "threshold above 1", "tiny image for the crops", "zero batch"],
)
def test_errors_are_one_line_before_the_model_loads(argv, message, capsys, tmp_path, photo, monkeypatch):
    refuse_model_loading(monkeypatch, "the settings")
    args = [a.format(photo=photo) for a in argv]
    rc, stdout, stderr = run(capsys, "everything", *args, "--out", tmp_path / "out", *FAST)
    assert (rc, stdout) == (2, "")
    assert stderr.count("\n") == 1 and stderr.startswith("masklet everything: error: ")
    assert re.search(message, stderr), stderr
    assert not (tmp_path / "out").exists()


def test_progress_bar_advances_one_batch_of_points_at_a_time(capsys, tmp_path, photo, monkeypatch):
    import tqdm

    seen = []

    class Bar:  # records what the command shows (the real bar is off when stderr is not a terminal)
        def __init__(self, *args, total=None, unit=None, **kwargs):
            seen.append((total, unit))
            self.n = 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, k):
            self.n += k
            seen.append(self.n)

    monkeypatch.setattr(tqdm, "tqdm", Bar)
    out = tmp_path / "out"
    # 4 x 4 = 16 points in batches of 5: 5, 5, 5, 1
    args = [*OPEN, "--points-per-batch", "5", "--out", out, *FAST]
    rc, _, stderr = run(capsys, "everything", photo, *args)
    assert rc == 0, stderr
    assert seen == [(16, "point"), 5, 10, 15, 16]
