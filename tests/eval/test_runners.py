"""VOS and click runners end to end on synthetic data: an oracle proves the plumbing exact (J&F = 1),
the real model with a seeded random checkpoint runs every prompt type."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from masklet.checkpoints import build_model
from masklet.eval.click_runner import clicks_for_object, run_image_clicks
from masklet.eval.layouts import open_dataset
from masklet.eval.score import score_folder
from masklet.eval.synthetic import make_image_dataset, make_vos_dataset, to_sav_layout
from masklet.eval.vos_runner import run_vos
from masklet.inference.image import ImagePredictor
from masklet.inference.video import VideoPredictor
from masklet.io.frames import open_frames
from masklet.io.masks import read_id_png
from tests.oracle import write_video_checkpoint


@pytest.fixture(scope="module")
def vos_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthvos")
    return make_vos_dataset(
        root, num_videos=2, num_frames=8, size=(96, 128), objects=(2, 3), seed=4, late_objects=0.6
    )


@pytest.fixture(scope="module")
def small_model(ckpt_dir):
    ckpt = write_video_checkpoint("sam2.1_hiera_tiny", ckpt_dir / "eval-tiny.pt", seed=2, score_shift=10.0)
    return build_model("auto", ckpt, device="cpu", dtype="fp32", image_size=256)


class _State:
    def __init__(self, folder: str) -> None:
        self.frames = open_frames(folder)
        self.num_frames, self.video_height, self.video_width = (
            self.frames.num_frames,
            self.frames.height,
            self.frames.width,
        )
        self.prompted: dict[int, int] = {}

    def close(self) -> None:
        self.frames.close()


class OraclePredictor:
    """Answers every prompt and every tracked frame with the ground truth: a perfect tracker."""

    def __init__(self, dataset, video: str) -> None:
        self.gt = dataset.gt(video)

    def init_state(self, folder: str) -> _State:
        return _State(folder)

    def _truth(self, t: int, obj: int) -> np.ndarray:
        return read_id_png(self.gt.path(f"{t:05d}")) == obj

    def add_new_mask(self, state, t, obj, mask):
        state.prompted[obj] = t

    def add_new_points_or_box(self, state, t, obj, points=None, labels=None, box=None):
        state.prompted[obj] = t
        ids = sorted(state.prompted)
        return t, ids, torch.stack([torch.as_tensor(self._truth(t, o)).float()[None] * 2 - 1 for o in ids])

    def propagate_in_video(self, state, start_frame_idx=0):
        ids = sorted(state.prompted)
        for t in range(start_frame_idx, state.num_frames):
            yield t, ids, torch.stack([torch.as_tensor(self._truth(t, o)).float()[None] * 2 - 1 for o in ids])


@pytest.mark.parametrize("prompt", ["mask", "box", "click3"])
def test_oracle_tracker_scores_one(vos_root, tmp_path, prompt):
    dataset = open_dataset(vos_root, "davis")
    for video in dataset.videos():
        run_vos(OraclePredictor(dataset, video), dataset, tmp_path / "pred", prompt, videos=[video])
    report = score_folder(tmp_path / "pred", vos_root, "davis", protocol="sav")
    assert report.summary.jf_mean == pytest.approx(1.0)
    assert report.summary.objects >= 4


def test_late_objects_are_prompted_on_their_first_appearance(vos_root, tmp_path, small_model):
    dataset = open_dataset(vos_root, "davis")
    runs = run_vos(VideoPredictor(small_model, fill_hole_area=0), dataset, tmp_path / "pred", "mask")
    assert any(t > 0 for r in runs for t in r.first_frame.values()), "the fixture must hold a late object"
    for r in runs:
        gt = dataset.gt(r.video)
        for obj, t in r.first_frame.items():
            assert (read_id_png(gt.path(f"{t:05d}")) == obj).any()
            assert t == 0 or not (read_id_png(gt.path(f"{t - 1:05d}")) == obj).any()
            for before in range(t):  # nothing is predicted for an object before it was given
                assert not (read_id_png(tmp_path / "pred" / r.video / f"{before:05d}.png") == obj).any()
        written = sorted(p.stem for p in (tmp_path / "pred" / r.video).glob("*.png"))
        assert written == [f"{i:05d}" for i in range(8)]
    report = score_folder(tmp_path / "pred", vos_root, "davis", protocol="sav")
    assert 0.0 <= report.summary.jf_mean <= 1.0


@pytest.mark.parametrize("prompt", ["box", "click1", "click5"])
def test_real_model_runs_every_prompt(vos_root, tmp_path, small_model, prompt):
    dataset = open_dataset(vos_root, "davis")
    video = dataset.videos()[0]
    (run,) = run_vos(VideoPredictor(small_model, fill_hole_area=0), dataset, tmp_path / "p", prompt, [video])
    if prompt.startswith("click"):
        assert all(1 <= c <= int(prompt[5:]) for c in run.clicks.values()) and run.clicks
    ids = np.unique(np.stack([read_id_png(p) for p in (tmp_path / "p" / video).glob("*.png")]))
    assert set(ids.tolist()) <= {0, *run.first_frame}
    assert set(ids.tolist()) - {0}, "some object must be predicted somewhere"


def test_sav_layout_round_trip_with_the_oracle(vos_root, tmp_path):
    sav = to_sav_layout(vos_root, tmp_path / "sav")
    dataset = open_dataset(sav, "sav")
    assert dataset.videos()
    for video in dataset.videos():
        davis = open_dataset(vos_root, "davis")
        run_vos(OraclePredictor(davis, video), dataset, tmp_path / "pred", "mask", videos=[video])
    assert any((tmp_path / "pred").glob("*/000/*.png")) or any((tmp_path / "pred").glob("*/001/*.png"))
    report = score_folder(tmp_path / "pred", sav, "sav")
    assert report.summary.jf_mean == pytest.approx(1.0)


def test_bad_prompt_and_unknown_video(vos_root, tmp_path, small_model):
    dataset = open_dataset(vos_root, "davis")
    pred = VideoPredictor(small_model)
    with pytest.raises(ValueError, match="unknown prompt 'lasso'"):
        run_vos(pred, dataset, tmp_path, "lasso")
    with pytest.raises(ValueError, match="not in the dataset"):
        run_vos(pred, dataset, tmp_path, "mask", videos=["nope"])


# ------------------------------------------------------------------ image clicks
class _ExactPredictor:
    """Returns the object under the first positive click exactly (a perfect interactive model)."""

    def __init__(self, masks: list[np.ndarray]) -> None:
        self.masks = masks

    def predict(self, points, labels, mask_input=None, multimask_output=True):
        x, y = int(points[0][0]), int(points[0][1])
        m = next(m for m in self.masks if m[y, x])
        n = 3 if multimask_output else 1
        return np.stack([m] * n), np.linspace(0.9, 0.5, n), np.zeros((n, 256, 256), np.float32)


def test_click_protocol_with_a_perfect_and_a_real_model(tmp_path, small_model):
    images, coco = make_image_dataset(tmp_path, num_images=2, seed=3, size=(96, 128))
    data = json.loads(Path(coco).read_text())
    assert data["annotations"]
    from masklet.io.masks import decode_rle

    masks = [decode_rle(a["segmentation"]) for a in data["annotations"]]
    assert clicks_for_object(_ExactPredictor(masks), masks[0], 5) == [1.0] * 5
    report = run_image_clicks(ImagePredictor(small_model), coco, images, clicks=(1, 3))
    assert len(report.rows) == len(data["annotations"])
    assert all(0.0 <= report.miou(k) <= 1.0 for k in (1, 3))
    assert "mIoU@3" in report.table()
    out = report.write_csv(tmp_path / "clicks.csv")
    assert out.read_text().splitlines()[0].startswith("image,annotation_id,category,area,iou@1")
    with pytest.raises(ValueError, match="positive integers"):
        run_image_clicks(ImagePredictor(small_model), coco, images, clicks=(0,))
    with pytest.raises(ValueError, match="not a COCO annotation file"):
        (tmp_path / "x.json").write_text("[]")
        run_image_clicks(ImagePredictor(small_model), tmp_path / "x.json", images)
