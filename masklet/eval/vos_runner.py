"""Semi-supervised video object segmentation runs: prompt each object once, track, write predictions.

The protocol of the SAM 2 paper's VOS evaluation:

* each object is prompted on the first frame where its ground truth is non-empty (objects that enter
  later are prompted on their first appearance, as the SA-V / MOSE protocol does), with its
  ground-truth mask (``mask``), its tight box (``box``), or 1 / 3 / 5 clicks (``click1`` ...): the first
  at the object's center, each next one at the center of the largest error region of the model's
  prediction so far (:func:`masklet.eval.prompting.simulate_clicks`);
* all objects are then tracked forward from the earliest prompted frame; before its own first frame an
  object's prediction is empty (it has not been given yet);
* predictions are written in the dataset's layout (indexed PNGs per frame, or for ``sav`` one binary
  PNG per object and frame); where objects overlap, the lower id wins, as the official inference script
  writes them.

The run is deterministic: clicks come from the model's own predictions, boxes are tight (no jitter).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..inference.video import VideoPredictor
from ..io.mask_geometry import gt_box
from .layouts import Dataset, EvalInputError
from .prompting import simulate_clicks
from .synthetic import davis_palette

PROMPTS = ("mask", "box", "click1", "click3", "click5")
VOID = 255


@dataclass(frozen=True)
class VideoRun:
    """What was done for one video: objects, the frame each was prompted on, the clicks used."""

    video: str
    num_frames: int
    first_frame: dict[int, int]  # object id -> frame index of its prompt
    clicks: dict[int, int]  # object id -> clicks used (click prompts only)


def _appearances(dataset: Dataset, video: str, names: list[str]) -> dict[int, tuple[int, np.ndarray]]:
    """object id -> (frame index, (H, W) bool GT mask) of the object's first non-empty annotation."""
    gt = dataset.gt(video)
    index = {n: i for i, n in enumerate(names)}
    missing = [f for f in gt.frames() if f not in index]
    if missing:
        raise EvalInputError(
            f"video {video!r}: annotations {missing[:3]} have no JPEG frame of the same name in "
            f"{dataset.images}/{video}"
        )
    found: dict[int, tuple[int, np.ndarray]] = {}
    if gt.per_object:
        for obj in gt.object_ids():
            for f in gt.object_frames(obj):
                m = gt.object_masks(obj, [f])[0]
                if m.any():
                    found[obj] = (index[f], m)
                    break
        return found
    for f in gt.frames():
        ids = gt.ids(f)
        for obj in np.unique(ids):
            obj = int(obj)
            if obj not in (0, VOID) and obj not in found:
                found[obj] = (index[f], ids == obj)
    return found


def _prompt(predictor: VideoPredictor, state, t: int, obj: int, gt: np.ndarray, prompt: str) -> int:
    """Prompt one object on frame t; returns the number of clicks (0 for mask/box)."""
    if prompt == "mask":
        predictor.add_new_mask(state, t, obj, gt)
        return 0
    if prompt == "box":
        predictor.add_new_points_or_box(state, t, obj, box=gt_box(gt))
        return 0

    def predict(points: np.ndarray, labels: np.ndarray) -> np.ndarray:
        _, ids, logits = predictor.add_new_points_or_box(state, t, obj, points=points, labels=labels)
        return (logits[ids.index(obj), 0] > 0).cpu().numpy()

    points, labels = simulate_clicks(gt, int(prompt[len("click") :]), predict)
    predict(points, labels)  # the model's state holds the final set of clicks
    return len(points)


def _write(out: Path, layout: str, name: str, masks: dict[int, np.ndarray], palette: np.ndarray) -> None:
    if layout == "sav":
        for obj, m in masks.items():
            d = out / f"{obj:03d}"
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(m.astype(np.uint8) * 255).save(d / f"{name}.png")
        return
    shape = next(iter(masks.values())).shape
    ids = np.zeros(shape, np.uint8)
    for obj in sorted(masks, reverse=True):  # lower ids are written last: they win overlaps
        ids[masks[obj]] = obj
    im = Image.fromarray(ids, mode="P")
    im.putpalette(palette.reshape(-1).tolist())
    out.mkdir(parents=True, exist_ok=True)
    im.save(out / f"{name}.png")


