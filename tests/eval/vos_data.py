"""Tiny video object segmentation datasets written to temporary folders, for the eval tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

PALETTE = (np.arange(768) * 53 % 256).astype(np.uint8).tobytes()


def save_ids(path: Path, ids: np.ndarray, mode: str = "P") -> Path:
    """Write an (H, W) id map as an indexed (P), gray (L) or gray-as-RGB (RGB) PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.asarray(ids, dtype=np.uint8)
    if mode == "P":
        img = Image.fromarray(arr, mode="L").convert("P")
        img.putpalette(PALETTE)
    elif mode == "RGB":
        img = Image.fromarray(np.stack([arr] * 3, -1))
    else:
        img = Image.fromarray(arr, mode="L")
    img.save(path)
    return path


def rect(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def two_objects(n: int = 5, h: int = 24, w: int = 32) -> np.ndarray:
    """(n, h, w) uint8 id maps: object 1 a square moving right, object 2 a fixed bar touching the border."""
    ids = np.zeros((n, h, w), np.uint8)
    for t in range(n):
        ids[t][rect(h, w, 4, 12, 2 + 2 * t, 10 + 2 * t)] = 1
        ids[t][rect(h, w, 16, h, 0, 12)] = 2
    return ids


def write_id_video(folder: Path, ids: np.ndarray, names: list[str] | None = None, mode: str = "P") -> None:
    names = names or [f"{t:05d}" for t in range(len(ids))]
    for name, frame in zip(names, ids):
        save_ids(folder / f"{name}.png", frame, mode)


def write_davis(root: Path, videos: dict[str, np.ndarray], split: list[str] | None = None) -> Path:
    """DAVIS layout: Annotations/480p, JPEGImages/480p and (if split) ImageSets/2017/val.txt."""
    for name, ids in videos.items():
        write_id_video(root / "Annotations" / "480p" / name, ids)
        jpgs = root / "JPEGImages" / "480p" / name
        jpgs.mkdir(parents=True, exist_ok=True)
        for t in range(len(ids)):
            Image.new("RGB", ids.shape[:0:-1]).save(jpgs / f"{t:05d}.jpg")
    if split is not None:
        (root / "ImageSets" / "2017").mkdir(parents=True, exist_ok=True)
        (root / "ImageSets" / "2017" / "val.txt").write_text("\n".join(split) + "\n")
    return root


def write_preds(root: Path, videos: dict[str, np.ndarray]) -> Path:
    """Prediction folder for id-map layouts: <root>/<video>/<frame>.png."""
    for name, ids in videos.items():
        write_id_video(root / name, ids)
    return root


SavVideos = dict[str, dict[int, dict[str, np.ndarray]]]  # video -> object -> frame -> (H, W) mask


def write_sav(root: Path, videos: SavVideos, annotations: bool = True) -> Path:
    """SA-V layout: [Annotations_6fps/]<video>/<obj:03d>/<frame>.png, binary 0/255 gray PNGs."""
    base = root / "Annotations_6fps" if annotations else root
    for name, objects in videos.items():
        for obj, frames in objects.items():
            for frame, mask in frames.items():
                save_ids(base / name / f"{obj:03d}" / f"{frame}.png", np.asarray(mask, np.uint8) * 255, "L")
    return root


def write_ytvos(root: Path, videos: dict[str, np.ndarray], step: int = 5) -> Path:
    """YouTube-VOS layout: Annotations every ``step`` frames, all JPEG frames, meta.json."""
    meta: dict = {"videos": {}}
    for name, ids in videos.items():
        names = [f"{t * step:05d}" for t in range(len(ids))]
        write_id_video(root / "Annotations" / name, ids, names)
        objects = {str(k): {"category": "thing", "frames": names} for k in np.unique(ids) if k}
        meta["videos"][name] = {"objects": objects}
    (root / "meta.json").write_text(json.dumps(meta))
    return root


def sav_gt_and_pred(tmp_path: Path, lose_frame: bool = True) -> None:
    """SA-V GT in tmp_path/gt, predictions in tmp_path/pred: a person (frames 0..16 every 4th) and a
    hand on it (from frame 4); the predicted hand is lost on frame 00008 unless lose_frame is False."""
    person, hand = rect(16, 20, 2, 12, 2, 12), rect(16, 20, 6, 9, 6, 10)
    gt = {
        "v": {
            0: {f"{t:05d}": person for t in (0, 4, 8, 12, 16)},
            1: {f"{t:05d}": hand for t in (4, 8, 12, 16)},
        }
    }
    pred = {"v": {0: dict(gt["v"][0]), 1: dict(gt["v"][1])}}
    if lose_frame:
        pred["v"][1]["00008"] = np.zeros_like(hand)
    write_sav(tmp_path / "gt", gt)
    write_sav(tmp_path / "pred", pred, annotations=False)
