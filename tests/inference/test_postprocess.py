"""Connected components against scipy, and hole/sprinkle filling against the reference semantics."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from masklet.inference.postprocess import connected_components, fill_holes, fill_holes_and_sprinkles
from tests.oracle import require_reference, scipy_cc_like_reference, scipy_components

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def assert_same_partition(labels: np.ndarray, areas: np.ndarray, mask: np.ndarray, name: str = "") -> None:
    """``labels``/``areas`` of one (H, W) plane describe the same components as scipy's."""
    ref_labels, ref_areas = scipy_components(mask)
    np.testing.assert_array_equal(labels > 0, mask, err_msg=name)
    np.testing.assert_array_equal(areas, ref_areas, err_msg=name)
    pairs = set(zip(labels[mask].tolist(), ref_labels[mask].tolist()))
    # A bijection between our ids and scipy's: no component split, no two merged.
    ours, theirs = {a for a, _ in pairs}, {b for _, b in pairs}
    assert len(pairs) == len(ours) == len(theirs) == ref_labels.max(), name


def label(mask: np.ndarray, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    labels, areas = connected_components(torch.from_numpy(mask)[None, None].to(device))
    assert labels.dtype == torch.int32 and areas.dtype == torch.int32
    assert labels.device.type == device
    return labels[0, 0].cpu().numpy(), areas[0, 0].cpu().numpy()


def spiral(n: int) -> np.ndarray:
    """One square spiral path of width 1 with gaps of 1: a single component of length ~n*n/2."""
    m = np.zeros((n, n), dtype=bool)
    y, x, dy, dx = 0, 0, 0, 1
    for _ in range(n * n):
        m[y, x] = True
        ny, nx = y + 2 * dy, x + 2 * dx
        if not (0 <= ny < n and 0 <= nx < n) or m[ny, nx]:
            dy, dx = dx, -dy  # turn right
            ny, nx = y + 2 * dy, x + 2 * dx
            if not (0 <= ny < n and 0 <= nx < n) or m[ny, nx]:
                break
        m[y + dy, x + dx] = True
        y, x = ny, nx
    return m


def snake(h: int, w: int, transpose: bool = False) -> np.ndarray:
    """Boustrophedon path: full rows joined alternately at the right and left ends."""
    m = np.zeros((h, w), dtype=bool)
    m[::2] = True
    for i in range(1, h, 2):
        m[i, w - 1 if (i // 2) % 2 == 0 else 0] = True
    return m.T.copy() if transpose else m


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (11, 1), (17, 23), (64, 48), (256, 256)])
@pytest.mark.parametrize("density", [0.1, 0.45, 0.6, 0.9])
def test_random_masks_match_scipy(shape, density, device):
    rng = np.random.default_rng([shape[0], shape[1], int(density * 100)])
    mask = rng.random(shape) < density
    assert_same_partition(*label(mask, device), mask)


@pytest.mark.parametrize("device", DEVICES)
def test_worst_case_paths_match_scipy(device):
    cases = {
        "spiral": spiral(255),
        "snake": snake(256, 256),
        "snake_t": snake(256, 256, transpose=True),
        "staircase": np.tril(np.ones((128, 128), bool)) ^ np.tril(np.ones((128, 128), bool), -2),
        "diagonals": np.add.outer(np.arange(90), np.arange(70)) % 3 == 0,
        "anti_diagonals": np.subtract.outer(np.arange(90), np.arange(70)) % 3 == 0,
    }
    assert scipy_components(cases["spiral"])[0].max() == 1
    for name, mask in cases.items():
        assert_same_partition(*label(mask, device), mask, name)


def test_diagonal_neighbours_connect():
    """8-connectivity: pixels touching only at a corner are one component (4-connectivity says 2)."""
    mask = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=bool)
    labels, areas = label(mask)
    assert labels[0, 0] == labels[1, 1] > 0
    assert areas[0, 0] == 2


def test_empty_and_full_masks():
    labels, areas = label(np.zeros((7, 5), dtype=bool))
    assert labels.max() == 0 and areas.max() == 0
    labels, areas = label(np.ones((7, 5), dtype=bool))
    assert (labels == 1).all() and (areas == 35).all()


