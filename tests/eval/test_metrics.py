"""J, F, boundary maps, disk dilation and per-object statistics: hand-computed cases, scipy and slow
references written from the published definitions."""

from __future__ import annotations

import numpy as np
import pytest

from masklet.eval.metrics import (
    FrameMetrics,
    ObjectScore,
    Stats,
    boundary_f,
    boundary_map,
    boundary_radius,
    dilate_disk,
    disk,
    frame_metrics,
    jaccard,
    mean_recall_decay,
    object_score,
    summarize,
)

from .vos_data import rect


# ------------------------------------------------------------------ slow references from the definitions
def slow_boundary(seg: np.ndarray) -> np.ndarray:
    """Boundary pixel by pixel: differs from its right, bottom or bottom-right neighbour (outside = 0);
    last row: right only; last column: bottom only; bottom-right corner never."""
    h, w = seg.shape

    def at(y, x):
        return bool(seg[y, x]) if y < h and x < w else False

    out = np.zeros((h, w), bool)
    for y in range(h):
        for x in range(w):
            if y == h - 1 and x == w - 1:
                continue
            if y == h - 1:
                out[y, x] = at(y, x) != at(y, x + 1)
            elif x == w - 1:
                out[y, x] = at(y, x) != at(y + 1, x)
            else:
                here = at(y, x)
                out[y, x] = here != at(y, x + 1) or here != at(y + 1, x) or here != at(y + 1, x + 1)
    return out


