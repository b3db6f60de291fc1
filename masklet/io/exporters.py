"""Streaming writers for video tracking results: palette PNGs, an overlay mp4 and a COCO RLE JSON file.

Every writer is a context manager with ``write(frame_idx, obj_ids, masks)`` and ``close()``:

* ``frame_idx``: int >= 0, the frame's index in the video;
* ``obj_ids``: list of N distinct ints, the objects of this frame;
* ``masks``: (N, H, W) bool (any array or torch tensor; nonzero = foreground), ``masks[i]`` belongs to
  ``obj_ids[i]``, in pixels of the original video frame.

Writers take one frame at a time and keep no masks in memory, so they suit videos of any length.
Leaving the ``with`` block closes the writer, also on an error: what was written before an interrupt
stays usable. Colours follow :func:`object_colors`, so object ``k`` has the same colour in the palette
PNGs and the overlay video.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from .masks import decode_rle, encode_rle, mask_colors, overlay_masks

__all__ = [
    "DEFAULT_FPS",
    "OverlayVideoWriter",
    "PalettePngWriter",
    "RleFrames",
    "RleJsonWriter",
    "object_colors",
    "read_palette_png",
]

DEFAULT_FPS = 30.0  # used when the input video does not say its frame rate
MAX_PALETTE_ID = 255  # a palette PNG pixel is one byte and 0 is the background


@lru_cache(maxsize=8)
def _palette(n: int) -> np.ndarray:
    colors = mask_colors(n)
    colors.flags.writeable = False
    return colors


def object_colors(obj_ids: list[int]) -> np.ndarray:
    """(N, 3) uint8 RGB colour of each object id (ids >= 1): id k always gets ``mask_colors(...)[k - 1]``."""
    ids = list(obj_ids)
    if not ids:
        return np.zeros((0, 3), dtype=np.uint8)
    if min(ids) < 1:
        raise ValueError(f"object ids must be positive integers, got {min(ids)}")
    # Colours for at least the palette range, so the table (and each id's colour) rarely changes size.
    table = _palette(max(MAX_PALETTE_ID, max(ids)))
    return table[np.asarray(ids) - 1].copy()


def _check_frame(frame_idx, obj_ids, masks) -> tuple[int, list[int], np.ndarray]:
    """Validated (frame_idx, obj_ids, (N, H, W) bool masks); ValueError that says what is wrong."""
    if isinstance(frame_idx, bool) or not isinstance(frame_idx, (int, np.integer)) or frame_idx < 0:
        raise ValueError(f"frame_idx must be an integer >= 0, got {frame_idx!r}")
    ids = list(obj_ids)
    for obj_id in ids:
        if isinstance(obj_id, bool) or not isinstance(obj_id, (int, np.integer)):
            raise ValueError(f"object ids must be integers, got {obj_id!r} in {ids}")
    if len(set(ids)) != len(ids):
        raise ValueError(f"object ids must be distinct within a frame, got {ids}")
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(masks, torch.Tensor):
        masks = masks.detach().cpu().numpy()
    masks = np.asarray(masks)
    if masks.ndim != 3 or masks.shape[0] != len(ids):
        raise ValueError(
            f"masks must have shape (N, H, W) with N = len(obj_ids) = {len(ids)}, got {masks.shape}; "
            "squeeze the channel of (N, 1, H, W) mask logits first"
        )
    if masks.dtype != np.bool_:
        masks = masks != 0
    return int(frame_idx), [int(i) for i in ids], masks


class _Writer:
    """Context manager plumbing: ``with Writer(...) as w: w.write(...)`` closes ``w`` on exit."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


# ------------------------------------------------------------------------------------- palette PNGs
class PalettePngWriter(_Writer):
    """One indexed-colour ("P" mode) PNG per frame, ``out_dir/{frame_idx:05d}.png``.

    Pixel value = the object's id (1..255), 0 = background; where objects overlap, the one later in
    ``obj_ids`` wins. The palette colours come from :func:`object_colors`, the same in every file. The
    format of the DAVIS / YouTube-VOS annotations: ``np.asarray(Image.open(path)) == k`` is object k.
    """

    def __init__(self, out_dir: str | os.PathLike) -> None:
        self.out_dir = Path(out_dir)
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise ValueError(f"{self.out_dir} is a file; expected a folder for the mask PNGs")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        palette = np.zeros((256, 3), dtype=np.uint8)
        palette[1:] = object_colors(list(range(1, MAX_PALETTE_ID + 1)))
        self._palette = palette.ravel().tolist()
        self.frames_written = 0

    def path(self, frame_idx: int) -> Path:
        """The PNG file of frame ``frame_idx``."""
        return self.out_dir / f"{frame_idx:05d}.png"

    def write(self, frame_idx: int, obj_ids: list[int], masks: np.ndarray) -> Path:
        """Write (or overwrite) the PNG of one frame; returns its path."""
        frame_idx, ids, masks = _check_frame(frame_idx, obj_ids, masks)
        bad = [i for i in ids if not 1 <= i <= MAX_PALETTE_ID]
        if bad:
            raise ValueError(
                f"object id {bad[0]} does not fit a palette PNG: ids must be 1..{MAX_PALETTE_ID} "
                "(the pixel value is the object id, 0 is the background)"
            )
        label = np.zeros(masks.shape[1:], dtype=np.uint8)
        for obj_id, mask in zip(ids, masks):
            label[mask] = obj_id
        image = Image.fromarray(label, mode="P")
        image.putpalette(self._palette)
        path = self.path(frame_idx)
        image.save(path, format="PNG")
        self.frames_written += 1
        return path

    def close(self) -> None:
        """Nothing to flush: every PNG is complete once ``write`` returns."""


