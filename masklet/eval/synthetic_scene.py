"""Procedural scenes behind the synthetic datasets: objects, their roles, backgrounds and rendering.

A :class:`Scene` is planned once from a numpy Generator (:func:`plan_scene`) and then renders any frame
on its own (:meth:`Scene.render`), so frames can be produced in any order, e.g. by a training loader.
Coordinates are pixels, x to the right and y down; time ``t`` is the frame index. The objects' shapes,
textures and trajectories are :mod:`masklet.eval.scene_parts`.

Every object has a role that gives each video the events a tracker has to survive:

* ``sweep`` (one per scene): starts near the middle, slides out of the frame on one side and comes
  back before the end (disappearance and reappearance); it slides along the row (or column) of
  another object, so it passes over or under it (occlusion);
* ``late``: enters the frame from outside after the first frame;
* ``wander``: drifts, turns and changes scale around a start position.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .scene_parts import (
    MAX_SCALE,
    Motion,
    Shape,
    Texture,
    hsv_color,
    random_shape,
    random_texture,
    random_wobble,
    smooth_motion,
)

__all__ = ["Scene", "SceneObject", "plan_scene"]


@dataclass(frozen=True)
class SceneObject:
    obj_id: int  # 1..N, the palette index in the annotations
    role: str  # "sweep", "late" or "wander"
    shape: Shape
    texture: Texture
    motion: Motion
    depth: float  # larger is nearer the camera (drawn later)


@dataclass(frozen=True)
class Scene:
    """A planned scene; :meth:`render` draws any frame of it."""

    size: tuple[int, int]  # (H, W)
    background: np.ndarray  # (H + 2m, W + 2m, 3) float32, panned under the frame
    margin: int
    pan: np.ndarray  # (4,): amplitude fraction, omega, phase x, phase y
    objects: tuple[SceneObject, ...]  # ordered by obj_id
    noise_seed: int
    noise_sigma: float

    def render(self, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Frame ``t``: ``(image (H, W, 3) uint8 RGB, labels (H, W) uint8, amodal (N, H, W) bool)``.

        ``labels`` holds the visible object id per pixel (0 = background); ``amodal[k]`` is object
        ``k + 1``'s full extent inside the frame, including the parts other objects hide.
        """
        h, w = self.size
        m = self.margin
        amp, omega, px, py = self.pan
        ox = int(round(m + amp * m * np.sin(omega * t + px)))
        oy = int(round(m + amp * m * np.sin(omega * t + py)))
        image = self.background[oy : oy + h, ox : ox + w].copy()
        labels = np.zeros((h, w), dtype=np.uint8)
        amodal = np.zeros((len(self.objects), h, w), dtype=bool)
        for obj in sorted(self.objects, key=lambda o: o.depth):
            window = _draw(obj, t, image, (h, w))
            if window is None:
                continue
            (y0, y1, x0, x1), inside = window
            amodal[obj.obj_id - 1, y0:y1, x0:x1] = inside
            labels[y0:y1, x0:x1][inside] = obj.obj_id
        rng = np.random.default_rng([self.noise_seed, t])
        gain = 1.0 + 0.03 * np.sin(0.3 * t + self.noise_seed % 7)
        image = (
            image * np.float32(gain) + rng.standard_normal(image.shape, dtype=np.float32) * self.noise_sigma
        )
        return np.clip(image + 0.5, 0, 255).astype(np.uint8), labels, amodal


def _draw(obj: SceneObject, t: float, image: np.ndarray, size: tuple[int, int]):
    """Paint ``obj`` at frame ``t`` into ``image``; returns (window, inside mask) or None if off-frame."""
    h, w = size
    center, angle, scale = obj.motion.pose(t)
    reach = obj.shape.radius * scale + 1.0
    x0, x1 = max(0, int(np.floor(center[0] - reach))), min(w, int(np.ceil(center[0] + reach)) + 1)
    y0, y1 = max(0, int(np.floor(center[1] - reach))), min(h, int(np.ceil(center[1] + reach)) + 1)
    if x0 >= x1 or y0 >= y1:
        return None
    dx = (np.arange(x0, x1, dtype=np.float64) - center[0])[None, :]
    dy = (np.arange(y0, y1, dtype=np.float64) - center[1])[:, None]
    c, s = np.cos(angle), np.sin(angle)
    u = (dx * c + dy * s) / scale
    v = (dy * c - dx * s) / scale
    inside = obj.shape.inside(u, v)
    if not inside.any():
        return None
    image[y0:y1, x0:x1][inside] = obj.texture.color(u[inside], v[inside], obj.shape.radius)
    return (y0, y1, x0, x1), inside


