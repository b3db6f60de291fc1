"""Validation: held-out J&F with the evaluation code, exactly as ``masklet eval vos`` measures it.

The model (in eval mode, without gradients) drives a :class:`~masklet.inference.video.VideoPredictor`
over the held-out videos: each object is prompted with its ground-truth mask, tracked to the end, and
the predictions are scored (:func:`masklet.eval.score.score_folder`) with the ``davis`` protocol
(DAVIS 2017: the objects of the first annotated frame) or the ``sav`` one (SA-V / MOSE: every object,
prompted on its first appearance), as ``masklet eval vos`` does.
"""

from __future__ import annotations

import shutil
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path

import torch

from ..eval.layouts import open_dataset
from ..eval.score import score_folder
from ..eval.vos_runner import run_vos
from ..inference.video import VideoPredictor
from ..modeling.sam2 import SAM2Model
from .data import davis_folders

__all__ = ["ValidationSet", "validate"]


@dataclass(frozen=True)
class ValidationSet:
    """Held-out videos of a DAVIS-layout dataset under ``root`` (``resolution`` folder level)."""

    root: Path
    videos: tuple[str, ...]
    resolution: str = "480p"


def validate(
    model: SAM2Model, vset: ValidationSet, work_dir: Path, protocol: str = "davis", prompt: str = "mask"
) -> dict[str, float]:
    """Held-out figures of ``model``: {"J&F", "J", "F"} in [0, 1]. ``model`` itself is not touched."""
    work_dir = Path(work_dir)
    pred_dir = work_dir / "predictions"
    shutil.rmtree(pred_dir, ignore_errors=True)
    work_dir.mkdir(parents=True, exist_ok=True)
    split = work_dir / "videos.txt"
    split.write_text("".join(f"{v}\n" for v in vset.videos))
    # A copy runs the predictor: tensors the model caches under inference mode (position tables)
    # could not take part in later training steps' autograd graphs.
    copy = deepcopy(model).eval()
    with torch.random.fork_rng(devices=[]), torch.inference_mode():
        dataset = open_dataset(vset.root, "davis", split=split, resolution=vset.resolution)
        late = protocol != "davis"
        run_vos(VideoPredictor(copy), dataset, pred_dir, prompt=prompt, late_objects=late)
    del copy
    annotations, _ = davis_folders(vset.root, vset.resolution)
    report = score_folder(pred_dir, annotations, "davis", protocol=protocol, split=split)
    s = report.summary
    return {"J&F": s.jf_mean, "J": s.j_mean, "F": s.f_mean}
