"""``masklet track``'s ``FRAME:...@OBJ`` prompt syntax and output writers (video files and live streams)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .common import CLIError, one_line, parse_floats

# kind: (syntax, example, what it is)
TRACK_PROMPTS = {
    "point": ("FRAME:X,Y[,LABEL]@OBJ", "0:320,240@1", "a click in pixels (LABEL 1 = object, 0 = background)"),
    "box": ("FRAME:X0,Y0,X1,Y1@OBJ", "0:100,80,300,260@1", "a box in pixels"),
    "mask": ("FRAME:PNG@OBJ", "0:first.png@1", "a mask image of the video's size (nonzero = object)"),
}
TRACK_FORMATS = ("png", "rle", "mp4")
MAX_OBJ_ID = 255  # the palette PNGs store the object id in one byte


@dataclass
class ObjectPrompt:
    """Every prompt for one object on one frame: becomes one predictor call."""

    frame: int
    obj: int
    points: list[list[float]] = field(default_factory=list)  # x, y in frame pixels
    labels: list[int] = field(default_factory=list)
    box: list[float] | None = None  # x0, y0, x1, y1 in frame pixels
    mask: np.ndarray | None = None  # (H, W) bool
    given: list[str] = field(default_factory=list)  # the options as typed, for messages


def parse_track_prompt(kind: str, text: str) -> tuple[int, int, str]:
    """``FRAME:BODY@OBJ`` -> (frame, obj, body); CLIError naming the option and the expected syntax."""
    fmt, example, _ = TRACK_PROMPTS[kind]
    where = f"--{kind} {text!r}"
    head, at, obj_text = text.rpartition("@")
    frame_text, colon, body = head.partition(":")
    if not at or not colon or not body:
        missing = "@OBJ" if not at else "FRAME:" if not colon else "the values"
        raise CLIError(f"{where}: missing {missing}; expected {fmt}, e.g. --{kind} {example}")
    try:
        frame, obj = int(frame_text), int(obj_text)
    except ValueError:
        raise CLIError(
            f"{where}: FRAME and OBJ must be whole numbers; expected {fmt}, e.g. {example}"
        ) from None
    if frame < 0:
        raise CLIError(f"{where}: FRAME must be >= 0 (the first frame is 0), got {frame}")
    if not 1 <= obj <= MAX_OBJ_ID:
        raise CLIError(
            f"{where}: object id must be 1..{MAX_OBJ_ID} (0 is the background in the mask PNGs), got {obj}"
        )
    return frame, obj, body


def track_prompts(
    args, n_frames: int | None, hw: tuple[int, int], range_text: str | None = None
) -> dict[tuple[int, int], ObjectPrompt]:
    """Parse and check every --point/--box/--mask against the video; grouped by (frame, object).

    ``n_frames`` None: no upper bound on FRAME (a live stream without --max-frames). ``range_text`` says
    which frames exist, for the out-of-range message (default: the video's frame count).
    """
    from ..inference.prompts import PromptError, check_boxes, check_points

    groups: dict[tuple[int, int], ObjectPrompt] = {}
    for kind in TRACK_PROMPTS:
        for text in getattr(args, kind):
            frame, obj, body = parse_track_prompt(kind, text)
            where = f"--{kind} {text!r}"
            if n_frames is not None and frame >= n_frames:
                known = range_text or frame_range(n_frames)
                raise CLIError(f"{where}: frame {frame} is out of range; {known}")
            g = groups.setdefault((frame, obj), ObjectPrompt(frame, obj))
            g.given.append(where)
            try:
                if kind == "mask":
                    g.mask = load_prompt_mask(Path(body), hw, where)
                    continue
                fmt = "X,Y[,LABEL]" if kind == "point" else "X0,Y0,X1,Y1"
                vals = parse_floats(body, (2, 3) if kind == "point" else (4,), fmt)
                if kind == "box":
                    if g.box is not None:
                        raise CLIError(f"{where}: object {obj} already has a box on frame {frame}; give one")
                    g.box = check_boxes(vals, hw[::-1])[0].tolist()
                    continue
                label = vals[2] if len(vals) == 3 else 1.0
                if label not in (0.0, 1.0):
                    raise CLIError(f"{where}: LABEL must be 1 (object) or 0 (background), got {label:g}")
                check_points([vals[:2]], [int(label)], hw[::-1])
                g.points.append(vals[:2])
                g.labels.append(int(label))
            except (argparse.ArgumentTypeError, PromptError) as exc:
                raise CLIError(f"{where}: {exc}") from None
    for g in groups.values():
        if g.mask is not None and len(g.given) > 1:
            raise CLIError(
                f"object {g.obj} on frame {g.frame} has a --mask and other prompts ({', '.join(g.given)}); "
                "a mask replaces points and boxes, so give either the mask or the points/box"
            )
    return dict(sorted(groups.items()))


def load_prompt_mask(path: Path, hw: tuple[int, int], where: str) -> np.ndarray:
    """(H, W) bool mask from an image file (nonzero in any colour channel = object)."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise CLIError(f"{where}: no such mask file: {path}")
    try:
        with Image.open(path) as image:
            pixels = np.asarray(image)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise CLIError(f"{where}: could not read {path} as an image ({one_line(exc)})") from None
    mask = (pixels[..., :3] != 0).any(-1) if pixels.ndim == 3 else pixels != 0
    if mask.shape != hw:
        raise CLIError(
            f"{where}: the mask is {mask.shape[1]}x{mask.shape[0]} but the video is {hw[1]}x{hw[0]} "
            "(width x height); the mask must have the video's size"
        )
    if not mask.any():
        raise CLIError(f"{where}: the mask {path} is empty (all zero); nonzero pixels mark the object")
    return mask


def frame_range(n_frames: int) -> str:
    return f"the video has {n_frames} frames (0..{n_frames - 1})"


def track_formats(text: str) -> list[str]:
    """``--format`` -> the chosen subset of :data:`TRACK_FORMATS`, in the order given."""
    formats = [f.strip().lower() for f in text.split(",") if f.strip()]
    unknown = [f for f in formats if f not in TRACK_FORMATS]
    if unknown or not formats:
        what = f"unknown output format {unknown[0]!r}" if unknown else "no output format"
        raise CLIError(f"--format {text!r}: {what}; choose from {', '.join(TRACK_FORMATS)}, comma-separated")
    return formats


def open_writers(
    stack, out: Path, formats: list[str], name: str, hw: tuple[int, int], fps, frames, buffered, meta=None
):
    """(writers fed as frames arrive, the mp4 writer or None), all entered on ``stack``.

    ``name``: the video's name in masks.json; ``hw``: its (height, width); ``fps``: its frame rate or
    None; ``frames``: frame index -> (H, W, 3) uint8 RGB frame, for the overlay. With ``buffered`` the
    mp4 writer is not among the streaming writers: it waits for the merged frames. ``meta``: extra keys
    for masks.json (model, weights).
    """
    from ..io.exporters import OverlayVideoWriter, PalettePngWriter, RleJsonWriter

    writers = []
    if "png" in formats:
        writers.append(stack.enter_context(PalettePngWriter(out / "masks")))
    if "rle" in formats:
        writers.append(stack.enter_context(RleJsonWriter(out / "masks.json", name, *hw, meta=meta)))
    video = None
    if "mp4" in formats:
        video = stack.enter_context(OverlayVideoWriter(out / "overlay.mp4", fps, frames))
        if not buffered:
            writers.append(video)
    return writers, video
