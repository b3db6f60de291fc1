from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.oracle import write_reference_checkpoint

SHARED_IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "images"

torch.set_num_threads(max(1, min(os.cpu_count() or 1, 4)))


@pytest.fixture(scope="session")
def ckpt_dir(tmp_path_factory) -> Path:
    """Seeded random checkpoints in the official format, shared by the whole test session."""
    env = os.environ.get("MASKLET_TEST_CKPT_DIR")
    if env:
        Path(env).mkdir(parents=True, exist_ok=True)
        return Path(env)
    return tmp_path_factory.mktemp("ckpts")


@pytest.fixture(scope="session")
def reference_checkpoint(ckpt_dir):
    """Callable: preset name -> path of a seeded random checkpoint (built once per session)."""

    def make(preset: str, seed: int = 0) -> Path:
        return write_reference_checkpoint(preset, ckpt_dir / f"{preset}-seed{seed}.pt", seed)

    return make


def synthetic_image(h: int = 480, w: int = 640, seed: int = 0) -> np.ndarray:
    """A smooth RGB image with a few shapes: (h, w, 3) uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 255 / w), (yy * 255 / h), ((xx + yy) * 127 / (h + w))], -1)
    for _ in range(5):
        cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(20, min(h, w) // 3)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.integers(0, 255, 3)
    return img.astype(np.uint8)


def load_photo(name: str = "truck.jpg") -> np.ndarray:
    """A real photo from ../shared/data/images, or a synthetic stand-in where that folder is absent."""
    path = SHARED_IMAGES / name
    if path.exists():
        from PIL import Image

        return np.asarray(Image.open(path).convert("RGB"))
    return synthetic_image(600, 900, seed=zlib.crc32(name.encode()) % 1000)
