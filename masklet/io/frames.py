"""Lazy video frame sources with a bounded cache (model inputs: :mod:`masklet.io.frame_loader`).

Every source gives frames as (H, W, 3) uint8 RGB arrays by index (0..num_frames-1, presentation order)
and reads nothing it is not asked for:

* :class:`VideoFileSource`: any file PyAV decodes (mp4, mov, webm, mkv, avi). Opening reads the header
  and demuxes packets (no decoding) to index frames by presentation timestamp. ``frame(i)`` seeks to the
  nearest keyframe at or before ``i`` and decodes forward; the frames of that run go into a byte-bounded
  LRU cache, so forward and reverse passes decode each keyframe interval about once. A forward request
  continues the open decoder without seeking. Rotation metadata is not applied.
* :class:`ImageFolderSource`: a folder of JPEG/PNG frames, ordered by the number in the file stem
  (``00000.jpg``, ``1.png``, ``frame_12.jpg``) or by natural sort when a stem has no number. Gray and
  RGBA images become RGB; EXIF orientation is not applied (as the official SAM 2 loader does).
* :class:`ArraySource`: frames already in memory.

Sources are thread-safe: one lock guards the decoder and the cache.
"""

from __future__ import annotations

import operator
import os
import re
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict, deque
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from masklet.io.images import to_rgb_uint8

__all__ = [
    "ArraySource",
    "FrameError",
    "FrameSource",
    "ImageFolderSource",
    "VideoFileSource",
    "open_frames",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
SUPPORTED = "supported: video files PyAV can decode (mp4, mov, webm, mkv, avi) or a folder of JPEG/PNG frames"


class FrameError(ValueError):
    """A video or frame set cannot be read: missing, corrupt, empty, badly shaped, or a bad index."""


def _check_index(idx: int, num_frames: int) -> int:
    try:
        i = operator.index(idx)
    except TypeError:
        raise FrameError(f"frame index must be an integer, got {type(idx).__name__}") from None
    if not 0 <= i < num_frames:
        raise FrameError(
            f"frame index {i} is out of range for {num_frames} frames; valid indices are 0..{num_frames - 1}"
        )
    return i


class _ByteLRU:
    """Least-recently-used cache of read-only frames, bounded by the sum of their ``nbytes``."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.nbytes = 0
        self._items: OrderedDict[int, np.ndarray] = OrderedDict()

    def __contains__(self, idx: int) -> bool:
        return idx in self._items

    def __len__(self) -> int:
        return len(self._items)

    def get(self, idx: int) -> np.ndarray | None:
        """The frame, marked most recently used, or None."""
        arr = self._items.get(idx)
        if arr is not None:
            self._items.move_to_end(idx)
        return arr

    def put(self, idx: int, arr: np.ndarray) -> None:
        """Insert (or refresh) a frame, evicting the least recently used ones to stay within capacity."""
        if idx in self._items:
            self._items.move_to_end(idx)
            return
        if arr.nbytes > self.capacity:
            return
        self._items[idx] = arr
        self.nbytes += arr.nbytes
        while self.nbytes > self.capacity:
            _, old = self._items.popitem(last=False)
            self.nbytes -= old.nbytes

    def clear(self) -> None:
        self._items.clear()
        self.nbytes = 0


def _readonly(arr: np.ndarray) -> np.ndarray:
    view = arr.view()
    view.flags.writeable = False
    return view


class FrameSource(ABC):
    """Random access to the frames of a video, each an (H, W, 3) uint8 RGB array.

    Attributes:
        num_frames: number of frames; valid indices are 0..num_frames-1.
        height, width: frame size in pixels (the same for every frame).
        fps: frames per second from the container, or None for folders and arrays.
    """

    num_frames: int
    height: int
    width: int
    fps: float | None

    def __init__(self, cache_bytes: int = 0) -> None:
        self._cache = _ByteLRU(cache_bytes)
        self._lock = threading.RLock()
        self._closed = False

    def __len__(self) -> int:
        return self.num_frames

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self.frame(i) for i in range(self.num_frames))

    @property
    def cache_bytes(self) -> int:
        """Upper bound on the bytes of decoded frames this source keeps."""
        return self._cache.capacity

    @property
    def cache_nbytes(self) -> int:
        """Bytes of decoded frames currently cached (always <= ``cache_bytes``)."""
        return self._cache.nbytes

    def frame(self, idx: int) -> np.ndarray:
        """Frame ``idx`` as a read-only (H, W, 3) uint8 RGB array; copy it before modifying it.

        Raises:
            FrameError: ``idx`` is not in 0..num_frames-1, or the frame cannot be decoded.
        """
        i = _check_index(idx, self.num_frames)
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{type(self).__name__} is closed; open the video again with open_frames")
            hit = self._cache.get(i)
            return hit if hit is not None else self._read(i)

    @abstractmethod
    def _read(self, idx: int) -> np.ndarray:
        """Read frame ``idx`` (valid, not cached); called with the lock held."""

    def _release(self) -> None:
        """Free the cache, files and decoders; called once by :meth:`close` with the lock held."""
        self._cache.clear()

    def close(self) -> None:
        """Release the file and the cache. Further ``frame`` calls raise RuntimeError."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._release()

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        fps = "" if self.fps is None else f", fps={self.fps:g}"
        return f"{type(self).__name__}({self.num_frames} frames, {self.width}x{self.height}{fps})"


class ArraySource(FrameSource):
    """Frames already in memory: a sequence of (H, W, 3) uint8 arrays or one (T, H, W, 3) uint8 array.

    The arrays are not copied; ``frame`` returns read-only views of them.
    """

    def __init__(self, frames: Sequence[np.ndarray] | np.ndarray) -> None:
        super().__init__(cache_bytes=0)
        if isinstance(frames, np.ndarray):
            if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
                raise FrameError(
                    f"expected a (T, H, W, 3) uint8 array of frames, got {frames.dtype} array of shape "
                    f"{tuple(frames.shape)}; convert single images with masklet.io.images.to_rgb_uint8"
                )
        elif not isinstance(frames, (list, tuple)):
            raise FrameError(f"expected a list or tuple of frames, got {type(frames).__name__}")
        if len(frames) == 0:
            raise FrameError("got no frames; pass at least one (H, W, 3) uint8 array")
        first = frames[0]
        for i, arr in enumerate(frames):
            if not isinstance(arr, np.ndarray):
                raise FrameError(
                    f"frame {i} is a {type(arr).__name__}, expected a numpy (H, W, 3) uint8 array; "
                    "for image files pass their folder path instead"
                )
            if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8 or 0 in arr.shape:
                raise FrameError(
                    f"frame {i} has shape {tuple(arr.shape)} and dtype {arr.dtype}; expected (H, W, 3) uint8 "
                    "RGB. Convert it with masklet.io.images.to_rgb_uint8"
                )
            if arr.shape != first.shape:
                raise FrameError(
                    f"frame {i} has shape {tuple(arr.shape)} but frame 0 has {tuple(first.shape)}; "
                    "all frames must have the same size"
                )
        self._frames = frames
        self.num_frames, self.height, self.width, self.fps = len(frames), first.shape[0], first.shape[1], None

    def _read(self, idx: int) -> np.ndarray:
        return _readonly(self._frames[idx])

    def _release(self) -> None:
        super()._release()
        self._frames = ()


def _natural_key(name: str) -> tuple:
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part.lower()) for part in re.split(r"(\d+)", name)
    )


