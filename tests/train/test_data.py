"""Training data: the three readers, clip sampling, consistent augmentation, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from masklet.io.preprocess import preprocess_video_frame
from masklet.train.augment import AugParams, augment_frames, augment_masks, identity
from masklet.train.clips import ClipSampler
from masklet.train.config import AugmentConfig, SourceConfig
from masklet.train.data import DataError, open_source
from masklet.train.setup import build_data
from tests.train.helpers import SIZE, build, tiny_vos, write_coco, write_sav


@pytest.fixture(scope="module")
def vos(tmp_path_factory):
    return tiny_vos(tmp_path_factory.mktemp("vos"))


def davis(root, **kw) -> SourceConfig:
    return SourceConfig(kind="davis", root=str(root), **kw)


def test_davis_source(vos):
    src = open_source(davis(vos, split="train"))
    assert [it.name for it in src.items] == ["synth_000", "synth_001"]
    item = src.items[0]
    assert item.size == SIZE and item.num_frames == 6 and item.visible.shape == (6, len(item.object_ids))
    frame, masks = src.frame(0, 2), src.masks(0, 2, item.object_ids)
    assert frame.shape == (*SIZE, 3) and frame.dtype == np.uint8
    assert masks.shape == (len(item.object_ids), *SIZE) and masks.dtype == bool
    assert (masks.any(axis=(1, 2)) == item.visible[2]).all()
    assert len(open_source(davis(vos))) == 3  # no split: every video


def copy_vos(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_missing_annotation_files(vos, tmp_path):
    root = copy_vos(vos, tmp_path / "d")
    (root / "Annotations/480p/synth_001/00003.png").unlink()
    with pytest.raises(
        DataError, match=r"video 'synth_001': 1 of 6 frames have no annotation file .*00003.png"
    ):
        open_source(davis(root))
    # the run stops at setup, naming the data source
    with pytest.raises(DataError, match=r"data.sources\[0\] \(davis .*\): video 'synth_001'"):
        build_data(build(root, data={"sources": [{"kind": "davis", "root": str(root)}]}))


def test_mismatched_frame_and_mask_sizes(vos, tmp_path):
    root = copy_vos(vos, tmp_path / "d")
    png = root / "Annotations/480p/synth_000/00002.png"
    Image.open(png).resize((SIZE[1] // 2, SIZE[0] // 2)).save(png)
    with pytest.raises(DataError, match=r"annotation 00002.png is 48x32 but frame 00002.jpg is 96x64"):
        open_source(davis(root))


def test_empty_masks(vos, tmp_path):
    root = copy_vos(vos, tmp_path / "d")
    for png in (root / "Annotations/480p/synth_002").glob("*.png"):
        im = Image.open(png)
        empty = Image.fromarray(np.zeros(SIZE, np.uint8), mode="L").convert("P")
        empty.putpalette(im.getpalette())
        empty.save(png)
    with pytest.raises(DataError, match=r"video 'synth_002': every annotation .* is empty.*skip_empty: true"):
        open_source(davis(root))
    assert [it.name for it in open_source(davis(root, skip_empty=True)).items] == ["synth_000", "synth_001"]


def test_missing_split_and_folders(tmp_path, vos):
    with pytest.raises(DataError, match="not a DAVIS-layout dataset"):
        open_source(davis(tmp_path))
    with pytest.raises(DataError, match="split 'nope' not found"):
        open_source(davis(vos, split="nope"))


def test_sav_source(tmp_path):
    write_sav(tmp_path, "vid_a", frames=3, stride=4)
    src = open_source(SourceConfig(kind="sav", root=str(tmp_path), frame_stride=4))
    item = src.items[0]
    assert item.name == "vid_a" and item.object_ids == (1, 2) and item.num_frames == 3
    assert src.masks(0, 2, (1, 2)).shape == (2, *SIZE)
    assert src.frame(0, 1).shape == (*SIZE, 3)
    with pytest.raises(DataError, match=r"3 annotated frames every 6 frames need 13 frames but .* has 12"):
        open_source(SourceConfig(kind="sav", root=str(tmp_path), frame_stride=6))


def test_sav_bad_input(tmp_path):
    path = write_sav(tmp_path, "vid_b", frames=2)
    data = json.loads(path.read_text())
    data["masklet"][1][0]["size"] = [SIZE[0], SIZE[1] + 1]
    data["masklet"][1][0]["counts"] = [SIZE[0] * (SIZE[1] + 1)]
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="masks are .* but the frames of"):
        open_source(SourceConfig(kind="sav", root=str(tmp_path), frame_stride=1))
    path.write_text(json.dumps({"video_id": "vid_b"}))
    with pytest.raises(DataError, match="not an SA-V annotation json"):
        open_source(SourceConfig(kind="sav", root=str(tmp_path), frame_stride=1))
    with pytest.raises(DataError, match="no \\*_manual.json annotation files"):
        open_source(SourceConfig(kind="sav", root=str(tmp_path / "vid_b"), frame_stride=1))


def coco_cfg(root, json_path, **kw):
    return SourceConfig(kind="coco", root=str(root), annotations=str(json_path), **kw)


def test_coco_source_rle_and_polygons(tmp_path):
    path = write_coco(tmp_path, polygons=True)
    src = open_source(coco_cfg(tmp_path, path))
    assert [it.name for it in src.items] == ["im0.jpg", "im1.jpg"]
    masks = src.masks(0, 0, (1, 2))
    assert masks[0][10:30, 10:40].all() and not masks[0][:9].any()  # the polygon
    assert src.items[0].num_frames == 1


def test_coco_bad_input(tmp_path):
    path = write_coco(tmp_path, empty=True)
    with pytest.raises(DataError, match=r"annotation 4 has an empty mask.*skip_empty"):
        open_source(coco_cfg(tmp_path, path))
    assert len(open_source(coco_cfg(tmp_path, path, skip_empty=True)).segs[1]) == 1
    Image.new("RGB", (10, 10)).save(tmp_path / "im0.jpg")
    with pytest.raises(DataError, match="image im0.jpg is 10x10 but the json says 96x64"):
        open_source(coco_cfg(tmp_path, path, skip_empty=True))
    (tmp_path / "im0.jpg").unlink()
    with pytest.raises(DataError, match="im0.jpg listed as 'im0.jpg' not found"):
        open_source(coco_cfg(tmp_path, path))
    with pytest.raises(DataError, match="annotation file .* not found"):
        open_source(coco_cfg(tmp_path, tmp_path / "nope.json"))


def test_identity_augmentation_is_the_inference_preprocessing(vos):
    src = open_source(davis(vos))
    frame = src.frame(0, 0)
    ours = augment_frames([frame], 128, identity())
    assert torch.equal(ours, preprocess_video_frame(frame, 128, "cpu"))


def test_augmentation_moves_frames_and_masks_together():
    # a frame whose red channel is the mask: after any warp the mask is where the frame is red
    mask = np.zeros((1, 1, 64, 96), bool)
    mask[0, 0, 20:44, 30:70] = True
    frame = np.zeros((64, 96, 3), np.uint8)
    frame[mask[0, 0]] = (255, 0, 0)
    p = AugParams(flip=True, scale=1.2, angle=8.0, shear=4.0, tx=0.05, ty=-0.04)
    img = augment_frames([frame], 128, p)[0]
    warped = augment_masks(mask, 128, p)[0, 0]
    red = img[0] > 0.5  # normalised red channel: far above 0 where the frame is red
    assert (red ^ warped).float().mean() < 0.01
    assert (warped != augment_masks(mask, 128, identity())[0, 0]).any()


def test_clip_sampler(vos):
    src = open_source(davis(vos, split="train"))
    sampler = ClipSampler([src], 128, clip_frames=4, max_objects=2, augment=AugmentConfig(), variants=2)
    rng = np.random.default_rng(0)
    for _ in range(20):
        clip = sampler.sample(rng)
        assert clip.masks.shape[1:] == (len(clip.spec.objects), 128, 128)
        assert 1 <= clip.num_frames <= 4 and clip.images.shape == (clip.num_frames, 3, 128, 128)
        assert clip.visible[0].all()
        assert clip.spec.variant in (0, 1)
        if clip.spec.variant == 0:
            assert clip.spec.aug == identity()
    # a variant's augmentation is fixed per video
    assert sampler.variant_params(0, 1, 1) == sampler.variant_params(0, 1, 1) != identity()
