"""Helpers shared by the CLI tests: running ``masklet`` in-process, a tiny synthetic clip, and a guard
that fails a test if the model loads before the user's input was checked."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from masklet import cli

# Model options that make CLI runs fast: seeded random weights, a small input, float32 on the CPU.
FAST = ["--random-weights", "--image-size", "256", "--dtype", "fp32", "--device", "cpu"]
CLIP_H, CLIP_W, CLIP_FRAMES, CLIP_FPS = 64, 96, 6, 10


def run(capsys, *argv) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``masklet *argv`` run in this process."""
    rc = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def synthetic_frames(n: int = CLIP_FRAMES, h: int = CLIP_H, w: int = CLIP_W) -> list[np.ndarray]:
    """n (h, w, 3) uint8 frames: a red disc moving right over a smooth background."""
    yy, xx = np.mgrid[:h, :w]
    frames = []
    for i in range(n):
        img = np.stack([xx * 200 // w, yy * 200 // h, np.full_like(xx, 60)], -1)
        img[(yy - h // 2) ** 2 + (xx - 20 - 8 * i) ** 2 < 12**2] = (230, 40, 30)
        frames.append(img.astype(np.uint8))
    return frames


def write_clip(path: Path, frames: list[np.ndarray] | None = None, fps: int = CLIP_FPS) -> Path:
    """Encode ``frames`` (default: :func:`synthetic_frames`) as an H.264 mp4 with PyAV."""
    import av

    frames = synthetic_frames() if frames is None else frames
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts = i
            container.mux(stream.encode(vf))
        container.mux(stream.encode(None))
    return path


def refuse_model_loading(monkeypatch, what: str = "the input") -> None:
    """Make loading a model fail the test: user errors must be found before any heavy work."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"the model was loaded before {what} was checked")

    # every command module calls its own imported load_model: replace each of them
    for name, module in list(sys.modules.items()):
        if name.split(".")[:2] == ["masklet", "cli"] and hasattr(module, "load_model"):
            monkeypatch.setattr(module, "load_model", refuse)
