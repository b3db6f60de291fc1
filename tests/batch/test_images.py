"""``batch boxes`` (COCO json and YOLO labels in; COCO RLE and YOLO-seg out) and ``batch everything``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from masklet.batch import BatchInputError, EverythingJob, ModelSpec, box_images, segment_everything
from masklet.io.masks import decode_rle
from masklet.io.polygons import polygons_to_mask
from tests.batch.helpers import MODEL, statuses

GENERATOR = {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}


@pytest.fixture(scope="module")
def coco_run(image_data, tmp_path_factory) -> Path:
    images, coco, _ = image_data
    out = tmp_path_factory.mktemp("coco_run") / "out"
    summary = box_images(images, coco, out, model=MODEL, threads_per_worker=1, progress=False)
    assert summary.ok, summary.lines()
    return out


def _largest_part(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a mask with its holes filled (what a polygon outlines)."""
    ndimage = pytest.importorskip("scipy.ndimage")
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3)))
    sizes = np.bincount(labels.ravel())[1:]
    return ndimage.binary_fill_holes(labels == 1 + int(np.argmax(sizes)))


def _yolo_polygon(line: str, h: int, w: int) -> tuple[int, np.ndarray]:
    values = line.split()
    xy = np.asarray(values[1:], np.float64).reshape(-1, 2) * [w, h]
    return int(values[0]), xy


def test_coco_boxes_keep_their_annotations_and_get_rle_masks(image_data, coco_run):
    _, coco, _ = image_data
    given = json.loads(coco.read_text())
    got = json.loads((coco_run / "annotations.json").read_text())
    assert got["categories"] == given["categories"]
    assert [(i["id"], i["file_name"], i["height"], i["width"]) for i in got["images"]] == [
        (i["id"], i["file_name"], i["height"], i["width"]) for i in given["images"]
    ]
    assert [a["id"] for a in got["annotations"]] == [a["id"] for a in given["annotations"]]
    for ann, src in zip(got["annotations"], given["annotations"]):
        assert ann["bbox"] == src["bbox"] and ann["image_id"] == src["image_id"]
        mask = decode_rle(ann["segmentation"])
        assert mask.shape == (48, 64) and ann["area"] == int(mask.sum())
        assert 0.0 <= ann["score"] <= 1.5
    assert (coco_run / "classes.txt").read_text() == "object\n"


def test_yolo_seg_labels_outline_the_largest_part_of_each_mask(coco_run):
    got = json.loads((coco_run / "annotations.json").read_text())
    for image in got["images"]:
        anns = [a for a in got["annotations"] if a["image_id"] == image["id"]]
        lines = (coco_run / "labels" / f"{Path(image['file_name']).stem}.txt").read_text().splitlines()
        assert len(lines) == sum(a["area"] > 0 for a in anns)
        for line, ann in zip(lines, [a for a in anns if a["area"] > 0]):
            cls, xy = _yolo_polygon(line, image["height"], image["width"])
            assert cls == 0  # the index of category 1 among the sorted category ids
            inside = polygons_to_mask([xy.ravel()], image["height"], image["width"])
            part = _largest_part(decode_rle(ann["segmentation"]))
            assert (inside & part).sum() >= 0.7 * (inside | part).sum()


def test_yolo_labels_in_give_the_same_masks_as_coco_in(image_data, coco_run, tmp_path):
    images, _, yolo = image_data
    summary = box_images(images, yolo, tmp_path / "out", model=MODEL, threads_per_worker=1, progress=False)
    assert summary.ok and summary.masks > 0
    got = json.loads((tmp_path / "out" / "annotations.json").read_text())
    ref = json.loads((coco_run / "annotations.json").read_text())
    assert got["categories"] == [{"id": 0, "name": "shape"}]
    assert [a["id"] for a in got["annotations"]] == list(range(1, len(ref["annotations"]) + 1))
    for a, b in zip(got["annotations"], ref["annotations"]):
        assert np.allclose(a["bbox"], b["bbox"], atol=0.01)
        # the boxes went through 5-decimal YOLO text: the masks agree closely, not always exactly
        m, n = decode_rle(a["segmentation"]), decode_rle(b["segmentation"])
        assert (m ^ n).sum() <= max(4, 0.05 * (m | n).sum())


def test_bad_labels_and_images_fail_alone(image_data, tmp_path):
    images, _, yolo = image_data
    labels = tmp_path / "labels"
    labels.mkdir()
    for txt in yolo.glob("*.txt"):
        (labels / txt.name).write_text(txt.read_text())
    (labels / "000001.txt").write_text("0 0.5 0.5 0.2\n")
    own = tmp_path / "images"
    own.mkdir()
    for img in images.glob("*.jpg"):
        (own / img.name).write_bytes(img.read_bytes())
    (own / "000002.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    summary = box_images(own, labels, tmp_path / "out", model=MODEL, threads_per_worker=1, progress=False)
    assert not summary.ok and summary.done == 1
    reasons = dict(summary.failed)
    expected = "expected 'class cx cy w h' (a class id >= 0 and 4 numbers in 0..1), got '0 0.5 0.5 0.2'"
    assert reasons["000001"] == f"000001.txt line 1: {expected}"
    assert reasons["000002"].startswith("could not read ") and "\n" not in reasons["000002"]
    doc = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert [i["file_name"] for i in doc["images"]] == ["000000.jpg"]
    assert sorted(p.name for p in (tmp_path / "out" / "labels").glob("*.txt")) == ["000000.txt"]
    assert statuses(tmp_path / "out")["000001"]["state"] == "failed"


def test_everything_writes_one_sa1b_json_per_image(image_data, tmp_path):
    images = image_data[0]
    summary = segment_everything(
        images, tmp_path / "out", model=MODEL, generator=GENERATOR, threads_per_worker=1, progress=False
    )
    assert summary.ok and summary.done == 3 and summary.masks > 0
    for i, name in enumerate(["000000", "000001", "000002"]):
        doc = json.loads((tmp_path / "out" / f"{name}.json").read_text())
        assert doc["image"] == {"image_id": i + 1, "file_name": f"{name}.jpg", "height": 48, "width": 64}
        assert doc["settings"]["points_per_side"] == 4
        for k, ann in enumerate(doc["annotations"]):
            assert ann["id"] == k + 1
            assert set(ann) == {
                "id",
                "segmentation",
                "bbox",
                "area",
                "predicted_iou",
                "stability_score",
                "point_coords",
                "crop_box",
            }
            assert int(decode_rle(ann["segmentation"]).sum()) == ann["area"]


@pytest.mark.parametrize(
    "generator, message",
    [
        ({"points_per_side": 0}, "points_per_side"),
        ({"points_side": 4}, "unknown generator setting(s) ['points_side']"),
    ],
)
def test_bad_generator_settings_stop_before_the_model_is_built(
    image_data, tmp_path, monkeypatch, generator, message
):
    monkeypatch.setattr(ModelSpec, "build", lambda self: pytest.fail("the model was built"))
    with pytest.raises(BatchInputError, match=None) as info:
        segment_everything(image_data[0], tmp_path / "out", model=MODEL, generator=generator)
    assert message in str(info.value)
    assert not (tmp_path / "out").exists()


def test_everything_job_lists_images_in_sub_folders(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/b/x.jpg", "a/y.png", "z.JPG", ".hidden.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    items, _ = EverythingJob(str(tmp_path)).discover()
    assert [it.key for it in items] == ["a/b/x", "a/y", "z"]
