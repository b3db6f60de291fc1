"""Frame sources (video files, folders, arrays) and the prefetching FrameLoader.

Synthetic videos carry their frame index as a 10-bit pattern of 8x8 blocks, so any decoded frame says
which frame it is, through lossy codecs included.
"""

from __future__ import annotations

import random
import sys
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from masklet.io.frame_loader import FrameLoader
from masklet.io.frames import (
    ArraySource,
    FrameError,
    FrameSource,
    ImageFolderSource,
    VideoFileSource,
    open_frames,
)
from masklet.io.preprocess import preprocess_video_frame


def preprocess_image(frame, size, device, dtype):
    """What FrameLoader.get must return: the official video preprocessing in ``dtype``."""
    return preprocess_video_frame(frame, size, device).to(dtype)


try:
    import av
except ImportError:  # folders, arrays and the loader are still tested
    av = None

needs_av = pytest.mark.skipif(av is None, reason="PyAV is not installed: pip install av")

SHARED_VIDEOS = Path(__file__).parents[3] / "shared" / "data" / "videos"
H, W = 48, 64
FRAME_BYTES = H * W * 3


def pattern(i: int) -> np.ndarray:
    """(48, 64, 3) uint8 frame whose blocks spell ``i`` in binary (bit b: block b of the top rows)."""
    img = np.full((H, W, 3), 40, np.uint8)
    img[:, :, 2] = (i * 7) % 256
    for b in range(10):
        r, c = divmod(b, 8)
        if (i >> b) & 1:
            img[r * 8 : (r + 1) * 8, c * 8 : (c + 1) * 8] = 230
    return img


def index_of(frame: np.ndarray) -> int:
    """The frame index spelled by a (possibly lossy) :func:`pattern` frame."""
    blocks = [divmod(b, 8) for b in range(10)]
    bits = [frame[r * 8 + 2 : r * 8 + 6, c * 8 + 2 : c * 8 + 6].mean() > 135 for r, c in blocks]
    return sum(int(v) << b for b, v in enumerate(bits))


def write_video(path: Path, n: int, codec: str = "libx264", gop: int = 12, bframes: int = 2) -> Path:
    """Encode ``n`` pattern frames at 30 fps with keyframes every ``gop`` frames and B-frames."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=30)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        if codec == "libx264":
            params = f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}"
            stream.options = {"preset": "veryfast", "crf": "12", "x264-params": params}
        else:
            stream.codec_context.gop_size = gop
            stream.options = {"bf": str(bframes), "qscale": "2"} if codec == "mpeg4" else {"b": "1M"}
        for i in range(n):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(pattern(i), format="rgb24")))
        out.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("videos")
    return {
        "mp4": write_video(d / "a.mp4", 60),
        "avi": write_video(d / "b.avi", 60, codec="mpeg4"),  # the demuxer seeks by dts, not pts
        "mkv": write_video(d / "c.mkv", 60),  # no frame count in the header
        "webm": write_video(d / "d.webm", 60, codec="libvpx", bframes=0),
        "long": write_video(d / "long.mp4", 300, gop=24),
    }


# ------------------------------------------------------------------ video files


@needs_av
@pytest.mark.parametrize("kind", ["mp4", "avi", "mkv", "webm"])
def test_random_access_returns_the_right_frame(videos, kind):
    src = open_frames(videos[kind], cache_bytes=10 * FRAME_BYTES)
    assert isinstance(src, VideoFileSource)
    assert (len(src), src.num_frames, src.height, src.width, src.fps) == (60, 60, H, W, 30.0)
    order = random.Random(kind).sample(range(60), 60) + [59, 0, 59, 30, 29, 0]
    for i in order:
        frame = src.frame(i)
        assert frame.shape == (H, W, 3) and frame.dtype == np.uint8 and not frame.flags.writeable
        assert index_of(frame) == i
    # A fresh source reaches the last frame from the keyframe before it, not from the start.
    fresh = open_frames(videos[kind])
    assert index_of(fresh.frame(59)) == 59 and fresh.decoded_frames <= 13
    # Lossy but close to what was encoded.
    assert np.abs(src.frame(17).astype(int) - pattern(17)).mean() < 4
    src.close()


@needs_av
def test_avi_seeks_by_dts_where_pts_would_land_past_the_keyframe(tmp_path):
    """AVI indexes by dts; with keyframes 3 frames apart seeking to a keyframe's pts overshoots it."""
    src = open_frames(write_video(tmp_path / "short_gop.avi", 60, codec="mpeg4", gop=3), cache_bytes=0)
    for i in random.Random(3).sample(range(60), 60):
        assert index_of(src.frame(i)) == i
    assert src.decoded_frames <= 4 * 60  # restarting from frame 0 instead would decode ~1800


