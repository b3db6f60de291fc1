"""EdgeTAM and EfficientTAM behind every entry point, with seeded random weights (smoke tests: the
math is checked against the authors' code in tests/inference/test_edge_parity.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from masklet.checkpoints import build_model
from masklet.cli import main
from masklet.eval.synthetic import make_vos_dataset
from masklet.inference.automask import AutoMaskGenerator
from masklet.inference.image import ImagePredictor
from masklet.inference.stream import StreamTracker
from masklet.inference.video import VideoPredictor
from tests.batch.helpers import make_videos
from tests.cli_support import run, synthetic_frames, write_clip
from tests.train.helpers import tiny_config, tiny_vos

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["edgetam", "efficienttam_ti_1"]
FAST = ["--random-weights", "--image-size", "256", "--dtype", "fp32", "--device", "cpu"]


@pytest.fixture(scope="module", params=MODELS)
def model(request):
    return build_model(request.param, random_seed=0, device="cpu", image_size=256)


def test_image_predictor_and_automask(model):
    frame = synthetic_frames(1, 96, 128)[0]
    pred = ImagePredictor(model)
    pred.set_image(frame)
    masks, scores, low = pred.predict(point_coords=np.array([[40.0, 48.0]]), point_labels=np.array([1]))
    assert masks.shape == (3, 96, 128) and scores.shape == (3,) and low.shape == (3, 64, 64)
    found = AutoMaskGenerator(model, points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    anns = found.generate(frame)
    assert all(a["segmentation"].shape == (96, 128) for a in anns)


def test_video_objects_added_at_any_time_and_stream(model, tmp_path):
    frames = synthetic_frames(5, 64, 96)
    pred = VideoPredictor(model)
    state = pred.init_state(frames)
    pred.add_new_points_or_box(state, 0, 1, points=[[30, 32]], labels=[1])
    first = list(pred.propagate_in_video(state, max_frame_num_to_track=2))
    # masklet accepts a new object after tracking started (the official EdgeTAM predictor refuses it)
    _, ids, _ = pred.add_new_points_or_box(state, 3, 2, box=[50, 10, 90, 60])
    assert list(ids) == [1, 2]
    later = list(pred.propagate_in_video(state))
    assert [f for f, _, _ in first] == [0, 1, 2]
    assert [f for f, _, _ in later] == [0, 1, 2, 3, 4] and all(list(i) == [1, 2] for _, i, _ in later)
    assert all(m.shape == (2, 1, 64, 96) for _, _, m in later)

    tracker = StreamTracker(model)
    tracker.track(frames[0])
    tracker.add_points(1, points=[[30, 32]], labels=[1])
    for f in frames[1:]:
        res = tracker.track(f)
    assert res.masks.shape == (1, 64, 96) and tracker.obj_ids == [1]


def test_cli_stream_track_and_batch(capsys, tmp_path):
    video = write_clip(tmp_path / "clip.mp4")
    out = tmp_path / "stream"
    rc, _, err = run(
        capsys, "track", "--stream", video, "--point", "0:30,32@1", "--out", out, "--model", "edgetam", *FAST
    )
    assert (rc, err) == (0, ""), err
    assert len(list((out / "masks").glob("*.png"))) == 6
    videos, manifest = make_videos(tmp_path / "data")
    out = tmp_path / "batch"
    rc, _, err = run(
        capsys,
        "batch",
        "track",
        videos,
        "--prompts",
        manifest,
        "--out",
        out,
        "--model",
        "efficienttam_ti",
        *FAST,
    )
    assert rc == 0, err


def test_cli_eval_and_train(capsys, tmp_path):
    synth = make_vos_dataset(tmp_path / "vos", 1, 4, size=(64, 96), objects=(1, 1), seed=0)
    out = tmp_path / "eval"
    rc, stdout, err = run(
        capsys,
        "eval",
        "vos",
        "--dataset",
        synth,
        "--prompt",
        "mask",
        "--out",
        out,
        "--model",
        "edgetam",
        *FAST,
    )
    assert rc == 0, err
    assert "J&F" in stdout
    vos = tiny_vos(tmp_path / "train_data")
    for preset, size in (("edgetam", 256), ("efficienttam_ti", 128)):
        cfg = tiny_config(vos, model={"preset": preset, "image_size": size}, train={"steps": 1})
        path = tmp_path / f"{preset}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        code = main(["train", str(path), "--out", str(tmp_path / preset), "--no-progress"])
        assert code == 0, capsys.readouterr().out
        assert (tmp_path / preset / "model.pt").is_file()


def test_studio_serves_edgetam(tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    from PIL import Image

    for i, frame in enumerate(synthetic_frames(3, 64, 96)):
        Image.fromarray(frame).save(folder / f"{i:05d}.jpg")
    log = tmp_path / "studio.log"
    cmd = [sys.executable, "-m", "masklet.cli", "studio", str(folder), "--project", str(tmp_path / "proj")]
    cmd += ["--model", "edgetam", *FAST, "--host", "127.0.0.1", "--port", "0"]
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, env=dict(os.environ))
    try:
        deadline, url = time.monotonic() + 120, None
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            m = re.search(r"masklet studio running at (http://\S+?/)\s", log.read_text())
            url = m.group(1) if m else time.sleep(0.2)
        assert url, log.read_text()
        r = httpx.post(
            url + "api/media/1/frames/0/prompts",
            json={"object_id": None, "prompt": {"kind": "point", "x": 30, "y": 32, "positive": True}},
            timeout=120,
        )
        assert r.status_code == 200, r.text
    finally:
        proc.terminate()
        proc.wait(timeout=30)
