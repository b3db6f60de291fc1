"""One export shared by the ONNX tests: sam2.1_hiera_tiny at 256 px, from the seeded video checkpoint
(whose object-score head is spread so that tracked frames are mostly present and some absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install 'masklet[onnx]')")
pytest.importorskip("onnxscript", reason="the onnx extra is not installed (pip install 'masklet[onnx]')")

PRESET = "sam2.1_hiera_tiny"
SIZE = 256


@pytest.fixture(scope="session")
def video_checkpoint(ckpt_dir) -> Path:
    from tests.oracle import write_video_checkpoint

    return write_video_checkpoint(PRESET, ckpt_dir / f"{PRESET}-video0.0.pt", score_shift=0.0)


@pytest.fixture(scope="session")
def torch_model(video_checkpoint):
    from masklet.checkpoints import build_model

    return build_model(PRESET, video_checkpoint, device="cpu", image_size=SIZE)


@pytest.fixture(scope="session")
def onnx_dir(tmp_path_factory, video_checkpoint) -> Path:
    """The folder ``masklet export onnx`` writes (through the command line)."""
    from masklet.cli import main

    out = tmp_path_factory.mktemp("onnx") / "tiny256"
    argv = ["export", "onnx", "--model", PRESET, "--checkpoint", str(video_checkpoint)]
    assert main([*argv, "--image-size", str(SIZE), "--out", str(out)]) == 0
    return out