@needs_av
def test_stream_without_timestamps_is_counted_from_the_start(videos, tmp_path):
    """A raw H.264 stream has no pts: frames are numbered in decoding order from frame 0."""
    path = tmp_path / "raw.h264"
    with av.open(str(videos["mp4"])) as inp, av.open(str(path), "w", format="h264") as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for pkt in inp.demux(inp.streams.video[0]):
            if pkt.size:
                pkt.stream = stream
                out.mux(pkt)
    src = open_frames(path, cache_bytes=5 * FRAME_BYTES)
    assert len(src) == 60
    for i in random.Random(4).sample(range(60), 30) + [59, 58]:
        assert index_of(src.frame(i)) == i


@needs_av
def test_open_decodes_nothing_and_forward_reads_never_seek(videos):
    src = open_frames(videos["long"], cache_bytes=30 * FRAME_BYTES)
    assert src.decoded_frames == 0 and src.cache_nbytes == 0
    assert [index_of(f) for f in src] == list(range(300))
    assert src.decoded_frames == 300 and src.seeks == 0
    # Skipping ahead within reach of the open decoder continues it too.
    src.frame(0)
    src.frame(5)
    seeks = src.seeks
    src.frame(9)
    assert src.seeks == seeks


@needs_av
def test_reverse_pass_decodes_each_keyframe_interval_about_once(videos):
    """Keyframes every 24 frames, room for 30 in the cache: a backward pass decodes ~300 frames."""
    src = open_frames(videos["long"], cache_bytes=30 * FRAME_BYTES)
    assert [index_of(src.frame(i)) for i in range(299, -1, -1)] == list(range(299, -1, -1))
    assert 300 <= src.decoded_frames <= 330
    assert src.seeks <= 300 // 24 + 1


@needs_av
@pytest.mark.parametrize("cache_frames", [0, 1, 10])
def test_cache_stays_within_its_byte_bound(videos, cache_frames):
    cache_bytes = cache_frames * FRAME_BYTES + FRAME_BYTES // 2
    src = open_frames(videos["long"], cache_bytes=cache_bytes)
    for i in list(range(300)) + list(range(299, -1, -1)) + random.Random(1).sample(range(300), 40):
        assert index_of(src.frame(i)) == i
        assert src.cache_nbytes <= cache_bytes
    assert src.cache_bytes == cache_bytes


@needs_av
def test_closed_source_refuses_reads(videos):
    with open_frames(videos["mp4"]) as src:
        src.frame(3)
    with pytest.raises(RuntimeError, match="closed; open the video again"):
        src.frame(3)
    src.close()  # closing twice is fine


@needs_av
@pytest.mark.parametrize("bad", [60, -1, 1000])
def test_index_out_of_range_gives_the_valid_range(videos, bad):
    src = open_frames(videos["mp4"])
    with pytest.raises(FrameError, match=rf"frame index {bad} is out of range .*valid indices are 0\.\.59"):
        src.frame(bad)
    with pytest.raises(FrameError, match="must be an integer, got float"):
        src.frame(1.0)
    assert index_of(src.frame(np.int64(7))) == 7


