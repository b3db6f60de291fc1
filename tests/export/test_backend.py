"""The onnxruntime backend behind the predictors: the scripted video session and still-image prompts
give the PyTorch model's results, for a preset of each family."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from masklet.checkpoints import build_model
from masklet.export.backend import OnnxSAM2Model
from masklet.inference.image import ImagePredictor
from masklet.inference.stream import StreamTracker
from masklet.inference.video import VideoPredictor
from tests.conftest import synthetic_image
from tests.inference.test_video_parity import (
    BEDROOM,
    Comparer,
    check_nontrivial,
    clip_folder,
    script_session,
)


def test_build_model_gives_the_onnx_backend(family):
    model = build_model("auto", backend="onnx", onnx_dir=family.onnx_dir)
    assert isinstance(model, OnnxSAM2Model)
    assert (model.cfg.name, model.image_size, model.dtype) == (family.preset, 256, torch.float32)
    assert model.cfg == family.torch_model.cfg


@pytest.mark.slow
def test_scripted_video_session_matches_pytorch(family, tmp_path):
    """Clicks, a box, a refinement, a mask for a new object, reverse propagation and a removal: every
    result's object ids equal, masks with IoU >= 0.999 (and logits within 1e-3 of their spread)."""
    if not BEDROOM.exists() and family.preset.startswith("efficienttam"):
        pytest.skip(
            "../shared is absent: on the synthetic stand-in clip this preset's test weights leave the "
            "objects absent on most frames (4 present comparisons, 10 needed); run beside ../shared"
        )
    n = 8
    folder = clip_folder(tmp_path, n)
    ours = VideoPredictor(
        build_model(family.preset, backend="onnx", onnx_dir=family.onnx_dir), fill_hole_area=0
    )
    ref = VideoPredictor(family.torch_model, fill_hole_area=0)
    so, sr = ours.init_state(folder), ref.init_state(folder)
    c = Comparer()
    script_session(c, [(ours, so), (ref, sr)], so.video_height, so.video_width, n)
    check_nontrivial(c)


def test_stream_tracker_runs_on_the_onnx_backend(family):
    model = build_model("auto", backend="onnx", onnx_dir=family.onnx_dir)
    frames = [np.roll(synthetic_image(120, 160, seed=4), 5 * i, axis=1) for i in range(4)]
    results = []
    for m in (model, family.torch_model):
        tracker = StreamTracker(m)
        tracker.track(frames[0])
        tracker.add_points(obj_id=1, points=[[60, 50]], labels=[1])
        tracker.add_points(obj_id=2, points=[[120, 90]], labels=[1])
        results.append([tracker.track(f) for f in frames[1:]])
    for ours, ref in zip(*results):
        assert ours.obj_ids == ref.obj_ids == [1, 2]
        assert (ours.masks == ref.masks).mean() >= 0.999


def test_image_predictor_on_the_onnx_backend(family):
    image = synthetic_image(200, 300, seed=1)
    out = []
    for m in (build_model("auto", backend="onnx", onnx_dir=family.onnx_dir), family.torch_model):
        p = ImagePredictor(m)
        p.set_image(image)
        clicks = p.predict(point_coords=np.array([[100, 80], [150, 120]]), point_labels=np.array([1, 0]))
        box = p.predict(box=np.array([50, 40, 200, 150]), multimask_output=False)
        out.append((*clicks, *box))
    for a, b in zip(*out):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-4 * max(float(np.std(b)), 1e-3))