@torch.inference_mode()
def run_video(
    predictor: VideoPredictor,
    dataset: Dataset,
    video: str,
    out_dir: str | Path,
    prompt: str = "mask",
    late_objects: bool = True,
) -> VideoRun:
    """Prompt, track and write the predictions of one video into ``out_dir/<video>/``.

    late_objects: also prompt objects that first appear after the first annotated frame (SA-V / MOSE
    protocol); False keeps only the first frame's objects, as DAVIS 2017 defines a sequence's objects.
    """
    if prompt not in PROMPTS:
        raise ValueError(f"unknown prompt {prompt!r}: use one of {', '.join(PROMPTS)}")
    paths = dataset.image_paths(video)
    names = [p.stem for p in paths]
    found = _appearances(dataset, video, names)
    if not late_objects and found:
        first_annotated = min(t for t, _ in found.values())
        found = {o: v for o, v in found.items() if v[0] == first_annotated}
    out = Path(out_dir) / video
    state = predictor.init_state(str(paths[0].parent))
    try:
        order = [p.stem for p in getattr(state.frames, "paths", paths)]
        if order != names:
            raise EvalInputError(
                f"video {video!r}: the frame folder holds other images than its {len(names)} JPEGs, or "
                "names that do not sort by number; keep only the JPEG frames, named 00000.jpg, 00001.jpg ..."
            )
        clicks = {}
        for obj, (t, gt) in sorted(found.items()):
            if gt.shape != (state.video_height, state.video_width):
                raise EvalInputError(
                    f"video {video!r}: ground truth is {gt.shape[1]}x{gt.shape[0]} but the frames are "
                    f"{state.video_width}x{state.video_height}"
                )
            clicks[obj] = _prompt(predictor, state, t, obj, gt, prompt)
        palette = davis_palette()
        first = {obj: t for obj, (t, _) in found.items()}
        empty = np.zeros((state.video_height, state.video_width), bool)
        if found:
            start = min(first.values())
            for t in range(start):
                _write(out, dataset.layout, names[t], dict.fromkeys(first, empty), palette)
            for t, ids, logits in predictor.propagate_in_video(state, start_frame_idx=start):
                masks = (logits[:, 0] > 0).cpu().numpy()
                frame = {obj: (masks[i] if t >= first[obj] else empty) for i, obj in enumerate(ids)}
                _write(out, dataset.layout, names[t], frame, palette)
        else:  # nothing annotated: an all-background prediction
            for name in names:
                _write(out, dataset.layout, name, {0: empty}, palette)
        return VideoRun(video, len(names), first, {o: c for o, c in clicks.items() if c})
    finally:
        state.close()


def run_vos(
    predictor: VideoPredictor,
    dataset: Dataset,
    out_dir: str | Path,
    prompt: str = "mask",
    videos: list[str] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    late_objects: bool = True,
) -> list[VideoRun]:
    """Run every video (or ``videos``) of ``dataset``; predictions go to ``out_dir/<video>/``
    (``late_objects``: see :func:`run_video`)."""
    if prompt not in PROMPTS:
        raise ValueError(f"unknown prompt {prompt!r}: use one of {', '.join(PROMPTS)}")
    names = dataset.videos() if videos is None else list(videos)
    unknown = sorted(set(names) - set(dataset.videos()))
    if unknown:
        raise EvalInputError(f"video(s) {unknown[:5]} are not in the dataset's list")
    runs = []
    for i, video in enumerate(names):
        runs.append(run_video(predictor, dataset, video, out_dir, prompt, late_objects))
        if progress is not None:
            progress(i + 1, len(names), video)
    return runs
