"""Masks to polygons and back, in pixel-corner coordinates (numpy only).

Coordinate frame: x then y, in pixels, with the image's top-left *corner* at (0, 0); pixel (row r,
column c) is the unit square from (c, r) to (c + 1, r + 1) and its centre is (c + 0.5, r + 0.5). This is
the frame COCO polygons use (``pycocotools`` rasterises a rectangle ``[1, 1, 4, 1, 4, 3, 1, 3]`` as the
3 x 2 pixels of columns 1..3, rows 1..2), so polygons written here load back to the same pixels there.

* :func:`mask_to_polygons` follows the cracks between foreground and background pixels, so at
  ``tolerance=0`` a polygon is the exact outline of its component: rasterising it gives the component
  back pixel for pixel (holes aside, see below).
* :func:`polygons_to_mask` fills a pixel when its centre lies inside (non-zero winding; a centre exactly
  on a left/top edge counts as inside, on a right/bottom edge as outside).

Holes: each polygon is the *outer* ring of one 8-connected component, as COCO and YOLO polygons are;
holes inside a component are filled. Export with RLE to keep holes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .masks import as_mask

__all__ = ["mask_to_polygons", "polygons_to_mask"]

# Directions, clockwise on screen (y grows downwards): east, south, west, north.
_DX = np.array([1, 0, -1, 0], dtype=np.int64)
_DY = np.array([0, 1, 0, -1], dtype=np.int64)


def mask_to_polygons(mask, tolerance: float = 1.0, min_area: float = 0.0) -> list[np.ndarray]:
    """Outer boundary of each 8-connected component of a mask, as polygons.

    Args:
        mask: (H, W) bool (or any numpy array / torch tensor; nonzero = foreground).
        tolerance: Douglas-Peucker tolerance in pixels; a vertex is dropped when it lies within this
            distance of the simplified outline. 0 keeps every corner (only collinear points go).
            A polygon that would be left with fewer than 3 vertices keeps all its corners instead, so
            one-pixel objects survive.
        min_area: components whose outline encloses fewer pixels than this are left out.

    Returns:
        A list of (N, 2) float64 arrays of x, y vertices in pixel-corner coordinates, N >= 3. Each
        ring is clockwise on screen (y down) and starts at the top-left corner of its component's
        top-most, then left-most pixel; rings are ordered by that start (top to bottom, then left to
        right). Empty mask: ``[]``.
    """
    m = as_mask(mask)
    if not np.isfinite(tolerance) or tolerance < 0:
        raise ValueError(f"tolerance must be a finite number of pixels >= 0, got {tolerance!r}")
    rows = np.flatnonzero(m.any(axis=1))
    if rows.size == 0:
        return []
    cols = np.flatnonzero(m.any(axis=0))
    r0, c0 = int(rows[0]), int(cols[0])
    crop = m[r0 : int(rows[-1]) + 1, c0 : int(cols[-1]) + 1]
    sx, sy, d = _crack_edges(np.pad(crop, 1))
    nxt = _successors(sx, sy, d, lattice_width=crop.shape[1] + 3)
    order, starts = _trace_loops(nxt)
    sx, sy, d = sx[order], sy[order], d[order]
    ends = np.append(starts[1:], order.size)
    # Shoelace over the unit edges: positive for outer rings (clockwise on screen), negative for holes.
    cross = sx * (sy + _DY[d]) - (sx + _DX[d]) * sy
    area = np.add.reduceat(cross, starts) / 2.0
    # A vertex is a corner when the edge leaving it turns from the edge arriving at it.
    prev = np.roll(d, 1)
    prev[starts] = d[ends - 1]
    corner = d != prev
    # Padding added one pixel on each side: lattice (X, Y) is image corner (X - 1 + c0, Y - 1 + r0).
    xy = np.stack([sx + (c0 - 1), sy + (r0 - 1)], axis=1).astype(np.float64)
    polygons = []
    for start, end, a in zip(starts, ends, area):
        if a <= 0 or a < min_area:
            continue
        ring = xy[start:end][corner[start:end]]
        polygons.append(_simplify_closed(ring, float(tolerance)) if tolerance > 0 else ring)
    return polygons


def _crack_edges(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit boundary edges of a padded mask, directed so that the foreground is on their right.

    Returns start x, start y (lattice points of ``p``'s pixel corners) and direction (0..3, see
    ``_DX``), sorted by start y, then start x, then direction.
    """
    below, above = p[1:, :], p[:-1, :]
    hy, hx = np.nonzero(below != above)  # lattice row hy + 1, spanning x = hx .. hx + 1
    east = below[hy, hx]
    right, left = p[:, 1:], p[:, :-1]
    vy, vx = np.nonzero(right != left)  # lattice column vx + 1, spanning y = vy .. vy + 1
    north = right[vy, vx]
    sx = np.concatenate([np.where(east, hx, hx + 1), vx + 1])
    sy = np.concatenate([hy + 1, np.where(north, vy + 1, vy)])
    d = np.concatenate([np.where(east, 0, 2), np.where(north, 3, 1)])
    order = np.lexsort((d, sx, sy))
    return sx[order].astype(np.int64), sy[order].astype(np.int64), d[order].astype(np.int64)


