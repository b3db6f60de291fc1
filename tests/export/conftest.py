"""Exports shared by the ONNX tests, one per model family, at 256 px from seeded checkpoints whose
object-score head is spread (so that tracked frames are mostly present and some absent).

``onnx_dir`` / ``torch_model`` / ``video_checkpoint``: sam2.1_hiera_tiny (the seeded video checkpoint
of the video parity tests). ``family`` parametrizes a test over :data:`FAMILY_PRESETS`: that one,
EdgeTAM (RepViT trunk, memories compressed by the spatial perceiver, RoPE on the latent grid) and
EfficientTAM's variant 1 (plain ViT without high-resolution features, 2x2-pooled memory attention
whose unpooled one-frame case the graph chooses when it runs). Each export is written once per session.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install 'masklet[onnx]')")
pytest.importorskip("onnxscript", reason="the onnx extra is not installed (pip install 'masklet[onnx]')")

PRESET = "sam2.1_hiera_tiny"
SIZE = 256
FAMILY_PRESETS = (PRESET, "edgetam", "efficienttam_ti_1")
# presence-logit shifts of masklet's seeded random weights that leave most frames of the scripted
# session present and some absent (measured: 64 / 11 for edgetam, 65 / 10 for efficienttam_ti_1)
SCORE_SHIFT = {"edgetam": -1.0, "efficienttam_ti_1": -2.0}
SCORE_HEAD = "sam_mask_decoder.pred_obj_score_head.layers.2"


@dataclass(frozen=True)
class Export:
    """One preset's checkpoint, its PyTorch model at :data:`SIZE` and the folder exported from it."""

    preset: str
    checkpoint: Path
    torch_model: object
    onnx_dir: Path


def family_checkpoint(preset: str, ckpt_dir: Path) -> Path:
    """The seeded video checkpoint of ``preset`` (official format, written once)."""
    from tests.oracle import write_video_checkpoint

    if preset == PRESET:
        return write_video_checkpoint(PRESET, ckpt_dir / f"{PRESET}-video0.0.pt", score_shift=0.0)
    path = ckpt_dir / f"{preset}-video{SCORE_SHIFT[preset]}.pt"
    if not path.exists():
        from masklet.checkpoints import build_model, save_checkpoint

        sd = build_model(preset, device="cpu", random_seed=0).state_dict()
        sd[f"{SCORE_HEAD}.weight"] = sd[f"{SCORE_HEAD}.weight"] * 30.0
        sd[f"{SCORE_HEAD}.bias"] = sd[f"{SCORE_HEAD}.bias"] * 30.0 + SCORE_SHIFT[preset]
        save_checkpoint(sd, path)
    return path


@pytest.fixture(scope="session")
def exported(tmp_path_factory, ckpt_dir) -> Callable[[str], Export]:
    """Callable: preset -> its :class:`Export`, the folder written by ``masklet export onnx``."""
    from masklet.checkpoints import build_model
    from masklet.cli import main

    done: dict[str, Export] = {}

    def get(preset: str) -> Export:
        if preset not in done:
            ckpt = family_checkpoint(preset, ckpt_dir)
            out = tmp_path_factory.mktemp("onnx") / f"{preset}-{SIZE}"
            argv = ["export", "onnx", "--model", preset, "--checkpoint", str(ckpt)]
            assert main([*argv, "--image-size", str(SIZE), "--out", str(out)]) == 0
            model = build_model(preset, ckpt, device="cpu", image_size=SIZE)
            done[preset] = Export(preset, ckpt, model, out)
        return done[preset]

    return get


@pytest.fixture(scope="session", params=FAMILY_PRESETS)
def family(request, exported) -> Export:
    return exported(request.param)


@pytest.fixture(scope="session")
def video_checkpoint(ckpt_dir) -> Path:
    return family_checkpoint(PRESET, ckpt_dir)


@pytest.fixture(scope="session")
def torch_model(exported):
    return exported(PRESET).torch_model


@pytest.fixture(scope="session")
def onnx_dir(exported) -> Path:
    return exported(PRESET).onnx_dir
