"""COCO RLE against pycocotools (both directions), boxes, PNGs and overlays."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as coco

from masklet.io.masks import (
    compress_rle,
    decode_rle,
    encode_rle,
    mask_colors,
    mask_to_box_xywh,
    mask_to_uncompressed_rle,
    masks_to_rle_torch,
    overlay_masks,
    rle_area,
    save_mask_png,
)

SHAPES = [(1, 1), (1, 13), (9, 1), (7, 5), (31, 17), (101, 77), (480, 641)]


def coco_encode(mask: np.ndarray) -> dict:
    return coco.encode(np.asfortranarray(mask.astype(np.uint8)))


def mask_cases():
    rng = np.random.default_rng(0)
    for shape in SHAPES:
        for density in (0.0, 0.003, 0.5, 0.97, 1.0):
            yield f"{shape}-{density}", rng.random(shape) < density
    blob = np.zeros((200, 300), dtype=bool)
    blob[40:170, 20:260] = True
    blob[60:80, 100:120] = False
    yield "blob", blob
    single = np.zeros((6, 9), dtype=bool)
    single[5, 8] = True
    yield "last_pixel", single
    first = np.zeros((6, 9), dtype=bool)
    first[0, 0] = True
    yield "first_pixel", first


CASES = list(mask_cases())
IDS = [name for name, _ in CASES]
MASKS = [m for _, m in CASES]


@pytest.mark.parametrize("mask", MASKS, ids=IDS)
def test_compressed_rle_is_byte_identical_to_pycocotools(mask):
    ours = encode_rle(mask)
    ref = coco_encode(mask)
    assert ours["size"] == list(ref["size"]) == list(mask.shape)
    assert isinstance(ours["counts"], str)
    assert ours["counts"].encode() == ref["counts"]


@pytest.mark.parametrize("mask", MASKS, ids=IDS)
def test_both_directions_decode(mask):
    np.testing.assert_array_equal(coco.decode(encode_rle(mask)).astype(bool), mask)
    ref = coco_encode(mask)
    np.testing.assert_array_equal(decode_rle(ref), mask)  # bytes counts
    np.testing.assert_array_equal(decode_rle({**ref, "counts": ref["counts"].decode()}), mask)  # str counts
    decoded = decode_rle(ref)
    assert decoded.dtype == np.bool_ and decoded.flags.c_contiguous


@pytest.mark.parametrize("mask", MASKS, ids=IDS)
def test_uncompressed_rle_matches_pycocotools(mask):
    h, w = mask.shape
    ours = mask_to_uncompressed_rle(mask)
    assert all(isinstance(c, int) for c in ours["counts"])
    assert sum(ours["counts"]) == h * w
    # pycocotools turns an uncompressed RLE into its compressed form; it must equal its own encoding.
    assert coco.frPyObjects(ours, h, w)["counts"] == coco_encode(mask)["counts"]
    np.testing.assert_array_equal(decode_rle(ours), mask)
    assert compress_rle(ours) == encode_rle(mask)


@pytest.mark.parametrize("mask", MASKS, ids=IDS)
def test_area_and_box_match_pycocotools(mask):
    ref = coco_encode(mask)
    assert rle_area(encode_rle(mask)) == int(coco.area(ref)) == int(mask.sum())
    assert rle_area(mask_to_uncompressed_rle(mask)) == int(mask.sum())
    assert mask_to_box_xywh(mask) == coco.toBbox(ref).astype(int).tolist()


def test_box_is_inclusive():
    mask = np.zeros((10, 12), dtype=bool)
    mask[2:5, 3:9] = True
    assert mask_to_box_xywh(mask) == [3, 2, 6, 3]
    assert mask_to_box_xywh(np.zeros((4, 4), dtype=bool)) == [0, 0, 0, 0]


def test_column_major_order():
    mask = np.array([[1, 1], [0, 0]], dtype=bool)
    assert mask_to_uncompressed_rle(mask)["counts"] == [0, 1, 1, 1, 1]
    assert mask_to_uncompressed_rle(mask.T)["counts"] == [0, 2, 2]


def test_large_counts_and_negative_deltas_round_trip():
    # Runs of very different lengths make the delta coding go negative and use several groups.
    mask = np.zeros((1000, 1000), dtype=bool)
    mask[:, 3] = True
    mask[17, 500:] = True
    mask[999, 999] = True
    rle = encode_rle(mask)
    assert rle["counts"].encode() == coco_encode(mask)["counts"]
    np.testing.assert_array_equal(decode_rle(rle), mask)


def test_rle_survives_json():
    mask = np.random.default_rng(1).random((37, 23)) < 0.4
    rle = json.loads(json.dumps(encode_rle(mask)))
    np.testing.assert_array_equal(decode_rle(rle), mask)


def test_non_bool_masks_and_tensors():
    mask = np.array([[0, 3], [255, 0]], dtype=np.uint8)
    assert mask_to_uncompressed_rle(mask)["counts"] == [1, 2, 1]
    assert encode_rle(torch.from_numpy(mask > 0)) == encode_rle(mask)


@pytest.mark.parametrize("shape", [(5, 1, 1), (4, 7, 5), (3, 64, 96), (2, 0, 4), (0, 8, 8)])
def test_masks_to_rle_torch_matches_numpy(shape):
    rng = np.random.default_rng(sum(shape))
    masks = rng.random(shape) < rng.random((shape[0], 1, 1))
    if shape[0] > 2:
        masks[0] = False
        masks[1] = True
    rles = masks_to_rle_torch(torch.from_numpy(masks))
    assert len(rles) == shape[0]
    for mask, rle in zip(masks, rles):
        assert rle == mask_to_uncompressed_rle(mask)


def test_masks_to_rle_torch_rejects_numpy():
    with pytest.raises(ValueError, match=r"torch tensor of shape \(N, H, W\).*ndarray"):
        masks_to_rle_torch(np.zeros((2, 4, 4), dtype=bool))
    with pytest.raises(ValueError, match=r"torch tensor of shape \(N, H, W\).*\(4, 4\)"):
        masks_to_rle_torch(torch.zeros(4, 4, dtype=torch.bool))


def test_bad_rles_are_explained():
    with pytest.raises(ValueError, match="'size' \\[height, width\\] and 'counts'.*keys \\['counts'\\]"):
        decode_rle({"counts": [1]})
    with pytest.raises(ValueError, match="cover 5 pixels but 'size' \\[2, 2\\] has 4"):
        decode_rle({"size": [2, 2], "counts": [1, 4]})
    with pytest.raises(ValueError, match="negative run length"):
        decode_rle({"size": [1, 2], "counts": [3, -1]})
    with pytest.raises(ValueError, match="outside pycocotools' alphabet"):
        decode_rle({"size": [2, 2], "counts": "4 "})
    with pytest.raises(ValueError, match="truncated"):
        decode_rle({"size": [2, 2], "counts": "4P"})
    with pytest.raises(ValueError, match="ASCII"):
        decode_rle({"size": [2, 2], "counts": "4é"})
    with pytest.raises(ValueError, match="flat list of integer"):
        decode_rle({"size": [2, 2], "counts": [1.5, 2.5]})
    with pytest.raises(ValueError, match="'size' must be \\[height, width\\]"):
        rle_area({"size": [2], "counts": [2]})


def test_bad_masks_are_explained():
    with pytest.raises(ValueError, match=r"shape \(H, W\), got shape \(1, 4, 4\).*masks\[i\]"):
        encode_rle(np.zeros((1, 4, 4), dtype=bool))
    with pytest.raises(ValueError, match="numpy array or torch tensor.*list"):
        mask_to_box_xywh([[0, 1]])


def test_save_mask_png(tmp_path):
    mask = np.zeros((5, 7), dtype=bool)
    mask[1:3, 2:6] = True
    path = tmp_path / "mask.png"
    save_mask_png(mask, path)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.mode == "L"
        pixels = np.asarray(im)
    np.testing.assert_array_equal(pixels, mask.astype(np.uint8) * 255)


def test_mask_colors_are_deterministic_and_distinct():
    colors = mask_colors(12)
    assert colors.shape == (12, 3) and colors.dtype == np.uint8
    np.testing.assert_array_equal(colors, mask_colors(20)[:12])
    diffs = np.abs(colors[:, None].astype(int) - colors[None].astype(int)).sum(-1)
    assert diffs[~np.eye(12, dtype=bool)].min() > 30


def test_overlay_blends_and_outlines():
    image = np.full((9, 9, 3), 100, dtype=np.uint8)
    mask = np.zeros((9, 9), dtype=bool)
    mask[2:7, 2:7] = True
    red = [[255, 0, 0]]
    out = overlay_masks(image, [mask], alpha=0.5, colors=red)
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert out[4, 4].tolist() == [178, 50, 50]  # interior: half image, half colour (177.5 rounds to 178)
    assert out[2, 4].tolist() == [255, 0, 0]  # outline at full colour
    assert out[0, 0].tolist() == [100, 100, 100]  # outside untouched
    plain = overlay_masks(image, mask, alpha=0.5, colors=red, draw_contours=False)
    assert plain[2, 4].tolist() == [178, 50, 50]
    assert (image == 100).all()  # the input is not modified


def test_overlay_draws_later_masks_on_top_and_accepts_stacks():
    image = np.zeros((4, 4, 3), dtype=np.uint8)
    stack = np.ones((2, 4, 4), dtype=bool)
    out = overlay_masks(image, stack, alpha=1.0, colors=[[10, 20, 30], [40, 50, 60]])
    assert (out == [40, 50, 60]).all()
    torch_out = overlay_masks(image, torch.from_numpy(stack), alpha=1.0, colors=[[10, 20, 30], [40, 50, 60]])
    np.testing.assert_array_equal(torch_out, out)
    np.testing.assert_array_equal(overlay_masks(image, []), image)


def test_overlay_rejects_bad_arguments():
    image = np.zeros((4, 4, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"masks\[0\] has shape \(3, 4\) but the image is \(4, 4\)"):
        overlay_masks(image, [np.zeros((3, 4), dtype=bool)])
    with pytest.raises(ValueError, match="alpha must be in \\[0, 1\\], got 1.5"):
        overlay_masks(image, [np.zeros((4, 4), dtype=bool)], alpha=1.5)
    with pytest.raises(ValueError, match="colors must be 1 RGB triples in 0..255, got shape \\(1, 2\\)"):
        overlay_masks(image, [np.zeros((4, 4), dtype=bool)], colors=[[1, 2]])
