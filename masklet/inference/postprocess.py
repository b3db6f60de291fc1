"""Mask post-processing: connected components, hole filling and sprinkle removal.

Everything here is plain torch and runs on whatever device the input lives on, so the same code serves
CPU and GPU inference without a compiled extension.

Connected components are union-find on tensors. Every foreground pixel holds a ``parent``: a flat pixel
index that always names a pixel of the same component with an index no larger than its own. Rows are
pre-merged (each pixel points at the start of its horizontal run), then each round

1. takes ``around``, the smallest parent in each pixel's 3x3 neighbourhood (8-connectivity);
2. hooks: the pixel's parent becomes ``around`` and, through a scatter-min, so does the parent's own
   parent slot, which moves a whole tree at once rather than one pixel per round;
3. shortcuts by pointer jumping (``parent = parent[parent]``) until every tree is a star.

Typical masks, spirals and snakes included, settle in 2 to 5 rounds. The loop stops only when a round
would change nothing, which is exactly the state where every pixel of a component holds the smallest
index in it, so the result is exact whatever the number of rounds.
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F

__all__ = ["connected_components", "fill_holes", "fill_holes_and_sprinkles", "keep_highest_object"]

# The video predictor's hole filling binarises at 0 and marks filled pixels with this small positive
# score, so that they count as foreground without dominating the memory encoder's sigmoid input.
VIDEO_HOLE_SCORE = 0.1
# Image post-processing moves filled/removed pixels this far past the threshold.
IMAGE_SCORE_MARGIN = 10.0
_CPU_CHUNK_PIXELS = 1 << 18


def connected_components(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Label the 8-connected foreground components of each mask plane.

    Args:
        mask: (N, C, H, W) tensor on any device; nonzero (True) is foreground. SAM 2 passes C == 1;
            every (n, c) plane is labelled independently.

    Returns:
        labels: (N, C, H, W) int32. 0 on background; on foreground ``1 +`` the row-major flat index
            (``y * W + x``) of the component's first pixel in raster order, so labels are
            deterministic and unique within a plane but not consecutive.
        areas: (N, C, H, W) int32. At each foreground pixel the pixel count of its component, 0 on
            background.
    """
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a torch.Tensor of shape (N, C, H, W), got {type(mask).__name__}")
    if mask.ndim != 4:
        raise ValueError(
            f"mask must have shape (N, C, H, W) (4 dims), got shape {tuple(mask.shape)}; "
            "add batch/channel dims with mask[None, None] for a single (H, W) mask"
        )
    n, c, h, w = mask.shape
    fg = (mask != 0).reshape(n * c, h, w)
    if fg.numel() == 0:
        empty = torch.zeros(mask.shape, dtype=torch.int32, device=mask.device)
        return empty, empty.clone()
    labels = torch.empty((n * c, h * w), dtype=torch.int32, device=mask.device)
    areas = torch.empty_like(labels)
    step = _planes_per_chunk(fg)
    for start in range(0, n * c, step):
        stop = min(start + step, n * c)
        labels[start:stop], areas[start:stop] = _label_planes(fg[start:stop])
    return labels.reshape(n, c, h, w), areas.reshape(n, c, h, w)


