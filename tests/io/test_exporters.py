"""Streaming exporters: palette PNGs, RLE JSON and overlay mp4 round trips, odd sizes, overlaps, bad input."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest
import torch
from PIL import Image

from masklet.io.exporters import (
    DEFAULT_FPS,
    OverlayVideoWriter,
    PalettePngWriter,
    RleFrames,
    RleJsonWriter,
    object_colors,
    read_palette_png,
)
from masklet.io.masks import mask_colors, overlay_masks

av = pytest.importorskip("av")
mask_utils = pytest.importorskip("pycocotools.mask")
# pycocotools' own use of numpy's __array__ protocol, not ours
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

H, W = 33, 47  # odd on both sides: yuv420p padding and row/column-major mix-ups show


def disc(cy: float, cx: float, r: float, h: int = H, w: int = W) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 < r * r


def frame_image(idx: int, h: int = H, w: int = W) -> np.ndarray:
    """A smooth frame whose brightness rises with its index: (h, w, 3) uint8."""
    yy, xx = np.mgrid[:h, :w]
    base = 20 + 35 * idx + (xx * 20 // w) + (yy * 20 // h)
    return np.stack([base, base, base], -1).astype(np.uint8)


def two_objects(shift: int = 0) -> tuple[list[int], np.ndarray]:
    """Objects 7 and 3 that overlap around (16, 20 + shift)."""
    return [7, 3], np.stack([disc(16, 14 + shift, 9), disc(16, 26 + shift, 9)])


# ------------------------------------------------------------------------------------------- colours


def test_object_colors_depend_only_on_the_id():
    assert np.array_equal(object_colors([3]), object_colors([1, 2, 3])[2:])
    assert np.array_equal(object_colors([5, 1]), mask_colors(5)[[4, 0]])
    assert np.array_equal(object_colors([300])[0], mask_colors(300)[299])
    assert object_colors([]).shape == (0, 3)
    with pytest.raises(ValueError, match="object ids must be positive integers, got 0"):
        object_colors([0, 2])


# -------------------------------------------------------------------------------------- palette PNGs


def test_palette_pngs_round_trip_with_later_objects_on_top(tmp_path):
    ids, masks = two_objects()
    overlap = masks[0] & masks[1]
    assert overlap.any() and (masks[0] & ~masks[1]).any()
    with PalettePngWriter(tmp_path / "masks") as writer:
        path = writer.write(12, ids, masks)
        writer.write(3, [3], torch.from_numpy(masks[1:]))  # a tensor works too
    assert path == tmp_path / "masks" / "00012.png"
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == ["00003.png", "00012.png"]

    with Image.open(path) as image:
        assert image.mode == "P" and image.size == (W, H)
        palette = np.asarray(image.getpalette()[: 256 * 3], dtype=np.uint8).reshape(256, 3)
        label = np.asarray(image)
    assert np.array_equal(palette[0], [0, 0, 0])
    assert np.array_equal(palette[[3, 7, 255]], object_colors([3, 7, 255]))
    assert np.all(label[overlap] == 3)  # 3 comes later in obj_ids
    back = read_palette_png(path)
    assert sorted(back) == [3, 7]
    assert np.array_equal(back[3], masks[1])
    assert np.array_equal(back[7], masks[0] & ~masks[1])
    assert np.array_equal(label == 0, ~(masks[0] | masks[1]))
    assert np.array_equal(read_palette_png(tmp_path / "masks" / "00003.png")[3], masks[1])


def test_palette_png_overwrites_a_frame_and_keeps_empty_frames(tmp_path):
    writer = PalettePngWriter(tmp_path)
    ids, masks = two_objects()
    writer.write(0, ids, masks)
    writer.write(0, [7], masks[:1])
    writer.write(1, [], np.zeros((0, H, W), bool))
    writer.close()
    assert list(read_palette_png(tmp_path / "00000.png")) == [7]
    with Image.open(tmp_path / "00001.png") as image:
        assert image.size == (W, H) and not np.asarray(image).any()


@pytest.mark.parametrize("bad_id", [0, 256, 300, -1])
def test_palette_png_rejects_ids_outside_1_to_255(tmp_path, bad_id):
    with pytest.raises(
        ValueError, match=rf"object id {bad_id} does not fit a palette PNG: ids must be 1\.\.255"
    ):
        PalettePngWriter(tmp_path).write(0, [1, bad_id], np.zeros((2, 4, 4), bool))
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "frame_idx, ids, shape, message",
    [
        (-1, [1], (1, 4, 4), r"frame_idx must be an integer >= 0, got -1"),
        (
            0,
            [1, 2],
            (1, 4, 4),
            r"masks must have shape \(N, H, W\) with N = len\(obj_ids\) = 2, got \(1, 4, 4\)",
        ),
        (0, [1], (1, 1, 4, 4), r"squeeze the channel of \(N, 1, H, W\) mask logits"),
        (0, [2, 2], (2, 4, 4), r"object ids must be distinct within a frame, got \[2, 2\]"),
        (0, ["a"], (1, 4, 4), r"object ids must be integers, got 'a'"),
    ],
)
def test_writers_reject_malformed_frames(tmp_path, frame_idx, ids, shape, message):
    writers = [
        PalettePngWriter(tmp_path / "png"),
        RleJsonWriter(tmp_path / "m.json", "v", 4, 4),
        OverlayVideoWriter(tmp_path / "o.mp4", 10, lambda i: np.zeros((4, 4, 3), np.uint8)),
    ]
    for writer in writers:
        with pytest.raises(ValueError, match=message):
            writer.write(frame_idx, ids, np.zeros(shape, bool))


def test_palette_writer_refuses_a_file_as_folder(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="is a file; expected a folder for the mask PNGs"):
        PalettePngWriter(tmp_path / "f")


# ------------------------------------------------------------------------------------------ RLE JSON


def test_rle_json_round_trips_through_pycocotools(tmp_path):
    path = tmp_path / "out" / "masks.json"
    ids, masks = two_objects()
    with RleJsonWriter(path, "clip.mp4", H, W) as writer:
        writer.write(5, ids, masks)
        writer.write(2, [3], masks[1:].astype(np.uint8))  # nonzero = foreground
        assert not path.exists()  # written on close only
    doc = json.loads(path.read_text())
    assert list(tmp_path.joinpath("out").iterdir()) == [path]  # the temporary file is gone
    assert (doc["video"], doc["height"], doc["width"]) == ("clip.mp4", H, W)
    assert list(doc["frames"]) == ["2", "5"] and list(doc["frames"]["5"]) == ["7", "3"]
    for frame, objs in [("5", {"7": masks[0], "3": masks[1]}), ("2", {"3": masks[1]})]:
        for obj, expected in objs.items():
            rle = doc["frames"][frame][obj]
            assert rle["size"] == [H, W] and isinstance(rle["counts"], str)
            decoded = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
            assert decoded.shape == (H, W) and np.array_equal(decoded.astype(bool), expected)


def test_rle_json_records_meta_keys_but_not_over_its_own(tmp_path):
    ids, masks = two_objects()
    meta = {"model": "sam2.1_hiera_tiny", "weights": "random"}
    with RleJsonWriter(tmp_path / "m.json", "v", H, W, meta=meta) as writer:
        writer.write(0, ids, masks)
    doc = json.loads((tmp_path / "m.json").read_text())
    assert list(doc) == ["video", "model", "weights", "height", "width", "frames"]
    assert (doc["model"], doc["weights"], list(doc["frames"])) == ("sam2.1_hiera_tiny", "random", ["0"])
    with pytest.raises(ValueError, match=r"meta keys \['frames', 'height'\] would replace"):
        RleJsonWriter(tmp_path / "n.json", "v", H, W, meta={"frames": 1, "height": 2})


def test_rle_json_keeps_the_later_result_of_a_frame(tmp_path):
    ids, masks = two_objects()
    with RleJsonWriter(tmp_path / "m.json", "v", H, W) as writer:
        writer.write(1, ids, masks)
        writer.write(0, ids, masks)
        writer.write(1, [3], masks[:1])
        assert writer.frames_written == 2
    frames = json.loads((tmp_path / "m.json").read_text())["frames"]
    assert list(frames) == ["0", "1"] and list(frames["1"]) == ["3"]
    assert np.array_equal(
        mask_utils.decode(frames["1"]["3"]),
        masks[0],  # str counts as written
    )
    with pytest.raises(ValueError, match="is closed; open a new one"):
        writer.write(2, ids, masks)


def test_rle_json_frames_are_sorted_numerically_and_size_checked(tmp_path):
    writer = RleJsonWriter(tmp_path / "m.json", "v", H, W)
    for idx in (10, 9, 100):
        writer.write(idx, [1], disc(5, 5, 3)[None])
    with pytest.raises(ValueError, match=r"masks of frame 4 are \(4, 4\) but the video is \(33, 47\)"):
        writer.write(4, [1], np.zeros((1, 4, 4), bool))
    writer.close()
    writer.close()  # a second close does nothing
    assert list(json.loads((tmp_path / "m.json").read_text())["frames"]) == ["9", "10", "100"]


def test_rle_frames_decode_back_to_the_masks():
    ids, masks = two_objects()
    store = RleFrames(H, W)
    store.add(4, ids, masks)
    store.add(1, [], np.zeros((0, H, W), bool))
    got_ids, got = store.masks(4)
    assert got_ids == ids and np.array_equal(got, masks)
    assert store.masks(1)[1].shape == (0, H, W) and store.frame_indices() == [1, 4]
    with pytest.raises(KeyError, match="frame 2 has no stored masks"):
        store.masks(2)


# ------------------------------------------------------------------------------------- overlay video


def read_video(path) -> tuple[Fraction, list[np.ndarray], tuple[int, int], str, str]:
    """(frame rate, decoded RGB frames, (height, width), codec, pixel format) of an mp4."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate, hw = stream.average_rate, (stream.height, stream.width)
        codec, pix_fmt = stream.codec_context.name, stream.codec_context.pix_fmt
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return rate, frames, hw, codec, pix_fmt