def _wander_starts(rng, count: int, size, min_gap: float) -> list[np.ndarray]:
    h, w = size
    starts: list[np.ndarray] = []
    for _ in range(count):
        best = None
        for _try in range(30):
            p = np.array([rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h])
            gap = min((np.hypot(*(p - q)) for q in starts), default=np.inf)
            if best is None or gap > best[0]:
                best = (gap, p)
            if gap >= min_gap:
                break
        starts.append(best[1])
    return starts


def _sweep(rng, num_frames: int, size, radius: float, partner: np.ndarray | None) -> Motion:
    """Out of the frame on one side and back: ``x = mid + A sin(omega t + phi)`` along one axis.

    ``A`` comes from the object's largest scale in the video, so that the whole object is past the
    edge around the crest (``|sin| > 1 / 1.04``) and gone for a few frames, not half the video.
    """
    h, w = size
    axis = int(rng.integers(2)) if partner is None else int(rng.random() < 0.3)  # 0: x, 1: y
    half = (w, h)[axis] / 2.0
    side = (1.0 if rng.random() < 0.5 else -1.0) if partner is None else np.sign(partner[axis] - half) or 1.0
    total = rng.uniform(2.6, 2.9)  # phase travelled over the video: past the crest and back in
    phase0 = rng.uniform(-0.2, 0.1)
    start = np.array([w / 2.0, h / 2.0]) if partner is None else partner.copy()
    start[axis] = half
    other = 1 - axis
    amp, omega, phase = np.zeros(2), np.full(2, total / max(num_frames, 1)), np.full(2, phase0)
    amp[axis] = side
    amp[other], omega[other], phase[other] = 0.03 * (w, h)[other], 2 * np.pi / max(num_frames, 2), 0.0
    motion = smooth_motion(rng, num_frames, start, amp, omega, phase)
    peak = max(motion.pose(t)[2] for t in range(num_frames))
    amp[axis] = side * 1.04 * (half + radius * peak + 1.0)
    base = motion.base.copy()
    base[axis] = half
    return replace(motion, amp=amp, base=base)


def _late(rng, num_frames: int, size, radius: float) -> Motion:
    """Starts fully outside one edge and enters at about a quarter of the video."""
    h, w = size
    axis = int(rng.integers(2))
    extent = (w, h)[axis]
    reach = radius * MAX_SCALE + 2.0
    t_in = rng.uniform(0.15, 0.4) * num_frames
    end = rng.uniform(0.35, 0.65) * extent
    speed = (end + reach) / max(num_frames - t_in, 1.0)
    start = np.array([rng.uniform(0.25, 0.75) * w, rng.uniform(0.25, 0.75) * h])
    start[axis] = -reach - speed * t_in
    vel = np.zeros(2)
    vel[axis] = speed
    if rng.random() < 0.5:  # enter from the far edge instead
        start[axis] = extent - start[axis]
        vel[axis] = -speed
    amp, omega, phase = random_wobble(rng, num_frames, 0.03, size)
    amp[axis] = 0.0
    return smooth_motion(rng, num_frames, start, amp, omega, phase, vel)


