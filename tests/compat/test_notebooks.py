"""SAM 2's example notebooks on masklet: their predictor calls (notebook_client.py) through
``masklet.sam2_compat`` give exactly what the same calls give through masklet's own API.

The native side is a namespace of masklet's own objects under the official names: ``build_model``
(with ``configure`` for ``apply_postprocessing=False``), ``ImagePredictor``, ``VideoPredictor`` and
``AutoMaskGenerator``. Random weights from an official-format checkpoint.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

import masklet.sam2_compat as compat
from masklet.checkpoints import build_model
from masklet.inference.automask import AutoMaskGenerator
from masklet.inference.image import ImagePredictor
from masklet.inference.video import VideoPredictor
from tests.compat import notebook_client
from tests.compat.support import CONFIG, PRESET, blob_checkpoint, tracking_checkpoint
from tests.conftest import load_photo, synthetic_image


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return tracking_checkpoint(tmp_path_factory.mktemp("notebooks") / "tiny.pt")


def assert_same(got, want, where: str = "output") -> None:
    """Equal to the bit: arrays, tensors, and the lists / tuples / dicts holding them."""
    assert type(got) is type(want), f"{where}: {type(got).__name__} vs {type(want).__name__}"
    if isinstance(got, np.ndarray):
        assert got.dtype == want.dtype and got.shape == want.shape, f"{where}: {got.dtype}{got.shape}"
        np.testing.assert_array_equal(got, want, err_msg=where)
    elif isinstance(got, torch.Tensor):
        assert torch.equal(got, want), where
    elif isinstance(got, dict):
        assert list(got) == list(want), f"{where}: keys {list(got)} vs {list(want)}"
        for k in got:
            assert_same(got[k], want[k], f"{where}[{k!r}]")
    elif isinstance(got, (list, tuple)):
        assert len(got) == len(want), f"{where}: {len(got)} items vs {len(want)}"
        for i, (a, b) in enumerate(zip(got, want)):
            assert_same(a, b, f"{where}[{i}]")
    elif isinstance(got, float) and math.isnan(want):
        assert math.isnan(got), f"{where}: {got!r} vs nan"
    else:
        assert got == want, f"{where}: {got!r} vs {want!r}"


def test_image_notebook(ckpt):
    truck, groceries = load_photo("truck.jpg"), load_photo("groceries.jpg")
    native = SimpleNamespace(
        build_sam2=lambda cfg, path, device: build_model(PRESET, path, device=device),
        SAM2ImagePredictor=ImagePredictor,
    )
    ours = notebook_client.image_notebook(compat, CONFIG, str(ckpt), "cpu", truck, groceries)
    want = notebook_client.image_notebook(native, CONFIG, str(ckpt), "cpu", truck, groceries)
    assert_same(ours, want)
    masks, scores, logits = ours[1]
    assert (
        masks.dtype == np.float32 and masks.shape == (3, *truck.shape[:2]) and logits.shape == (3, 256, 256)
    )
    assert ours[0] == ((1, 256, 64, 64), (256, 64, 64))
    assert ours[6][0].shape == (4, 1, *truck.shape[:2])  # four boxes, one mask each
    assert [m.shape[0] for m in ours[8][2]] == [2, 2]  # the best mask of each clicked object


def clip_folder(tmp_path: Path) -> Path:
    """Four 135 x 240 JPEG frames of a shifting synthetic scene."""
    clip = tmp_path / "clip"
    clip.mkdir()
    base = synthetic_image(135, 240, seed=2)
    for i in range(4):
        Image.fromarray(np.roll(base, 5 * i, axis=1)).save(clip / f"{i:05d}.jpg", quality=95)
    return clip


def test_video_notebook(ckpt, tmp_path):
    """At input size 256 (``++model.image_size=256`` added to the notebook's build) to stay quick."""
    clip = clip_folder(tmp_path)
    native = SimpleNamespace(
        build_sam2_video_predictor=lambda cfg, path, device, hydra_overrides_extra: VideoPredictor(
            build_model(PRESET, path, device=device, image_size=256)
        )
    )
    overrides = ["++model.image_size=256"]
    ours = notebook_client.video_notebook(compat, CONFIG, str(ckpt), "cpu", clip, overrides)
    want = notebook_client.video_notebook(native, CONFIG, str(ckpt), "cpu", clip, overrides)
    assert_same(ours, want)
    last_run = ours[-1]
    assert sorted(last_run) == [0, 1, 2, 3] and list(last_run[3]) == [2, 3]
    assert any(m.any() for seg in last_run.values() for m in seg.values())


def test_automask_notebook_without_postprocessing(tmp_path):
    """The generators of the notebook on a model built with ``apply_postprocessing=False`` (no dynamic
    multimask fallback, which the tuned generator's ``use_m2m`` pass would otherwise use). To stay
    quick: input size 256 (``++model.image_size=256`` added to the build), 8 points a side, and
    thresholds at 0 so that every mask is compared."""
    image = synthetic_image(120, 160, seed=3)
    ckpt = blob_checkpoint(tmp_path / "blobs.pt")

    def build(cfg, path, device, apply_postprocessing, hydra_overrides_extra):
        model = build_model(PRESET, path, device=device, image_size=256)
        return model.configure(dynamic_multimask_via_stability=apply_postprocessing)

    native = SimpleNamespace(build_sam2=build, SAM2AutomaticMaskGenerator=AutoMaskGenerator)
    run = dict(overrides=["++model.image_size=256"], default=dict(points_per_side=8))
    tuned = dict(points_per_side=8, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    ours = notebook_client.automask_notebook(compat, CONFIG, str(ckpt), "cpu", image, **run, **tuned)
    want = notebook_client.automask_notebook(native, CONFIG, str(ckpt), "cpu", image, **run, **tuned)
    assert_same(ours, want)
    assert len(ours[1]) >= 10, f"only {len(ours[1])} masks: the comparison would be thin"
    keys = "segmentation area bbox predicted_iou point_coords stability_score crop_box"
    assert sorted(ours[1][0]) == sorted(keys.split())