@pytest.mark.parametrize("h, w", [(H, W), (32, 48)])
def test_overlay_video_has_the_frames_fps_and_even_size(tmp_path, h, w):
    path = tmp_path / "sub" / "overlay.mp4"
    expected = []
    with OverlayVideoWriter(path, 24.0, lambda i: frame_image(i, h, w)) as writer:
        for idx in range(5):
            masks = disc(h / 2, 8 + 6 * idx, 6, h, w)[None]
            writer.write(idx, [2], masks)
            expected.append(overlay_masks(frame_image(idx, h, w), masks, colors=object_colors([2])))
    rate, frames, hw, codec, pix_fmt = read_video(path)
    assert (rate, len(frames), hw, codec, pix_fmt) == (24, 5, (h + h % 2, w + w % 2), "h264", "yuv420p")
    assert writer.frames_written == 5
    for got, want in zip(frames, expected):
        diff = np.abs(got[:h, :w].astype(int) - want.astype(int))
        assert diff.mean() < 6, diff.mean()  # lossy H.264 and 4:2:0 chroma
    if h % 2:  # the padding repeats the last row
        assert np.abs(frames[0][h].astype(int) - frames[0][h - 1].astype(int)).mean() < 6


def test_overlay_video_follows_reverse_order_and_defaults_to_30_fps(tmp_path):
    path = tmp_path / "rev.mp4"
    with OverlayVideoWriter(path, None, frame_image) as writer:
        for idx in (4, 3, 2, 1, 0):
            writer.write(idx, [], np.zeros((0, H, W), bool))
    rate, frames, *_ = read_video(path)
    assert rate == DEFAULT_FPS == 30
    brightness = [f[:H, :W].mean() for f in frames]
    assert brightness == sorted(brightness, reverse=True) and brightness[0] - brightness[-1] > 100


