"""``masklet eval score`` end to end on tiny datasets written to a temporary folder."""

from __future__ import annotations

import csv

import numpy as np

from masklet.cli.eval import EVAL_COMMANDS

from ..cli_support import run
from .vos_data import sav_gt_and_pred, two_objects, write_davis, write_preds, write_sav


def davis_with_prediction(tmp_path):
    """Two videos; the prediction equals the GT except object 1 lost on frame 2 of 'cows'
    and object 2 shifted off on frame 1 of 'dogs'."""
    cows, dogs = two_objects(5), two_objects(4)
    pred_cows, pred_dogs = cows.copy(), dogs.copy()
    pred_cows[2][pred_cows[2] == 1] = 0
    pred_dogs[1][pred_dogs[1] == 2] = 0
    write_davis(tmp_path / "davis", {"cows": cows, "dogs": dogs}, split=["cows", "dogs"])
    write_preds(tmp_path / "pred", {"cows": pred_cows, "dogs": pred_dogs})
    return tmp_path / "pred", tmp_path / "davis"


def test_score_davis_end_to_end(tmp_path, capsys):
    pred, gt = davis_with_prediction(tmp_path)
    out = tmp_path / "results" / "videos.csv"
    rc, stdout, stderr = run(
        capsys, "eval", "score", pred, gt, "--out", out, "--objects-csv", tmp_path / "o.csv"
    )
    assert rc == 0, stderr
    # objects: cows_1 J = F = 2/3, cows_2 1, dogs_1 1, dogs_2 J = F = 1/2 (frames 1, 2) -> mean 19/24
    assert f"{100 * 19 / 24:8.1f}" in stdout and "cows" in stdout and "dogs" in stdout
    rows = {r["video"]: r for r in csv.DictReader(out.open())}
    assert rows["cows"]["J&F-Mean"] == f"{5 / 6:.6f}" and rows["dogs"]["J-Mean"] == f"{3 / 4:.6f}"
    assert rows["GLOBAL"]["J&F-Mean"] == f"{19 / 24:.6f}" and rows["GLOBAL"]["objects"] == "4"
    assert len(list(csv.reader((tmp_path / "o.csv").open()))) == 5
    rc, all_frames, _ = run(capsys, "eval", "score", pred, gt, "--all-frames", "--per-object")
    assert rc == 0 and "all frames" in all_frames and "cows_1" in all_frames
    assert f"{100 * (0.8 + 1 + 1 + 0.75) / 4:8.1f}" in all_frames


def test_score_sav_end_to_end(tmp_path, capsys):
    sav_gt_and_pred(tmp_path)
    rc, stdout, stderr = run(capsys, "eval", "score", tmp_path / "pred", tmp_path / "gt", "--layout", "sav")
    assert rc == 0, stderr
    assert "protocol sav, layout sav" in stdout and f"{75.0:8.1f}" in stdout


def test_errors_are_one_line_with_status_2(tmp_path, capsys):
    pred, gt = davis_with_prediction(tmp_path)
    (pred / "dogs" / "00002.png").unlink()
    rc, stdout, stderr = run(capsys, "eval", "score", pred, gt)
    assert rc == 2 and stdout == ""
    assert stderr.strip().splitlines() == [
        f"masklet eval: error: predictions for video 'dogs' lack 1 of the 2 evaluated frames: 00002 "
        f"(expected e.g. {pred / 'dogs' / '00002.png'})"
    ]
    rc, _, stderr = run(capsys, "eval", "score", pred, tmp_path / "missing")
    assert rc == 2 and "ground-truth folder" in stderr and "not found" in stderr
    rc, _, stderr = run(capsys, "eval", "score", pred, gt, "--out", tmp_path)
    assert rc == 2 and "is a folder; expected a .csv file path" in stderr


def test_late_predicted_ids_under_davis_suggest_protocol_sav(tmp_path, capsys):
    gt = two_objects(5)
    gt[0][gt[0] == 2] = 0  # object 2 enters on frame 1
    write_davis(tmp_path / "davis", {"cows": gt}, split=["cows"])
    write_preds(tmp_path / "pred", {"cows": gt})
    rc, stdout, stderr = run(capsys, "eval", "score", tmp_path / "pred", tmp_path / "davis")
    assert (rc, stdout) == (2, "") and stderr.count("\n") == 1
    assert stderr.startswith(f"masklet eval: error: {tmp_path / 'pred' / 'cows' / '00001.png'} holds id 2 ")
    assert stderr.endswith(
        "If objects appear after it, score with the sav protocol (--protocol sav, protocol='sav')\n"
    )
    rc, stdout, stderr = run(
        capsys, "eval", "score", tmp_path / "pred", tmp_path / "davis", "--protocol", "sav"
    )
    assert rc == 0 and "protocol sav, layout davis" in stdout, stderr


def test_warnings_go_to_stderr(tmp_path, capsys):
    gt = two_objects(4)
    pred = gt.copy()
    pred[1, 0, 0] = 9
    write_preds(tmp_path / "gt" / "Annotations", {"v": gt})
    write_preds(tmp_path / "pred", {"v": pred, "other": pred})
    rc, stdout, stderr = run(capsys, "eval", "score", tmp_path / "pred", tmp_path / "gt", "--layout", "mose")
    assert rc == 0
    assert "note: video 'v': predicted ids [9]" in stderr and "1 predicted video(s)" in stderr
    assert "note:" not in stdout


def test_eval_subcommands_are_a_registry(capsys):
    assert "score" in EVAL_COMMANDS
    rc = None
    try:
        run(capsys, "eval")
    except SystemExit as exc:  # argparse: a sub-command is required
        rc = exc.code
    assert rc == 2 and "score" in capsys.readouterr().err


def test_sav_perfect_prediction(tmp_path, capsys):
    mask = np.zeros((8, 8), bool)
    mask[2:6, 2:6] = True
    frames = {f"{t:05d}": mask for t in range(0, 12, 4)}
    write_sav(tmp_path / "gt", {"v": {0: frames}})
    write_sav(tmp_path / "pred", {"v": {0: frames}}, annotations=False)
    rc, stdout, _ = run(capsys, "eval", "score", tmp_path / "pred", tmp_path / "gt", "--layout", "sav")
    assert rc == 0 and f"{100.0:8.1f}" in stdout
