"""The parts of a synthetic scene object: its shape, texture and trajectory, and their random draws.

Each part is a frozen dataclass evaluated in object-local pixels (shapes, textures) or at a frame
index (trajectories); :mod:`masklet.eval.synthetic_scene` composes them into scenes. Coordinates are
pixels, x to the right and y down.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

__all__ = [
    "MAX_SCALE",
    "Motion",
    "Shape",
    "Texture",
    "hsv_color",
    "random_shape",
    "random_texture",
    "random_wobble",
    "smooth_motion",
]

_SHAPES = ("ellipse", "polygon", "roundrect")
_TEXTURES = ("stripes", "checker", "noise", "gradient")
MAX_SCALE = 1.5  # smooth_motion's scale oscillates in [1 - 2a, 1 + 2a] with a <= 0.25


@dataclass(frozen=True)
class Shape:
    """A closed shape in object-local pixels, centred on the origin; ``radius`` bounds it."""

    kind: str
    params: np.ndarray  # ellipse: (a, b); roundrect: (half_w, half_h, corner); polygon: (K, 2) vertices
    radius: float

    def inside(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Bool array: which local points ``(u, v)`` (arrays of one shape) lie inside the shape."""
        if self.kind == "ellipse":
            a, b = self.params
            return (u / a) ** 2 + (v / b) ** 2 <= 1.0
        if self.kind == "roundrect":
            hw, hh, r = self.params
            qx = np.maximum(np.abs(u) - (hw - r), 0.0)
            qy = np.maximum(np.abs(v) - (hh - r), 0.0)
            return qx**2 + qy**2 <= r * r
        # Star-shaped polygon, vertices sorted by angle: inside its angular sector's fan triangle.
        verts = self.params
        angles = np.arctan2(verts[:, 1], verts[:, 0])
        phi = np.arctan2(v, u)
        sector = (np.searchsorted(angles, phi, side="right") - 1) % len(verts)
        ax, ay = verts[sector, 0], verts[sector, 1]
        nxt = (sector + 1) % len(verts)
        bx, by = verts[nxt, 0], verts[nxt, 1]
        return (bx - ax) * (v - ay) - (by - ay) * (u - ax) >= 0.0