def test_video_without_pyav_says_how_to_install(monkeypatch, tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"\0" * 64)
    monkeypatch.setitem(sys.modules, "av", None)  # makes `import av` fail
    with pytest.raises(ModuleNotFoundError, match=r"reading video files needs PyAV: pip install av"):
        open_frames(path)


def test_missing_path(tmp_path):
    with pytest.raises(FrameError, match="no such video file or frame folder: .*nope.mp4"):
        open_frames(tmp_path / "nope.mp4")


@needs_av
def test_unreadable_file_says_what_is_supported(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("not a video at all")
    with pytest.raises(FrameError, match=r"notes.mp4 is not a readable video: .*supported: video files PyAV"):
        open_frames(path)


@needs_av
def test_file_without_video_stream(tmp_path):
    path = tmp_path / "sound.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(1600))
    with pytest.raises(FrameError, match="sound.wav is not a readable video: it has no video stream"):
        open_frames(path)


@needs_av
def test_truncated_mp4_cannot_be_opened(videos, tmp_path):
    data = videos["mp4"].read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) // 2])  # the index (moov) is at the end
    with pytest.raises(FrameError, match="cut.mp4 is not a readable video"):
        open_frames(path)


@needs_av
def test_corrupt_frame_data_raises_when_read(videos, tmp_path):
    data = bytearray(videos["mp4"].read_bytes())
    start, end = data.find(b"mdat") + 200, data.find(b"moov") - 200
    data[start:end] = bytes(end - start)
    path = tmp_path / "zeros.mp4"
    path.write_bytes(bytes(data))
    src = open_frames(path)
    assert len(src) == 60  # the container index is intact
    for i in (0, 30, 0):
        with pytest.raises(
            FrameError, match=rf"could not decode frame {i} of .*zeros.mp4 \(decoder: .*corrupt"
        ):
            src.frame(i)


@needs_av
def test_one_damaged_packet_loses_only_the_frames_it_breaks(videos, tmp_path):
    with av.open(str(videos["long"])) as container:
        packets = [p for p in container.demux(container.streams.video[0]) if p.size]
    data = bytearray(videos["long"].read_bytes())
    pos, size = packets[100].pos, packets[100].size
    data[pos : pos + size] = b"\xff" * size  # the decoder rejects this packet as invalid data
    path = tmp_path / "scratched.mp4"
    path.write_bytes(bytes(data))
    src = open_frames(path, cache_bytes=30 * FRAME_BYTES)
    good, lost = 0, []
    for i in range(300):
        try:
            good += index_of(src.frame(i)) == i
        except FrameError as exc:
            assert f"could not decode frame {i} of" in str(exc) and "(decoder: " in str(exc)
            lost.append(i)
    assert good >= 280 and 1 <= len(lost) <= 3


# ------------------------------------------------------------------ folders


def save_frames(folder: Path, names: list[str], frames: list[np.ndarray] | None = None) -> Path:
    folder.mkdir(exist_ok=True)
    for k, name in enumerate(names):
        Image.fromarray(pattern(k) if frames is None else frames[k]).save(folder / name)
    return folder


@pytest.mark.parametrize(
    ("names", "order"),
    [
        (["00000.jpg", "00001.jpg", "00002.jpg"], [0, 1, 2]),
        (["10.png", "2.png", "1.png"], [2, 1, 0]),  # numerically, not as strings
        (["frame_12.jpg", "frame_3.jpg", "frame_100.png"], [1, 0, 2]),
        (["b_7.png", "a_20.png", "c_1.png"], [2, 0, 1]),  # by the number even when prefixes differ
        (["scene-b.png", "scene-a10.png", "scene-a9.png"], [2, 1, 0]),  # no number in one stem: natural
    ],
)
def test_folder_frame_order(tmp_path, names, order):
    src = open_frames(save_frames(tmp_path / "f", names))
    assert isinstance(src, ImageFolderSource) and src.fps is None
    assert [p.name for p in src.paths] == [names[k] for k in order]
    assert [index_of(src.frame(i)) for i in range(3)] == order


