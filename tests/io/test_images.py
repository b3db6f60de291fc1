"""Every accepted image conversion and every rejection, with the message it gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from masklet.io.images import load_image, to_rgb_uint8


def gradient(h: int = 5, w: int = 7) -> np.ndarray:
    """(h, w, 3) uint8 with distinct values per pixel and channel."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 30, yy * 40, (xx + yy) * 9], -1).astype(np.uint8)


# ------------------------------------------------------------------ accepted numpy inputs


def test_rgb_uint8_passes_through_unchanged():
    rgb = gradient()
    out = to_rgb_uint8(rgb)
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, rgb)


def test_non_contiguous_input_gives_contiguous_output():
    rgb = gradient(6, 8)[::2, ::-1]
    out = to_rgb_uint8(rgb)
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 1)])
def test_gray_is_repeated_to_rgb(shape):
    gray = np.arange(35, dtype=np.uint8).reshape(shape)
    out = to_rgb_uint8(gray)
    assert out.shape == (5, 7, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], gray.reshape(5, 7))


def test_rgba_drops_alpha_without_compositing():
    rgba = np.concatenate([gradient(), np.zeros((5, 7, 1), np.uint8)], axis=2)
    np.testing.assert_array_equal(to_rgb_uint8(rgba), gradient())


def test_uint16_is_divided_by_257_with_rounding():
    values = np.array([[0, 128, 129, 257, 385, 386, 65535]], dtype=np.uint16)
    out = to_rgb_uint8(values)
    # 128/257 = 0.498 -> 0, 129/257 = 0.502 -> 1, 385/257 = 1.498 -> 1, 386/257 = 1.502 -> 2
    assert out[0, :, 0].tolist() == [0, 0, 1, 1, 1, 2, 255]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_float_in_unit_range_is_scaled_and_rounded(dtype):
    values = np.array([[0.0, 0.5, 1 / 255, 0.499 / 255, 1.0]], dtype=dtype)
    out = to_rgb_uint8(values)
    assert out[0, :, 1].tolist() == [0, 128, 1, 0, 255]


# ------------------------------------------------------------------ rejected numpy inputs


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((0, 4, 3), np.uint8), r"empty image of shape \(0, 4, 3\)"),
        (np.zeros((4, 0), np.uint8), r"empty image of shape \(4, 0, 1\)"),
        (np.zeros(10, np.uint8), r"shape \(H, W\) or \(H, W, C\), got 1 dims.*one image at a time"),
        (np.zeros((2, 4, 4, 3), np.uint8), r"got 4 dims with shape \(2, 4, 4, 3\).*one image at a time"),
        (np.zeros((5, 6, 2), np.uint8), r"1 \(gray\), 3 \(RGB\) or 4 \(RGBA\) channels.*\(5, 6, 2\)\.$"),
        (np.zeros((3, 20, 30), np.uint8), r"channels.*\(3, 20, 30\).*channels-first.*transpose\(1, 2, 0\)"),
        (np.zeros((4, 4), bool), r"bool array.*mask rather than an image.*astype\(np.uint8\) \* 255"),
        (np.zeros((4, 4, 3), np.int64), r"unsupported image dtype int64; expected uint8, uint16.*np.clip"),
        (np.zeros((4, 4, 3), np.int8), r"unsupported image dtype int8"),
        (np.zeros((4, 4, 3), np.complex64), r"unsupported image dtype complex64"),
        (np.full((4, 4, 3), 1.5, np.float32), r"values must lie in \[0, 1\], got range \[1.5, 1.5\].*by 255"),
        (np.full((4, 4), -0.25), r"got range \[-0.25, -0.25\]"),
        (np.full((4, 4), 255.0), r"got range \[255, 255\]; divide 0..255 data by 255"),
        (np.array([[0.5, np.nan]]), r"contains NaN; expected finite values in \[0, 1\]"),
        (np.array([[0.5, np.inf]]), r"values must lie in \[0, 1\], got range \[0.5, inf\]"),
    ],
)
def test_rejections_explain_themselves(bad, message):
    with pytest.raises(ValueError, match=message):
        to_rgb_uint8(bad)


