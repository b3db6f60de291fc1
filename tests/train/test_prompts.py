"""The training prompt simulation: first-prompt split, prompted frames, clicks, box jitter."""

from __future__ import annotations

import numpy as np
import pytest

from masklet.train.config import PromptConfig
from masklet.train.prompts import (
    add_error_clicks,
    choose_kind,
    error_click,
    initial_points,
    jittered_box,
    plan_prompts,
    positive_click,
)


def square(h=40, w=50, y0=10, y1=30, x0=12, x1=36) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def within(count: int, n: int, p: float) -> bool:
    """count of n draws is within 5 standard deviations of n * p."""
    return abs(count - n * p) <= 5 * np.sqrt(n * p * (1 - p))


def test_first_prompt_split_50_25_25():
    rng = np.random.default_rng(0)
    n = 20000
    kinds = [choose_kind(rng, PromptConfig()) for _ in range(n)]
    for kind, p in (("mask", 0.5), ("click", 0.25), ("box", 0.25)):
        assert within(kinds.count(kind), n, p), (kind, kinds.count(kind))


def test_first_prompt_split_is_configurable_and_images_never_get_masks():
    rng = np.random.default_rng(1)
    cfg = PromptConfig(prob_mask=0.2, prob_click=0.6, prob_box=0.2)
    n = 10000
    kinds = [choose_kind(rng, cfg) for _ in range(n)]
    assert within(kinds.count("click"), n, 0.6)
    single = [choose_kind(rng, cfg, single_frame=True) for _ in range(n)]
    assert "mask" not in single
    assert within(single.count("click"), n, 0.75)  # 0.6 / (0.6 + 0.2)
    only_masks = PromptConfig(prob_mask=1.0, prob_click=0.0, prob_box=0.0)
    assert choose_kind(rng, only_masks, single_frame=True) == "click"


def test_probabilities_must_sum_to_one():
    with pytest.raises(ValueError, match="sum to 1"):
        PromptConfig(prob_mask=0.5, prob_click=0.5, prob_box=0.5)


def test_plan_prompts_frames():
    rng = np.random.default_rng(2)
    visible = np.ones((8, 2), bool)
    visible[3, 1] = False  # object 1 absent on frame 3: no click or box there
    counts = {1: 0, 2: 0}
    for _ in range(2000):
        plan = plan_prompts(rng, visible, PromptConfig(prob_mask=0.0, prob_click=1.0, prob_box=0.0))
        assert plan.frames[0] == 0 and list(plan.frames) == sorted(set(plan.frames))
        assert 3 not in plan.frames and plan.corrections == 7 and plan.kind == "click"
        counts[len(plan.frames)] += 1
    assert within(counts[2], 2000, 0.5)
    masks = plan_prompts(
        rng, np.ones((2, 1), bool), PromptConfig(prob_mask=1.0, prob_click=0.0, prob_box=0.0)
    )
    assert masks.frames == (0,) and masks.corrections == 0  # one frame is always left to track
    with pytest.raises(ValueError, match="visible on its first frame"):
        plan_prompts(rng, np.array([[False], [True]]), PromptConfig())


def test_positive_click_is_uniform_inside_the_mask():
    rng = np.random.default_rng(3)
    gt = square()
    clicks = np.array([positive_click(gt, rng) for _ in range(4000)])
    assert gt[clicks[:, 1], clicks[:, 0]].all()
    assert len({tuple(c) for c in clicks}) > 0.9 * gt.sum()  # spread over the whole mask
    with pytest.raises(ValueError, match="empty mask"):
        positive_click(np.zeros((4, 4), bool), rng)


def test_error_click_is_sampled_in_the_error_region_with_the_right_label():
    rng = np.random.default_rng(4)
    gt = square()
    pred = square(y0=10, y1=30, x0=20, x1=44)  # misses columns 12..19, adds 36..43
    fn, fp = gt & ~pred, pred & ~gt
    labels = []
    for _ in range(4000):
        x, y, label = error_click(pred, gt, rng)
        assert (fn if label == 1 else fp)[y, x], (x, y, label)
        labels.append(label)
    # uniform over the error region: positives in proportion to the false-negative area
    assert within(sum(labels), 4000, fn.sum() / (fn.sum() + fp.sum()))


def test_error_click_center_and_no_error():
    rng = np.random.default_rng(5)
    gt = square()
    x, y, label = error_click(np.zeros_like(gt), gt, rng, sampling="center")
    assert label == 1 and (x, y) == (21, 19)  # the first pixel farthest from the missed square's border
    x, y, label = error_click(gt, gt, rng)  # nothing to correct: a positive click inside
    assert label == 1 and gt[y, x]
    x, y, label = error_click(np.zeros((5, 5), bool), np.zeros((5, 5), bool), rng)
    assert label == 0


def test_box_jitter_bounds_and_spread():
    rng = np.random.default_rng(6)
    gt = square(h=200, w=200, y0=50, y1=150, x0=40, x1=120)  # tight box 40, 50, 119, 149
    tight = np.array([40, 50, 119, 149], dtype=np.float32)
    boxes = np.stack([jittered_box(gt, rng, noise=0.1, max_noise_px=5.0) for _ in range(2000)])
    limit = np.minimum(np.array([79, 99, 79, 99]) * 0.1, 5.0)  # 0.1 * side, capped at 5 px
    assert (np.abs(boxes - tight) <= limit + 1e-4).all()
    assert (boxes.max(axis=0) - boxes.min(axis=0) > 1.6 * limit).all()  # the whole range is used
    assert np.array_equal(jittered_box(gt, rng, noise=0.0, max_noise_px=5.0), tight)


def test_initial_points_and_corrections_shapes():
    rng = np.random.default_rng(7)
    gts = np.stack([square(), square(y0=0, y1=8, x0=0, x1=8)])
    cfg = PromptConfig()
    coords, labels = initial_points("click", gts, rng, cfg)
    assert coords.shape == (2, 1, 2) and labels.tolist() == [[1], [1]]
    coords, labels = initial_points("box", gts, rng, cfg)
    assert coords.shape == (2, 2, 2) and labels.tolist() == [[2, 3], [2, 3]]
    coords, labels = add_error_clicks(coords, labels, np.zeros_like(gts), gts, rng)
    assert coords.shape == (2, 3, 2) and labels[:, 2].tolist() == [1, 1]
    assert coords.dtype == np.float32 and labels.dtype == np.int32
