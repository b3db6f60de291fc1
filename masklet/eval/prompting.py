"""Prompt simulation of the SAM 2 evaluation protocols: the clicks of a video's prompted frame.

Coordinates are pixel indices of the mask (x = column, y = row), as the official SAM 2 click sampler
returns them; labels are 1 for a positive (foreground) click and 0 for a negative one. The single clicks
and boxes (the center of a region, the first click, the next corrective click, the GT box) and their
sources are in :mod:`masklet.io.mask_geometry`; this module runs them as the protocol does:

* **Semi-supervised VOS with 1 / 3 / 5 clicks** (SAM 2, Ravi et al. 2024, §6.1.2 and appendix
  E.1.3): "we interactively sample either 1, 3 or 5 clicks on the first video frame ... the initial
  click is placed on the object center and subsequent clicks are obtained from the center of the
  error region", i.e. the first click, then next clicks against the model's own prediction on that
  frame: :func:`simulate_clicks`. :func:`sample_clicks` is a model-free stand-in (center, then random
  positive points) for when no predictor is at hand.

Masks may be numpy arrays or torch tensors of shape (H, W); nonzero is foreground.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..io.mask_geometry import first_click, next_click
from ..io.masks import as_mask

__all__ = ["sample_clicks", "simulate_clicks"]

Predict = Callable[[np.ndarray, np.ndarray], np.ndarray]


def simulate_clicks(gt, num_clicks: int, predict: Predict, ignore=None) -> tuple[np.ndarray, np.ndarray]:
    """Clicks of the SAM 2 semi-supervised VOS protocol: the center first, then error-region centers.

    gt: (H, W) ground-truth mask of the object on the prompted frame (must not be empty).
    num_clicks: how many clicks at most (1, 3 and 5 in the paper).
    predict: ``predict(points, labels) -> (H, W) mask``: the model's mask for the clicks so far,
    ``points`` (K, 2) float64 pixel (x, y), ``labels`` (K,) int64. Called ``num_clicks - 1`` times at
    most; clicking stops early when a prediction equals the ground truth.
    Returns ``(points, labels)``: (K, 2) float64 and (K,) int64 with 1 <= K <= num_clicks. Deterministic.
    """
    _check_count(num_clicks)
    x, y = first_click(gt)
    clicks = [(x, y, 1)]
    while len(clicks) < num_clicks:
        points, labels = _as_arrays(clicks)
        click = next_click(predict(points, labels), gt, ignore=ignore)
        if click is None:
            break
        clicks.append(click)
    return _as_arrays(clicks)


def sample_clicks(
    gt, num_clicks: int, rng: np.random.Generator, first: str = "center"
) -> tuple[np.ndarray, np.ndarray]:
    """``num_clicks`` positive clicks from the GT mask alone, for when no model is in the loop.

    The first click is the mask center (``first="center"``, the protocol default) or a uniformly
    random mask pixel (``first="random"``, SAM's harder variant); the others are distinct mask pixels
    drawn uniformly at random, which is what SAM 2's ``uniform`` error sampler draws when the current
    prediction is empty. Pixels repeat only when the mask has fewer than ``num_clicks`` pixels. The
    paper's protocol is interactive; use :func:`simulate_clicks` when a predictor is available.

    gt: (H, W) non-empty mask; rng: numpy Generator (the only source of randomness).
    Returns ``(points, labels)``: (num_clicks, 2) float64 pixel (x, y) and (num_clicks,) int64 ones.
    """
    _check_count(num_clicks)
    if first not in ("center", "random"):
        raise ValueError(f"first must be 'center' or 'random', got {first!r}")
    if not isinstance(rng, np.random.Generator):
        raise ValueError(
            f"rng must be a numpy Generator (np.random.default_rng(seed)), got {type(rng).__name__}"
        )
    mask = as_mask(gt, "gt")
    if not mask.any():
        raise ValueError(
            "gt is empty: the object has no pixel in this frame, so there is nothing to click; "
            "skip the object on this frame or prompt it on a frame where it is visible"
        )
    flat = np.flatnonzero(mask)  # row-major pixel indices of the object
    width = mask.shape[1]
    if first == "center":
        x, y = first_click(mask)
        start = y * width + x
    else:
        start = int(flat[rng.integers(flat.size)])
    rest = flat[flat != start]
    count = num_clicks - 1
    if count > 0:
        replace = rest.size < count
        pool = flat if rest.size == 0 else rest
        rest = rng.choice(pool, size=count, replace=replace)
    else:
        rest = rest[:0]
    chosen = np.concatenate([[start], rest]).astype(np.int64)
    points = np.stack([chosen % width, chosen // width], axis=1).astype(np.float64)
    return points, np.ones(num_clicks, dtype=np.int64)


def _check_count(num_clicks: int) -> None:
    if isinstance(num_clicks, bool) or not isinstance(num_clicks, (int, np.integer)) or num_clicks < 1:
        raise ValueError(f"num_clicks must be an integer >= 1, got {num_clicks!r}")


def _as_arrays(clicks: list[tuple[int, int, int]]) -> tuple[np.ndarray, np.ndarray]:
    points = np.array([[x, y] for x, y, _ in clicks], dtype=np.float64)
    labels = np.array([label for _, _, label in clicks], dtype=np.int64)
    return points, labels