@pytest.mark.parametrize("bad", [[[1, 2], [3, 4]], "image.png", None, 3.0])
def test_non_images_are_rejected(bad):
    with pytest.raises(ValueError, match="numpy array, torch tensor or PIL image, got .*load_image"):
        to_rgb_uint8(bad)


# ------------------------------------------------------------------ torch tensors


def test_torch_uint8_tensor():
    rgb = gradient()
    np.testing.assert_array_equal(to_rgb_uint8(torch.from_numpy(rgb)), rgb)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_torch_float_tensor(dtype):
    t = torch.tensor([[0.0, 0.5, 1.0]], dtype=dtype)
    assert to_rgb_uint8(t)[0, :, 2].tolist() == [0, 128, 255]


def test_torch_channels_first_is_rejected_with_hint():
    with pytest.raises(ValueError, match=r"channels-first.*permute\(1, 2, 0\)"):
        to_rgb_uint8(torch.zeros(3, 16, 16, dtype=torch.uint8))


# ------------------------------------------------------------------ PIL images


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "1", "CMYK", "YCbCr", "I", "F", "RGBX"])
def test_pil_modes_convert_to_rgb(mode):
    base = Image.fromarray(gradient())
    image = base.convert(mode)
    out = to_rgb_uint8(image)
    assert out.shape == (5, 7, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.asarray(image.convert("RGB")))
    if mode in ("RGB", "RGBA", "RGBX"):
        np.testing.assert_array_equal(out, gradient())


def test_pil_16_bit_gray_is_scaled_not_clipped():
    values = np.array([[0, 1000, 32768, 65535]], dtype=np.uint16)
    image = Image.fromarray(values)
    assert image.mode.startswith("I;16")
    assert to_rgb_uint8(image)[0, :, 0].tolist() == [0, 4, 128, 255]


def test_pil_in_memory_image_is_not_rotated_by_exif():
    image = Image.fromarray(gradient(4, 6))
    image.getexif()[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    np.testing.assert_array_equal(to_rgb_uint8(image), gradient(4, 6))


def test_pil_empty_image_is_rejected():
    with pytest.raises(ValueError, match=r"empty PIL image of size \(0, 3\)"):
        to_rgb_uint8(Image.new("RGB", (0, 3)))


# ------------------------------------------------------------------ files


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tiff"])
def test_load_lossless_files(tmp_path, suffix):
    path = tmp_path / f"img{suffix}"
    Image.fromarray(gradient()).save(path)
    out = load_image(path)
    np.testing.assert_array_equal(out, gradient())
    np.testing.assert_array_equal(load_image(str(path)), out)


def test_load_jpeg_gray_and_rgba_png(tmp_path):
    Image.fromarray(gradient()).convert("L").save(tmp_path / "gray.jpg")
    assert load_image(tmp_path / "gray.jpg").shape == (5, 7, 3)
    rgba = np.concatenate([gradient(), np.full((5, 7, 1), 7, np.uint8)], axis=2)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(load_image(tmp_path / "rgba.png"), gradient())


def test_load_applies_exif_orientation(tmp_path):
    pixels = gradient(4, 6)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to display
    path = tmp_path / "sideways.png"
    Image.fromarray(pixels).save(path, exif=exif)
    out = load_image(path)
    assert out.shape == (6, 4, 3)
    np.testing.assert_array_equal(out, np.rot90(pixels, k=-1))


def test_load_16_bit_png_scales(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.uint16)).save(path)
    assert load_image(path)[0, :, 1].tolist() == [0, 128, 255]


def test_load_missing_file(tmp_path):
    missing = tmp_path / "nope.jpg"
    with pytest.raises(FileNotFoundError, match=f"no such image file: {missing}"):
        load_image(missing)


def test_load_directory(tmp_path):
    with pytest.raises(ValueError, match="is a directory; expected an image file"):
        load_image(tmp_path)


@pytest.mark.parametrize(
    "content",
    [b"this is not an image\n", b"", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20],
    ids=["text", "empty", "broken_png"],
)
def test_load_non_image(tmp_path, content):
    path = tmp_path / "fake.png"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"could not read {path} as an image: .+"):
        load_image(path)


def test_load_truncated_jpeg(tmp_path):
    path = tmp_path / "cut.jpg"
    Image.fromarray(gradient(64, 64)).save(path, quality=95)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="could not read .*cut.jpg as an image"):
        load_image(path)
