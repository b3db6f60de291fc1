"""score_folder: both official protocols on hand-made sequences with known scores, and bad input."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest

from masklet.eval.layouts import EvalInputError
from masklet.eval.score import score_folder, write_csv

from .vos_data import (
    rect,
    sav_gt_and_pred,
    save_ids,
    two_objects,
    write_davis,
    write_id_video,
    write_preds,
    write_sav,
)


@pytest.fixture
def davis(tmp_path):
    """GT: 5 frames, 2 objects; prediction = GT except object 1 lost on frame 2."""
    gt = two_objects(5)
    pred = gt.copy()
    pred[2][pred[2] == 1] = 0
    write_davis(tmp_path / "gt", {"cows": gt}, split=["cows"])
    write_preds(tmp_path / "pred", {"cows": pred, "unrelated": pred})
    return tmp_path


def test_davis_protocol_known_scores(davis):
    calls = []
    report = score_folder(davis / "pred", davis / "gt", "davis", progress=lambda *a: calls.append(a))
    assert calls == [(1, 1, "cows")]
    one, two = report.objects
    # frames 1..3 scored: object 1 has J = F = [1, 0, 1] (an empty prediction has F = 0)
    assert (one.obj_id, one.frames, one.j.mean, one.f.mean, one.j.recall) == (1, 3, 2 / 3, 2 / 3, 2 / 3)
    assert one.j.decay == -0.5  # 3 frames: mean(v[0:2]) - mean(v[2:3])
    assert (two.j.mean, two.f.mean, two.j.decay) == (1.0, 1.0, 0.0)
    s = report.summary
    assert (s.jf_mean, s.j_mean, s.f_mean) == pytest.approx((5 / 6, 5 / 6, 5 / 6))
    assert (s.j_recall, s.j_decay, s.objects, s.videos) == (pytest.approx(5 / 6), -0.25, 2, 1)
    assert report.videos[0].scores.jf_mean == pytest.approx(5 / 6)
    assert report.extra_videos == ["unrelated"] and report.warnings == []
    table = report.table()
    assert "83.3" in table and "cows" in table and "first and last frames skipped" in table
    assert "cows_1" in report.table(per_object=True)


def test_all_frames(davis):
    report = score_folder(davis / "pred", davis / "gt", "davis", skip_first_last=False)
    assert report.objects[0].j.mean == pytest.approx(0.8)  # [1, 1, 0, 1, 1]
    assert "all frames" in report.table()


def test_void_counts_as_background_unless_excluded(tmp_path):
    gt = two_objects(5)
    gt[:, 0:2, 20:24] = 255  # 8 void pixels, away from the objects
    pred = np.where(gt == 255, 1, gt)  # object 1 spills over the void
    write_davis(tmp_path / "gt", {"v": gt})
    write_preds(tmp_path / "pred", {"v": pred})
    official = score_folder(tmp_path / "pred", tmp_path / "gt", "davis")
    assert official.objects[0].j.mean == pytest.approx(64 / 72)  # the 8x8 square plus 8 wrong pixels
    assert official.objects[0].f.mean < 1
    excluded = score_folder(tmp_path / "pred", tmp_path / "gt", "davis", exclude_void=True)
    assert excluded.objects[0].j.mean == 1.0 and excluded.objects[0].f.mean == 1.0
    assert "void excluded" in excluded.table()


def late_object(n: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Object 1 everywhere; object 2 in the GT from frame 3, predicted from frame 2."""
    gt = np.zeros((n, 20, 20), np.uint8)
    gt[:, 2:8, 2:8] = 1
    gt[3:, 12:18, 12:18] = 2
    pred = gt.copy()
    pred[2, 12:18, 12:18] = 2
    return gt, pred


def test_sav_protocol_scores_objects_from_their_first_appearance(tmp_path):
    gt, pred = late_object()
    pred[1, 0, 19] = 7  # an id the ground truth never has
    write_id_video(tmp_path / "gt" / "Annotations" / "v", gt)
    write_preds(tmp_path / "pred", {"v": pred})
    report = score_folder(tmp_path / "pred", tmp_path / "gt", "mose")
    assert report.protocol == "sav"
    one, two = report.objects
    assert (one.frames, one.j.mean) == (4, 1.0)
    # object 2 counts from frame 2 (first predicted), frames 2..4: J = F = [0, 1, 1]
    assert (two.frames, two.j.mean, two.f.mean) == (3, 2 / 3, 2 / 3)
    assert report.summary.jf_mean == pytest.approx(5 / 6)
    assert any("predicted ids [7]" in w and "ignored" in w for w in report.warnings)


def test_davis_protocol_takes_objects_from_the_first_frame(tmp_path):
    gt, pred = late_object()
    write_id_video(tmp_path / "gt" / "v", gt)
    write_preds(tmp_path / "pred", {"v": np.where(pred == 2, 0, pred)})
    report = score_folder(tmp_path / "pred", tmp_path / "gt", "mose", protocol="davis")
    assert [o.obj_id for o in report.objects] == [1]
    assert any("ids [2] are not in its first frame" in w for w in report.warnings)
    write_preds(tmp_path / "pred", {"v": pred})
    with pytest.raises(EvalInputError) as err:
        score_folder(tmp_path / "pred", tmp_path / "gt", "mose", protocol="davis")
    assert re.search(r"00002.png holds id 2 but video 'v' has 1 object.*1\.\.1", str(err.value))
    assert str(err.value).endswith(
        "the davis protocol scores only the objects of the first annotated frame. If objects appear after "
        "it, score with the sav protocol (--protocol sav, protocol='sav')"
    )