def _frame_order(paths: list[Path]) -> list[Path]:
    """Sort by the last number in each stem; natural sort when some stem has no number."""
    numbers = [re.findall(r"\d+", p.stem) for p in paths]
    if all(numbers):
        return [
            p for _, p in sorted(zip(numbers, paths), key=lambda t: (int(t[0][-1]), _natural_key(t[1].name)))
        ]
    return sorted(paths, key=lambda p: _natural_key(p.name))


class ImageFolderSource(FrameSource):
    """A folder of JPEG/PNG frames; other files and hidden files (``.*``) are ignored.

    Only the first image's header is read when opening; every frame read is checked to have its size.
    """

    def __init__(self, folder: str | os.PathLike, cache_bytes: int = 256 * 2**20) -> None:
        super().__init__(cache_bytes)
        folder = Path(folder)
        if not folder.is_dir():
            raise FrameError(f"{folder} is not a folder of frames; {SUPPORTED}")
        files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
        frames = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        if not frames:
            found = ", ".join(sorted(p.name for p in files)[:5]) if files else "nothing"
            raise FrameError(f"no JPEG/PNG frames in folder {folder} (found {found}); {SUPPORTED}")
        self.paths = _frame_order(frames)
        try:
            with Image.open(self.paths[0]) as im:
                self.width, self.height = im.size
        except (OSError, SyntaxError, ValueError) as exc:
            raise FrameError(f"cannot read the first frame {self.paths[0]}: {exc}") from exc
        self.num_frames, self.fps = len(self.paths), None

    def _read(self, idx: int) -> np.ndarray:
        path = self.paths[idx]
        try:
            with Image.open(path) as im:
                arr = to_rgb_uint8(im)
        except (OSError, SyntaxError, ValueError) as exc:
            raise FrameError(f"cannot read frame {idx} ({path}): {exc}") from exc
        if arr.shape[:2] != (self.height, self.width):
            raise FrameError(
                f"frame {idx} ({path.name}) is {arr.shape[1]}x{arr.shape[0]} but the first frame "
                f"({self.paths[0].name}) is {self.width}x{self.height}; all frames must have the same size"
            )
        arr = _readonly(arr)
        self._cache.put(idx, arr)
        return arr


