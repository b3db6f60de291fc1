"""Prompts as the studio API takes them (JSON) and as the predictors take them (arrays)."""

from __future__ import annotations

import numpy as np

from .errors import StudioError
from .store import Prompt

__all__ = ["MAX_PROMPTS_PER_FRAME", "parse_prompt", "prompt_arrays"]

MAX_PROMPTS_PER_FRAME = 64


def parse_prompt(data: dict, width: int, height: int) -> Prompt:
    """A Prompt from the API's JSON ({"kind": "point", "x", "y", "positive"} or a box), checked
    against the frame size (pixels; x in [0, width], y in [0, height])."""
    if not isinstance(data, dict):
        raise StudioError(
            'prompt must be an object like {"kind": "point", "x": 10, "y": 20, "positive": true}'
        )
    kind = data.get("kind")

    def num(key: str, hi: float) -> float:
        v = data.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
            raise StudioError(f"prompt {kind} needs a number {key!r}, got {v!r}")
        if not -0.5 <= v <= hi + 0.5:
            raise StudioError(f"prompt {key}={v} is outside the frame (0..{hi}); click inside the image")
        return float(min(max(v, 0.0), hi))

    if kind == "point":
        positive = data.get("positive", True)
        if not isinstance(positive, bool):
            raise StudioError(f"prompt 'positive' must be true or false, got {positive!r}")
        return Prompt("point", num("x", width), num("y", height), positive=positive)
    if kind == "box":
        x0, y0, x1, y1 = num("x0", width), num("y0", height), num("x1", width), num("y1", height)
        x0, x1, y0, y1 = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)
        if x1 - x0 < 1 or y1 - y0 < 1:
            raise StudioError("the box is smaller than one pixel: drag a larger rectangle")
        return Prompt("box", x0, y0, x1, y1)
    raise StudioError(f"prompt kind must be 'point' or 'box', got {kind!r}")


def prompt_arrays(prompts: list[Prompt]):
    """(points (N, 2) float32 | None, labels (N,) int32 | None, box (4,) float32 | None) of stored prompts
    (pixels of the frame); the last box wins."""
    pts = [(p.x0, p.y0) for p in prompts if p.kind == "point"]
    labels = [1 if p.positive else 0 for p in prompts if p.kind == "point"]
    boxes = [p for p in prompts if p.kind == "box"]
    box = (
        None if not boxes else np.array([boxes[-1].x0, boxes[-1].y0, boxes[-1].x1, boxes[-1].y1], np.float32)
    )
    if not pts:
        return None, None, box
    return np.array(pts, np.float32), np.array(labels, np.int32), box