def test_folder_png_frames_are_exact_and_other_files_ignored(tmp_path):
    folder = save_frames(tmp_path / "f", [f"{i:05d}.png" for i in range(5)])
    (folder / "notes.txt").write_text("x")
    (folder / "._00001.png").write_bytes(b"macOS resource fork, not an image")
    (folder / "sub").mkdir()
    src = open_frames(folder)
    assert (len(src), src.height, src.width) == (5, H, W)
    for i in range(5):
        np.testing.assert_array_equal(src.frame(i), pattern(i))
        assert not src.frame(i).flags.writeable


def test_folder_gray_and_rgba_become_rgb(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    rgb = pattern(5)
    Image.fromarray(rgb[:, :, 0]).save(folder / "0.png")
    Image.fromarray(np.dstack([rgb, np.zeros((H, W, 1), np.uint8)])).save(folder / "1.png")
    src = open_frames(folder)
    np.testing.assert_array_equal(src.frame(0), np.repeat(rgb[:, :, :1], 3, axis=2))
    np.testing.assert_array_equal(src.frame(1), rgb)


def test_folder_reads_only_the_first_header_at_open_and_checks_sizes_later(tmp_path):
    folder = save_frames(tmp_path / "f", ["0.jpg", "1.jpg"])
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(folder / "2.jpg")
    (folder / "3.jpg").write_bytes(b"broken")
    src = open_frames(folder)
    assert len(src) == 4 and src.cache_nbytes == 0
    with pytest.raises(
        FrameError, match=r"frame 2 \(2.jpg\) is 30x20 but the first frame \(0.jpg\) is 64x48"
    ):
        src.frame(2)
    with pytest.raises(FrameError, match=r"cannot read frame 3 \(.*3.jpg\)"):
        src.frame(3)
    assert index_of(src.frame(1)) == 1


def test_folder_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FrameError, match="no JPEG/PNG frames in folder .*empty \\(found nothing\\)"):
        open_frames(empty)
    other = tmp_path / "other"
    other.mkdir()
    Image.fromarray(pattern(0)).save(other / "0.bmp")
    with pytest.raises(FrameError, match=r"no JPEG/PNG frames in folder .*\(found 0.bmp\); supported"):
        open_frames(other)
    bad_first = tmp_path / "bad"
    bad_first.mkdir()
    (bad_first / "0.jpg").write_bytes(b"nope")
    with pytest.raises(FrameError, match="cannot read the first frame .*0.jpg"):
        open_frames(bad_first)


def test_folder_cache_bound(tmp_path):
    folder = save_frames(tmp_path / "f", [f"{i}.png" for i in range(12)])
    src = open_frames(folder, cache_bytes=3 * FRAME_BYTES)
    for i in list(range(12)) * 2:
        assert index_of(src.frame(i)) == i and src.cache_nbytes <= 3 * FRAME_BYTES


# ------------------------------------------------------------------ arrays and dispatch


