"""AutoMaskGenerator's building blocks (grids, crops, boxes, NMS, small regions) against the reference's
helpers and hand-computed cases; output modes, progress, bounded upsampling and bad input on a tiny
random model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from masklet.inference import automask as automask_module
from masklet.inference.automask import AutoMaskGenerator, MaskSet
from masklet.inference.automask_ops import (
    batched_nms,
    crop_boxes,
    layer_point_grids,
    masks_to_boxes,
    near_crop_edge,
    nms,
    point_grid,
    remove_small_regions,
)
from masklet.io.masks import decode_rle, masks_to_rle_torch
from masklet.modeling.mask_decoder import stability_score
from tests.inference.test_stream import micro_model
from tests.oracle import require_reference


@pytest.fixture(scope="module")
def amg_ref():
    require_reference()
    import sam2.utils.amg as amg

    return amg


# ------------------------------------------------------------------------------ grids and crops
@pytest.mark.parametrize("n", [1, 2, 7, 32])
def test_point_grid_matches_reference(amg_ref, n):
    np.testing.assert_array_equal(point_grid(n), amg_ref.build_point_grid(n))


@pytest.mark.parametrize("n, layers, scale", [(32, 0, 1), (32, 2, 2), (10, 1, 3)])
def test_layer_grids_match_reference(amg_ref, n, layers, scale):
    ours, ref = layer_point_grids(n, layers, scale), amg_ref.build_all_layer_point_grids(n, layers, scale)
    assert len(ours) == len(ref) == layers + 1
    for a, b in zip(ours, ref):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("hw", [(534, 800), (1200, 1800), (101, 37)])
@pytest.mark.parametrize("layers", [0, 1, 2])
@pytest.mark.parametrize("overlap", [512 / 1500, 0.0, 0.5])
def test_crop_boxes_match_reference(amg_ref, hw, layers, overlap):
    assert crop_boxes(hw, layers, overlap) == amg_ref.generate_crop_boxes(hw, layers, overlap)


def test_crop_boxes_by_hand():
    boxes, layers = crop_boxes((100, 200), 1, 0.2)
    # overlap int(0.2 * 100 * 1) = 20; crop w = ceil((20 + 200) / 2) = 110, h = ceil((20 + 100) / 2) = 60
    assert boxes == [
        [0, 0, 200, 100],
        [0, 0, 110, 60],
        [0, 40, 110, 100],
        [90, 0, 200, 60],
        [90, 40, 200, 100],
    ]
    assert layers == [0, 1, 1, 1, 1]


# ------------------------------------------------------------------------------------- boxes
def random_masks(n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    masks = torch.rand(n, h, w, generator=gen) > 0.97
    masks[0] = False  # empty
    masks[1] = True  # full
    masks[2] = False
    masks[2, 5, 7] = True  # one pixel
    return masks


def test_masks_to_boxes_matches_reference(amg_ref):
    masks = random_masks(12, 30, 41)
    torch.testing.assert_close(masks_to_boxes(masks), amg_ref.batched_mask_to_box(masks), rtol=0, atol=0)
    assert masks_to_boxes(masks)[:3].tolist() == [[0, 0, 0, 0], [0, 0, 40, 29], [7, 5, 7, 5]]
    assert masks_to_boxes(masks[:0]).shape == (0, 4)


@pytest.mark.parametrize("crop", [[0, 0, 100, 80], [30, 20, 90, 80], [10, 0, 60, 40]])
def test_near_crop_edge_matches_reference(amg_ref, crop):
    gen = torch.Generator().manual_seed(1)
    w, h = crop[2] - crop[0], crop[3] - crop[1]
    xy0 = torch.randint(0, max(1, w // 2), (50, 2), generator=gen)
    xy1 = xy0 + torch.randint(1, max(2, w // 2), (50, 2), generator=gen)
    boxes = torch.cat([xy0, xy1.clamp(max=min(w, h) - 1)], 1)
    expected = amg_ref.is_box_near_crop_edge(boxes, crop, [0, 0, 100, 80])
    assert torch.equal(near_crop_edge(boxes, crop, [0, 0, 100, 80]), expected)
    assert expected.any() or crop == [0, 0, 100, 80]


# --------------------------------------------------------------------------------------- NMS
def test_nms_by_hand():
    boxes = torch.tensor(
        [[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 10], [2, 2, 2, 2]], dtype=torch.float32
    )
    scores = torch.tensor([0.9, 0.8, 0.7, 0.9, 0.95])
    # IoU(0, 1) = 81 / 119 = 0.68; box 3 equals box 0 (tie: input order wins); box 4 has no area
    assert nms(boxes, scores, 0.5).tolist() == [4, 0, 2]
    assert nms(boxes, scores, 0.7).tolist() == [4, 0, 1, 2]
    assert nms(boxes, scores, 1.0).tolist() == [4, 0, 3, 1, 2]  # strictly greater suppresses
    assert nms(boxes[:0], scores[:0], 0.5).tolist() == []


def test_batched_nms_keeps_categories_apart():
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], dtype=torch.float32)
    scores = torch.tensor([0.5, 0.9, 0.7])
    assert batched_nms(boxes, scores, torch.tensor([0, 0, 1]), 0.5).tolist() == [1, 2]
    assert batched_nms(boxes, scores, torch.tensor([0, 0, 0]), 0.5).tolist() == [1]


# ----------------------------------------------------------------------------- small regions
def blobs() -> np.ndarray:
    m = np.zeros((40, 50), bool)
    m[5:25, 5:30] = True  # a big island with holes
    m[10:12, 10:12] = False  # hole of 4
    m[15:22, 15:22] = False  # hole of 49
    m[30:32, 40:42] = True  # island of 4
    m[35, 2] = True  # island of 1, touching nothing
    m[34, 3] = True  # diagonal neighbour: same 8-connected island
    return m


@pytest.mark.parametrize("mode", ["holes", "islands"])
@pytest.mark.parametrize("area", [1, 3, 5, 50, 10_000])
def test_remove_small_regions_matches_reference(amg_ref, mode, area):
    pytest.importorskip("cv2")
    m = blobs()
    ours, changed = remove_small_regions(m, area, mode)
    expected, ref_changed = amg_ref.remove_small_regions(m, area, mode)
    np.testing.assert_array_equal(ours, expected)
    assert changed == ref_changed


def test_remove_small_regions_by_hand():
    m = blobs()
    filled, changed = remove_small_regions(m, 5, "holes")
    assert changed and filled[10:12, 10:12].all() and not filled[15:22, 15:22].any()
    kept, changed = remove_small_regions(m, 5, "islands")
    assert changed and not kept[30:32, 40:42].any() and not kept[34:36].any() and kept[5:10, 5:30].all()
    largest, _ = remove_small_regions(m, 10_000, "islands")  # every island small: the largest stays
    assert largest.sum() == m[5:25, 5:30].sum()
    with pytest.raises(ValueError, match="mode must be 'holes' or 'islands'"):
        remove_small_regions(m, 5, "specks")


def test_postprocess_small_regions_matches_reference(amg_ref):
    pytest.importorskip("cv2")
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    base = blobs()
    masks = np.stack([base, base & ~np.eye(40, 50, dtype=bool), np.roll(base, 9, axis=1), ~base])
    t = torch.from_numpy(masks)
    rles = masks_to_rle_torch(t)
    boxes = masks_to_boxes(t)
    ours = AutoMaskGenerator.postprocess_small_regions(
        MaskSet(rles, boxes.float(), torch.rand(4), torch.rand(4), torch.zeros(4, 2), torch.zeros(4, 4)),
        5,
        0.7,
    )
    data = amg_ref.MaskData(rles=[dict(r) for r in rles], boxes=boxes.clone())
    ref = SAM2AutomaticMaskGenerator.postprocess_small_regions(data, 5, 0.7)
    assert len(ours) == len(ref["rles"]) < 4  # two masks became duplicates
    for a, b in zip(ours.rles, ref["rles"]):
        np.testing.assert_array_equal(decode_rle(a), amg_ref.rle_to_mask(b))
    torch.testing.assert_close(ours.boxes, ref["boxes"].float())


def test_fast_stability_equals_the_decoder_definition():
    logits = torch.randn(6, 40, 50) * 3
    logits[2] = -10  # empty at both cuts: 0 / 0
    logits[3] = 10  # full
    fast = automask_module._stability(logits, 1.0, 0.0)
    torch.testing.assert_close(fast, stability_score(logits, 1.0, 0.0, empty=float("nan")), equal_nan=True)
    assert torch.isnan(fast[2]) and fast[3] == 1.0


# ---------------------------------------------------------------- the generator on a tiny model
@pytest.fixture(scope="module")
def tiny():
    return micro_model(image_size=64)


def image(h: int = 48, w: int = 60) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    img = np.stack([xx * 4, yy * 5, (xx + yy) * 2], -1)
    img[(yy - 20) ** 2 + (xx - 25) ** 2 < 100] = (240, 30, 30)
    return img.astype(np.uint8)


OPEN = dict(points_per_side=6, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0)


def test_output_modes_agree_and_decode_with_pycocotools(tiny):
    runs = {
        mode: AutoMaskGenerator(tiny, output_mode=mode, **OPEN).generate(image())
        for mode in ("binary_mask", "uncompressed_rle", "coco_rle")
    }
    binary = runs["binary_mask"]
    assert len(binary) > 0 and all(len(r) == len(binary) for r in runs.values())
    for b, u, c in zip(binary, runs["uncompressed_rle"], runs["coco_rle"]):
        seg = b["segmentation"]
        assert seg.dtype == bool and seg.shape == (48, 60) and b["area"] == int(seg.sum())
        assert isinstance(u["segmentation"]["counts"], list) and isinstance(c["segmentation"]["counts"], str)
        np.testing.assert_array_equal(decode_rle(u["segmentation"]), seg)
        coco = {"size": c["segmentation"]["size"], "counts": c["segmentation"]["counts"].encode()}
        np.testing.assert_array_equal(mask_utils.decode(coco).astype(bool), seg)
        assert set(b) == {
            "segmentation",
            "area",
            "bbox",
            "predicted_iou",
            "point_coords",
            "stability_score",
            "crop_box",
        }
        assert b["crop_box"] == [0.0, 0.0, 60.0, 48.0]


def test_progress_reports_every_batch(tiny):
    calls = []
    g = AutoMaskGenerator(tiny, points_per_batch=10, crop_n_layers=1, **OPEN)
    g.generate(image(), progress=lambda done, total: calls.append((done, total)))
    # 36 points in 4 batches for the whole image and each of the 4 crops
    assert calls == [(i, 20) for i in range(1, 21)]


def test_upsampling_in_small_chunks_gives_the_same_masks(tiny, monkeypatch):
    kwargs = dict(OPEN, box_nms_thresh=0.7, crop_n_layers=1)
    whole = AutoMaskGenerator(tiny, **kwargs).generate(image())
    monkeypatch.setattr(automask_module, "_UPSAMPLE_BYTES", 3 * 4 * 48 * 60)  # 3 masks at a time
    chunked = AutoMaskGenerator(tiny, **kwargs).generate(image())
    assert len(whole) == len(chunked) > 0
    for a, b in zip(whole, chunked):
        np.testing.assert_array_equal(a["segmentation"], b["segmentation"])
        assert a["bbox"] == b["bbox"] and a["predicted_iou"] == b["predicted_iou"]


def test_point_grids_replace_points_per_side(tiny):
    grid = np.array([[0.25, 0.5], [0.75, 0.5]])
    kwargs = dict(OPEN, points_per_side=None, point_grids=[grid])
    out = AutoMaskGenerator(tiny, **kwargs).generate(image())
    assert len(out) > 0 and {tuple(r["point_coords"][0]) for r in out} <= {(15.0, 24.0), (45.0, 24.0)}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(points_per_side=0), "points_per_side must be an integer >= 1, got 0"),
        (dict(points_per_side=None), "give exactly one of points_per_side and point_grids, got neither"),
        (
            dict(point_grids=[np.zeros((4, 2))]),
            "give exactly one of points_per_side and point_grids, got both",
        ),
        (
            dict(points_per_side=None, point_grids=[np.zeros((4, 3))]),
            r"point_grids\[0\] must be a non-empty \(K, 2\)",
        ),
        (dict(points_per_side=None, point_grids=[np.full((4, 2), 2.0)]), r"relative coordinates in \[0, 1\]"),
        (
            dict(points_per_side=None, point_grids=[np.zeros((4, 2))], crop_n_layers=1),
            "one \\(K, 2\\) grid per crop layer: crop_n_layers=1 needs 2, got 1",
        ),
        (dict(output_mode="polygons"), "unknown output_mode 'polygons'; choose one of binary_mask"),
        (dict(points_per_batch=0), "points_per_batch must be an integer >= 1"),
        (dict(pred_iou_thresh=1.5), r"pred_iou_thresh must be a number in \[0.0, 1.0\], got 1.5"),
        (dict(box_nms_thresh=float("nan")), "box_nms_thresh must be a number"),
        (dict(crop_n_layers=-1), "crop_n_layers must be an integer >= 0"),
        (dict(min_mask_region_area=-3), "min_mask_region_area must be a number >= 0.0"),
        (
            dict(crop_n_layers=3, crop_n_points_downscale_factor=4, points_per_side=8),
            "crop layer 2 would get",
        ),
    ],
)
def test_bad_settings_are_explained(tiny, kwargs, message):
    with pytest.raises(ValueError, match=message):
        AutoMaskGenerator(tiny, **kwargs)


def test_images_too_small_for_the_crops(tiny):
    g = AutoMaskGenerator(tiny, crop_n_layers=3, **OPEN)
    with pytest.raises(
        ValueError, match=r"the image \(5x4\) is too small for crop_n_layers=3: a crop would be"
    ):
        g.generate(image(4, 5))
    assert len(g.generate(image())) > 0  # the generator still works afterwards


@pytest.mark.parametrize(
    "bad", [np.zeros((10, 10, 5), np.uint8), np.zeros((0, 10, 3), np.uint8), "photo.jpg"]
)
def test_bad_images_are_rejected(tiny, bad):
    with pytest.raises(ValueError):
        AutoMaskGenerator(tiny, **OPEN).generate(bad)
