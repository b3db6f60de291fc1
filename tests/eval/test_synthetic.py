"""Synthetic VOS / image datasets: determinism, DAVIS / SA-V / COCO layouts, and the events they promise."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from masklet.eval.synthetic import (
    davis_palette,
    generate_video,
    make_image_dataset,
    make_vos_dataset,
    to_sav_layout,
)
from masklet.io.masks import decode_rle, mask_to_box_xywh

SMALL = {"num_videos": 3, "num_frames": 10, "size": (64, 96)}


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_vos_dataset(tmp_path_factory.mktemp("davis"), seed=5, **SMALL)


def test_same_seed_same_bytes_different_seed_differs(dataset, tmp_path):
    again = make_vos_dataset(tmp_path / "again", seed=5, **SMALL)
    other = make_vos_dataset(tmp_path / "other", seed=6, **SMALL)
    first = _digest(dataset)
    assert first == _digest(again)
    other_digest = _digest(other)
    assert first.keys() == other_digest.keys()
    frames = [k for k in first if k.startswith("JPEGImages")]
    assert all(first[k] != other_digest[k] for k in frames)


def test_davis_layout_readable(dataset):
    names = (dataset / "ImageSets" / "2017" / "val.txt").read_text().split()
    assert names == ["synth_000", "synth_001", "synth_002"]
    assert not (dataset / "ImageSets" / "2017" / "train.txt").exists()
    palette = davis_palette().ravel().tolist()
    for name in names:
        jpgs = sorted((dataset / "JPEGImages" / "480p" / name).glob("*.jpg"))
        pngs = sorted((dataset / "Annotations" / "480p" / name).glob("*.png"))
        assert [p.name for p in jpgs] == [f"{t:05d}.jpg" for t in range(10)]
        assert [p.stem for p in pngs] == [p.stem for p in jpgs]
        for jpg, png in zip(jpgs, pngs):
            image, ann = Image.open(jpg), Image.open(png)
            assert image.mode == "RGB" and image.size == (96, 64)
            assert ann.mode == "P" and ann.size == (96, 64)
            assert ann.getpalette()[: 3 * 256] == palette
            ids = np.unique(np.asarray(ann))
            assert ids.min() >= 0 and ids.max() <= 3 and 255 not in ids


def test_palette_pngs_hold_the_rendered_labels(dataset):
    video = generate_video(1, seed=5, num_frames=10, size=(64, 96))
    for t in range(10):
        ann = np.asarray(Image.open(dataset / "Annotations" / "480p" / "synth_001" / f"{t:05d}.png"))
        assert np.array_equal(ann, video.labels[t])
    frame = np.asarray(Image.open(dataset / "JPEGImages" / "480p" / "synth_001" / "00000.jpg"))
    assert np.abs(frame.astype(int) - video.frames[0]).mean() < 12  # only JPEG loss


def test_video_does_not_depend_on_the_number_of_videos():
    a = generate_video(2, seed=9, num_frames=6, size=(48, 64))
    b = generate_video(2, seed=9, num_frames=6, size=(48, 64))
    c = generate_video(1, seed=9, num_frames=6, size=(48, 64))
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.frames, c.frames)


def test_every_video_has_an_object_that_leaves_and_comes_back():
    for index in range(6):
        video = generate_video(index, seed=0, num_frames=16, size=(96, 128))
        visible = [(video.labels == k).any(axis=(1, 2)) for k in range(1, video.num_objects + 1)]
        sweep = visible[video.roles.index("sweep")]
        gone = np.flatnonzero(~sweep)
        assert sweep[0] and gone.size > 0 and sweep[gone[-1] + 1 :].any(), video.roles


def test_occlusion_labels_are_the_visible_part_of_amodal_masks():
    hidden = 0
    for index in range(4):
        video = generate_video(index, seed=0, num_frames=16, size=(96, 128), objects=(2, 3))
        for k in range(video.num_objects):
            visible = video.labels == k + 1
            assert not (visible & ~video.amodal[:, k]).any()
            hidden += int((video.amodal[:, k] & ~visible).sum())
    assert hidden > 0  # some object is, at some point, behind another one


def test_late_objects_enter_after_the_first_frame():
    video = generate_video(0, seed=1, num_frames=16, size=(96, 128), objects=(3, 3), late_objects=1.0)
    assert sorted(video.roles) == ["late", "late", "sweep"]
    assert video.roles[0] == "sweep"  # objects present at frame 0 get the smallest ids
    for k in (2, 3):
        present = (video.labels == k).any(axis=(1, 2))
        assert not present[0] and present.any()
    assert (video.labels[0] == 1).any()
    none_late = generate_video(0, seed=1, num_frames=16, size=(96, 128), objects=(3, 3), late_objects=0.0)
    assert all((none_late.labels[0] == k).any() for k in (1, 2, 3))


def test_sizes_and_counts():
    video = generate_video(0, seed=3, num_frames=5, size=(40, 120), objects=(3, 3), late_objects=0.0)
    assert video.frames.shape == (5, 40, 120, 3) and video.frames.dtype == np.uint8
    assert video.labels.shape == (5, 40, 120) and video.amodal.shape == (5, 3, 40, 120)
    assert video.num_objects == 3 and video.name == "synth_000"


def test_void_band_and_train_split(tmp_path):
    root = make_vos_dataset(
        tmp_path / "void", num_videos=3, num_frames=3, size=(64, 96), seed=2, void_width=2, train_videos=2
    )
    sets = root / "ImageSets" / "2017"
    assert (sets / "train.txt").read_text().split() == ["synth_000", "synth_001"]
    assert (sets / "val.txt").read_text().split() == ["synth_002"]
    labels = generate_video(0, seed=2, num_frames=3, size=(64, 96)).labels[0]
    ann = np.asarray(Image.open(root / "Annotations" / "480p" / "synth_000" / "00000.png"))
    void = ann == 255
    assert np.array_equal(ann[~void], labels[~void])  # void only replaces labels
    assert void[_near_edge(labels, 0)].all()  # both sides of every border ...
    assert not (void & ~_near_edge(labels, 1)).any()  # ... grown by void_width - 1 = 1 pixel


def _near_edge(labels: np.ndarray, grow: int) -> np.ndarray:
    """Pixels next to a different label (4-neighbours), grown by ``grow`` pixels (3 x 3 steps)."""
    edge = np.zeros(labels.shape, bool)
    edge[:-1] |= labels[1:] != labels[:-1]
    edge[1:] |= labels[1:] != labels[:-1]
    edge[:, :-1] |= labels[:, 1:] != labels[:, :-1]
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    h, w = labels.shape
    for _ in range(grow):
        padded = np.pad(edge, 1)
        edge = np.zeros_like(edge)
        for dy in range(3):
            for dx in range(3):
                edge |= padded[dy : dy + h, dx : dx + w]
    return edge


def test_sav_layout_has_one_folder_per_object(dataset, tmp_path):
    out = to_sav_layout(dataset, tmp_path / "sav")
    assert (out / "sav_val.txt").read_text().split() == ["synth_000", "synth_001", "synth_002"]
    video = generate_video(1, seed=5, num_frames=10, size=(64, 96))
    obj_dirs = sorted((out / "Annotations_6fps" / "synth_001").iterdir())
    assert [d.name for d in obj_dirs] == [f"{k:03d}" for k in range(1, video.num_objects + 1)]
    for k, obj_dir in enumerate(obj_dirs, start=1):
        for t in range(10):
            mask = np.asarray(Image.open(obj_dir / f"{t:05d}.png"))
            assert np.array_equal(mask, (video.labels[t] == k).astype(np.uint8))
    src = dataset / "JPEGImages" / "480p" / "synth_001" / "00003.jpg"
    assert (out / "JPEGImages_24fps" / "synth_001" / "00003.jpg").read_bytes() == src.read_bytes()


def test_image_dataset_coco_annotations(tmp_path):
    images_dir, coco_json = make_image_dataset(tmp_path / "a", num_images=4, seed=1, size=(64, 80))
    _, again = make_image_dataset(tmp_path / "b", num_images=4, seed=1, size=(64, 80))
    assert coco_json.read_bytes() == again.read_bytes()
    coco = json.loads(coco_json.read_text())
    assert [im["file_name"] for im in coco["images"]] == [f"{i:06d}.jpg" for i in range(4)]
    assert len(coco["annotations"]) >= 4 and coco["categories"][0]["id"] == 1
    for ann in coco["annotations"]:
        mask = decode_rle(ann["segmentation"])
        assert mask.shape == (64, 80) and int(mask.sum()) == ann["area"] >= 16
        assert ann["bbox"] == [float(v) for v in mask_to_box_xywh(mask)]
        assert (images_dir / coco["images"][ann["image_id"] - 1]["file_name"]).is_file()
    per_image = {}
    for ann in coco["annotations"]:
        per_image.setdefault(ann["image_id"], []).append(decode_rle(ann["segmentation"]))
    for masks in per_image.values():  # visible parts never overlap
        assert np.stack(masks).sum(axis=0).max() == 1


def test_davis_palette_known_entries():
    palette = davis_palette()
    assert palette.shape == (256, 3) and palette.dtype == np.uint8
    assert palette[:5].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128]]
    assert palette[255].tolist() == [224, 224, 192]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"objects": (0, 2)}, "objects must be"),
        ({"objects": (3, 2)}, "objects must be"),
        ({"size": (16, 64)}, "size must be"),
        ({"num_frames": 0}, "num_frames must be"),
        ({"num_videos": 0}, "num_videos must be"),
        ({"train_videos": 5}, "train_videos must be"),
        ({"void_width": -1}, "void_width must be"),
        ({"late_objects": 1.5}, "late_objects is a probability"),
    ],
)
def test_bad_arguments_say_what_to_do(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_vos_dataset(tmp_path, **{"num_videos": 1, "num_frames": 2, **kwargs})


def test_sav_layout_rejects_a_folder_that_is_not_davis(tmp_path):
    with pytest.raises(ValueError, match="not a DAVIS-layout dataset"):
        to_sav_layout(tmp_path, tmp_path / "out")