def _background(rng: np.random.Generator, size, margin: int) -> np.ndarray:
    h, w = size[0] + 2 * margin, size[1] + 2 * margin
    hue = rng.uniform()
    texture = random_texture(rng, hue, max(h, w) / 2.0, vivid=False)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    waves = rng.uniform(2 * np.pi / 160, 2 * np.pi / 25, size=6)
    theta = rng.uniform(0, 2 * np.pi, 6)
    field = (
        sum(
            np.cos(xx * (k * np.cos(a)) + yy * (k * np.sin(a)) + p)
            for k, a, p in zip(waves, theta, rng.uniform(0, 6.3, 6))
        )
        / 6.0
    )
    light = hsv_color(hue + 0.5 * rng.uniform(-0.2, 0.2), rng.uniform(0.05, 0.3), rng.uniform(0.55, 0.9))
    dark = hsv_color(hue, rng.uniform(0.05, 0.3), rng.uniform(0.15, 0.45))
    image = dark + (0.5 + 0.5 * field)[..., None] * (light - dark)
    pattern = texture.color(xx.ravel() - w / 2, yy.ravel() - h / 2, float(max(h, w))).reshape(h, w, 3)
    image = 0.75 * image + 0.25 * pattern
    for _ in range(int(rng.integers(2, 5))):  # unlabelled clutter, drawn into the background once
        r = rng.uniform(0.05, 0.12) * min(size)
        clutter = SceneObject(
            0,
            "clutter",
            random_shape(rng, r),
            random_texture(rng, rng.uniform(), r, vivid=False),
            smooth_motion(
                rng, 1, (rng.uniform(0, w), rng.uniform(0, h)), np.zeros(2), np.zeros(2), np.zeros(2)
            ),
            0.0,
        )
        _draw(clutter, 0.0, image, (h, w))
    return image.astype(np.float32)


def plan_scene(
    rng: np.random.Generator, size: tuple[int, int], num_objects: int, num_frames: int, late_prob: float
) -> Scene:
    """Draw a scene: background, ``num_objects`` objects (one ``sweep``, the others ``late`` with
    probability ``late_prob`` or ``wander``), their textures and trajectories over ``num_frames``."""
    h, w = size
    short = min(h, w)
    late_prob = late_prob if num_frames > 1 else 0.0  # a one-frame scene has no "later"
    roles = ["sweep"] + ["late" if rng.random() < late_prob else "wander" for _ in range(num_objects - 1)]
    shapes = [random_shape(rng, r) for r in rng.uniform(0.1, 0.2, num_objects) * short]
    starts = iter(_wander_starts(rng, roles.count("wander"), size, 0.35 * short))
    hues = rng.uniform() + (np.arange(num_objects) + rng.uniform(-0.15, 0.15, num_objects)) / num_objects
    partner = None
    motions: list[Motion | None] = [None] * num_objects
    for i, role in enumerate(roles):
        if role == "wander":
            start = next(starts)
            partner = start if partner is None else partner
            motions[i] = smooth_motion(rng, num_frames, start, *random_wobble(rng, num_frames, 0.08, size))
        elif role == "late":
            motions[i] = _late(rng, num_frames, size, shapes[i].radius)
    motions[0] = _sweep(rng, num_frames, size, shapes[0].radius, partner)
    # Ids: objects present from the start first (in random order), late arrivals last.
    order = sorted(range(num_objects), key=lambda i: (roles[i] == "late", rng.random()))
    depths = rng.permutation(num_objects).astype(np.float64)
    objects = tuple(
        SceneObject(
            new_id,
            roles[i],
            shapes[i],
            random_texture(rng, hues[i], shapes[i].radius, True),
            motions[i],
            float(depths[i]),
        )
        for new_id, i in enumerate(order, start=1)
    )
    margin = int(round(0.08 * max(h, w)))
    pan = np.array(
        [
            rng.uniform(0.3, 0.9),
            rng.uniform(0.5, 1.5) * np.pi / max(num_frames, 2),
            rng.uniform(0, 2 * np.pi),
            rng.uniform(0, 2 * np.pi),
        ]
    )
    scene = Scene(
        size,
        _background(rng, size, margin),
        margin,
        pan,
        objects,
        int(rng.integers(2**31)),
        float(rng.uniform(1.0, 3.0)),
    )
    return _raise_hidden(scene)


def _raise_hidden(scene: Scene) -> Scene:
    """Bring objects meant to be visible at frame 0 but mostly hidden there to the front."""
    objects = list(scene.objects)
    _, labels, amodal = scene.render(0)
    top = max(o.depth for o in objects)
    for k, obj in enumerate(objects):
        full = int(amodal[k].sum())
        if obj.role != "late" and full and (labels == obj.obj_id).sum() < 0.3 * full:
            top += 1.0
            objects[k] = replace(obj, depth=top)
    return replace(scene, objects=tuple(objects))