def _planes_per_chunk(fg: torch.Tensor) -> int:
    """How many planes to label together.

    On GPU all of them: one launch per op is what makes it fast. On CPU the int64 working arrays of a
    big batch (64 planes of 256x256 are 32 MB each) fall out of cache and every fresh allocation
    page-faults, which measured ~10x slower per pixel than chunks of about 2**18 pixels.
    """
    if fg.device.type != "cpu":
        return max(1, fg.shape[0])
    return max(1, _CPU_CHUNK_PIXELS // max(1, fg.shape[1] * fg.shape[2]))


def _label_planes(fg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, H, W) contiguous bool -> labels, areas as (B, H*W) int32 (see :func:`connected_components`)."""
    b, h, w = fg.shape
    hw = h * w
    root = _union_find(fg)[:-1]
    # scatter_add_ rather than bincount: CUDA bincount refuses to run under deterministic mode.
    counts = torch.zeros(root.numel() + 1, dtype=torch.int64, device=fg.device)
    counts.scatter_add_(0, root, torch.ones_like(root))
    # Masking by multiplication: torch.where on CPU branches per element and is several times slower
    # on speckled masks.
    flat_fg = fg.reshape(b, hw)
    areas = counts.gather(0, root).view(b, hw) * flat_fg
    # Roots index the whole chunk; subtracting each plane's offset gives the index within the plane.
    offsets = torch.arange(b, device=fg.device, dtype=torch.int64).unsqueeze(1) * hw
    labels = (root.view(b, hw) - offsets + 1) * flat_fg
    return labels.to(torch.int32), areas.to(torch.int32)


def _union_find(fg: torch.Tensor) -> torch.Tensor:
    """Component roots of (B, H, W) bool ``fg`` as a (B*H*W + 1,) int64 parent array.

    Pixels are indexed over the whole chunk (plane-major, then row-major), so one flat array serves
    every plane. Foreground pixels end pointing at the smallest index of their component. Background
    pixels and the extra last slot hold ``B*H*W``, a sentinel larger than every real index: it never
    wins a minimum, and pointer jumps through it stay in bounds.
    """
    b, h, w = fg.shape
    total = b * h * w
    # Sentinel on background, 0 on foreground: max(value, bg_floor) forces background to the sentinel
    # and leaves foreground values (all < total) alone.
    bg_floor = (~fg).reshape(-1).to(torch.int64) * total
    parent = torch.empty(total + 1, dtype=torch.int64, device=fg.device)
    torch.maximum(_row_run_starts(fg).reshape(-1), bg_floor, out=parent[:-1])
    parent[-1] = total
    while True:
        around = _neighbourhood_min(parent[:-1].view(b, h, w), total).view(-1)
        hooked = torch.empty_like(parent)
        torch.maximum(around, bg_floor, out=hooked[:-1])
        if torch.equal(hooked[:-1], parent[:-1]):
            # No pixel sees a smaller label around it and (after the last shortcut) every tree is a
            # star, so each component carries one label: its smallest index.
            return parent
        # Hook whole trees: each pixel's root slot takes the smallest label seen around the pixel.
        # Background pixels scatter into the sentinel slot, which is reset right after.
        hooked.scatter_reduce_(0, parent[:-1], around, reduce="amin")
        hooked[-1] = total
        parent = _compress(hooked)


def _row_run_starts(fg: torch.Tensor) -> torch.Tensor:
    """(B, H, W) int64: for foreground pixels, the chunk-wide index of the start of their row run.

    A cheap head start for the union-find: rows are already merged, so the rounds only have to join
    runs vertically and diagonally. Values on background pixels are meaningless.
    """
    b, h, w = fg.shape
    index_plus_one = torch.arange(1, b * h * w + 1, device=fg.device, dtype=torch.int64).view(b, h, w)
    left = F.pad(fg[:, :, :-1], (1, 0), value=False)
    # index + 1 at run starts, 0 elsewhere: the running max along the row then finds the latest start.
    starts = index_plus_one * (fg & ~left)
    return starts.cummax(dim=2).values - 1


def _neighbourhood_min(grid: torch.Tensor, fill: int) -> torch.Tensor:
    """(B, H, W) min over each pixel's 3x3 neighbourhood (itself included); ``fill`` beyond the border."""
    padded = F.pad(grid, (1, 1, 1, 1), value=fill)
    # A 3x3 min is separable: the min over three rows of the min over three columns.
    cols = torch.minimum(torch.minimum(padded[:, :, :-2], padded[:, :, 1:-1]), padded[:, :, 2:])
    return torch.minimum(torch.minimum(cols[:, :-2], cols[:, 1:-1]), cols[:, 2:])


def _compress(parent: torch.Tensor) -> torch.Tensor:
    """Pointer jumping on a flat parent array until every pixel points at a root."""
    while True:
        jumped = parent.gather(0, parent)
        if torch.equal(jumped, parent):
            return parent
        parent = jumped


def _check_logits(logits: torch.Tensor, name: str = "logits") -> None:
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, C, H, W), got {type(logits).__name__}")
    if logits.ndim != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W) (4 dims), got shape {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise ValueError(
            f"{name} must be a floating point tensor of mask scores, got dtype {logits.dtype}; "
            "pass the decoder's raw logits, not a binarised mask"
        )


def _check_number(value: float, name: str, minimum: float | None = None) -> None:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isnan(value)
    if ok and minimum is not None:
        ok = value >= minimum
    if not ok:
        expected = "a number" if minimum is None else f"a number >= {minimum:g} (0 disables the step)"
        raise ValueError(f"{name} must be {expected}, got {value!r}")


def fill_holes_and_sprinkles(
    logits: torch.Tensor, threshold: float, max_hole_area: float, max_sprinkle_area: float
) -> torch.Tensor:
    """Image-predictor post-processing: fill small holes, then remove small sprinkles.

    Both steps use 8-connected components of the *input* scores, as SAM 2 does:

    * ``max_hole_area > 0``: components of ``logits <= threshold`` (background, border-touching ones
      included) with at most ``max_hole_area`` pixels get the score ``threshold + 10``.
    * ``max_sprinkle_area > 0``: components of ``logits > threshold`` with at most
      ``max_sprinkle_area`` pixels get ``threshold - 10``. Their size is measured before hole filling,
      so a small ring around a filled hole is removed while the filled hole itself stays foreground.

    Args:
        logits: (N, C, H, W) float mask scores (any floating dtype and device); every (n, c) plane is
            processed on its own.
        threshold: scores above it are foreground (SAM 2 uses 0.0).
        max_hole_area, max_sprinkle_area: areas in pixels of the ``logits`` grid; 0 disables a step.

    Returns:
        A new tensor with the shape, dtype and device of ``logits``; untouched pixels keep their score.
    """
    _check_logits(logits)
    _check_number(threshold, "threshold")
    _check_number(max_hole_area, "max_hole_area", minimum=0)
    _check_number(max_sprinkle_area, "max_sprinkle_area", minimum=0)
    out = logits
    if max_hole_area > 0:
        labels, areas = connected_components(logits <= threshold)
        holes = (labels > 0) & (areas <= max_hole_area)
        out = torch.where(holes, threshold + IMAGE_SCORE_MARGIN, out)
    if max_sprinkle_area > 0:
        labels, areas = connected_components(logits > threshold)
        sprinkles = (labels > 0) & (areas <= max_sprinkle_area)
        out = torch.where(sprinkles, threshold - IMAGE_SCORE_MARGIN, out)
    return out.clone() if out is logits else out


def fill_holes(logits: torch.Tensor, max_area: float) -> torch.Tensor:
    """Video-predictor hole filling: small components of ``logits <= 0`` get the score 0.1.

    Unlike :func:`fill_holes_and_sprinkles` the threshold is fixed at 0 and filled pixels get the
    small positive score 0.1 (just foreground: sigmoid(0.1) is about 0.52).

    Args:
        logits: (N, C, H, W) float mask scores on any device; planes are processed independently.
        max_area: background components (8-connected, border-touching ones included) with at most
            this many pixels are filled; 0 leaves the scores unchanged.

    Returns:
        A new tensor with the shape, dtype and device of ``logits``.
    """
    _check_logits(logits)
    _check_number(max_area, "max_area", minimum=0)
    if max_area == 0:
        return logits.clone()
    labels, areas = connected_components(logits <= 0)
    holes = (labels > 0) & (areas <= max_area)
    return torch.where(holes, VIDEO_HOLE_SCORE, logits)


def keep_highest_object(logits: torch.Tensor) -> torch.Tensor:
    """Non-overlapping object masks: (N, 1, H, W) logits of N objects on one frame.

    At each pixel only the object with the highest logit keeps its score; the others are clamped to
    at most -10 (sigmoid ~ 4.5e-5), so thresholded masks never overlap.
    """
    if logits.shape[0] <= 1:
        return logits
    winner = logits.argmax(dim=0, keepdim=True)
    ids = torch.arange(logits.shape[0], device=logits.device).view(-1, 1, 1, 1)
    return torch.where(winner == ids, logits, logits.clamp(max=-10.0))
