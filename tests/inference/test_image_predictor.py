"""ImagePredictor behaviour that needs no reference: input validation, state safety, post-processing."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from masklet.inference.image import ImagePredictor, NoImageError
from masklet.inference.prompts import PromptError
from masklet.modeling.sam2 import SAM2Model
from masklet.presets import get_preset
from tests.conftest import synthetic_image


@pytest.fixture(scope="module")
def predictor() -> ImagePredictor:
    torch.manual_seed(0)
    model = SAM2Model(get_preset("sam2.1_hiera_tiny", image_size=256)).eval()
    return ImagePredictor(model)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return synthetic_image(120, 160)


def test_predict_before_set_image_is_a_clear_error(predictor):
    predictor.reset_predictor()
    with pytest.raises(NoImageError, match="call set_image"):
        predictor.predict(point_coords=[[10, 10]], point_labels=[1])
    with pytest.raises(RuntimeError):  # as the official predictor
        predictor.get_image_embedding()
    with pytest.raises(ValueError):  # and a ValueError, as masklet promises
        predictor.predict(box=[0, 0, 5, 5])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(point_coords=[[np.nan, 3]], point_labels=[1]), "NaN"),
        (dict(point_coords=[[500, 3]], point_labels=[1]), "outside the image"),
        (dict(point_coords=[[-4, 3]], point_labels=[1]), "outside the image"),
        (dict(point_coords=[[5, 3], [6, 7]], point_labels=[1]), "one label per point"),
        (dict(point_coords=[[5, 3]], point_labels=[7]), "unknown point label"),
        (dict(point_coords=[[5, 3]]), "without point_labels"),
        (dict(point_labels=[1]), "without point_coords"),
        (dict(point_coords=[5, 3, 2], point_labels=[1]), "shape"),
        (dict(box=[50, 10, 20, 40]), "x1 < x0"),
        (dict(box=[10, 50, 20, 40]), "y1 < y0"),
        (dict(box=[1, 2, 3]), "shape"),
        (dict(box=[500, 500, 600, 600]), r"reaches outside the image \(x in \[0, 160\], y in \[0, 120\]\)"),
        (dict(box=[-4, 3, 50, 40]), r"box \[-4\.0, 3\.0, 50\.0, 40\.0\] reaches outside the image"),
        (dict(box=[10, 3, 161, 40]), r"box \[10\.0, 3\.0, 161\.0, 40\.0\] reaches outside the image"),
        (dict(box=[[1, 1, 9, 9], [10, 3, 50, 121]]), r"box \[10\.0, 3\.0, 50\.0, 121\.0\] reaches outside"),
        (dict(box=[0.1, 0.1, 1.2, 0.5], normalize_coords=False), "reaches outside.*relative coordinates"),
        (dict(point_coords=[[0.5, 2.0]], point_labels=[1], normalize_coords=False), "relative coordinates"),
        (dict(mask_input=np.zeros((1, 32, 32))), "low-resolution logits"),
        (dict(point_coords=[[[5, 3]], [[6, 6]]], point_labels=[[1], [1]], box=[[1, 1, 9, 9]] * 3), "batch"),
    ],
)
def test_bad_prompts_raise_clear_errors_and_keep_the_image(predictor, image, kwargs, message):
    predictor.set_image(image)
    before = predictor.get_image_embedding().clone()
    with pytest.raises(PromptError, match=message):
        predictor.predict(**kwargs)
    assert isinstance(PromptError("x"), ValueError)
    # the image is still set and usable
    assert torch.equal(predictor.get_image_embedding(), before)
    masks, scores, low = predictor.predict(point_coords=[[80, 60]], point_labels=[1])
    assert masks.shape == (3, 120, 160) and masks.dtype == np.float32  # 0/1, as officially
    assert set(np.unique(masks)) <= {0.0, 1.0}
    assert scores.shape == (3,) and low.shape == (3, 64, 64)


def test_bad_images_keep_the_previous_image(predictor, image):
    predictor.set_image(image)
    before = predictor.get_image_embedding().clone()
    for bad in (np.zeros((0, 10, 3), np.uint8), np.zeros((10, 10, 5), np.uint8), "not an image"):
        with pytest.raises(ValueError):
            predictor.set_image(bad)
    assert torch.equal(predictor.get_image_embedding(), before)


def test_grayscale_rgba_pil_and_16bit_inputs_are_converted(predictor, image):
    predictor.set_image(image)
    ref = predictor.get_image_embedding().clone()
    predictor.set_image(Image.fromarray(image))
    assert torch.equal(predictor.get_image_embedding(), ref)
    rgba = np.concatenate([image, np.full(image.shape[:2] + (1,), 255, np.uint8)], -1)
    predictor.set_image(rgba)
    assert torch.equal(predictor.get_image_embedding(), ref)
    predictor.set_image(image.astype(np.uint16) * 257)
    assert torch.equal(predictor.get_image_embedding(), ref)
    gray = image[..., 0]
    predictor.set_image(gray)
    predictor.set_image(np.repeat(gray[..., None], 3, -1))
    emb_rgb_gray = predictor.get_image_embedding().clone()
    predictor.set_image(gray)
    assert torch.equal(predictor.get_image_embedding(), emb_rgb_gray)


def test_outputs_shapes_logits_and_iterative_refinement(predictor, image):
    predictor.set_image(image)
    masks, scores, low = predictor.predict(point_coords=[[80, 60]], point_labels=[1], multimask_output=False)
    assert masks.shape == (1, 120, 160) and scores.shape == (1,) and low.shape == (1, 64, 64)
    logits, _, _ = predictor.predict(
        point_coords=[[80, 60]], point_labels=[1], return_logits=True, multimask_output=False
    )
    assert logits.dtype == np.float32
    np.testing.assert_array_equal(logits > 0, masks)
    assert np.abs(low).max() <= 32.0
    refined, _, _ = predictor.predict(
        point_coords=[[80, 60], [20, 20]],
        point_labels=[1, 0],
        mask_input=low,
        multimask_output=False,
        return_logits=True,
    )
    assert refined.shape == (1, 120, 160)
    assert not np.allclose(refined, logits)  # the mask prompt and the extra click change the result
    rel, _, _ = predictor.predict(
        point_coords=[[0.5, 0.5]],
        point_labels=[1],
        normalize_coords=False,
        return_logits=True,
        multimask_output=False,
    )
    np.testing.assert_allclose(rel, logits, atol=1e-5)  # (80, 60) is the centre of 160 x 120
    boxes = predictor.predict(box=[[10, 10, 60, 60], [70, 30, 150, 110]])
    assert boxes[0].shape == (2, 3, 120, 160) and boxes[1].shape == (2, 3)
    shared = predictor.predict(box=[[10, 10, 60, 60], [70, 30, 150, 110]], mask_input=low, return_logits=True)
    first = predictor.predict(box=[10, 10, 60, 60], mask_input=low, return_logits=True)
    assert shared[0].shape == (2, 3, 120, 160)
    np.testing.assert_allclose(shared[0][0], first[0], atol=1e-4)  # one mask prompt serves every box


def test_predict_batch_requires_batch_mode_and_matching_lengths(predictor, image):
    predictor.set_image(image)
    with pytest.raises(PromptError, match="set_image_batch"):
        predictor.predict_batch([np.array([[5, 5]])], [np.array([1])])
    predictor.set_image_batch([image, image[:100, :100]])
    with pytest.raises(PromptError, match="2 images"):
        predictor.predict_batch([np.array([[5, 5]])], [np.array([1])])
    masks, scores, lows = predictor.predict_batch([np.array([[5, 5]])] * 2, [np.array([1])] * 2)
    assert masks[0].shape == (3, 120, 160) and masks[1].shape == (3, 100, 100)
    with pytest.raises(ValueError, match="non-empty list"):
        predictor.set_image_batch([])


def test_predict_after_set_image_batch_prompts_the_last_image_as_officially(predictor, image):
    last = synthetic_image(90, 110, seed=4)
    prompt = dict(point_coords=[[30, 40]], point_labels=[1], return_logits=True)
    predictor.set_image(last)
    alone = predictor.predict(**prompt)
    predictor.set_image_batch([image, last])
    batched = predictor.predict(**prompt)
    assert batched[0].shape == (3, 90, 110)
    for got, want in zip(batched, alone):
        np.testing.assert_allclose(got, want, atol=1e-4)
    assert predictor._is_batch and predictor._orig_hw == [(120, 160), (90, 110)]


def test_read_only_image_sets_without_a_warning(predictor, image):
    """np.asarray of a PIL image is read-only; wrapping it as a tensor would make torch warn."""
    frozen = np.asarray(Image.fromarray(image))
    assert not frozen.flags.writeable
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predictor.set_image(frozen)
        emb = predictor.get_image_embedding().clone()
        predictor.set_image_batch([frozen])
    predictor.set_image(image)
    assert torch.equal(predictor.get_image_embedding(), emb)


def test_official_private_attributes(predictor, image):
    predictor.reset_predictor()
    assert (predictor._features, predictor._orig_hw, predictor._is_image_set, predictor._is_batch) == (
        None,
        None,
        False,
        False,
    )
    predictor.set_image(image)
    feats = predictor._features
    assert set(feats) == {"image_embed", "high_res_feats"}
    assert feats["image_embed"] is predictor.get_image_embedding()
    assert feats["image_embed"].shape == (1, 256, 16, 16)
    assert [tuple(t.shape) for t in feats["high_res_feats"]] == [(1, 32, 64, 64), (1, 64, 32, 32)]
    assert predictor._orig_hw == [(120, 160)] and predictor._is_image_set and not predictor._is_batch
    tf = predictor._transforms
    assert tf.resolution == 256 and tf.mask_threshold == predictor.mask_threshold
    assert tf(image).shape == (3, 256, 256) and tf.forward_batch([image, image]).shape == (2, 3, 256, 256)
    xy = tf.transform_coords(torch.tensor([[80.0, 60.0]]), normalize=True, orig_hw=(120, 160))
    assert torch.allclose(xy, torch.tensor([[128.0, 128.0]]))
    assert torch.allclose(tf.transform_coords(torch.tensor([[0.25, 0.5]])), torch.tensor([[64.0, 128.0]]))
    corners = tf.transform_boxes(torch.tensor([[0.0, 0.0, 160.0, 120.0]]), normalize=True, orig_hw=(120, 160))
    assert corners.shape == (1, 2, 2) and torch.allclose(corners[0, 1], torch.tensor([256.0, 256.0]))
    with pytest.raises(ValueError, match="needs orig_hw"):
        tf.transform_coords(torch.zeros(1, 2), normalize=True)
    logits, _, low = predictor.predict(point_coords=[[80, 60]], point_labels=[1], return_logits=True)
    up = tf.postprocess_masks(torch.from_numpy(low)[None], predictor._orig_hw[0])
    assert up.shape == (1, 3, 120, 160)
    np.testing.assert_allclose(up[0].numpy(), logits, atol=1e-3)  # low is clamped to +-32


def test_hole_and_sprinkle_removal_in_the_predictor(predictor):
    low = torch.full((1, 1, 64, 64), -5.0)
    low[..., 10:40, 10:40] = 5.0
    low[..., 20:23, 20:23] = -5.0  # a 9-pixel hole
    low[..., 50:52, 50:52] = 5.0  # a 4-pixel speck
    plain = ImagePredictor(predictor.model)
    cleaned = ImagePredictor(predictor.model, max_hole_area=10, max_sprinkle_area=5)
    out_plain = plain._postprocess(low, (64, 64)) > 0
    out_clean = cleaned._postprocess(low, (64, 64)) > 0
    assert not out_plain[0, 0, 21, 21] and out_plain[0, 0, 51, 51]
    assert out_clean[0, 0, 21, 21] and not out_clean[0, 0, 51, 51]
    small = ImagePredictor(predictor.model, max_hole_area=8, max_sprinkle_area=3)
    out_small = small._postprocess(low, (64, 64)) > 0
    assert not out_small[0, 0, 21, 21] and out_small[0, 0, 51, 51]  # areas above the limits stay