def read_palette_png(path: str | os.PathLike) -> dict[int, np.ndarray]:
    """{object id: (H, W) bool mask} of a palette PNG written by :class:`PalettePngWriter`."""
    with Image.open(path) as image:
        label = np.asarray(image)
    return {int(k): label == k for k in np.unique(label) if k != 0}


# ------------------------------------------------------------------------------------ overlay video
class OverlayVideoWriter(_Writer):
    """An H.264 mp4 (yuv420p) of the video frames with each object's mask drawn in its colour.

    Frames are encoded in the order they arrive (forward tracking: increasing frame index, reverse
    tracking: decreasing), which must be one direction throughout. yuv420p needs even sizes, so an odd
    height or width is padded by one pixel, repeating the last row or column.

    Args:
        path: the .mp4 file to write (its folder is created if missing).
        fps: frame rate, e.g. the input video's; None = :data:`DEFAULT_FPS`.
        frames: frame index -> (H, W, 3) uint8 RGB frame of the video, same size as the masks.
        alpha: opacity of the mask fill in [0, 1].
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float | None,
        frames: Callable[[int], np.ndarray],
        alpha: float = 0.5,
    ) -> None:
        if fps is not None and not (np.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a positive number (or None for {DEFAULT_FPS:g}), got {fps!r}")
        self.path = Path(path)
        self.fps = float(fps) if fps is not None else DEFAULT_FPS
        self.frames = frames
        self.alpha = alpha
        self.frames_written = 0
        self._container = None
        self._stream = None
        self._size_hw: tuple[int, int] | None = None
        self._last_idx: int | None = None
        self._step = 0  # +1 forward, -1 reverse, 0 until the second frame says which

    def write(self, frame_idx: int, obj_ids: list[int], masks: np.ndarray) -> None:
        """Encode frame ``frame_idx`` with its masks overlaid."""
        frame_idx, ids, masks = _check_frame(frame_idx, obj_ids, masks)
        self._check_order(frame_idx)
        image = np.asarray(self.frames(frame_idx))
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"frames({frame_idx}) must return an (H, W, 3) uint8 RGB array, got {image.dtype} "
                f"{image.shape}"
            )
        if masks.shape[1:] != image.shape[:2]:
            raise ValueError(
                f"masks of frame {frame_idx} are {masks.shape[1:]} but the frame is {image.shape[:2]}; "
                "masks must be at the video's resolution"
            )
        if self._size_hw is None:
            self._open(*image.shape[:2])
        elif image.shape[:2] != self._size_hw:
            raise ValueError(
                f"frame {frame_idx} is {image.shape[:2]} but earlier frames were {self._size_hw}; "
                "all frames of a video must have one size"
            )
        drawn = overlay_masks(image, masks, alpha=self.alpha, colors=object_colors(ids)) if ids else image
        self._encode(_even(drawn))
        self._last_idx = frame_idx

    def _check_order(self, frame_idx: int) -> None:
        if self._last_idx is None:
            return
        if frame_idx == self._last_idx:
            raise ValueError(
                f"frame {frame_idx} arrived twice in a row; the overlay video takes each frame once"
            )
        step = 1 if frame_idx > self._last_idx else -1
        if self._step and step != self._step:
            order = "increasing" if self._step == 1 else "decreasing"
            raise ValueError(
                f"frame {frame_idx} arrived after frame {self._last_idx}, but the overlay video is written "
                f"in {order} frame order; write frames in one direction (merge both directions first)"
            )
        self._step = step

    def _open(self, height: int, width: int) -> None:
        try:
            import av
        except ImportError:
            raise ImportError(
                "writing mp4 files needs PyAV: pip install av (or pip install 'masklet[video]')"
            ) from None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self.path), mode="w")
        # Fraction keeps NTSC rates exact: 29.97002997 -> 30000/1001.
        stream = self._container.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(10000))
        stream.width, stream.height = width + width % 2, height + height % 2
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "20"}
        self._stream = stream
        self._size_hw = (height, width)

    def _encode(self, rgb: np.ndarray) -> None:
        import av

        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = self.frames_written  # in frames: the stream's time base is 1 / fps
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder and finish the file (no file is written if no frame was)."""
        if self._container is None:
            return
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None


