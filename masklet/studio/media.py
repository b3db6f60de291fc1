"""What the studio opens: video files, frame folders and image folders, read lazily.

A path given to ``masklet studio`` becomes one *media* of the project:

* a video file (anything PyAV decodes) -> kind ``"video"``;
* a folder of JPEG/PNG images -> kind ``"video"`` when every stem is a number and the first few images
  share one size (a folder of extracted frames), otherwise kind ``"images"`` (an image set: every image
  is labeled on its own, sizes may differ). ``--as images`` / ``--as video`` overrides the guess;
* one JPEG/PNG file -> an image set of that one image.

Image-set files are listed once; files whose real path leaves the folder (symlinks pointing elsewhere)
are skipped, so the server never reads outside the paths it was given. Files of an image set that cannot
be read as images are skipped too, and named in the spec's :meth:`MediaSpec.warning`.
"""

from __future__ import annotations

import io
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..io.frames import IMAGE_SUFFIXES, FrameSource, natural_key, open_frames
from ..io.images import load_image
from .guards import is_inside

VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".mkv", ".avi", ".m4v", ".mpg", ".mpeg")
_SIZE_PROBE = 5  # images checked for a common size when guessing "frames" vs "image set"


class MediaError(ValueError):
    """A path that cannot be opened as a video, frame folder or image folder."""


@dataclass(frozen=True)
class MediaSpec:
    """How to open one path: kind, name shown in the app, size, and (image sets) the files."""

    kind: str  # "video" | "images"
    source: Path  # absolute, resolved
    name: str
    num_frames: int
    width: int
    height: int
    fps: float | None = None
    frames: tuple[tuple[str, int, int], ...] | None = None  # images: (file name, width, height)
    skipped: tuple[tuple[str, str], ...] = ()  # images: (file name, why) of unreadable files

    def warning(self) -> str | None:
        """What was skipped, for the user; None when nothing was."""
        if not self.skipped:
            return None
        shown = "; ".join(f"{name} ({why})" for name, why in self.skipped[:5])
        more = f" and {len(self.skipped) - 5} more" if len(self.skipped) > 5 else ""
        return (
            f"{self.name}: skipped {len(self.skipped)} file(s) that are not readable images: {shown}{more}. "
            "Replace them and open the folder again to add them"
        )


def _image_files(folder: Path) -> list[Path]:
    files = [
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    ]
    return sorted((p for p in files if is_inside(p, [folder])), key=lambda p: natural_key(p.name))