@pytest.mark.parametrize("wrap", [list, tuple, np.stack])
def test_array_sources_return_read_only_views(wrap):
    frames = [pattern(i) for i in range(4)]
    data = wrap(frames)
    src = open_frames(data)
    assert isinstance(src, ArraySource) and (len(src), src.height, src.width, src.fps) == (4, H, W, None)
    out = src.frame(2)
    np.testing.assert_array_equal(out, pattern(2))
    assert not out.flags.writeable and np.shares_memory(out, data[2])
    assert frames[2].flags.writeable  # the caller's array is untouched


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        ([], "got no frames"),
        (
            [pattern(0), pattern(1)[:, :, :2]],
            r"frame 1 has shape \(48, 64, 2\) and dtype uint8; expected \(H, W, 3\)",
        ),
        ([pattern(0), pattern(1).astype(np.float32)], r"frame 1 has shape \(48, 64, 3\) and dtype float32"),
        ([pattern(0), pattern(1)[:10]], r"frame 1 has shape \(10, 64, 3\) but frame 0 has \(48, 64, 3\)"),
        ([pattern(0), "1.jpg"], "frame 1 is a str, expected a numpy"),
        (np.zeros((2, H, W), np.uint8), r"expected a \(T, H, W, 3\) uint8 array .*shape \(2, 48, 64\)"),
        (np.zeros((2, H, W, 3), np.int64), r"got int64 array"),
        (pattern(0), r"got one image of shape \(48, 64, 3\); pass a list"),
        (42, "cannot read frames from a int"),
    ],
)
def test_bad_arrays_say_which_frame_and_shape(frames, message):
    with pytest.raises(FrameError, match=message):
        open_frames(frames)


def test_open_frames_passes_sources_through_and_checks_cache_bytes():
    src = ArraySource([pattern(0)])
    assert open_frames(src) is src
    assert isinstance(src, FrameSource) and "1 frames, 64x48" in repr(src)
    with pytest.raises(ValueError, match="cache_bytes must be a non-negative int"):
        open_frames([pattern(0)], cache_bytes=-1)


# ------------------------------------------------------------------ FrameLoader


class RecordingSource(ArraySource):
    """Pattern frames that remember which thread read them, and fail on demand."""

    def __init__(self, n: int, fail: set[int] = frozenset(), delay: float = 0.0) -> None:
        super().__init__([pattern(i) for i in range(n)])
        self.reads: list[tuple[int, str]] = []
        self.fail, self.delay = fail, delay

    def _read(self, idx: int) -> np.ndarray:
        time.sleep(self.delay)
        self.reads.append((idx, threading.current_thread().name))
        if idx in self.fail:
            raise FrameError(f"frame {idx} is broken on purpose")
        return super()._read(idx)


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the prefetch thread"
        time.sleep(0.005)


def test_loader_get_is_video_preprocessing_and_cached():
    src = RecordingSource(6)
    loader = FrameLoader(src, image_size=32, device="cpu", dtype=torch.float16, cache_frames=2, prefetch=1)
    out = loader.get(3)
    expected = preprocess_image(pattern(3), 32, "cpu", torch.float16)
    assert out.shape == (1, 3, 32, 32) and out.dtype == torch.float16 and torch.equal(out, expected)
    assert loader.get(3) is out and len(src.reads) == 1
    loader.get(4)
    loader.get(5)
    assert len(loader._cache) == 2
    loader.get(3)  # evicted, read again
    assert [i for i, _ in src.reads] == [3, 4, 5, 3]
    with pytest.raises(FrameError, match="valid indices are 0..5"):
        loader.get(6)
    loader.close()
    with pytest.raises(RuntimeError, match="FrameLoader is closed"):
        loader.get(0)


def test_loader_prefetches_hinted_frames_in_the_background():
    src = RecordingSource(10)
    with FrameLoader(src, image_size=16, device="cpu", cache_frames=4, prefetch=2) as loader:
        order = [9, 8, 7, 6, 5]
        loader.hint(order)
        wait_for(lambda: 9 in loader._cache and 8 in loader._cache)
        assert 7 not in loader._cache  # no further ahead than `prefetch`
        for i in order:
            assert torch.equal(loader.get(i), preprocess_image(pattern(i), 16, "cpu", torch.float32))
        wait_for(lambda: not loader._busy)
        readers = dict(src.reads)
        assert sorted(readers) == order[::-1]  # each frame read once
        assert readers[9] == "masklet-frame-prefetch" and readers[8] == "masklet-frame-prefetch"
        thread = loader._thread
        assert thread.is_alive() and thread.daemon
    assert not thread.is_alive()


