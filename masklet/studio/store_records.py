"""The records a studio project hands out, and the checks on what callers hand in.

Every record is a frozen dataclass: a snapshot of committed state, safe to pass between threads. The
store (``masklet.studio.store.Project``) builds them from its database rows; callers never build
``Label``, ``Media``, ``ObjectRecord`` or ``MaskInfo`` themselves. ``Prompt`` is the exception: callers
create prompts and the store saves them.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "LABEL_PALETTE",
    "MACHINE_SOURCES",
    "MASK_SOURCES",
    "MEDIA_KINDS",
    "OBJECT_STATUSES",
    "FrameInfo",
    "Label",
    "MaskInfo",
    "Media",
    "ObjectRecord",
    "ProjectError",
    "Prompt",
]

MEDIA_KINDS = ("video", "images")
OBJECT_STATUSES = ("pending", "done")
MASK_SOURCES = ("prompt", "track", "import", "auto", "machine")
# made by a model without a person confirming them (a re-track may replace them): tracked here, or
# pre-labels of a batch run ("machine"); prompted and imported-label masks are a person's
MACHINE_SOURCES = ("track", "machine")
MAX_LABEL_NAME = 100

# Twenty colours that stay distinguishable from each other and on most footage (Trubetskoy's list).
LABEL_PALETTE = (
    "#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6",
    "#bcf60c", "#fabebe", "#008080", "#e6beff", "#9a6324", "#fffac8", "#800000", "#aaffc3",
    "#808000", "#ffd8b1", "#000075", "#808080",
)  # fmt: skip

_COLOR = re.compile(r"#[0-9a-fA-F]{6}")


class ProjectError(ValueError):
    """A request the project cannot carry out; the message says what was wrong and what to do."""


@dataclass(frozen=True)
class Label:
    """A class name objects are labeled with; ``color`` is ``"#rrggbb"`` (lower case)."""

    id: int
    name: str
    color: str


@dataclass(frozen=True)
class Media:
    """A video or an ordered set of images in the project.

    - ``source``: absolute path of the video file or image folder, as added
    - ``num_frames``: frames (video) or images
    - ``width``, ``height``: pixels of every frame (video) or of the first image (images: see
      ``Project.frame_info`` for each image's own size)
    - ``fps``: frames per second of a video, None when unknown or for images
    """

    id: int
    kind: str
    source: str
    name: str
    num_frames: int
    width: int
    height: int
    fps: float | None


@dataclass(frozen=True)
class FrameInfo:
    """One frame of a media: ``index`` is 0-based; ``width``/``height`` in pixels; ``name`` for display."""

    media_id: int
    index: int
    name: str
    width: int
    height: int


@dataclass(frozen=True)
class Prompt:
    """A click or a box on one frame, in pixels of the original frame (x then y, floats).

    - point: ``Prompt("point", x, y, positive=True)``; ``positive=False`` marks background
    - box: ``Prompt("box", x0, y0, x1, y1)`` with all four corners given (the caller orders them)
    """

    kind: str
    x0: float
    y0: float
    x1: float | None = None
    y1: float | None = None
    positive: bool = True

    def __post_init__(self) -> None:
        if self.kind not in ("point", "box"):
            raise ProjectError(f"a prompt's kind must be 'point' or 'box', got {self.kind!r}")
        coords = {"x0": self.x0, "y0": self.y0}
        if self.kind == "box":
            coords.update(x1=self.x1, y1=self.y1)
        elif self.x1 is not None or self.y1 is not None:
            raise ProjectError("a point prompt has only x0, y0; use kind 'box' for two corners")
        for name, value in coords.items():
            object.__setattr__(self, name, _finite(value, f"prompt {name}"))
        if not isinstance(self.positive, (bool, np.bool_)):
            raise ProjectError(f"a prompt's 'positive' must be True or False, got {self.positive!r}")
        object.__setattr__(self, "positive", bool(self.positive))

    def to_dict(self) -> dict[str, Any]:
        """The API form: ``{"kind": "point", "x", "y", "positive"}`` or ``{"kind": "box", "x0", ...}``."""
        if self.kind == "point":
            return {"kind": "point", "x": self.x0, "y": self.y0, "positive": self.positive}
        return {"kind": "box", "x0": self.x0, "y0": self.y0, "x1": self.x1, "y1": self.y1}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Prompt:
        """Inverse of :meth:`to_dict`; raises ProjectError naming the missing or bad field."""
        if not isinstance(data, dict):
            raise ProjectError(f"a prompt must be a JSON object, got {type(data).__name__}")
        kind = data.get("kind")
        fields = ("x", "y") if kind == "point" else ("x0", "y0", "x1", "y1") if kind == "box" else ()
        if not fields:
            raise ProjectError(f"a prompt's kind must be 'point' or 'box', got {kind!r}")
        missing = [f for f in fields if f not in data]
        if missing:
            raise ProjectError(f"a {kind} prompt needs {', '.join(fields)}; missing {', '.join(missing)}")
        if kind == "point":
            return Prompt("point", data["x"], data["y"], positive=data.get("positive", True))
        return Prompt("box", data["x0"], data["y0"], data["x1"], data["y1"])


@dataclass(frozen=True)
class ObjectRecord:
    """One tracked object of one media.

    - ``track_id``: the object's number within its media, never reused after a delete
    - ``label_id``: None until the object is finished
    - ``status``: ``"pending"`` while being prompted, ``"done"`` once labeled
    - ``end_frame``: the track ends before this frame (set by ``end_object_at``), else None
    - ``created_frame``: the frame it was first prompted on
    """

    id: int
    media_id: int
    track_id: int
    label_id: int | None
    status: str
    end_frame: int | None
    created_frame: int


@dataclass(frozen=True)
class MaskInfo:
    """What the project knows of one stored mask without reading it.

    - ``digest``: sha256 (hex) of the mask file's content
    - ``area``: foreground pixels; ``bbox``: (x, y, w, h) pixels, (0, 0, 0, 0) when empty
    - ``source``: ``"prompt"``, ``"track"``, ``"import"`` or ``"auto"``; ``score``: model score or None
    """

    object_id: int
    frame: int
    digest: str
    area: int
    bbox: tuple[int, int, int, int]
    source: str
    score: float | None


def _finite(value: Any, what: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ProjectError(f"{what} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ProjectError(f"{what} must be a finite number, got {value!r}")
    return number


def check_int(value: Any, what: str, minimum: int | None = None) -> int:
    """``value`` as an int (numpy ints accepted, bools and floats refused), at least ``minimum``."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise ProjectError(f"{what} must be an integer, got {value!r}")
    number = int(value.__index__())
    if minimum is not None and number < minimum:
        raise ProjectError(f"{what} must be >= {minimum}, got {number}")
    return number


def check_label_name(name: Any) -> str:
    """The stripped label name; non-empty, at most 100 characters."""
    if not isinstance(name, str):
        raise ProjectError(f"a label name must be a string, got {type(name).__name__}")
    stripped = name.strip()
    if not stripped:
        raise ProjectError("a label name cannot be empty; type a name such as 'person'")
    if len(stripped) > MAX_LABEL_NAME:
        raise ProjectError(
            f"a label name can have at most {MAX_LABEL_NAME} characters, got {len(stripped)}; shorten it"
        )
    return stripped


def check_color(color: Any) -> str:
    """``"#rrggbb"`` in lower case."""
    if not isinstance(color, str) or not _COLOR.fullmatch(color.strip()):
        raise ProjectError(f"a label color must be '#rrggbb' (six hex digits, e.g. '#e6194b'), got {color!r}")
    return color.strip().lower()


def check_score(score: Any) -> float | None:
    """None, or a finite float."""
    return None if score is None else _finite(score, "a mask score")