def _even(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) padded to even H and W by repeating the last row / column (yuv420p needs even sizes)."""
    h, w = rgb.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return rgb
    return np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


# ---------------------------------------------------------------------------------------- RLE JSON
class RleFrames:
    """Per-frame, per-object masks held as compressed COCO RLE strings (a few bytes per mask row run).

    ``add`` replaces whatever a frame held before, so re-propagating a frame keeps the latest result.
    """

    def __init__(self, height: int, width: int) -> None:
        if height < 1 or width < 1:
            raise ValueError(f"height and width must be >= 1, got {height} x {width}")
        self.height, self.width = int(height), int(width)
        self._frames: dict[int, dict[int, str]] = {}

    def add(self, frame_idx: int, obj_ids: list[int], masks: np.ndarray) -> None:
        """Store one frame's masks (replacing an earlier result for the same frame)."""
        frame_idx, ids, masks = _check_frame(frame_idx, obj_ids, masks)
        if masks.shape[1:] != (self.height, self.width):
            raise ValueError(
                f"masks of frame {frame_idx} are {masks.shape[1:]} but the video is "
                f"{(self.height, self.width)} (height, width)"
            )
        self._frames[frame_idx] = {i: encode_rle(m)["counts"] for i, m in zip(ids, masks)}

    def __len__(self) -> int:
        return len(self._frames)

    def frame_indices(self) -> list[int]:
        """Stored frame indices, increasing."""
        return sorted(self._frames)

    def masks(self, frame_idx: int) -> tuple[list[int], np.ndarray]:
        """(obj_ids, (N, H, W) bool masks) of a stored frame, objects in the order they were added."""
        if frame_idx not in self._frames:
            raise KeyError(f"frame {frame_idx} has no stored masks")
        objs = self._frames[frame_idx]
        size = [self.height, self.width]
        masks = [decode_rle({"size": size, "counts": c}) for c in objs.values()]
        stacked = np.stack(masks) if masks else np.zeros((0, self.height, self.width), dtype=bool)
        return list(objs), stacked

    def to_dict(self) -> dict[str, dict[str, dict]]:
        """``{"<frame_idx>": {"<obj_id>": {"size": [H, W], "counts": str}}}``, frames increasing."""
        size = [self.height, self.width]
        return {
            str(f): {str(i): {"size": size, "counts": c} for i, c in self._frames[f].items()}
            for f in self.frame_indices()
        }


class RleJsonWriter(_Writer):
    """A JSON file of every frame's masks as compressed COCO RLE, written atomically on close.

    Layout: ``{"video": str, <meta keys>, "height": H, "width": W, "frames": {"<frame_idx>": {"<obj_id>":
    {"size": [H, W], "counts": str}}}}``; ``pycocotools.mask.decode`` reads each RLE as is. ``meta``:
    extra JSON-serialisable keys (e.g. the model and weights used). Only the
    RLE strings stay in memory; the file appears (temporary file + rename) when the writer closes, so a
    reader never sees half a file. A frame written twice keeps the later masks.
    """

    def __init__(
        self, path: str | os.PathLike, video_name: str, height: int, width: int, meta: dict | None = None
    ) -> None:
        self.path = Path(path)
        self.video_name = str(video_name)
        self.meta = dict(meta or {})
        clash = sorted(set(self.meta) & {"video", "height", "width", "frames"})
        if clash:
            raise ValueError(f"meta keys {clash} would replace the layout's own keys; rename them")
        self.store = RleFrames(height, width)
        self.closed = False

    @property
    def frames_written(self) -> int:
        """Distinct frames held so far."""
        return len(self.store)

    def write(self, frame_idx: int, obj_ids: list[int], masks: np.ndarray) -> None:
        """Keep one frame's masks (replacing an earlier result for the same frame)."""
        if self.closed:
            raise ValueError(f"the RLE writer for {self.path} is closed; open a new one to write more")
        self.store.add(frame_idx, obj_ids, masks)

    def close(self) -> None:
        """Write the JSON file (once; later calls do nothing)."""
        if self.closed:
            return
        self.closed = True
        doc = {
            "video": self.video_name,
            **self.meta,
            "height": self.store.height,
            "width": self.store.width,
            "frames": self.store.to_dict(),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(doc, separators=(",", ":")))
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
