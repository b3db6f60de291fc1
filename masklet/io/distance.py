"""Exact Euclidean distance transform in numpy.

``edt(mask)`` gives, for every pixel, the Euclidean distance to the nearest zero pixel, exactly as
``scipy.ndimage.distance_transform_edt`` does (same values, float64), without scipy at runtime.

The method is the separable one of Felzenszwalb & Huttenlocher ("Distance Transforms of Sampled
Functions", Theory of Computing 2012):

1. along one axis, the 1D distance to the nearest zero of each line, by two cumulative scans;
2. along the other axis, the lower envelope of the parabolas ``(q - p)**2 + f[p]`` built from those
   squared 1D distances, and its value at every position.

Step 2 is sequential along a line, so it runs one position at a time over all lines at once (numpy
vectors across lines). It walks the shorter image axis, which keeps the Python loop short: a 1080p
mask takes well under a second. Squared distances are small integers, exact in float64, so the
square root is the only rounding and matches scipy bit for bit.
"""

from __future__ import annotations

import numpy as np

from .masks import as_mask

__all__ = ["edt", "edt_squared"]

_FAR = 1 << 40  # stands for "no zero pixel on this line"; its square still fits float64 exactly


def _line_distance_squared(fg: np.ndarray) -> np.ndarray:
    """Squared distance along axis 1 to the nearest zero of the same row; inf for rows without one.

    fg: (n, L) bool. Returns (n, L) float64.
    """
    n, length = fg.shape
    idx = np.arange(length, dtype=np.int64)
    zero = ~fg
    left = np.maximum.accumulate(np.where(zero, idx, -_FAR), axis=1)
    right = np.minimum.accumulate(np.where(zero, idx, _FAR)[:, ::-1], axis=1)[:, ::-1]
    dist = np.minimum(idx - left, right - idx)
    f = dist.astype(np.float64) ** 2
    f[dist >= _FAR] = np.inf
    return f


def _lower_envelope(f: np.ndarray) -> np.ndarray:
    """``d[q, l] = min_p (q - p)**2 + f[p, l]`` for every line l (columns of f), exactly.

    f: (n, L) float64, finite values >= 0 or inf (a parabola that does not exist). The Felzenszwalb-
    Huttenlocher envelope is built for all lines together: ``v[j, l]`` is the apex of the j-th
    parabola of line l's envelope, ``z[j, l]`` where it starts to be the lowest, ``top[l]`` the index
    of the last one (-1 while the line has none).
    """
    n, num_lines = f.shape
    q2 = np.arange(n, dtype=np.float64) ** 2
    h = (f + q2[:, None]).ravel()  # f[p] + p**2: the intersection formula needs only this
    v = np.zeros(n * num_lines, dtype=np.int64)
    z = np.empty((n + 1) * num_lines, dtype=np.float64)
    top = np.full(num_lines, -1, dtype=np.int64)
    finite = np.isfinite(f)
    every_line = np.arange(num_lines, dtype=np.int64)
    all_finite_rows = finite.all(axis=1)

    for q in range(n):
        lines = every_line if all_finite_rows[q] else np.flatnonzero(finite[q])
        if lines.size == 0:
            continue
        hq = h[q * num_lines : (q + 1) * num_lines]
        k = top[lines]
        first = k < 0
        if first.any():
            new = lines[first]
            v[new] = q
            z[new] = -np.inf
            top[new] = 0
            lines, k = lines[~first], k[~first]
        while lines.size:
            at = k * num_lines + lines
            p = v[at]
            # Where the new parabola (apex q) crosses the envelope's last one (apex p).
            s = (hq[lines] - h[p * num_lines + lines]) / (2.0 * (q - p))
            # The bottom parabola has z = -inf and is never removed, so k stays >= 0.
            covered = s <= z[at]
            if covered.any():
                keep = ~covered
                _push(v, z, top, lines[keep], k[keep] + 1, s[keep], q, num_lines)
                lines, k = lines[covered], k[covered] - 1
            else:
                _push(v, z, top, lines, k + 1, s, q, num_lines)
                break
    return _envelope_values(f, v, z, top)


def _envelope_values(f: np.ndarray, v: np.ndarray, z: np.ndarray, top: np.ndarray) -> np.ndarray:
    """(n, L) float64: each line's envelope (as :func:`_lower_envelope` builds it) read at q = 0..n-1.

    ``z`` gets each envelope's closing bound written in place.
    """
    n, num_lines = f.shape
    every_line = np.arange(num_lines, dtype=np.int64)
    # Close every envelope; a line without parabolas reads v = 0 and f[0] = inf, so it stays inf.
    last = np.maximum(top, 0)
    z[(last + 1) * num_lines + every_line] = np.inf
    out = np.empty((n, num_lines), dtype=np.float64)
    f_flat = f.ravel()
    k = np.zeros(num_lines, dtype=np.int64)
    for q in range(n):
        while True:
            ahead = z[(k + 1) * num_lines + every_line] < q
            if not ahead.any():
                break
            k += ahead
        p = v[k * num_lines + every_line]
        out[q] = (q - p) ** 2 + f_flat[p * num_lines + every_line]
    return out


def _push(v, z, top, lines, k, s, q: int, num_lines: int) -> None:
    at = k * num_lines + lines
    v[at] = q
    z[at] = s
    top[lines] = k


def edt_squared(mask) -> np.ndarray:
    """Squared Euclidean distance from every pixel to the nearest zero (background) pixel.

    mask: (H, W) array or torch tensor; nonzero is foreground. Returns (H, W) float64 holding exact
    integers: 0 on background pixels, ``dy**2 + dx**2`` to the nearest background pixel elsewhere,
    ``inf`` everywhere when the mask has no background pixel at all. Pixels outside the array do not
    count as background (pad the mask with zeros to make the image border count).
    """
    fg = as_mask(mask, "mask")
    if fg.size == 0:
        return np.zeros(fg.shape, dtype=np.float64)
    if not fg.any():
        return np.zeros(fg.shape, dtype=np.float64)
    if fg.all():
        return np.full(fg.shape, np.inf)
    # The envelope loop walks axis 0; make that the shorter axis.
    transposed = fg.shape[0] > fg.shape[1]
    work = np.ascontiguousarray(fg.T) if transposed else fg
    out = _lower_envelope(_line_distance_squared(work))
    return np.ascontiguousarray(out.T) if transposed else out


def edt(mask) -> np.ndarray:
    """Euclidean distance from every pixel to the nearest zero (background) pixel.

    The same values as ``scipy.ndimage.distance_transform_edt(mask)``: (H, W) float64, 0 on
    background pixels, ``sqrt(dy**2 + dx**2)`` in pixels elsewhere; ``inf`` everywhere when the mask
    has no background pixel (where scipy's result is undefined). Pixels outside the array do not
    count as background.
    """
    return np.sqrt(edt_squared(mask))
