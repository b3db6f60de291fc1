"""Prompt simulation: exact EDT against scipy, click placement on hand-made masks, determinism, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import distance_transform_edt

from masklet.eval.prompting import sample_clicks, simulate_clicks
from masklet.io.distance import edt, edt_squared
from masklet.io.mask_geometry import first_click, gt_box, next_click, region_center


def _rect(shape, y0, y1, x0, x1) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def _disk(shape, cy, cx, r) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


# ----------------------------------------------------------------------------------------------- EDT
def test_edt_matches_scipy_on_random_masks():
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(400):
        h, w = (int(v) for v in rng.integers(1, 48, size=2))
        mask = rng.random((h, w)) < rng.uniform(0.2, 0.995)
        if mask.all():
            continue
        np.testing.assert_array_equal(edt(mask), distance_transform_edt(mask))
        checked += 1
    assert checked > 300


@pytest.mark.parametrize(
    "mask",
    [
        np.ones((1, 9), bool) * np.array([1, 1, 0, 1, 1, 1, 1, 1, 1], bool),  # one row
        np.ones((9, 1), bool) * np.array([[1], [0], [1], [1], [1], [1], [1], [1], [1]], bool),  # one column
        np.pad(np.ones((30, 50), bool), ((0, 0), (0, 1))),  # foreground touching three borders
        np.where(np.eye(40, 70, dtype=bool), False, True),  # background only on a diagonal
        ~_rect((60, 45), 59, 60, 44, 45),  # a single background pixel in a corner
        _disk((90, 130), 45, 60, 38) | _rect((90, 130), 0, 90, 120, 130),  # tall (H < W) and border
        (_disk((130, 90), 60, 45, 38) | _rect((130, 90), 120, 130, 0, 90)),  # transposed case (H > W)
    ],
)
def test_edt_matches_scipy_on_border_cases(mask):
    np.testing.assert_array_equal(edt(mask), distance_transform_edt(mask))


def test_edt_large_mask_matches_scipy():
    rng = np.random.default_rng(1)
    mask = _disk((360, 640), 180, 300, 150) | _disk((360, 640), 60, 560, 90)
    mask &= rng.random(mask.shape) < 0.9995
    np.testing.assert_array_equal(edt(mask), distance_transform_edt(mask))


def test_edt_degenerate_masks():
    assert np.array_equal(edt(np.zeros((4, 5), bool)), np.zeros((4, 5)))
    assert np.isinf(edt(np.ones((3, 4), bool))).all()  # no background anywhere
    assert edt(np.zeros((0, 3), bool)).shape == (0, 3)
    # Squared distances are exact integers.
    d2 = edt_squared(_disk((50, 50), 25, 25, 20))
    assert np.array_equal(d2, np.round(d2))


def test_edt_rejects_bad_input():
    with pytest.raises(ValueError, match=r"shape \(H, W\)"):
        edt(np.zeros((2, 3, 4), bool))
    with pytest.raises(ValueError, match="numpy array or torch tensor"):
        edt([[0, 1], [1, 1]])


# ----------------------------------------------------------------------------------------- first click
def test_first_click_square_center():
    assert first_click(_rect((40, 60), 10, 21, 30, 41)) == (35, 15)


def test_first_click_ties_go_to_first_pixel_in_row_major_order():
    # A 10 x 20 rectangle: every pixel of rows 14-15, columns 34-45 is 5 px from the boundary.
    gt = _rect((40, 80), 10, 20, 30, 50)
    assert first_click(gt) == (34, 14)
    assert region_center(gt)[2] == 5.0


def test_first_click_image_border_counts_as_background():
    # A bar along the left edge: without the border rule the click would sit on column 0.
    gt = _rect((30, 40), 0, 30, 0, 10)
    x, y = first_click(gt)
    assert (x, y) == (4, 4)
    padded = np.pad(gt, 1)
    expected = distance_transform_edt(padded)[1:-1, 1:-1]
    assert expected[y, x] == expected.max()


def test_first_click_l_shape_matches_padded_scipy_argmax():
    gt = _rect((80, 80), 5, 70, 10, 30) | _rect((80, 80), 50, 70, 10, 75)
    dist = distance_transform_edt(np.pad(gt, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(np.argmax(dist), dist.shape)
    assert first_click(gt) == (x, y)
    assert gt[y, x]
    # The widest spot of an L is where its two bars meet.
    assert 10 <= x < 30 and 50 <= y < 70


@pytest.mark.parametrize("yx", [(7, 9), (0, 0), (19, 29)])
def test_first_click_one_pixel_object(yx):
    gt = np.zeros((20, 30), bool)
    gt[yx] = True
    assert first_click(gt) == (yx[1], yx[0])
    assert region_center(gt)[2] == 1.0


def test_first_click_accepts_torch_and_integer_masks():
    gt = _rect((40, 60), 10, 21, 30, 41)
    assert first_click(torch.from_numpy(gt)) == (35, 15)
    assert first_click(gt.astype(np.uint8) * 255) == (35, 15)


# ------------------------------------------------------------------------------------------ next click
def test_next_click_on_empty_prediction_is_the_first_click():
    gt = _disk((64, 64), 30, 25, 12)
    x, y = first_click(gt)
    assert next_click(np.zeros_like(gt), gt) == (x, y, 1)


def test_next_click_positive_in_a_missed_part():
    gt = _rect((60, 80), 10, 50, 10, 70)
    pred = gt & ~_rect((60, 80), 20, 41, 40, 61)  # a 21 x 21 hole, center (50, 30)
    assert next_click(pred, gt) == (50, 30, 1)


def test_next_click_negative_on_a_false_positive_blob():
    gt = _rect((60, 80), 10, 30, 10, 30)
    pred = gt | _rect((60, 80), 35, 56, 50, 71)  # extra 21 x 21 blob, center (60, 45)
    assert next_click(pred, gt) == (60, 45, 0)


def test_next_click_largest_region_means_deepest_not_widest():
    gt = _rect((100, 260), 10, 90, 10, 250)
    pred = gt & ~_rect((100, 260), 40, 42, 30, 230)  # missed: a 2 x 200 strip, 400 px, depth 1
    pred |= _rect((100, 260), 92, 99, 100, 107)  # extra: a 7 x 7 square, 49 px, depth 4
    fn, fp = gt & ~pred, pred & ~gt
    assert fn.sum() > fp.sum()
    assert next_click(pred, gt) == (103, 95, 0)  # the deeper region wins, as in RITM / SAM 2


def test_next_click_tie_goes_to_the_negative_click():
    gt = _rect((50, 80), 10, 40, 5, 35)
    pred = gt & ~_rect((50, 80), 20, 23, 15, 18)  # 3 x 3 hole: depth 2
    pred |= _rect((50, 80), 20, 23, 60, 63)  # 3 x 3 false positive: depth 2
    assert next_click(pred, gt) == (61, 21, 0)


def test_next_click_none_when_prediction_is_perfect_and_ignore_mask():
    gt = _rect((30, 30), 5, 20, 5, 20)
    assert next_click(gt.copy(), gt) is None
    pred = gt | _rect((30, 30), 22, 28, 22, 28)
    assert next_click(pred, gt)[2] == 0
    assert next_click(pred, gt, ignore=_rect((30, 30), 21, 30, 21, 30)) is None


def _reference_click(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int, int]:
    """SAM 2's ``sample_one_point_from_error_center(padding=True)`` rule, with scipy's EDT."""
    fn = distance_transform_edt(np.pad(gt & ~pred, 1))[1:-1, 1:-1].ravel()
    fp = distance_transform_edt(np.pad(pred & ~gt, 1))[1:-1, 1:-1].ravel()
    positive = fn.max() > fp.max()
    idx = int(np.argmax(fn if positive else fp))
    return idx % gt.shape[1], idx // gt.shape[1], int(positive)


def test_next_click_matches_the_reference_rule_on_random_masks():
    rng = np.random.default_rng(7)
    compared = 0
    for _ in range(120):
        h, w = (int(v) for v in rng.integers(5, 90, size=2))
        gt = _disk((h, w), rng.integers(0, h), rng.integers(0, w), rng.integers(2, 40))
        pred = _disk((h, w), rng.integers(0, h), rng.integers(0, w), rng.integers(2, 40))
        if (gt == pred).all():
            continue
        assert next_click(pred, gt) == _reference_click(pred, gt)
        compared += 1
    assert compared > 100


def test_next_click_rejects_bad_input():
    gt = _rect((30, 30), 5, 20, 5, 20)
    with pytest.raises(ValueError, match="resize the prediction"):
        next_click(np.zeros((30, 31), bool), gt)
    with pytest.raises(ValueError, match="ignore has shape"):
        next_click(gt, gt, ignore=np.zeros((3, 3), bool))


# -------------------------------------------------------------------------------------- VOS protocols
def test_simulate_clicks_follows_error_centers():
    gt = _rect((60, 90), 10, 50, 10, 80)
    left_half = gt & (np.arange(90)[None, :] < 45)
    seen = []

    def predict(points, labels):  # a model that only ever finds the left half
        seen.append((points.copy(), labels.copy()))
        return left_half

    points, labels = simulate_clicks(gt, 3, predict)
    assert points.dtype == np.float64 and labels.dtype == np.int64
    assert points.shape == (3, 2) and len(seen) == 2
    assert tuple(points[0]) == first_click(gt) and labels[0] == 1
    assert tuple(points[1]) == region_center(gt & ~left_half)[:2] and labels[1] == 1
    assert np.array_equal(seen[1][0], points[:2]) and seen[1][1].tolist() == [1, 1]


def test_simulate_clicks_stops_when_the_prediction_is_perfect():
    gt = _disk((40, 40), 20, 20, 9)
    points, labels = simulate_clicks(gt, 5, lambda p, l: gt)
    assert points.shape == (1, 2) and labels.tolist() == [1]


def test_sample_clicks_deterministic_and_inside():
    gt = _disk((80, 100), 40, 50, 20)
    a_pts, a_lab = sample_clicks(gt, 5, np.random.default_rng(3))
    b_pts, _ = sample_clicks(gt, 5, np.random.default_rng(3))
    c_pts, _ = sample_clicks(gt, 5, np.random.default_rng(4))
    assert np.array_equal(a_pts, b_pts) and not np.array_equal(a_pts, c_pts)
    assert a_pts.shape == (5, 2) and a_lab.tolist() == [1] * 5
    assert tuple(a_pts[0]) == first_click(gt)
    assert len({tuple(p) for p in a_pts}) == 5
    assert gt[a_pts[:, 1].astype(int), a_pts[:, 0].astype(int)].all()
    rnd, _ = sample_clicks(gt, 1, np.random.default_rng(0), first="random")
    assert gt[int(rnd[0, 1]), int(rnd[0, 0])]


def test_sample_clicks_tiny_mask_repeats_pixels():
    gt = np.zeros((10, 10), bool)
    gt[3, 4] = True
    points, _ = sample_clicks(gt, 3, np.random.default_rng(0))
    assert points.tolist() == [[4.0, 3.0]] * 3


def test_gt_box_tight_and_jitter():
    gt = _rect((50, 70), 10, 31, 5, 46)
    assert gt_box(gt).tolist() == [5.0, 10.0, 45.0, 30.0]
    a = gt_box(gt, jitter=0.1, rng=np.random.default_rng(0))
    b = gt_box(gt, jitter=0.1, rng=np.random.default_rng(0))
    assert np.array_equal(a, b) and not np.array_equal(a, gt_box(gt))
    assert np.all(np.abs(a - gt_box(gt)) <= [4.0, 2.0, 4.0, 2.0])  # 10% of the 40 x 20 box
    edge = gt_box(_rect((50, 70), 0, 50, 0, 70), jitter=0.5, rng=np.random.default_rng(1))
    assert edge.min() >= 0 and edge[2] <= 69 and edge[3] <= 49


def test_protocol_functions_reject_empty_and_bad_arguments():
    empty = np.zeros((20, 20), bool)
    for call in (
        lambda: first_click(empty),
        lambda: sample_clicks(empty, 1, np.random.default_rng(0)),
        lambda: gt_box(empty),
        lambda: simulate_clicks(empty, 3, lambda p, l: empty),
    ):
        with pytest.raises(ValueError, match="gt is empty"):
            call()
    with pytest.raises(ValueError, match="region is empty"):
        region_center(empty)
    gt = _rect((20, 20), 5, 10, 5, 10)
    with pytest.raises(ValueError, match="num_clicks must be an integer >= 1"):
        sample_clicks(gt, 0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="numpy Generator"):
        sample_clicks(gt, 2, 0)
    with pytest.raises(ValueError, match="first must be"):
        sample_clicks(gt, 2, np.random.default_rng(0), first="middle")
    with pytest.raises(ValueError, match="needs rng"):
        gt_box(gt, jitter=0.1)
    with pytest.raises(ValueError, match="shape \\(H, W\\)"):
        first_click(np.ones((2, 20, 20), bool))
