"""Video object segmentation metrics with the numbers of the community's official scorers.

Which official behaviour each function reproduces:

* :func:`jaccard` -- region similarity J of ``davis2017-evaluation`` (``db_eval_iou``): per frame,
  ``|P & G| / |P | G|`` over the pixels that are not void, and 1 when that union is empty. The SA-V /
  MOSE scorer (``sav_benchmark.py``, from ``vos-benchmark``) computes the same number without void.
* :func:`boundary_map` -- ``_seg2bmap`` of both scorers (David Martin's boundary map, 2003): a pixel is
  boundary when it differs from its right, bottom or bottom-right neighbour (a neighbour outside the
  image counts as background), except that on the last row only the right neighbour is compared, on
  the last column only the bottom one, and the bottom-right corner pixel is never boundary.
* :func:`boundary_f` -- contour accuracy F (``db_eval_boundary`` / ``f_measure``, identical in the SA-V
  scorer): boundary maps of prediction and ground truth (void pixels first removed from both masks),
  each dilated with :func:`disk` of radius ``ceil(0.008 * hypot(H, W))`` (:func:`boundary_radius`),
  precision = predicted boundary pixels within the dilated ground-truth boundary / predicted boundary
  pixels, recall likewise the other way; F = 2PR / (P + R), 0 when P + R = 0. Empty boundaries: none
  predicted and none in the ground truth gives P = R = 1 (F = 1); none predicted gives P = 1, R = 0
  (F = 0); none in the ground truth gives P = 0, R = 1 (F = 0).
* :func:`mean_recall_decay` -- ``db_statistics``: mean, recall (fraction of frames with a value > 0.5)
  and decay (mean of the first of 4 overlapping frame bins minus mean of the last, with the bin edges
  ``round(linspace(1, n, 5) + 1e-10) - 1`` cast to uint8, bins ``values[e[i] : e[i + 1] + 1]`` in uint8
  arithmetic). From 256 frames on those uint8 indices wrap around; the wrap is reproduced (``% 256``)
  so the figures match the official tool there too (decay then means little, and is NaN at 256).
* :func:`object_score` -- the frames an object is scored on. ``protocol="davis"`` (DAVIS 2017
  semi-supervised): every evaluated frame. ``protocol="sav"`` (``sav_benchmark.py``): only from the
  first evaluated frame where the object is in the ground truth or in the prediction, to the end.
* :func:`summarize` -- both scorers' global figures: every object of every video is one entry; J-Mean
  is the mean of the per-object J means (likewise recall, decay and F), J&F-Mean = (J-Mean + F-Mean) / 2.

Which frames are evaluated (first and last skipped) and which objects exist is up to the caller
(:mod:`masklet.eval.score` applies each protocol's rules). All values are fractions in [0, 1].

Every per-frame metric is vectorised over frames: masks are bit-packed along the width (64 pixels a
word), and boundaries, the disk dilation (a union of row-shifted horizontal dilations, one per row of
the disk) and the pixel counts all work on the packed words. Only numpy is needed at run time.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "PROTOCOLS",
    "FrameMetrics",
    "ObjectScore",
    "Stats",
    "Summary",
    "boundary_f",
    "boundary_map",
    "boundary_radius",
    "dilate_disk",
    "disk",
    "frame_metrics",
    "jaccard",
    "mean_recall_decay",
    "object_score",
    "summarize",
]

PROTOCOLS = ("davis", "sav")
BOUND_TH = 0.008  # the official boundary tolerance, a fraction of the image diagonal
_WORD = 64


# ------------------------------------------------------------------ bit packing
def _pack(masks: np.ndarray) -> np.ndarray:
    """(..., H, W) bool -> (..., H, ceil(W / 64)) uint64; pixel x is bit x % 64 of word x // 64."""
    packed = np.packbits(masks, axis=-1, bitorder="little")
    n_bytes = -(-masks.shape[-1] // _WORD) * 8
    if packed.shape[-1] != n_bytes:
        pad = np.zeros((*packed.shape[:-1], n_bytes), np.uint8)
        pad[..., : packed.shape[-1]] = packed
        packed = pad
    return np.ascontiguousarray(packed).view("<u8")


def _unpack(words: np.ndarray, width: int) -> np.ndarray:
    """Inverse of :func:`_pack`: (..., H, n_words) uint64 -> (..., H, width) bool."""
    as_bytes = np.ascontiguousarray(words).astype("<u8", copy=False).view(np.uint8)
    return np.unpackbits(as_bytes, axis=-1, count=width, bitorder="little").astype(bool)


if hasattr(np, "bitwise_count"):

    def _count(words: np.ndarray) -> np.ndarray:
        """Set bits per leading index: (T, ...) uint64 -> (T,) int64."""
        return np.bitwise_count(words).reshape(len(words), -1).sum(axis=1, dtype=np.int64)

else:  # numpy < 2.0
    _BYTE_BITS = np.array([bin(i).count("1") for i in range(256)], np.uint8)

    def _count(words: np.ndarray) -> np.ndarray:
        as_bytes = np.ascontiguousarray(words).view(np.uint8)
        return _BYTE_BITS[as_bytes].reshape(len(words), -1).sum(axis=1, dtype=np.int64)


def _shift_x(words: np.ndarray, k: int) -> np.ndarray:
    """Packed rows moved along x: ``out[x] = in[x - k]`` (k > 0 moves right); pixels shifted in are 0."""
    if k == 0:
        return words.copy()
    out = np.zeros_like(words)
    q, b = divmod(abs(k), _WORD)
    n = words.shape[-1]
    if q >= n:
        return out
    if k > 0:
        src, dst = words[..., : n - q], out[..., q:]
        dst |= src << np.uint64(b)
        if b:
            dst[..., 1:] |= src[..., :-1] >> np.uint64(_WORD - b)
    else:
        src, dst = words[..., q:], out[..., : n - q]
        dst |= src >> np.uint64(b)
        if b:
            dst[..., :-1] |= src[..., 1:] << np.uint64(_WORD - b)
    return out


def _boundary_packed(seg: np.ndarray, width: int) -> np.ndarray:
    """``_seg2bmap`` on packed (T, H, n_words) masks whose bits past ``width`` are 0."""
    east = _shift_x(seg, -1)
    south = np.zeros_like(seg)
    south[:, :-1] = seg[:, 1:]
    south_east = np.zeros_like(seg)
    south_east[:, :-1] = east[:, 1:]
    b = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    b[:, -1] = seg[:, -1] ^ east[:, -1]
    col, bit = divmod(width - 1, _WORD)
    last = np.uint64(1 << bit)
    b[:, :, col] = (b[:, :, col] & ~last) | ((seg[:, :, col] ^ south[:, :, col]) & last)
    b[:, -1, col] &= ~last
    return b


def _half_widths(radius: int) -> list[int]:
    """Half width of each disk row: row dy holds x with x*x + dy*dy <= radius*radius."""
    return [math.isqrt(radius * radius - dy * dy) for dy in range(radius + 1)]


def _dilate_packed(words: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation of packed (T, H, n_words) masks by :func:`disk` (radius), zero outside the image."""
    half = _half_widths(radius)
    rows = [words]  # rows[w]: the horizontal dilation by a segment of half width w
    for w in range(1, half[0] + 1):
        rows.append(rows[-1] | _shift_x(words, w) | _shift_x(words, -w))
    out = rows[half[0]].copy()
    height = words.shape[1]
    for dy in range(1, radius + 1):
        if dy >= height:
            break
        src = rows[half[dy]]
        out[:, dy:] |= src[:, :-dy]
        out[:, :-dy] |= src[:, dy:]
    return out


# ------------------------------------------------------------------ public building blocks
def disk(radius: int) -> np.ndarray:
    """(2r+1, 2r+1) bool disk footprint: ``x*x + y*y <= r*r`` around the centre, as
    ``skimage.morphology.disk(r)`` (its default ``strict_radius=True``)."""
    r = _check_radius(radius)
    offsets = np.arange(-r, r + 1)
    return offsets[:, None] ** 2 + offsets[None, :] ** 2 <= r * r


def boundary_radius(height: int, width: int, bound_th: float = BOUND_TH) -> int:
    """Matching tolerance in pixels: ``ceil(bound_th * hypot(height, width))`` (8 for 854x480), or
    ``bound_th`` itself when it is >= 1 (then a whole number of pixels), as ``f_measure`` does."""
    if bound_th >= 1:
        if bound_th != int(bound_th):
            raise ValueError(f"bound_th >= 1 is a radius in pixels and must be whole, got {bound_th}")
        return int(bound_th)
    if bound_th <= 0:
        raise ValueError(f"bound_th must be > 0 (the official value is {BOUND_TH}), got {bound_th}")
    return int(np.ceil(bound_th * np.linalg.norm((height, width))))


def boundary_map(masks: np.ndarray) -> np.ndarray:
    """Official ``_seg2bmap`` boundary of (H, W) or (T, H, W) masks (nonzero = object): same shape, bool."""
    m = _as_masks(masks, "masks")
    return _unpack(_boundary_packed(_pack(m), m.shape[-1]), m.shape[-1]).reshape(np.shape(masks))


def dilate_disk(masks: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation of (H, W) or (T, H, W) masks by :func:`disk` (radius); pixels outside the image
    count as 0 (as OpenCV's ``dilate`` and ``scipy.ndimage.binary_dilation`` default)."""
    m = _as_masks(masks, "masks")
    out = _dilate_packed(_pack(m), _check_radius(radius))
    return _unpack(out, m.shape[-1]).reshape(np.shape(masks))


# ------------------------------------------------------------------ per-frame metrics
@dataclass(frozen=True)
class FrameMetrics:
    """Per-frame values of one object over T frames.

    j, f: (T,) float64 in [0, 1]. present: (T,) bool, the object is in the ground truth or in the
    prediction on that frame (what the SA-V scorer's first-appearance rule looks at).
    """

    j: np.ndarray
    f: np.ndarray
    present: np.ndarray


def _packed_pair(pred, gt, void) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    """Packed prediction and ground truth with void pixels cleared, the per-frame presence, (H, W)."""
    p, g = _as_masks(pred, "pred"), _as_masks(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred and gt must have the same shape, got {p.shape} and {g.shape}")
    pw, gw = _pack(p), _pack(g)
    present = (_count(pw) > 0) | (_count(gw) > 0)
    if void is not None:
        v = _as_masks(void, "void")
        if v.shape != p.shape:
            raise ValueError(f"void must have the shape of the masks {p.shape}, got {v.shape}")
        keep = ~_pack(v)
        pw, gw = pw & keep, gw & keep  # bits past the width stay 0: both sides were 0 there
    return pw, gw, present, (p.shape[-2], p.shape[-1])


def _jaccard_packed(pw: np.ndarray, gw: np.ndarray) -> np.ndarray:
    inter, union = _count(pw & gw), _count(pw | gw)
    return np.where(union == 0, 1.0, inter / np.maximum(union, 1))


def _boundary_f_packed(pw: np.ndarray, gw: np.ndarray, height: int, width: int, bound_th: float):
    radius = boundary_radius(height, width, bound_th)
    pb, gb = _boundary_packed(pw, width), _boundary_packed(gw, width)
    n_fg, n_gt = _count(pb), _count(gb)
    fg_match = _count(pb & _dilate_packed(gb, radius))
    gt_match = _count(gb & _dilate_packed(pb, radius))
    # The official edge cases: no predicted boundary -> P = 1; no ground-truth boundary -> R = 1;
    # exactly one of them empty -> the other ratio is 0.
    precision = np.where(n_fg == 0, 1.0, fg_match / np.maximum(n_fg, 1).astype(np.float64))
    recall = np.where(n_gt == 0, 1.0, gt_match / np.maximum(n_gt, 1).astype(np.float64))
    precision = np.where((n_gt == 0) & (n_fg > 0), 0.0, precision)
    recall = np.where((n_fg == 0) & (n_gt > 0), 0.0, recall)
    total = precision + recall
    return np.where(total == 0, 0.0, 2 * precision * recall / np.where(total == 0, 1.0, total))


def frame_metrics(
    pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None = None, bound_th: float = BOUND_TH
) -> FrameMetrics:
    """J and F of every frame, sharing one bit-packing of the masks.

    pred, gt: (T, H, W) or (H, W) masks of one object (bool, or nonzero = object). void: optional mask
    of the same shape; its pixels count for neither J nor F (``db_eval_iou`` / ``f_measure`` with
    ``void_pixels``). Returns :class:`FrameMetrics` of (T,) arrays ((1,) for single frames).
    """
    pw, gw, present, (height, width) = _packed_pair(pred, gt, void)
    f = _boundary_f_packed(pw, gw, height, width, bound_th)
    return FrameMetrics(j=_jaccard_packed(pw, gw), f=f, present=present)


def jaccard(pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None = None) -> np.ndarray:
    """Region similarity J per frame: (T,) float64 in [0, 1] for (T, H, W) masks (see module doc)."""
    pw, gw, _, _ = _packed_pair(pred, gt, void)
    return _jaccard_packed(pw, gw)


def boundary_f(
    pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None = None, bound_th: float = BOUND_TH
) -> np.ndarray:
    """Contour accuracy F per frame: (T,) float64 in [0, 1] for (T, H, W) masks (see module doc)."""
    pw, gw, _, (height, width) = _packed_pair(pred, gt, void)
    return _boundary_f_packed(pw, gw, height, width, bound_th)


# ------------------------------------------------------------------ per-object and global statistics
@dataclass(frozen=True)
class Stats:
    """One measure of one object over its scored frames: mean, recall, decay (fractions; decay in
    [-1, 1], positive when the measure drops over the sequence). NaN when there are no frames."""

    mean: float
    recall: float
    decay: float


def mean_recall_decay(values: Sequence[float] | np.ndarray) -> Stats:
    """``db_statistics`` of per-frame values (NaNs ignored, as there): mean, recall, decay."""
    v = np.asarray(values, dtype=np.float64).ravel()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        mean = np.nanmean(v)
        recall = np.nanmean(v > 0.5)
        edges = (np.round(np.linspace(1, len(v), 5) + 1e-10) - 1).astype(np.int64) % 256
        bins = [v[edges[i] : (edges[i + 1] + 1) % 256] for i in range(4)]
        decay = np.nanmean(bins[0]) - np.nanmean(bins[3])
    return Stats(float(mean), float(recall), float(decay))


@dataclass(frozen=True)
class ObjectScore:
    """Scores of one object of one video. frames: number of frames it was scored on."""

    video: str
    obj_id: int
    frames: int
    j: Stats
    f: Stats

    @property
    def jf(self) -> float:
        """(J mean + F mean) / 2."""
        return (self.j.mean + self.f.mean) / 2


def object_score(
    video: str, obj_id: int, metrics: FrameMetrics, protocol: str = "davis"
) -> ObjectScore | None:
    """Scores of one object from its per-frame metrics on the evaluated frames.

    protocol "davis" scores every frame given; "sav" drops the frames before the object first shows up
    in the ground truth or the prediction and returns None when it never does.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
    j, f = metrics.j, metrics.f
    if protocol == "sav":
        if not metrics.present.any():
            return None
        start = int(np.argmax(metrics.present))
        j, f = j[start:], f[start:]
    return ObjectScore(video, int(obj_id), len(j), mean_recall_decay(j), mean_recall_decay(f))


@dataclass(frozen=True)
class Summary:
    """Global figures: means over all objects of all videos (fractions in [0, 1])."""

    jf_mean: float
    j_mean: float
    j_recall: float
    j_decay: float
    f_mean: float
    f_recall: float
    f_decay: float
    objects: int
    videos: int


def summarize(objects: Sequence[ObjectScore]) -> Summary:
    """The official global table from per-object scores (each object one entry; plain means, so one
    NaN object makes the figure NaN, as there)."""
    if not objects:
        raise ValueError("no objects to summarize: nothing was scored")

    def mean(values: list[float]) -> float:
        return float(np.mean(values))

    j_mean = mean([o.j.mean for o in objects])
    f_mean = mean([o.f.mean for o in objects])
    return Summary(
        jf_mean=(j_mean + f_mean) / 2.0,
        j_mean=j_mean,
        j_recall=mean([o.j.recall for o in objects]),
        j_decay=mean([o.j.decay for o in objects]),
        f_mean=f_mean,
        f_recall=mean([o.f.recall for o in objects]),
        f_decay=mean([o.f.decay for o in objects]),
        objects=len(objects),
        videos=len({o.video for o in objects}),
    )


# ------------------------------------------------------------------ input checks
def _as_masks(masks, name: str) -> np.ndarray:
    """(T, H, W) bool view of (H, W) or (T, H, W) input (nonzero = object)."""
    m = np.asarray(masks)
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3 or 0 in m.shape:
        raise ValueError(f"{name} must have shape (H, W) or (T, H, W) with no empty axis, got {m.shape}")
    return m if m.dtype == np.bool_ else m != 0


def _check_radius(radius) -> int:
    r = int(radius)
    if r != radius or r < 0:
        raise ValueError(f"radius must be a whole number >= 0, got {radius}")
    return r
