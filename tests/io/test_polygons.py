"""Masks to pixel-corner polygons and back: exact outlines, simplification, pycocotools agreement."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from masklet.io.polygons import mask_to_polygons, polygons_to_mask


def rect(h, w, y0, y1, x0, x1) -> np.ndarray:
    m = np.zeros((h, w), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def disc(h, w, cy, cx, r) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (yy + 0.5 - cy) ** 2 + (xx + 0.5 - cx) ** 2 < r * r


def iou(a, b) -> float:
    return float((a & b).sum() / (a | b).sum())


def signed_area(p: np.ndarray) -> float:
    x, y = p[:, 0], p[:, 1]
    return float((x * np.roll(y, -1) - np.roll(x, -1) * y).sum() / 2)


def test_rectangle_is_four_corners_and_rasterises_back_exactly():
    m = rect(20, 30, 5, 12, 3, 17)
    for tol in (0.0, 1.0, 3.0):
        (poly,) = mask_to_polygons(m, tolerance=tol)
        assert poly.dtype == np.float64
        # pixel-corner frame, clockwise on screen, from the top-left corner
        assert poly.tolist() == [[3, 5], [17, 5], [17, 12], [3, 12]]
        assert np.array_equal(polygons_to_mask([poly], 20, 30), m)


def test_l_shape_keeps_its_six_corners():
    m = rect(10, 10, 1, 9, 1, 4) | rect(10, 10, 6, 9, 1, 8)
    (poly,) = mask_to_polygons(m, tolerance=0)
    assert poly.tolist() == [[1, 1], [4, 1], [4, 6], [8, 6], [8, 9], [1, 9]]
    assert np.array_equal(polygons_to_mask([poly], 10, 10), m)


@pytest.mark.parametrize("tolerance", [0.0, 0.5, 1.0, 2.0])
def test_disc_round_trip(tolerance):
    m = disc(120, 160, 60, 70, 40)
    (poly,) = mask_to_polygons(m, tolerance=tolerance)
    back = polygons_to_mask([poly], 120, 160)
    if tolerance == 0:
        assert np.array_equal(back, m)
    assert iou(back, m) >= 0.98
    full = len(mask_to_polygons(m, tolerance=0)[0])
    if tolerance > 0:  # simplification does simplify
        assert len(poly) < (full / 3 if tolerance >= 1 else full)
    assert signed_area(poly) > 0  # clockwise on screen (y down)


def test_components_give_one_polygon_each_in_reading_order():
    m = rect(40, 50, 20, 30, 2, 8) | rect(40, 50, 3, 9, 30, 45) | disc(40, 50, 30, 35, 5)
    polys = mask_to_polygons(m, tolerance=0)
    assert len(polys) == 3
    starts = [tuple(p[0]) for p in polys]
    assert starts == sorted(starts, key=lambda s: (s[1], s[0]))
    assert starts[0] == (30, 3)
    assert np.array_equal(polygons_to_mask(polys, 40, 50), m)
    assert all(len(p) == 4 for p in polys[:2])


def test_diagonal_neighbours_are_one_component():
    m = np.zeros((5, 5), dtype=bool)
    m[1, 1] = m[2, 2] = m[3, 3] = True
    (poly,) = mask_to_polygons(m, tolerance=0)
    assert np.array_equal(polygons_to_mask([poly], 5, 5), m)


@pytest.mark.parametrize("tolerance", [0.0, 1.0, 5.0])
def test_one_pixel_objects_survive(tolerance):
    m = np.zeros((6, 7), dtype=bool)
    m[0, 0] = m[5, 6] = True
    m[2, 1:6] = True  # a one-pixel-high line: simplification would flatten it
    polys = mask_to_polygons(m, tolerance=tolerance)
    assert len(polys) == 3 and all(len(p) >= 3 for p in polys)
    assert np.array_equal(polygons_to_mask(polys, 6, 7), m)


def test_holes_are_filled_and_nested_components_kept():
    ring = rect(30, 30, 2, 28, 2, 28) & ~rect(30, 30, 6, 24, 6, 24)
    dot = rect(30, 30, 12, 16, 12, 16)
    polys = mask_to_polygons(ring | dot, tolerance=0)
    assert [p.tolist() for p in polys] == [
        [[2, 2], [28, 2], [28, 28], [2, 28]],
        [[12, 12], [16, 12], [16, 16], [12, 16]],
    ]
    assert np.array_equal(polygons_to_mask(polys, 30, 30), rect(30, 30, 2, 28, 2, 28))


def test_random_masks_match_hole_filling_and_8_connected_labels():
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(0)
    for _ in range(150):
        h, w = rng.integers(1, 30, size=2)
        m = rng.random((h, w)) < rng.random()
        polys = mask_to_polygons(m, tolerance=0)
        assert np.array_equal(polygons_to_mask(polys, h, w), ndimage.binary_fill_holes(m))
        assert len(polys) == ndimage.label(m, structure=np.ones((3, 3)))[1]
        assert all(signed_area(p) > 0 for p in polys)


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_pycocotools_rasterises_our_polygons_to_the_same_pixels():
    coco = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(1)
    for _ in range(50):
        h, w = rng.integers(2, 40, size=2)
        m = rng.random((h, w)) < 0.6
        polys = mask_to_polygons(m, tolerance=0)
        flat = [p.ravel().tolist() for p in polys]
        theirs = coco.decode(coco.frPyObjects(flat, h, w)).any(axis=2)
        assert np.array_equal(theirs, polygons_to_mask(polys, h, w))


def test_min_area_drops_small_components():
    m = rect(20, 20, 1, 3, 1, 3) | rect(20, 20, 10, 18, 10, 18)
    assert len(mask_to_polygons(m, min_area=4)) == 2
    (big,) = mask_to_polygons(m, min_area=5)
    assert big[0].tolist() == [10, 10]


def test_empty_and_tensor_inputs():
    assert mask_to_polygons(np.zeros((8, 9), dtype=bool)) == []
    assert mask_to_polygons(np.zeros((0, 0), dtype=bool)) == []
    t = torch.zeros(6, 6, dtype=torch.uint8)
    t[1:3, 2:5] = 1
    assert mask_to_polygons(t, 0)[0].tolist() == [[2, 1], [5, 1], [5, 3], [2, 3]]


def test_polygons_to_mask_inputs():
    # flat COCO lists, vertices outside the image (clipped), degenerate polygons skipped
    m = polygons_to_mask([[-5, -5, 3, -5, 3, 2, -5, 2], [[1, 1], [4, 4]]], 4, 6)
    assert np.array_equal(m, rect(4, 6, 0, 2, 0, 3))
    assert polygons_to_mask([], 3, 4).shape == (3, 4)
    # a ring that goes round two squares joined by a zero-width bridge fills both (non-zero winding)
    bridged = [[0, 0], [2, 0], [4, 4], [6, 4], [6, 6], [4, 6], [4, 4], [2, 0], [2, 2], [0, 2]]
    assert np.array_equal(polygons_to_mask([bridged], 7, 7), rect(7, 7, 0, 2, 0, 2) | rect(7, 7, 4, 6, 4, 6))
    # a triangle: pixels whose centre is inside
    tri = polygons_to_mask([[[0, 0], [6, 0], [0, 6]]], 6, 6)
    assert tri.sum(axis=1).tolist() == [5, 4, 3, 2, 1, 0]


def test_bad_inputs_say_what_to_fix():
    with pytest.raises(ValueError, match=r"shape \(H, W\).*masks\[i\]"):
        mask_to_polygons(np.zeros((2, 5, 5), dtype=bool))
    with pytest.raises(ValueError, match="tolerance"):
        mask_to_polygons(np.ones((3, 3), dtype=bool), tolerance=-1)
    with pytest.raises(ValueError, match="even count"):
        polygons_to_mask([[1, 2, 3]], 5, 5)
    with pytest.raises(ValueError, match=r"polygons\[0\] must have shape \(N, 2\)"):
        polygons_to_mask([np.zeros((4, 3))], 5, 5)
    with pytest.raises(ValueError, match="wrap a single"):
        polygons_to_mask(np.zeros((4, 2)), 5, 5)
    with pytest.raises(ValueError, match="NaN"):
        polygons_to_mask([[[0, 0], [1, np.nan], [1, 1]]], 5, 5)
    with pytest.raises(ValueError, match="height and width"):
        polygons_to_mask([], -1, 5)