def test_davis_protocol_scores_missing_predicted_ids_as_empty(tmp_path):
    gt = two_objects(4)
    write_id_video(tmp_path / "gt" / "v", gt)
    write_preds(tmp_path / "pred", {"v": np.where(gt == 2, 0, gt)})
    report = score_folder(tmp_path / "pred", tmp_path / "gt", "davis")
    assert [(o.obj_id, o.j.mean, o.f.mean) for o in report.objects] == [(1, 1.0, 1.0), (2, 0.0, 0.0)]


def test_sav_layout_per_object_frames(tmp_path):
    sav_gt_and_pred(tmp_path)
    report = score_folder(tmp_path / "pred", tmp_path / "gt", "sav")
    person, hand = report.objects
    assert (person.obj_id, person.frames, person.j.mean) == (0, 3, 1.0)  # 00004, 00008, 00012
    assert (hand.obj_id, hand.frames, hand.j.mean, hand.f.mean) == (1, 2, 0.5, 0.5)  # 00008, 00012
    assert report.summary.jf_mean == 0.75
    assert "v_000" in report.table(per_object=True)


def test_sav_layout_errors(tmp_path):
    sav_gt_and_pred(tmp_path, lose_frame=False)
    (tmp_path / "pred" / "v" / "001" / "00012.png").unlink()
    with pytest.raises(
        EvalInputError, match=r"video 'v', object 001, lack 1 of the 2 evaluated frames: 00012"
    ):
        score_folder(tmp_path / "pred", tmp_path / "gt", "sav")
    for f in (tmp_path / "pred" / "v" / "001").iterdir():
        f.unlink()
    (tmp_path / "pred" / "v" / "001").rmdir()
    with pytest.raises(EvalInputError, match="lack the object folder.*001"):
        score_folder(tmp_path / "pred", tmp_path / "gt", "sav")


def test_sav_object_empty_in_every_evaluated_frame(tmp_path):
    blank = np.zeros((8, 8), bool)
    write_sav(tmp_path / "gt", {"v": {0: {"00000": rect(8, 8, 0, 4, 0, 4), "00004": blank, "00008": blank}}})
    write_sav(
        tmp_path / "pred", {"v": {0: {"00000": blank, "00004": blank, "00008": blank}}}, annotations=False
    )
    with pytest.raises(
        EvalInputError, match=r"object 000 of video 'v' is empty in every evaluated.*protocol='davis'"
    ):
        score_folder(tmp_path / "pred", tmp_path / "gt", "sav")
    report = score_folder(tmp_path / "pred", tmp_path / "gt", "sav", protocol="davis")
    assert report.objects[0].j.mean == 1.0  # nothing to find on frame 00004, nothing found


def test_bad_predictions_are_reported(davis):
    with pytest.raises(EvalInputError, match=r"lacks predictions for 1 of 1 videos: cows"):
        score_folder(davis / "gt", davis / "gt", "davis")  # a folder without the videos
    (davis / "pred" / "cows" / "00003.png").unlink()
    (davis / "pred" / "cows" / "00001.png").unlink()
    with pytest.raises(EvalInputError, match=r"video 'cows' lack 2 of the 3 evaluated frames: 00001, 00003"):
        score_folder(davis / "pred", davis / "gt", "davis")
    write_id_video(davis / "pred" / "cows", two_objects(5, h=12, w=16))
    with pytest.raises(EvalInputError, match="is 16x12 but the ground truth of video 'cows' is 32x24"):
        score_folder(davis / "pred", davis / "gt", "davis")
    with pytest.raises(EvalInputError, match="unknown protocol"):
        score_folder(davis / "pred", davis / "gt", "davis", protocol="coco")
    with pytest.raises(EvalInputError, match="exclude_void applies to the davis protocol"):
        score_folder(davis / "pred", davis / "gt", "mose", exclude_void=True)


def test_too_short_or_empty_first_frame(tmp_path):
    write_id_video(tmp_path / "gt" / "v", two_objects(2))
    write_preds(tmp_path / "pred", {"v": two_objects(2)})
    with pytest.raises(EvalInputError, match="2 annotated frame.*--all-frames"):
        score_folder(tmp_path / "pred", tmp_path / "gt", "davis")
    assert (
        score_folder(tmp_path / "pred", tmp_path / "gt", "davis", skip_first_last=False).summary.jf_mean == 1
    )
    save_ids(tmp_path / "gt" / "v" / "00000.png", np.zeros((24, 32)))
    with pytest.raises(EvalInputError, match=r"first annotated frame 00000 has no object.*--protocol sav"):
        score_folder(tmp_path / "pred", tmp_path / "gt", "davis", skip_first_last=False)


def test_csv_rows(davis, tmp_path):
    report = score_folder(davis / "pred", davis / "gt", "davis")
    rows = list(csv.reader(write_csv(report, tmp_path / "out" / "videos.csv").open()))
    assert rows[0] == [
        "video",
        "objects",
        "J&F-Mean",
        "J-Mean",
        "J-Recall",
        "J-Decay",
        "F-Mean",
        "F-Recall",
        "F-Decay",
    ]
    assert rows[1][:4] == ["cows", "2", "0.833333", "0.833333"] and rows[2][:2] == ["GLOBAL", "2"]
    rows = list(csv.reader(write_csv(report, tmp_path / "objects.csv", level="object").open()))
    assert rows[1][:5] == ["cows", "1", "3", "0.666667", "0.666667"] and len(rows) == 3
    with pytest.raises(ValueError, match="level"):
        write_csv(report, tmp_path / "x.csv", level="frame")