def slow_f(pred: np.ndarray, gt: np.ndarray, radius: int, void: np.ndarray | None = None) -> float:
    """Boundary F from the definition: a boundary pixel matches when the other boundary has a pixel
    within Euclidean distance ``radius`` (the disk)."""
    if void is not None:
        pred, gt = pred & ~void, gt & ~void
    pb, gb = slow_boundary(pred), slow_boundary(gt)
    pts_p, pts_g = np.argwhere(pb), np.argwhere(gb)

    def matched(src, dst):
        if len(dst) == 0:
            return 0
        return sum(bool((((dst - s) ** 2).sum(1) <= radius * radius).any()) for s in src)

    n_p, n_g = len(pts_p), len(pts_g)
    if n_p == 0 and n_g == 0:
        return 1.0
    if n_p == 0 or n_g == 0:
        return 0.0
    precision, recall = matched(pts_p, pts_g) / n_p, matched(pts_g, pts_p) / n_g
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def random_masks(rng, n: int, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    out = np.zeros((n, h, w), bool)
    for t in range(n):
        for _ in range(rng.integers(0, 3)):
            cy, cx, r = rng.integers(-3, h + 3), rng.integers(-3, w + 3), rng.integers(1, max(2, min(h, w)))
            out[t] |= (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        if rng.random() < 0.4:
            out[t] ^= rng.random((h, w)) < 0.05
    return out


# ------------------------------------------------------------------ disk and dilation
def test_disk_matches_the_skimage_definition():
    assert disk(0).tolist() == [[True]]
    assert disk(1).astype(int).tolist() == [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    assert disk(2).astype(int).tolist() == [
        [0, 0, 1, 0, 0],
        [0, 1, 1, 1, 0],
        [1, 1, 1, 1, 1],
        [0, 1, 1, 1, 0],
        [0, 0, 1, 0, 0],
    ]
    d = disk(8)
    assert d.shape == (17, 17) and d.sum() == 197  # lattice points with x^2 + y^2 <= 64


@pytest.mark.parametrize("shape", [(1, 1), (1, 70), (33, 1), (20, 63), (17, 64), (12, 65), (40, 130)])
@pytest.mark.parametrize("radius", [0, 1, 3, 8])
def test_dilate_disk_equals_scipy(shape, radius):
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(radius * 1000 + shape[0] * 7 + shape[1])
    masks = rng.random((3, *shape)) < 0.03
    masks[0] = False
    masks[1, 0, 0] = masks[1, -1, -1] = True  # border pixels
    expected = [ndimage.binary_dilation(m, structure=disk(radius)) if radius else m for m in masks]
    np.testing.assert_array_equal(dilate_disk(masks, radius), np.stack(expected))


def test_dilate_disk_wider_than_a_word():
    ndimage = pytest.importorskip("scipy.ndimage")
    m = np.zeros((5, 300), bool)
    m[2, 150] = True
    out = dilate_disk(m, 70)
    np.testing.assert_array_equal(out, ndimage.binary_dilation(m, structure=disk(70)))
    assert out[2, 80] and out[2, 220] and not out[2, 79] and not out[2, 221]


def test_dilate_disk_equals_opencv_as_the_official_scorers_use_it():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(11)
    masks = rng.random((4, 48, 854)) < 0.01
    masks[0, :, 0] = masks[1, -1, :] = True
    got = dilate_disk(masks, 8)
    for m, g in zip(masks, got):
        np.testing.assert_array_equal(g, cv2.dilate(m.astype(np.uint8), disk(8).astype(np.uint8)) > 0)


def test_boundary_radius_is_the_official_tolerance():
    assert boundary_radius(480, 854) == 8  # ceil(0.008 * 979.6)
    assert boundary_radius(1080, 1920) == 18
    assert boundary_radius(10, 10) == 1
    assert boundary_radius(480, 854, bound_th=3) == 3
    with pytest.raises(ValueError, match="whole"):
        boundary_radius(10, 10, bound_th=2.5)


# ------------------------------------------------------------------ boundary maps
def test_boundary_of_one_pixel_is_its_2x2_upper_left_block():
    m = np.zeros((10, 10), bool)
    m[4, 4] = True
    assert sorted(map(tuple, np.argwhere(boundary_map(m)))) == [(3, 3), (3, 4), (4, 3), (4, 4)]


def test_boundary_of_masks_touching_the_border():
    left = rect(10, 10, 0, 10, 0, 5)
    assert np.argwhere(boundary_map(left)).tolist() == [[y, 4] for y in range(10)]  # no edge at x = 0
    assert not boundary_map(np.ones((6, 9), bool)).any()  # a full mask has no boundary at all
    corner = rect(10, 10, 5, 10, 5, 10)
    expected = {(4, x) for x in range(4, 10)} | {(y, 4) for y in range(5, 10)}
    assert set(map(tuple, np.argwhere(boundary_map(corner)))) == expected


def test_boundary_map_equals_the_slow_definition():
    rng = np.random.default_rng(1)
    for h, w in [(1, 1), (1, 9), (7, 1), (9, 13), (16, 70)]:
        masks = random_masks(rng, 3, h, w)
        got = boundary_map(masks)
        for m, g in zip(masks, got):
            np.testing.assert_array_equal(g, slow_boundary(m))


# ------------------------------------------------------------------ J and F, hand-computed
def test_j_and_f_edge_cases():
    empty, full = np.zeros((8, 8), bool), np.ones((8, 8), bool)
    dot = rect(8, 8, 3, 4, 3, 4)
    cases = [  # (pred, gt, J, F)
        (empty, empty, 1.0, 1.0),  # nothing to find, nothing found
        (empty, dot, 0.0, 0.0),  # P = 1, R = 0
        (dot, empty, 0.0, 0.0),  # P = 0, R = 1
        (full, full, 1.0, 1.0),
        (empty, full, 0.0, 1.0),  # official quirk: a full mask has no boundary, so F counts it as found
        (dot, dot, 1.0, 1.0),
    ]
    for pred, gt, j, f in cases:
        m = frame_metrics(pred, gt)
        assert (m.j[0], m.f[0]) == (j, f)
        assert jaccard(pred, gt)[0] == j and boundary_f(pred, gt)[0] == f


def test_one_pixel_objects_side_by_side_and_apart():
    a, b, far = rect(10, 10, 4, 5, 4, 5), rect(10, 10, 4, 5, 5, 6), rect(10, 10, 4, 5, 7, 8)
    m = frame_metrics(np.stack([a, a]), np.stack([b, far]))
    assert m.j.tolist() == [0.0, 0.0]
    assert m.f.tolist() == [1.0, 0.0]  # neighbours: every boundary pixel within 1 px; 3 px apart: none


def test_partial_boundary_match():
    gt = rect(20, 20, 5, 15, 5, 15)  # 10x10 square
    pred = rect(20, 20, 5, 15, 5, 11)  # its left 6 columns
    m = frame_metrics(pred, gt, bound_th=1)
    assert m.j[0] == 60 / 100
    # Boundaries (offset half a pixel up-left): the square's is row 4 (x 4..14), column 4 (y 5..14),
    # column 14 (y 5..14) and row 14 (x 5..13): 40 px; the prediction's is row 4 (x 4..10), column 4,
    # column 10 (y 5..14) and row 14 (x 5..9): 32 px. Within 1 px (a plus): predicted 7 + 10 + 3 + 5
    # = 25 of 32 match (column 10 only at y 5, 13, 14); ground truth 8 + 10 + 0 + 7 = 25 of 40.
    precision, recall = 25 / 32, 25 / 40
    assert m.f[0] == 2 * precision * recall / (precision + recall)
    assert m.f[0] == pytest.approx(slow_f(pred, gt, 1))


def test_void_pixels_are_left_out():
    gt = rect(2, 4, 0, 2, 0, 2)
    pred = rect(2, 4, 0, 2, 0, 3)
    void = rect(2, 4, 0, 2, 2, 3)
    assert jaccard(pred, gt)[0] == 4 / 6
    assert jaccard(pred, gt, void)[0] == 1.0
    assert boundary_f(pred, gt, void)[0] == 1.0
    assert boundary_f(pred, gt)[0] == pytest.approx(slow_f(pred, gt, 1))
    assert jaccard(np.zeros((2, 4)), gt, np.ones((2, 4), bool))[0] == 1.0  # everything void: empty union


def test_f_equals_the_slow_reference_on_random_masks():
    rng = np.random.default_rng(7)
    for trial in range(12):
        h, w = int(rng.integers(2, 24)), int(rng.integers(2, 40))
        pred, gt = random_masks(rng, 2, h, w), random_masks(rng, 2, h, w)
        void = rng.random((2, h, w)) < 0.05 if trial % 3 == 0 else None
        radius = [1, 2, 3][trial % 3]
        got = boundary_f(pred, gt, void, bound_th=radius if radius > 1 else 0.008)
        expected_r = radius if radius > 1 else boundary_radius(h, w)
        for t in range(2):
            v = None if void is None else void[t]
            assert got[t] == pytest.approx(slow_f(pred[t], gt[t], expected_r, v), abs=1e-12)


def test_j_equals_plain_numpy_on_random_masks():
    rng = np.random.default_rng(3)
    pred, gt = random_masks(rng, 6, 30, 90), random_masks(rng, 6, 30, 90)
    inter, union = (pred & gt).sum((1, 2)), (pred | gt).sum((1, 2))
    np.testing.assert_array_equal(jaccard(pred, gt), np.where(union == 0, 1.0, inter / np.maximum(union, 1)))


def test_shape_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match="same shape"):
        frame_metrics(np.zeros((2, 4, 4)), np.zeros((2, 4, 5)))
    with pytest.raises(ValueError, match="void must have the shape"):
        jaccard(np.zeros((4, 4)), np.zeros((4, 4)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"\(H, W\) or \(T, H, W\)"):
        jaccard(np.zeros(4), np.zeros(4))


# ------------------------------------------------------------------ statistics
def test_statistics_mean_recall_decay():
    s = mean_recall_decay([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    # 8 frames: bin edges round(linspace(1, 8, 5) + 1e-10) - 1 = 0, 2, 4, 5, 7 (4.5 rounds up)
    assert s.mean == pytest.approx(0.55) and s.recall == 0.5  # 0.5 itself is not > 0.5
    assert s.decay == pytest.approx((0.9 + 0.8 + 0.7) / 3 - (0.4 + 0.3 + 0.2) / 3)
    assert mean_recall_decay([1.0, 0.5, 0.0]).decay == pytest.approx(0.75)  # bins v[0:2] and v[2:3]
    assert mean_recall_decay([0.3]) == Stats(0.3, 0.0, 0.0)
    assert mean_recall_decay([1, 1, 0, 0]).decay == 1.0
    empty = mean_recall_decay([])
    assert np.isnan(empty.mean) and np.isnan(empty.decay)


def test_decay_reproduces_the_official_uint8_wrap():
    assert np.isnan(mean_recall_decay(np.linspace(1, 0, 256)).decay)  # last bin v[191:0]: empty
    v = np.random.default_rng(0).random(1100)
    # edges 0, 275, 550, 824, 1099 wrap to 0, 19, 38, 56, 75
    assert mean_recall_decay(v).decay == pytest.approx(v[0:20].mean() - v[56:76].mean())


# ------------------------------------------------------------------ per object and global
def metrics_of(j, f, present) -> FrameMetrics:
    return FrameMetrics(np.array(j, float), np.array(f, float), np.array(present, bool))


def test_object_score_protocols():
    m = metrics_of([1.0, 1.0, 0.0, 0.5], [1.0, 1.0, 0.0, 1.0], [False, False, True, True])
    davis = object_score("v", 1, m, "davis")
    assert davis.frames == 4 and davis.j.mean == 0.625 and davis.f.mean == 0.75
    sav = object_score("v", 1, m, "sav")  # scored from its first appearance (frame 2)
    assert sav.frames == 2 and sav.j.mean == 0.25 and sav.f.mean == 0.5 and sav.jf == 0.375
    assert object_score("v", 1, metrics_of([1.0], [1.0], [False]), "sav") is None
    with pytest.raises(ValueError, match="unknown protocol"):
        object_score("v", 1, m, "youtube")


def test_summarize_averages_objects_not_videos():
    rows = [
        ObjectScore("a", 1, 3, Stats(1.0, 1.0, 0.0), Stats(0.8, 1.0, 0.1)),
        ObjectScore("a", 2, 3, Stats(0.5, 0.0, 0.2), Stats(0.6, 1.0, 0.3)),
        ObjectScore("b", 1, 3, Stats(0.0, 0.0, 0.0), Stats(0.1, 0.0, 0.2)),
    ]
    s = summarize(rows)
    assert (s.j_mean, s.f_mean, s.jf_mean) == pytest.approx((0.5, 0.5, 0.5))
    assert s.j_recall == pytest.approx(1 / 3) and s.f_decay == pytest.approx(0.2)
    assert (s.objects, s.videos) == (3, 2)
    with pytest.raises(ValueError, match="nothing was scored"):
        summarize([])
