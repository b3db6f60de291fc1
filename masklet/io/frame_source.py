"""The base of every frame source: random access to frames by index, a byte-bounded frame cache, a lock.

Sources (:mod:`masklet.io.frames` opens them) give frames as (H, W, 3) uint8 RGB arrays by index
(0..num_frames-1, presentation order); :class:`FrameSource` holds what they share.
"""

from __future__ import annotations

import operator
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator

import numpy as np

from ..lru import LRUCache

__all__ = ["SUPPORTED", "FrameError", "FrameSource", "check_index", "readonly_view"]

SUPPORTED = "supported: video files PyAV can decode (mp4, mov, webm, mkv, avi) or a folder of JPEG/PNG frames"


class FrameError(ValueError):
    """A video or frame set cannot be read: missing, corrupt, empty, badly shaped, or a bad index."""


def check_index(idx: int, num_frames: int) -> int:
    """``idx`` as an int in 0..num_frames-1; FrameError saying the valid range otherwise."""
    try:
        i = operator.index(idx)
    except TypeError:
        raise FrameError(f"frame index must be an integer, got {type(idx).__name__}") from None
    if not 0 <= i < num_frames:
        raise FrameError(
            f"frame index {i} is out of range for {num_frames} frames; valid indices are 0..{num_frames - 1}"
        )
    return i


def readonly_view(arr: np.ndarray) -> np.ndarray:
    """A read-only view of ``arr``: cached frames are shared, so nobody may write into them."""
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
        self._cache: LRUCache[int, np.ndarray] = LRUCache(cache_bytes)
        self._lock = threading.RLock()
        self._closed = False

    def __len__(self) -> int:
        return self.num_frames

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self.frame(i) for i in range(self.num_frames))

    @property
    def cache_bytes(self) -> int:
        """Upper bound on the bytes of decoded frames this source keeps."""
        return self._cache.max_bytes

    @property
    def cache_nbytes(self) -> int:
        """Bytes of decoded frames currently cached (always <= ``cache_bytes``)."""
        return self._cache.nbytes

    def frame(self, idx: int) -> np.ndarray:
        """Frame ``idx`` as a read-only (H, W, 3) uint8 RGB array; copy it before modifying it.

        Raises:
            FrameError: ``idx`` is not in 0..num_frames-1, or the frame cannot be decoded.
        """
        i = check_index(idx, self.num_frames)
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
