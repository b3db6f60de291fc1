"""Benchmark folder layouts: DAVIS, SA-V, MOSE and YouTube-VOS read correctly; bad input named clearly."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from masklet.eval.layouts import EvalInputError, open_dataset, open_predictions
from masklet.io.masks import MaskFileError, read_id_png

from .vos_data import rect, save_ids, two_objects, write_davis, write_id_video, write_sav, write_ytvos


def test_davis_layout(tmp_path):
    ids = two_objects(4)
    ids[2][0:2, 0:3] = 255  # void
    write_davis(tmp_path, {"cows": ids, "dogs": two_objects(3)}, split=["cows"])
    ds = open_dataset(tmp_path, "davis")
    assert ds.videos() == ["cows"]  # ImageSets/2017/val.txt by default
    listed = tmp_path / "ImageSets" / "2017" / "val.txt"
    assert open_dataset(tmp_path, "davis", split=listed).videos() == ["cows"]
    assert ds.frames("cows") == ["00000", "00001", "00002", "00003"]
    assert [p.name for p in ds.image_paths("cows")] == ["00000.jpg", "00001.jpg", "00002.jpg", "00003.jpg"]
    gt = ds.gt("cows")
    assert not gt.per_object and len(gt) == 4 and list(gt)[0] == "00000"
    np.testing.assert_array_equal(gt.ids("00002"), ids[2])
    assert gt.ids("00002").dtype == np.uint8
    frame = gt["00001"]
    assert sorted(frame) == [1, 2]
    np.testing.assert_array_equal(frame[1], ids[1] == 1)
    assert sorted(gt["00002"]) == [1, 2, 255]  # void is kept as its id; scoring decides what it means
    assert gt.object_ids() == [1, 2, 255]
    np.testing.assert_array_equal(gt.object_masks(2, ["00000", "00003"]), ids[[0, 3]] == 2)
    # the annotation folder itself works as the root too (every video, no split)
    assert open_dataset(tmp_path / "Annotations" / "480p", "davis").videos() == ["cows", "dogs"]


def test_sav_layout_with_overlapping_objects_and_sparse_frames(tmp_path):
    person, hand = rect(12, 16, 2, 10, 2, 10), rect(12, 16, 6, 8, 6, 9)  # the hand lies on the person
    objects = {0: {"00000": person, "00004": person}, 1: {"00004": hand, "00008": hand}}
    write_sav(tmp_path, {"sav_001": objects})
    (tmp_path / "sav_val.txt").write_text("sav_001\n")
    ds = open_dataset(tmp_path, "sav", split="val")
    assert ds.videos() == ["sav_001"]
    gt = ds.gt("sav_001")
    assert gt.per_object and gt.object_ids() == [0, 1]
    assert gt.frames() == ["00000", "00004", "00008"]
    assert gt.object_frames(0) == ["00000", "00004"] and gt.object_frames(1) == ["00004", "00008"]
    both = gt["00004"]
    assert sorted(both) == [0, 1] and (both[0] & both[1]).sum() == hand.sum()  # overlap kept
    np.testing.assert_array_equal(gt.object_masks(1, ["00004", "00008"]), np.stack([hand, hand]))
    with pytest.raises(EvalInputError, match="no id maps"):
        gt.ids("00000")


def test_mose_and_ytvos_layouts(tmp_path):
    write_id_video(tmp_path / "mose" / "Annotations" / "v1", two_objects(3))
    ds = open_dataset(tmp_path / "mose", "mose")
    assert ds.videos() == ["v1"] and ds.frames("v1") == ["00000", "00001", "00002"]
    write_ytvos(tmp_path / "yt", {"abc": two_objects(3)})
    yt = open_dataset(tmp_path / "yt", "ytvos")
    assert yt.frames("abc") == ["00000", "00005", "00010"]  # annotated every 5th frame
    assert yt.meta()["videos"]["abc"]["objects"]["1"]["frames"] == ["00000", "00005", "00010"]
    np.testing.assert_array_equal(yt.gt("abc").ids("00010"), two_objects(3)[2])


def test_png_modes(tmp_path):
    ids = two_objects(1)[0]
    for mode in ("P", "L", "RGB"):  # palette, gray and gray written as RGB all give the ids
        np.testing.assert_array_equal(read_id_png(save_ids(tmp_path / f"{mode}.png", ids, mode)), ids)
    Image.fromarray(ids > 0).save(tmp_path / "bits.png")  # mode 1
    np.testing.assert_array_equal(read_id_png(tmp_path / "bits.png"), (ids > 0).astype(np.uint8))
    Image.fromarray(ids.astype(np.uint16) * 300).save(tmp_path / "i16.png")
    assert read_id_png(tmp_path / "i16.png").max() == 600


def test_coloured_or_transparent_pngs_are_refused(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[1, 1] = (128, 0, 0)  # DAVIS's red for object 1, stored as a colour
    Image.fromarray(rgb).save(tmp_path / "colour.png")
    with pytest.raises(MaskFileError, match="RGB PNG with colours.*indexed"):
        read_id_png(tmp_path / "colour.png")
    rgba = np.zeros((4, 4, 4), np.uint8)
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    with pytest.raises(MaskFileError, match="transparent"):
        read_id_png(tmp_path / "alpha.png")
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(MaskFileError, match="not a readable PNG"):
        read_id_png(tmp_path / "junk.png")


def test_unreadable_ground_truth_pngs_are_eval_input_errors(tmp_path):
    write_davis(tmp_path / "d", {"v": two_objects(2)})
    rgb = np.zeros((24, 32, 3), np.uint8)
    rgb[1, 1] = (128, 0, 0)
    Image.fromarray(rgb).save(tmp_path / "d" / "Annotations" / "480p" / "v" / "00001.png")
    gt = open_dataset(tmp_path / "d").gt("v")
    assert gt.ids("00000").max() == 2
    with pytest.raises(EvalInputError, match="00001.png: an RGB PNG with colours"):
        gt.ids("00001")


def test_bad_layouts_are_named(tmp_path):
    write_sav(tmp_path / "sav", {"v": {0: {"00000": rect(4, 4, 0, 2, 0, 2)}}}, annotations=False)
    with pytest.raises(EvalInputError, match="per-object layout; use layout sav"):
        open_predictions(tmp_path / "sav", "davis").video("v")
    write_id_video(tmp_path / "ids" / "v", two_objects(2))
    with pytest.raises(EvalInputError, match="id-map layout"):
        open_predictions(tmp_path / "ids", "sav").video("v")
    with pytest.raises(EvalInputError, match="for video 'w' not found"):
        open_predictions(tmp_path / "ids", "davis").video("w")
    with pytest.raises(EvalInputError, match="unknown layout 'kitti'"):
        open_dataset(tmp_path / "ids", "kitti")
    with pytest.raises(EvalInputError, match="ground-truth folder .* not found"):
        open_dataset(tmp_path / "nowhere", "davis")


def test_bad_dataset_roots_and_splits(tmp_path):
    (tmp_path / "JPEGImages" / "480p" / "v").mkdir(parents=True)
    with pytest.raises(EvalInputError, match="has frames but no Annotations folder"):
        open_dataset(tmp_path, "davis")
    write_davis(tmp_path / "d", {"cows": two_objects(3)}, split=["cows", "bears"])
    with pytest.raises(EvalInputError, match="1 video.* without annotations.*bears"):
        open_dataset(tmp_path / "d", "davis")
    with pytest.raises(EvalInputError, match="split 'test' not found"):
        open_dataset(tmp_path / "d", "davis", split="test")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvalInputError, match="no annotated videos"):
        open_dataset(tmp_path / "empty", "mose")


def test_frames_of_different_sizes_and_multi_object_sav_pngs(tmp_path):
    folder = tmp_path / "v"
    save_ids(folder / "00000.png", np.zeros((4, 6)))
    save_ids(folder / "00001.png", np.zeros((5, 6)))
    masks = open_predictions(tmp_path, "mose").video("v")
    with pytest.raises(EvalInputError, match="00001.png is 6x5 but 00000.png of the same video is 6x4"):
        masks.ids_stack(["00000", "00001"])
    bad = np.zeros((4, 4), np.uint8)
    bad[0, 0], bad[1, 1] = 1, 2
    save_ids(tmp_path / "sav" / "v" / "000" / "00000.png", bad, "L")
    with pytest.raises(EvalInputError, match="3 different values.*one object"):
        open_predictions(tmp_path / "sav", "sav").video("v").object_masks(0, ["00000"])