def _import_av():
    try:
        import av
    except ImportError as exc:
        raise ModuleNotFoundError(
            "reading video files needs PyAV: pip install av (or pip install 'masklet[video]'), "
            "or extract the frames to a folder of JPEGs and pass the folder"
        ) from exc
    return av


class VideoFileSource(FrameSource):
    """Frames of a video file decoded on demand with PyAV, in presentation order.

    Attributes:
        path: the video file.
        decoded_frames: frames decoded so far (a diagnostic: how much work the cache saved).
        seeks: times the decoder was repositioned instead of continuing forward.
    """

    def __init__(self, path: str | os.PathLike, cache_bytes: int = 256 * 2**20) -> None:
        super().__init__(cache_bytes)
        self.path = Path(path)
        self._av = _import_av()
        container, stream = self._open()
        try:
            self.width, self.height = stream.codec_context.width, stream.codec_context.height
            rate = stream.average_rate or stream.guessed_rate
            self.fps = float(rate) if rate else None
            self._build_index(container, stream)
        except self._av.error.FFmpegError as exc:
            raise FrameError(f"{self.path} is corrupt: {exc}; re-encode it or extract its frames") from exc
        finally:
            container.close()
        if self.num_frames == 0:
            raise FrameError(f"{self.path} has a video stream but no frames in it")
        self.decoded_frames = 0
        self.seeks = 0
        self._container = None
        self._packets: Iterator | None = None  # demuxer position of the open decoder
        self._pending: deque = deque()  # decoded frames not yet handed out
        self._pos = -1  # index of the last frame the decoder produced
        self._floor = 0  # frames before this index (leading pictures after a seek) are not trusted
        self._count = 0
        self._decode_error: str | None = None
        if self.width == 0 or self.height == 0:  # some streams only know their size once decoded
            self.width, self.height = self._first_frame_size()

    def _open(self):
        av = self._av
        try:
            container = av.open(str(self.path))
        except (av.error.FFmpegError, OSError) as exc:
            raise FrameError(f"{self.path} is not a readable video: {exc}; {SUPPORTED}") from exc
        if not container.streams.video:
            container.close()
            raise FrameError(f"{self.path} is not a readable video: it has no video stream; {SUPPORTED}")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return container, stream

    def _build_index(self, container, stream) -> None:
        """Demux (no decoding) to number frames by sorted pts and find the keyframes."""
        pts, keys = [], []
        for pkt in container.demux(stream):
            if pkt.size == 0 or getattr(pkt, "is_discard", False):
                continue
            pts.append(pkt.pts)
            if pkt.is_keyframe:
                keys.append((pkt.pts, pkt.dts))
        self.num_frames = len(pts)
        if None in pts or len(set(pts)) != len(pts):
            # No usable timestamps: frames are counted from the start, so every rewind restarts there.
            self._pts_index, self._keys, self._key_ts = None, [0], {}
            return
        self._pts_index = {p: i for i, p in enumerate(sorted(pts))}
        self._key_ts = {self._pts_index[p]: (p,) if d is None or d == p else (p, d) for p, d in keys}
        self._keys = sorted({0, *self._key_ts})

    def _first_frame_size(self) -> tuple[int, int]:
        self._restart()
        got = self._next_frame()
        self._close_container()  # frame 0 was consumed: the first read starts afresh
        if got is None:
            raise FrameError(f"{self.path} has no decodable frames")
        return got[1].width, got[1].height

    def _close_container(self) -> None:
        self._packets = None
        self._pending.clear()
        if self._container is not None:
            self._container.close()
            self._container = None

    def _restart(self) -> None:
        """Reopen the file and decode from its first frame."""
        self._close_container()
        self._container, self._stream = self._open()
        self._packets = self._container.demux(self._stream)
        self._pos, self._floor, self._count, self._decode_error = -1, 0, 0, None

    def _seek_to(self, key: int) -> None:
        """Position the decoder at keyframe ``key`` (or earlier), or restart when seeking fails."""
        self.seeks += 1
        if key > 0 and self._pts_index is not None:
            # Most demuxers seek by pts; some (avi) by dts, where seeking to the pts can land past the
            # keyframe. Check where each attempt landed before trusting it.
            for ts in self._key_ts[key]:
                landed = self._try_seek(ts)
                if landed is not None and landed <= key:
                    self._pos, self._floor = landed - 1, landed
                    return
        self._restart()

    def _try_seek(self, ts: int) -> int | None:
        """Seek to timestamp ``ts``; the index of the first packet there (decoded into pending), or None."""
        self._pending.clear()
        self._decode_error = None
        try:
            self._container.seek(ts, stream=self._stream, backward=True)
            self._packets = self._container.demux(self._stream)
            for pkt in self._packets:
                if pkt.size:
                    self._pending.extend(pkt.decode())
                    return self._pts_index.get(pkt.pts)
        except self._av.error.FFmpegError:
            pass
        return None

    def _next_frame(self):
        """The next decoded frame in presentation order as (index, av.VideoFrame), or None at the end."""
        while True:
            while self._pending:
                f = self._pending.popleft()
                if self._pts_index is None:
                    idx, self._count = self._count, self._count + 1
                else:
                    idx = self._pts_index.get(f.pts, self._pos + 1) if f.pts is not None else self._pos + 1
                if idx >= self._floor and idx > self._pos:
                    return idx, f
            pkt = next(self._packets, None)
            if pkt is None:
                self._close_container()  # the decoder is drained: the next read starts afresh
                return None
            try:
                self._pending.extend(pkt.decode())
            except self._av.error.InvalidDataError as exc:
                # Skip a damaged packet and go on, as ffmpeg does; only the frames it breaks go missing.
                self._decode_error = str(exc)

    def _read(self, idx: int) -> np.ndarray:
        if self._packets is None:
            self._restart()
        key = self._keys[np.searchsorted(self._keys, idx, side="right") - 1]
        if not (self._pos < idx and key <= self._pos + 1):
            self._seek_to(key)
        # Of this run only the frames nearest ``idx`` survive in the cache; skip converting the rest.
        keep_from = min(idx, idx + 1 - self._cache.capacity // (self.height * self.width * 3))
        got = None
        try:
            while (got := self._next_frame()) is not None and got[0] <= idx:
                i, f = got
                self._pos = i
                self.decoded_frames += 1
                if i >= keep_from:
                    arr = self._cache.get(i)
                    if arr is None:
                        arr = _readonly(f.to_ndarray(format="rgb24", width=self.width, height=self.height))
                        self._cache.put(i, arr)
                    if i == idx:
                        return arr
        except self._av.error.FFmpegError as exc:
            self._close_container()  # decoder state unknown: start afresh next time
            self._decode_error, got = str(exc), None
        if got is not None:  # the decoder skipped past idx
            self._pos = got[0]
            self.decoded_frames += 1
        why = f" (decoder: {self._decode_error})" if self._decode_error else ""
        raise FrameError(
            f"could not decode frame {idx} of {self.path}{why}; the file may be corrupt or truncated. "
            "Re-encode it (e.g. ffmpeg -i in.mp4 out.mp4) or extract its frames to a folder"
        )

    def _release(self) -> None:
        super()._release()
        self._close_container()


def open_frames(video, cache_bytes: int = 256 * 2**20) -> FrameSource:
    """Open frames lazily from a video file, a folder of JPEG/PNG frames, or arrays.

    Args:
        video: path (str or PathLike) to a video file or a folder of frames; a list/tuple of (H, W, 3)
            uint8 RGB arrays or one (T, H, W, 3) uint8 array; or a FrameSource (returned as is).
        cache_bytes: bound on the decoded frames kept for video files and folders (256 MiB holds ~90
            frames of 720p video). Arrays are not cached: they are in memory already.

    Raises:
        FrameError: the path does not exist, is not a readable video or frame folder, has no frames,
            or the arrays have the wrong shape or dtype.
    """
    if isinstance(video, FrameSource):
        return video
    if isinstance(cache_bytes, bool) or not isinstance(cache_bytes, int) or cache_bytes < 0:
        raise ValueError(f"cache_bytes must be a non-negative int, got {cache_bytes!r}")
    if isinstance(video, np.ndarray):
        if video.ndim == 3 and video.shape[-1] == 3:
            raise FrameError(
                f"got one image of shape {tuple(video.shape)}; pass a list of frames ([image] for one frame) "
                "or a (T, H, W, 3) array"
            )
        return ArraySource(video)
    if isinstance(video, (list, tuple)):
        return ArraySource(video)
    if not isinstance(video, (str, os.PathLike)):
        raise FrameError(
            f"cannot read frames from a {type(video).__name__}; pass a video file path, a folder of JPEG/PNG "
            "frames, a list of (H, W, 3) uint8 arrays or a (T, H, W, 3) uint8 array"
        )
    path = Path(video)
    if not path.exists():
        raise FrameError(f"no such video file or frame folder: {path}")
    if path.is_dir():
        return ImageFolderSource(path, cache_bytes)
    return VideoFileSource(path, cache_bytes)