def test_overlay_video_keeps_ntsc_rates_exact(tmp_path):
    with OverlayVideoWriter(tmp_path / "n.mp4", 30000 / 1001, frame_image) as writer:
        writer.write(0, [1], disc(10, 10, 5)[None])
        writer.write(1, [1], disc(10, 12, 5)[None])
    assert read_video(tmp_path / "n.mp4")[0] == Fraction(30000, 1001)


@pytest.mark.parametrize(
    "order, message",
    [
        ([0, 1, 0], r"frame 0 arrived after frame 1, but the overlay video is written in increasing"),
        ([3, 2, 4], r"frame 4 arrived after frame 2, but the overlay video is written in decreasing"),
        ([0, 0], r"frame 0 arrived twice in a row"),
    ],
)
def test_overlay_video_rejects_mixed_order(tmp_path, order, message):
    with OverlayVideoWriter(tmp_path / "o.mp4", 10, frame_image) as writer:
        for idx in order[:-1]:
            writer.write(idx, [], np.zeros((0, H, W), bool))
        with pytest.raises(ValueError, match=message):
            writer.write(order[-1], [], np.zeros((0, H, W), bool))
    assert len(read_video(tmp_path / "o.mp4")[1]) == len(order) - 1  # still a valid file


def test_overlay_video_checks_frames_and_sizes(tmp_path):
    writer = OverlayVideoWriter(tmp_path / "o.mp4", 10, lambda i: np.zeros((H, W), np.uint8))
    with pytest.raises(ValueError, match=r"frames\(0\) must return an \(H, W, 3\) uint8 RGB array"):
        writer.write(0, [1], disc(5, 5, 3)[None])
    writer = OverlayVideoWriter(tmp_path / "o.mp4", 10, frame_image)
    with pytest.raises(ValueError, match=r"masks of frame 0 are \(4, 4\) but the frame is \(33, 47\)"):
        writer.write(0, [1], np.zeros((1, 4, 4), bool))
    writer.close()
    assert not (tmp_path / "o.mp4").exists()  # nothing written, no file
    with pytest.raises(ValueError, match=r"fps must be a positive number \(or None for 30\), got 0"):
        OverlayVideoWriter(tmp_path / "o.mp4", 0, frame_image)
