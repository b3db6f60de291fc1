"""``masklet eval vos`` and ``masklet eval image`` end to end on synthetic data with a seeded checkpoint."""

from __future__ import annotations

import contextlib
import csv

import pytest

from masklet.eval.synthetic import make_image_dataset, make_vos_dataset
from tests.cli_support import refuse_model_loading, run
from tests.oracle import write_video_checkpoint

FAST = ["--image-size", "256", "--dtype", "fp32", "--device", "cpu"]


@pytest.fixture(scope="module")
def ckpt(ckpt_dir):
    return write_video_checkpoint("sam2.1_hiera_tiny", ckpt_dir / "eval-tiny.pt", seed=2, score_shift=10.0)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-vos")
    return make_vos_dataset(
        root, num_videos=2, num_frames=6, size=(96, 128), objects=(1, 2), seed=7, late_objects=0.5
    )


@pytest.mark.parametrize("layout_args", [[], ["--protocol", "sav"]])
def test_eval_vos_runs_and_scores(synth, ckpt, tmp_path, capsys, layout_args):
    out = tmp_path / "run"
    rc, stdout, err = run(
        capsys, "eval", "vos", "--dataset", synth, "--prompt", "click3", "--out", out, "--checkpoint", ckpt,
        *layout_args, *FAST,
    )  # fmt: skip
    assert rc == 0, err
    assert "J&F" in stdout and "prompt click3, 2 videos" in stdout
    rows = list(csv.DictReader((out / "scores.csv").open()))
    assert [r["video"] for r in rows][:2] == ["synth_000", "synth_001"]
    assert (out / "objects.csv").is_file()
    assert sorted(p.name for p in (out / "predictions").iterdir()) == ["synth_000", "synth_001"]
    assert len(list((out / "predictions" / "synth_000").glob("*.png"))) == 6


def test_eval_vos_selected_videos(synth, ckpt, tmp_path, capsys):
    rc, stdout, err = run(
        capsys, "eval", "vos", "--dataset", synth, "--videos", "synth_001", "--out", tmp_path, "--checkpoint",
        ckpt, *FAST,
    )  # fmt: skip
    assert rc == 0, err
    assert "1 videos" in stdout and not (tmp_path / "predictions" / "synth_000").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--videos", "nope"], "not in the dataset"),
        (["--layout", "sav"], "Annotations_6fps"),
        (["--prompt", "lasso"], "invalid choice"),
    ],
)
def test_eval_vos_errors_before_the_model_loads(synth, tmp_path, capsys, monkeypatch, args, message):
    refuse_model_loading(monkeypatch)
    with pytest.raises(SystemExit) if "lasso" in args else contextlib.nullcontext():
        rc, _, err = run(capsys, "eval", "vos", "--dataset", synth, "--out", tmp_path / "o", *args)
        assert rc == 2 and message in err and err.count("\n") == 1, err
    if "lasso" in args:
        assert message in capsys.readouterr().err


def test_eval_image_reports_click_miou(ckpt, tmp_path, capsys):
    images, coco = make_image_dataset(tmp_path / "img", num_images=2, seed=1, size=(96, 128))
    out = tmp_path / "clicks.csv"
    rc, stdout, err = run(
        capsys, "eval", "image", "--annotations", coco, "--images", images, "--clicks", "1,3", "--out", out,
        "--checkpoint", ckpt, *FAST,
    )  # fmt: skip
    assert rc == 0, err
    assert "mIoU@1" in stdout and "mIoU@3" in stdout
    assert out.read_text().startswith("image,annotation_id,category,area,iou@1,iou@2,iou@3")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--clicks", "0"], "positive numbers"),
        (["--clicks", "a,b"], "comma-separated numbers"),
        (["--images", "MISSING"], "is not a folder"),
    ],
)
def test_eval_image_errors_before_the_model_loads(tmp_path, capsys, monkeypatch, args, message):
    refuse_model_loading(monkeypatch)
    images, coco = make_image_dataset(tmp_path / "img", num_images=1, seed=1, size=(64, 64))
    args = [str(tmp_path / "missing") if a == "MISSING" else a for a in args]
    base = ["--annotations", coco, "--images", images]
    rc, _, err = run(capsys, "eval", "image", *base, *args)
    assert rc == 2 and message in err, err