def test_labels_are_one_plus_first_raster_index():
    mask = np.zeros((4, 6), dtype=bool)
    mask[0, 4:] = True
    mask[2:, 1] = True
    mask[3, 2] = True
    labels, _ = label(mask)
    assert labels[0, 5] == 0 * 6 + 4 + 1
    assert labels[3, 2] == 2 * 6 + 1 + 1


def test_batch_planes_are_independent():
    rng = np.random.default_rng(3)
    masks = torch.from_numpy(rng.random((5, 3, 33, 21)) < 0.5)
    labels, areas = connected_components(masks)
    assert labels.shape == areas.shape == masks.shape
    for n in range(5):
        for c in range(3):
            assert_same_partition(labels[n, c].numpy(), areas[n, c].numpy(), masks[n, c].numpy())


def test_large_batch_spans_several_cpu_chunks():
    rng = np.random.default_rng(4)
    masks = torch.from_numpy(rng.random((9, 1, 256, 256)) < 0.55)
    labels, areas = connected_components(masks)
    for n in (0, 4, 8):
        assert_same_partition(labels[n, 0].numpy(), areas[n, 0].numpy(), masks[n, 0].numpy())


def test_non_bool_input_counts_nonzero_as_foreground():
    mask = torch.tensor([[[[0.0, 2.5], [0.0, -1.0]]]])
    labels, areas = connected_components(mask)
    assert labels.tolist() == [[[[0, 2], [0, 2]]]]
    assert areas.tolist() == [[[[0, 2], [0, 2]]]]


def test_zero_sized_input():
    labels, areas = connected_components(torch.zeros(0, 1, 8, 8, dtype=torch.bool))
    assert labels.shape == areas.shape == (0, 1, 8, 8)


def test_connected_components_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\).*got shape \(8, 8\).*mask\[None, None\]"):
        connected_components(torch.zeros(8, 8, dtype=torch.bool))
    with pytest.raises(TypeError, match="must be a torch.Tensor.*ndarray"):
        connected_components(np.zeros((1, 1, 8, 8), dtype=bool))


# ---------------------------------------------------------------- hole filling and sprinkle removal


def ring_scene() -> torch.Tensor:
    """(1, 1, 12, 12) logits: a 3x3 ring around a 1-pixel hole, a big square with a 2x2 hole, a dot."""
    x = torch.full((1, 1, 12, 12), -3.0)
    x[0, 0, 1:4, 1:4] = 2.0
    x[0, 0, 2, 2] = -1.0  # 1-pixel hole inside an 8-pixel ring
    x[0, 0, 5:11, 4:11] = 4.0
    x[0, 0, 7:9, 6:8] = -2.0  # 4-pixel hole
    x[0, 0, 0, 11] = 1.0  # 1-pixel sprinkle
    return x


def test_fill_holes_and_sprinkles_semantics():
    x = ring_scene()
    out = fill_holes_and_sprinkles(x, 0.0, max_hole_area=4, max_sprinkle_area=8)
    assert out[0, 0, 2, 2] == 10.0 and (out[0, 0, 7:9, 6:8] == 10.0).all()
    # The ring had 8 pixels before its hole was filled, so it goes; the filled hole stays.
    ring = x[0, 0, 1:4, 1:4] > 0
    assert (out[0, 0, 1:4, 1:4][ring] == -10.0).all()
    assert out[0, 0, 0, 11] == -10.0
    # Untouched pixels keep their exact score; the outer background (large) is not a hole.
    assert (out[0, 0, 5, 4:11] == 4.0).all() and out[0, 0, 11, 0] == -3.0
    assert out.dtype == x.dtype and out.shape == x.shape