def _size(path: Path) -> tuple[int, int]:
    """(width, height) as ``load_image`` returns the image: upright by its EXIF orientation."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            turned = im.getexif().get(0x0112) in (5, 6, 7, 8)  # rotated by 90 or 270 degrees
            return (h, w) if turned else (w, h)
    except (OSError, SyntaxError, ValueError) as exc:
        raise MediaError(f"cannot read image {path}: {exc}; remove or replace the file") from exc


def _readable_size(path: Path) -> tuple[int, int] | None:
    try:
        return _size(path)
    except MediaError:
        return None


def _image_set(p: Path, name: str, files: list[Path]) -> MediaSpec:
    sizes, skipped = [], []
    for f in files:
        try:
            sizes.append((f.name, *_size(f)))
        except MediaError as exc:
            skipped.append((f.name, str(exc.__cause__ or exc).split("\n")[0][:120]))
    if not sizes:
        raise MediaError(
            f"none of the {len(files)} image file(s) in {p} can be read (e.g. {skipped[0][0]}: "
            f"{skipped[0][1]}); give a folder of JPEG/PNG images"
        )
    w, h = sizes[0][1], sizes[0][2]
    return MediaSpec("images", p, name, len(sizes), w, h, None, tuple(sizes), tuple(skipped))


def inspect_path(path: str | os.PathLike, kind: str | None = None) -> MediaSpec:
    """The MediaSpec of a video file or image folder; ``kind`` forces "video" or "images"."""
    p = Path(path).expanduser()
    if kind not in (None, "video", "images"):
        raise MediaError(f"unknown media kind {kind!r}: use 'video' or 'images'")
    if not p.exists():
        raise MediaError(f"no such file or folder: {p}")
    p = p.resolve()
    if p.is_file():
        if p.suffix.lower() in IMAGE_SUFFIXES:
            if kind == "video":
                raise MediaError(f"{p} is one image: a video is a video file or a folder of frames")
            w, h = _size(p)
            return MediaSpec("images", p, p.stem, 1, w, h, None, ((p.name, w, h),))
        if kind == "images":
            raise MediaError(f"{p} is a file: an image set is a folder of JPEG/PNG images")
        try:
            src = open_frames(p, cache_bytes=0)
        except (ValueError, OSError) as exc:
            raise MediaError(f"cannot open {p} as a video: {exc}") from exc
        try:
            return MediaSpec("video", p, p.stem, src.num_frames, src.width, src.height, src.fps)
        finally:
            src.close()
    files = _image_files(p)
    if not files:
        raise MediaError(f"no JPEG/PNG images in folder {p}: give a video file or a folder of images")
    if kind is None:
        numbered = all(re.fullmatch(r"\d+", f.stem) for f in files)
        same = numbered and len({s for s in map(_readable_size, files[:_SIZE_PROBE]) if s}) == 1
        kind = "video" if same and len(files) > 1 else "images"
    if kind == "video":
        w, h = _size(files[0])
        return MediaSpec("video", p, p.name, len(files), w, h, None)
    return _image_set(p, p.name, files)


def inspect_paths(path: str | os.PathLike, kind: str | None = None) -> list[MediaSpec]:
    """The MediaSpecs of a path: one, as :func:`inspect_path` gives it, or, for a folder without images
    of its own that holds videos (video files and/or frame folders, as ``masklet batch`` reads a
    dataset), one per video, sorted by name (hidden entries skipped)."""
    p = Path(path).expanduser()
    if not p.is_dir() or kind == "images" or _image_files(p):
        return [inspect_path(p, kind)]
    entries = [
        e
        for e in sorted(p.iterdir(), key=lambda e: natural_key(e.name))
        if not e.name.startswith(".") and (e.is_dir() or e.suffix.lower() in VIDEO_SUFFIXES)
    ]
    if not entries:
        return [inspect_path(p, kind)]  # says what a folder must hold
    return [inspect_path(e, "video") for e in entries]


class MediaReader:
    """Frames of one media by index as (H, W, 3) uint8 RGB, and as JPEG bytes for the browser.

    Videos and frame folders read through a lazy ``FrameSource`` (bounded cache); image sets read the
    listed files of their folder (or, for a set of one image, the file ``source``). Thread-safe.
    """

    def __init__(self, kind: str, source: str | os.PathLike, frames: list[str] | None = None) -> None:
        self.kind, self.source = kind, Path(source)
        self._files = frames
        self._lock = threading.Lock()
        self._frames: FrameSource | None = None
        self._jpeg: dict[int, bytes] = {}

    @property
    def frames(self) -> FrameSource:
        """The lazy frame source of a video (opened on first use)."""
        with self._lock:
            if self._frames is None:
                if not self.source.exists():
                    raise MediaError(f"{self.source} is gone: put it back or remove it from the project")
                self._frames = open_frames(self.source, cache_bytes=128 * 2**20)
            return self._frames

    def rgb(self, index: int) -> np.ndarray:
        if self.kind == "video":
            return self.frames.frame(index)
        assert self._files is not None
        if not 0 <= index < len(self._files):
            raise MediaError(f"image index {index} out of range: the set has {len(self._files)} images")
        folder = self.source.parent if self.source.is_file() else self.source
        path = folder / self._files[index]
        if not is_inside(path, [self.source]) or not path.is_file():
            raise MediaError(f"{path} is missing or outside {self.source}")
        try:
            return load_image(path)
        except ValueError as exc:
            raise MediaError(f"{exc}; replace the file (the other images can still be labeled)") from None

    def jpeg(self, index: int, quality: int = 90) -> bytes:
        """The frame as JPEG bytes (the last few kept: scrubbing back and forth re-sends them)."""
        with self._lock:
            if index in self._jpeg:
                return self._jpeg[index]
        buf = io.BytesIO()
        Image.fromarray(self.rgb(index)).save(buf, format="JPEG", quality=quality)
        data = buf.getvalue()
        with self._lock:
            self._jpeg[index] = data
            while len(self._jpeg) > 32:
                self._jpeg.pop(next(iter(self._jpeg)))
        return data

    def close(self) -> None:
        with self._lock:
            if self._frames is not None:
                self._frames.close()
                self._frames = None
            self._jpeg.clear()
