"""Lazy video frame sources with a bounded cache (model inputs: :mod:`masklet.io.frame_loader`).

Every source gives frames as (H, W, 3) uint8 RGB arrays by index (0..num_frames-1, presentation order)
and reads nothing it is not asked for:

* :class:`VideoFileSource` (:mod:`masklet.io.video_file`): any file PyAV decodes (mp4, mov, webm, mkv,
  avi), decoded on demand from the nearest keyframe, its frames kept in a byte-bounded LRU cache.
* :class:`ImageFolderSource`: a folder of JPEG/PNG frames, ordered by the number in the file stem
  (``00000.jpg``, ``1.png``, ``frame_12.jpg``) or by natural sort when a stem has no number. Gray and
  RGBA images become RGB; EXIF orientation is not applied (as the official SAM 2 loader does).
* :class:`ArraySource`: frames already in memory.

Sources are thread-safe: one lock guards the decoder and the cache (:mod:`masklet.io.frame_source`, the
base class they share).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from .frame_source import SUPPORTED, FrameError, FrameSource, readonly_view
from .images import to_rgb_uint8
from .video_file import VideoFileSource

__all__ = [
    "ArraySource",
    "FrameError",
    "FrameSource",
    "ImageFolderSource",
    "VideoFileSource",
    "natural_key",
    "open_frames",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


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
        return readonly_view(self._frames[idx])

    def _release(self) -> None:
        super()._release()
        self._frames = ()


def natural_key(name: str) -> tuple:
    """Sort key of a file name in natural order: ``frame2`` before ``frame10``, case ignored."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part.lower()) for part in re.split(r"(\d+)", name)
    )


def _frame_order(paths: list[Path]) -> list[Path]:
    """Sort by the last number in each stem; natural sort when some stem has no number."""
    numbers = [re.findall(r"\d+", p.stem) for p in paths]
    if all(numbers):
        return [
            p for _, p in sorted(zip(numbers, paths), key=lambda t: (int(t[0][-1]), natural_key(t[1].name)))
        ]
    return sorted(paths, key=lambda p: natural_key(p.name))


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
        arr = readonly_view(arr)
        self._cache.put(idx, arr)
        return arr


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