def test_area_limits_are_inclusive_and_zero_disables():
    x = ring_scene()
    out = fill_holes_and_sprinkles(x, 0.0, max_hole_area=3, max_sprinkle_area=0)
    assert out[0, 0, 2, 2] == 10.0  # area 1 <= 3
    assert (out[0, 0, 7:9, 6:8] == -2.0).all()  # area 4 > 3
    assert out[0, 0, 0, 11] == 1.0  # sprinkle removal disabled
    untouched = fill_holes_and_sprinkles(x, 0.0, 0, 0)
    assert torch.equal(untouched, x) and untouched is not x


def test_threshold_moves_values():
    x = ring_scene()
    out = fill_holes_and_sprinkles(x, 1.5, max_hole_area=1, max_sprinkle_area=0)
    # At threshold 1.5 the dot (1.0) is background, and so is the 1-pixel ring hole.
    assert out[0, 0, 2, 2] == 11.5
    assert out[0, 0, 0, 11] == 1.0  # a background pixel touching a big background region


def test_fill_holes_video_variant():
    x = ring_scene()
    out = fill_holes(x, max_area=1)
    assert out[0, 0, 2, 2].item() == pytest.approx(0.1)
    assert (out[0, 0, 7:9, 6:8] == -2.0).all()
    assert out[0, 0, 0, 11] == 1.0  # no sprinkle removal in this variant
    assert torch.equal(fill_holes(x, 0), x)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_dtype_is_preserved(dtype):
    x = ring_scene().to(dtype)
    assert fill_holes_and_sprinkles(x, 0.0, 4, 8).dtype == dtype
    assert fill_holes(x, 4).dtype == dtype


def test_fill_rejects_bad_input():
    x = ring_scene()
    with pytest.raises(ValueError, match="floating point.*torch.bool.*raw logits"):
        fill_holes_and_sprinkles(x > 0, 0.0, 4, 4)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\).*got shape \(12, 12\)"):
        fill_holes(x[0, 0], 4)
    with pytest.raises(ValueError, match="max_hole_area must be a number >= 0.*-1"):
        fill_holes_and_sprinkles(x, 0.0, -1, 4)
    with pytest.raises(ValueError, match="max_sprinkle_area must be a number >= 0.*nan"):
        fill_holes_and_sprinkles(x, 0.0, 4, float("nan"))
    with pytest.raises(ValueError, match="threshold must be a number.*'0'"):
        fill_holes_and_sprinkles(x, "0", 4, 4)
    with pytest.raises(ValueError, match="max_area must be a number >= 0"):
        fill_holes(x, -2)


# ---------------------------------------------------------------- parity with the reference


@pytest.fixture
def reference_with_scipy_cc(monkeypatch):
    require_reference()
    import sam2.utils.misc as misc

    monkeypatch.setattr(misc, "get_connected_components", scipy_cc_like_reference)
    return misc


def smooth_logits(seed: int, n: int = 3, size: int = 64) -> torch.Tensor:
    """(n, 1, size, size) blobby logits with holes and specks of various sizes."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.randn(n, 1, size // 8, size // 8, generator=gen) * 4
    logits = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    return logits + torch.randn(n, 1, size, size, generator=gen) * 1.5


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("areas", [(0, 0), (6, 0), (0, 6), (6, 6), (40, 15)])
def test_image_postprocess_matches_reference(reference_with_scipy_cc, seed, areas):
    from sam2.utils.transforms import SAM2Transforms

    hole, sprinkle = areas
    logits = smooth_logits(seed)
    ref = SAM2Transforms(1024, 0.0, max_hole_area=hole, max_sprinkle_area=sprinkle)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the reference silently skips post-processing on errors
        # Resizing to the same size with align_corners=False is the identity, leaving only post-processing.
        expected = ref.postprocess_masks(logits, (64, 64))
    out = fill_holes_and_sprinkles(logits, 0.0, hole, sprinkle)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    if hole or sprinkle:
        assert not torch.equal(out, logits)  # the scene does exercise the step


@pytest.mark.parametrize("seed", [0, 1])
def test_video_fill_holes_matches_reference(reference_with_scipy_cc, seed):
    logits = smooth_logits(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        expected = reference_with_scipy_cc.fill_holes_in_mask_scores(logits, 8)
    out = fill_holes(logits, 8)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    assert not torch.equal(out, logits)