def test_loader_prefetch_errors_surface_at_get_only():
    src = RecordingSource(5, fail={1})
    loader = FrameLoader(src, image_size=16, device="cpu")
    loader.hint([1, 2, 3])
    wait_for(lambda: 1 in loader._errors and 2 in loader._cache)
    with pytest.raises(FrameError, match="frame 1 is broken on purpose"):
        loader.get(1)
    assert torch.equal(loader.get(2), preprocess_image(pattern(2), 16, "cpu", torch.float32))
    assert loader._thread.is_alive()
    with pytest.raises(FrameError, match="valid indices are 0..4"):
        loader.hint([0, 5])
    loader.close()


def test_loader_close_waits_for_a_frame_in_progress():
    src = RecordingSource(4, delay=0.2)
    loader = FrameLoader(src, image_size=16, device="cpu")
    loader.hint([0, 1])
    wait_for(lambda: loader._busy)
    loader.close()
    assert not loader._thread.is_alive() and not loader._cache


def test_loader_argument_checks():
    src = RecordingSource(2)
    with pytest.raises(ValueError, match="prefetch must be in 0..cache_frames-1 = 0..3"):
        FrameLoader(src, 16, "cpu", cache_frames=4, prefetch=4)
    with pytest.raises(ValueError, match="cache_frames must be >= 1"):
        FrameLoader(src, 16, "cpu", cache_frames=0)
    loader = FrameLoader(src, 16, "cpu", prefetch=0)
    loader.hint([0, 1])
    assert loader._thread is None
    loader.close()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_loader_on_cuda_prefetches_onto_the_current_device():
    with FrameLoader(RecordingSource(4), 32, "cuda") as loader:
        assert loader.device.index == torch.cuda.current_device()
        loader.hint([1, 2])
        wait_for(lambda: 2 in loader._cache)
        out = loader.get(2)
        assert out.device == loader.device
        torch.testing.assert_close(out, preprocess_image(pattern(2), 32, "cuda", torch.float32))


@needs_av
def test_loader_and_caller_share_a_video_decoder_safely(videos):
    src = open_frames(videos["long"], cache_bytes=8 * FRAME_BYTES)
    loader = FrameLoader(src, image_size=16, device="cpu", cache_frames=4, prefetch=3)
    order = list(range(299, 199, -1))
    loader.hint(order)
    rng = random.Random(2)
    for i in order:
        j = rng.randrange(300)
        assert index_of(src.frame(j)) == j  # the caller decodes too, between gets
        frame = src.frame(i)
        assert torch.equal(loader.get(i), preprocess_image(np.array(frame), 16, "cpu", torch.float32))
        assert index_of(frame) == i
    loader.close()


# ------------------------------------------------------------------ shared real data


@pytest.mark.skipif(
    not (SHARED_VIDEOS / "bedroom.mp4").exists(), reason=f"no shared videos at {SHARED_VIDEOS}"
)
@needs_av
def test_bedroom_mp4_matches_its_jpeg_folder():
    video = open_frames(SHARED_VIDEOS / "bedroom.mp4")
    folder = open_frames(SHARED_VIDEOS / "bedroom")
    assert len(video) == len(folder) == 200
    assert (video.height, video.width) == (folder.height, folder.width) == (540, 960)
    for i in (0, 1, 57, 123, 150, 198, 199):
        diff = np.abs(video.frame(i).astype(np.int16) - folder.frame(i)).mean()
        assert diff < 6, f"frame {i}: mean abs difference {diff:.2f}"
    # Off-by-one order would not pass: neighbours differ more than the codecs do.
    for i in (10, 57, 150):
        same = np.abs(video.frame(i).astype(np.int16) - folder.frame(i)).mean()
        assert same < np.abs(video.frame(i + 2).astype(np.int16) - folder.frame(i)).mean()
        assert same < np.abs(video.frame(i - 2).astype(np.int16) - folder.frame(i)).mean()