def _successors(sx: np.ndarray, sy: np.ndarray, d: np.ndarray, lattice_width: int) -> np.ndarray:
    """Index of the edge that follows each edge along its boundary.

    At a lattice point where two foreground pixels touch only diagonally, two boundaries meet; turning
    left there keeps the two pixels in one ring, which makes components 8-connected.
    """
    keys = (sy * lattice_width + sx) * 4 + d  # sorted, since the edges are
    end = (sy + _DY[d]) * lattice_width + (sx + _DX[d])
    first = np.searchsorted(keys, end * 4)
    count = np.searchsorted(keys, end * 4 + 4) - first
    left = np.searchsorted(keys, end * 4 + (d + 3) % 4)
    return np.where(count == 2, left, first)


def _trace_loops(nxt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split the successor permutation into cycles, each walked in order from its smallest index.

    Pointer doubling keeps this vectorised (O(n log n)) however long the rings are. Returns the edge
    order (cycles one after another, by increasing smallest index) and each cycle's start position in it.
    """
    idx = np.arange(nxt.size)
    rep, jump = idx.copy(), nxt.copy()
    while True:  # rep[i] = min index within 2^k steps of i; once stable it is the cycle's minimum
        new = np.minimum(rep, rep[jump])
        if np.array_equal(new, rep):
            break
        rep, jump = new, jump[jump]
    # Steps from each edge to the last edge of its cycle (the one whose successor is the minimum).
    last = rep[nxt] == nxt
    dist = np.where(last, 0, 1)
    jump = np.where(last, idx, nxt)
    while True:
        doubled = jump[jump]
        if np.array_equal(doubled, jump):  # every edge now points at its cycle's last edge
            break
        dist = dist + dist[jump]
        jump = doubled
    order = np.lexsort((-dist, rep))
    starts = np.flatnonzero(np.diff(rep[order], prepend=-1))
    return order, starts


def _simplify_closed(ring: np.ndarray, tolerance: float) -> np.ndarray:
    """Douglas-Peucker on a closed ring, split at its first vertex and the vertex farthest from it."""
    n = len(ring)
    if n <= 3:
        return ring
    far = int(np.argmax(((ring - ring[0]) ** 2).sum(axis=1)))
    closed = np.concatenate([ring, ring[:1]])
    keep = np.zeros(n + 1, dtype=bool)
    keep[[0, far, n]] = True
    stack = [(0, far), (far, n)]
    while stack:
        i, j = stack.pop()
        if j - i < 2:
            continue
        dist = _segment_distance(closed[i + 1 : j], closed[i], closed[j])
        k = int(np.argmax(dist))
        if dist[k] > tolerance:
            keep[i + 1 + k] = True
            stack += [(i, i + 1 + k), (i + 1 + k, j)]
    out = ring[keep[:n]]
    return out if len(out) >= 3 else ring


def _segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of each (x, y) point to the segment a-b."""
    ab = b - a
    length2 = float(ab @ ab)
    t = np.zeros(len(points)) if length2 == 0 else np.clip((points - a) @ ab / length2, 0.0, 1.0)
    return np.hypot(*(points - a - t[:, None] * ab).T)


def polygons_to_mask(polygons: Sequence, height: int, width: int) -> np.ndarray:
    """Rasterise polygons into one (height, width) bool mask (their union).

    Args:
        polygons: a list of polygons, each an (N, 2) array-like of x, y vertices or a flat COCO list
            ``[x0, y0, x1, y1, ...]``, in pixel-corner coordinates (see the module docstring). Vertices
            may lie outside the image; polygons with fewer than 3 vertices enclose nothing and are
            skipped.
        height, width: the mask size in pixels.

    A pixel is set when its centre is inside a polygon by the non-zero winding rule, so a ring that
    overlaps itself (or parts joined by zero-width bridges) fills as the union of its loops.
    """
    if isinstance(height, bool) or isinstance(width, bool) or int(height) != height or int(width) != width:
        raise ValueError(f"height and width must be integers, got {height!r} x {width!r}")
    height, width = int(height), int(width)
    if height < 0 or width < 0:
        raise ValueError(f"height and width must be >= 0, got {height} x {width}")
    if isinstance(polygons, np.ndarray) and polygons.ndim == 2:
        raise ValueError(
            "polygons must be a list of polygons; wrap a single (N, 2) polygon in a list: [polygon]"
        )
    out = np.zeros((height, width), dtype=bool)
    for i, polygon in enumerate(polygons):
        vertices = _as_vertices(polygon, i)
        if len(vertices) >= 3 and height and width:
            _fill(vertices, out)
    return out


def _as_vertices(polygon, i: int) -> np.ndarray:
    try:
        v = np.asarray(polygon, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"polygons[{i}] must be numbers: an (N, 2) array of x, y or a flat [x0, y0, x1, y1, ...] list"
        ) from None
    if v.ndim == 1:
        if v.size % 2:
            raise ValueError(
                f"polygons[{i}] is a flat list of {v.size} numbers; it needs an even count (x, y pairs)"
            )
        v = v.reshape(-1, 2)
    if v.ndim != 2 or v.shape[1] != 2:
        raise ValueError(f"polygons[{i}] must have shape (N, 2) (x, y vertices), got {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError(f"polygons[{i}] has NaN or infinite coordinates")
    return v


def _fill(vertices: np.ndarray, out: np.ndarray) -> None:
    """OR one polygon into ``out`` by scanlines through the pixel centres, within its bounding box."""
    h, w = out.shape
    x0, y0 = vertices[:, 0], vertices[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    # Row r's centre r + 0.5 crosses an edge when it lies in [min y, max y) of the edge.
    r_lo = np.clip(np.ceil(np.minimum(y0, y1) - 0.5), 0, h).astype(np.int64)
    r_hi = np.clip(np.ceil(np.maximum(y0, y1) - 0.5), 0, h).astype(np.int64)
    counts = r_hi - r_lo
    total = int(counts.sum())
    if total == 0:
        return
    edge = np.repeat(np.arange(len(vertices)), counts)
    offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    rows = r_lo[edge] + offsets
    t = (rows + 0.5 - y0[edge]) / (y1[edge] - y0[edge])
    x = x0[edge] + t * (x1[edge] - x0[edge])
    # Pixels whose centre is at or right of the crossing (c + 0.5 >= x) change winding number there.
    cols = np.clip(np.ceil(x - 0.5), 0, w).astype(np.int64)
    winding = np.where(y1[edge] > y0[edge], 1, -1)
    lo, hi = int(cols.min()), int(cols.max())
    if lo >= w:
        return
    top, bottom = int(rows.min()), int(rows.max()) + 1
    span = hi - lo + 1
    flat = (rows - top) * span + (cols - lo)
    delta = np.bincount(flat, weights=winding, minlength=(bottom - top) * span).reshape(bottom - top, span)
    inside = np.cumsum(delta, axis=1)[:, : min(span, w - lo)] != 0
    out[top:bottom, lo : lo + inside.shape[1]] |= inside