@dataclass(frozen=True)
class Texture:
    """A two-colour procedural pattern in object-local pixels."""

    kind: str
    colors: np.ndarray  # (2, 3) float32 RGB in 0..255
    angle: float
    period: float  # stripe period / checker cell / gradient length, pixels
    waves: np.ndarray  # (4, 3): kx, ky, phase of the noise pattern
    shade: float  # darkening towards the rim, 0..1, for a little relief

    def color(self, u: np.ndarray, v: np.ndarray, radius: float) -> np.ndarray:
        """(K, 3) float32 colours at the 1-D local coordinates ``u``, ``v`` (K,)."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        along = u * c + v * s
        if self.kind == "stripes":
            w = (np.floor(along / self.period) % 2).astype(np.float32)
        elif self.kind == "checker":
            across = -u * s + v * c
            w = ((np.floor(along / self.period) + np.floor(across / self.period)) % 2).astype(np.float32)
        elif self.kind == "noise":
            k = self.waves
            w = np.cos(u[:, None] * k[:, 0] + v[:, None] * k[:, 1] + k[:, 2]).mean(axis=1)
            w = (0.5 + 0.9 * w).clip(0.0, 1.0).astype(np.float32)
        else:  # gradient
            w = (along / self.period + 0.5).clip(0.0, 1.0).astype(np.float32)
        out = self.colors[0] + w[:, None] * (self.colors[1] - self.colors[0])
        if self.shade > 0:
            rim = ((u * u + v * v) / (radius * radius)).clip(0.0, 1.0).astype(np.float32)
            out = out * (1.0 - self.shade * rim)[:, None]
        return out


@dataclass(frozen=True)
class Motion:
    """Smooth trajectory: ``center(t) = base + amp * sin(omega * t + phase) + vel * t``."""

    base: np.ndarray
    amp: np.ndarray
    omega: np.ndarray
    phase: np.ndarray
    vel: np.ndarray
    angle0: float
    spin: float  # radians per frame
    scale_amp: float
    scale_omega: float
    scale_phase: float

    def pose(self, t: float) -> tuple[np.ndarray, float, float]:
        """``(center (2,) x/y, angle radians, scale)`` at frame ``t``."""
        center = self.base + self.amp * np.sin(self.omega * t + self.phase) + self.vel * t
        scale = 1.0 + self.scale_amp * (
            np.sin(self.scale_omega * t + self.scale_phase) - np.sin(self.scale_phase)
        )
        return center, self.angle0 + self.spin * t, float(scale)


def hsv_color(h: float, s: float, v: float) -> np.ndarray:
    """(3,) float32 RGB in 0..255 of hue ``h`` (wrapped into [0, 1)), saturation and value in 0..1."""
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32) * 255.0


def random_shape(rng: np.random.Generator, r: float) -> Shape:
    """An ellipse, rounded rectangle or star-shaped polygon of size about ``r`` pixels."""
    kind = _SHAPES[rng.integers(len(_SHAPES))]
    if kind == "ellipse":
        a, b = r, r * rng.uniform(0.45, 1.0)
        return Shape(kind, np.array([a, b]), float(max(a, b)))
    if kind == "roundrect":
        hw, hh = r * rng.uniform(0.6, 1.0), r * rng.uniform(0.4, 0.9)
        corner = min(hw, hh) * rng.uniform(0.15, 0.6)
        return Shape(kind, np.array([hw, hh, corner]), float(np.hypot(hw, hh)))
    k = int(rng.integers(5, 10))
    # Angles jittered around an even spread keep every sector under pi (the fan test needs it).
    angles = np.sort((np.arange(k) + rng.uniform(-0.3, 0.3, k)) * (2 * np.pi / k)) - np.pi
    radii = r * rng.uniform(0.45, 1.0, k)
    radii[rng.integers(k)] = r
    verts = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    return Shape(kind, verts, float(r))


def random_texture(rng: np.random.Generator, hue: float, r: float, vivid: bool) -> Texture:
    """A pattern in two shades of ``hue`` (saturated when ``vivid``) for a shape of radius ``r``."""
    sat = (0.55, 0.95) if vivid else (0.08, 0.35)
    first = hsv_color(hue, rng.uniform(*sat), rng.uniform(0.65, 1.0))
    second = hsv_color(hue + rng.uniform(-0.06, 0.06), rng.uniform(*sat), rng.uniform(0.2, 0.55))
    kind = _TEXTURES[rng.integers(len(_TEXTURES))]
    period = 2 * r if kind == "gradient" else rng.uniform(4.0, 14.0)
    freq, theta = rng.uniform(0.08, 0.35, 4), rng.uniform(0, 2 * np.pi, 4)
    waves = np.stack([freq * np.cos(theta), freq * np.sin(theta), rng.uniform(0, 2 * np.pi, 4)], axis=1)
    angle, shade = float(rng.uniform(0, np.pi)), float(rng.uniform(0.0, 0.3))
    return Texture(kind, np.stack([first, second]), angle, float(period), waves, shade)


def random_wobble(rng: np.random.Generator, num_frames: int, spread: float, size) -> tuple[np.ndarray, ...]:
    """``(amp, omega, phase)``, each (2,) x/y, of a drift up to ``spread`` of the (H, W) ``size``, about
    one oscillation over ``num_frames``."""
    base_omega = 2 * np.pi / max(num_frames, 2)
    amp = rng.uniform(0.3, 1.0, 2) * spread * np.array([size[1], size[0]])
    omega = rng.uniform(0.5, 1.5, 2) * base_omega
    phase = rng.uniform(0, 2 * np.pi, 2)
    return amp, omega, phase


def smooth_motion(rng, num_frames: int, start, amp, omega, phase, vel=(0.0, 0.0)) -> Motion:
    """A :class:`Motion` through ``start`` (x, y) at frame 0 with the given oscillation and velocity;
    the spin and the scale change are drawn here (scale stays within :data:`MAX_SCALE`)."""
    base = np.asarray(start, dtype=np.float64) - amp * np.sin(phase)  # so that center(0) == start
    scale_amp = float(rng.uniform(0.08, 0.25))
    return Motion(
        base,
        amp,
        omega,
        phase,
        np.asarray(vel, dtype=np.float64),
        float(rng.uniform(0, 2 * np.pi)),
        float(rng.uniform(-0.5, 0.5) * np.pi / max(num_frames, 1)),
        scale_amp,
        float(rng.uniform(0.5, 1.5) * 2 * np.pi / max(num_frames, 2)),
        float(rng.uniform(0, 2 * np.pi)),
    )
