"""Tiny datasets and configs for the training tests (seconds on two CPU cores)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from masklet.eval.synthetic import generate_video, make_vos_dataset
from masklet.io.masks import encode_rle
from masklet.train import config_from_dict

SIZE = (64, 96)  # frames of the tiny datasets, (H, W)


def tiny_vos(root: Path, videos: int = 3, frames: int = 6, train_videos: int = 2) -> Path:
    """A DAVIS-layout synthetic dataset: ``train_videos`` in train.txt, the rest in val.txt."""
    return make_vos_dataset(
        root, videos, frames, size=SIZE, objects=(1, 2), train_videos=train_videos, seed=3
    )


def tiny_config(root: Path, **sections) -> dict:
    """A config dict for a 128-pixel model with a frozen, cached encoder on ``tiny_vos(root)``;
    ``sections`` update its sections (e.g. ``train={"steps": 4}``)."""
    cfg = {
        "model": {"image_size": 128},
        "data": {
            "sources": [{"kind": "davis", "root": str(root), "split": "train"}],
            "clip_frames": 3,
            "max_objects": 2,
        },
        "prompts": {"correction_iters": 1},
        "optim": {"lr": 1e-3, "warmup_steps": 2},
        "train": {"steps": 4, "log_every": 1, "tensorboard": "off", "cache_variants": 2},
    }
    for name, values in sections.items():
        cfg[name] = {**cfg.get(name, {}), **values}
    return cfg


def build(root: Path, **sections):
    return config_from_dict(tiny_config(root, **sections))


def write_sav(root: Path, name: str = "vid_a", frames: int = 4, stride: int = 1) -> Path:
    """An SA-V style video: a JPEG folder ``root/<name>/`` (``frames * stride`` frames) and
    ``root/<name>_manual.json`` with RLE masklets on every ``stride``-th frame."""
    video = generate_video(0, seed=5, num_frames=frames * stride, size=SIZE, objects=(2, 2), late_objects=0.0)
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(video.frames):
        Image.fromarray(frame).save(folder / f"{t:05d}.jpg", quality=95)
    masklet = [[encode_rle(video.labels[t * stride] == k) for k in (1, 2)] for t in range(frames)]
    path = root / f"{name}_manual.json"
    path.write_text(json.dumps({"video_id": name, "masklet": masklet}))
    return path


def write_coco(root: Path, polygons: bool = False, empty: bool = False) -> Path:
    """Two images with COCO instances (RLE, or a polygon for the first object); returns the json."""
    root.mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for i in range(2):
        video = generate_video(10 + i, seed=5, num_frames=1, size=SIZE, objects=(2, 2), late_objects=0.0)
        name = f"im{i}.jpg"
        Image.fromarray(video.frames[0]).save(root / name, quality=95)
        images.append({"id": i + 1, "file_name": name, "height": SIZE[0], "width": SIZE[1]})
        for k in (1, 2):
            mask = video.labels[0] == k
            seg = encode_rle(mask)
            if polygons and k == 1:
                seg = [[10.0, 10.0, 40.0, 10.0, 40.0, 30.0, 10.0, 30.0]]
            if empty and i == 1 and k == 2:
                seg = encode_rle(np.zeros(SIZE, bool))
            anns.append(
                {"id": len(anns) + 1, "image_id": i + 1, "category_id": 1, "segmentation": seg, "iscrowd": 0}
            )
    path = root / "annotations.json"
    path.write_text(
        json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "o"}]})
    )
    return path
