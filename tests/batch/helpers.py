"""Synthetic datasets for the batch tests, output comparison, and jobs that misbehave on purpose.

The jobs here are imported by Ray workers too (they pickle by reference), so they live in a module,
not in a test file.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from masklet.batch import ModelSpec, TrackJob
from masklet.eval.synthetic import make_image_dataset
from tests.cli_support import synthetic_frames, write_clip

# Seeded random tiny weights at a small input: fast, and the same in every process.
MODEL = ModelSpec("sam2.1_hiera_tiny", dtype="fp32", device="cpu", image_size=128, random_weights=True)
CLI_MODEL = ["--random-weights", "--image-size", "128", "--dtype", "fp32", "--device", "cpu"]


def shifted_frames(n: int, shift: int) -> list[np.ndarray]:
    return [np.roll(f, shift, axis=1) for f in synthetic_frames(n)]


def write_frame_folder(folder: Path, frames: list[np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:05d}.jpg", quality=95)
    return folder


def disc_mask(h: int = 64, w: int = 96, cx: int = 40, cy: int = 32, r: int = 12) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 < r * r


def make_videos(root: Path, extra: int = 0) -> tuple[Path, Path]:
    """A videos folder (two mp4s, one frame folder, ``extra`` more mp4s) and its JSONL manifest.

    Prompts: points on frame 2 and a box on frame 0 (clip_a), a mask on frame 1 (clip_b: tracked
    both ways), points on frame 0 (frames_c), points on frame 1 (the extra clips).
    """
    videos = root / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    write_clip(videos / "clip_a.mp4")
    write_clip(videos / "clip_b.mp4", shifted_frames(5, 10))
    write_frame_folder(videos / "frames_c", shifted_frames(4, -6))
    mask = root / "masks" / "clip_b_1.png"
    mask.parent.mkdir(exist_ok=True)
    Image.fromarray(disc_mask(cx=58).astype(np.uint8) * 255).save(mask)
    records = [
        {"video": "clip_a", "frame": 2, "object": 1, "points": [[36, 32], [80, 10]], "labels": [1, 0]},
        {"video": "clip_a", "frame": 0, "object": 2, "box": [4, 4, 40, 40]},
        {"video": "clip_b", "frame": 1, "object": 3, "mask": "masks/clip_b_1.png"},
        {"video": "frames_c", "object": 1, "points": [[30, 30]]},
    ]
    for i in range(extra):
        write_clip(videos / f"extra_{i}.mp4", shifted_frames(6, 4 * i))
        records.append({"video": f"extra_{i}", "frame": 1, "object": 1, "points": [[30, 30]]})
    manifest = root / "prompts.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records))
    return videos, manifest


def make_faulty_videos(root: Path) -> tuple[Path, Path]:
    """Two good videos and two bad items: a corrupt mp4, a prompt for a frame the video lacks."""
    videos = root / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    write_clip(videos / "good_1.mp4")
    write_frame_folder(videos / "good_2", shifted_frames(3, 5))
    (videos / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    write_frame_folder(videos / "short", shifted_frames(3, 7))
    records = [
        {"video": "good_1", "frame": 0, "object": 1, "points": [[30, 30]]},
        {"video": "good_2", "frame": 0, "object": 1, "box": [10, 10, 50, 50]},
        {"video": "broken", "frame": 0, "object": 1, "points": [[30, 30]]},
        {"video": "short", "frame": 7, "object": 1, "points": [[30, 30]]},
    ]
    manifest = root / "prompts.json"
    manifest.write_text(json.dumps(records))
    return videos, manifest


def make_images(root: Path, n: int = 3) -> tuple[Path, Path, Path]:
    """(images folder, COCO json, YOLO label folder) of ``n`` synthetic images with boxes."""
    images, coco = make_image_dataset(root, num_images=n, size=(48, 64), objects=(2, 3))
    doc = json.loads(coco.read_text())
    yolo = root / "yolo"
    yolo.mkdir(exist_ok=True)
    for im in doc["images"]:
        lines = []
        for a in doc["annotations"]:
            if a["image_id"] == im["id"]:
                x, y, w, h = a["bbox"]
                cx, cy = (x + w / 2) / im["width"], (y + h / 2) / im["height"]
                lines.append(
                    f"{a['category_id'] - 1} {cx:.5f} {cy:.5f} {w / im['width']:.5f} {h / im['height']:.5f}"
                )
        (yolo / f"{Path(im['file_name']).stem}.txt").write_text("\n".join(lines) + "\n")
    (yolo / "classes.txt").write_text("shape\n")
    return images, coco, yolo


def outputs(out: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every output file (the bookkeeping folder left out)."""
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and ".masklet" not in p.relative_to(out).parts
    }


def statuses(out: Path) -> dict[str, dict]:
    return {
        d["item"]: d
        for d in (json.loads(p.read_text()) for p in (out / ".masklet" / "status").glob("*.json"))
    }


def temporaries(out: Path) -> list[str]:
    tmp = out / ".masklet" / "tmp"
    return sorted(p.name for p in tmp.iterdir()) if tmp.is_dir() else []


@dataclass(frozen=True)
class PausingTrackJob(TrackJob):
    """TrackJob whose first attempt at ``victim`` writes all its temporary outputs, records its
    process id in ``marker`` and then waits to be killed before it can rename anything."""

    victim: str = ""
    marker: str = ""

    def setup(self, model, meta):
        work = super().setup(model, meta)

        def run(item, folder):
            result = work(item, folder)
            if item.key == self.victim and not os.path.exists(self.marker):
                tmp = f"{self.marker}.{os.getpid()}"
                Path(tmp).write_text(str(os.getpid()))
                os.replace(tmp, self.marker)
                time.sleep(300)  # the test kills this process here
            return result

        return run


@dataclass(frozen=True)
class CrashingTrackJob(TrackJob):
    """TrackJob whose worker process kills itself whenever it starts ``victim``."""

    victim: str = ""

    def setup(self, model, meta):
        work = super().setup(model, meta)

        def run(item, folder):
            if item.key == self.victim:
                os.kill(os.getpid(), signal.SIGKILL)
            return work(item, folder)

        return run
