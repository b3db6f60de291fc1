"""Segment everything on an image of an image set, as a job: progress in points, cancel, thresholds.

The automatic mask generator prompts a grid of ``points_per_side`` x ``points_per_side`` points, in
batches of :data:`POINTS_PER_BATCH`; the job counts the points done after each batch and stops at the
next batch once cancelled (then nothing is stored: masks are only final after the whole grid). Each
kept mask becomes a finished object labeled "object".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .engine import Workspace
from .errors import StudioError
from .jobs import Job, JobBoard

OPTIONS = ("points_per_side", "pred_iou_thresh", "stability_score_thresh", "min_mask_region_area")
DEFAULTS = {"points_per_side": 16}  # the generator's other defaults are the official ones
POINTS_PER_BATCH = 64


def check_options(options) -> dict:
    """The generator options of the studio (:data:`OPTIONS`, :data:`DEFAULTS` filled in), checked;
    StudioError naming the bad one."""
    if not isinstance(options, dict):
        raise StudioError('segment-everything options must be an object like {"points_per_side": 16}')
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise StudioError(f"unknown segment-everything option(s) {unknown}; known: {list(OPTIONS)}")
    from ..inference.automask_config import AutoMaskConfig

    merged = {**DEFAULTS, **options}
    try:
        AutoMaskConfig(**merged, points_per_batch=POINTS_PER_BATCH)
    except (TypeError, ValueError) as exc:
        raise StudioError(f"segment everything: {exc}") from None
    return merged


@dataclass(kw_only=True)
class EverythingJob(Job):
    kind = "everything"
    unit = "points"
    busy = "segment everything runs on this image set"

    frame: int
    options: dict
    object_ids: list[int] = field(default_factory=list)  # the objects made, once done

    def to_dict(self, revision: int) -> dict:
        extra = {"frame": self.frame, "options": self.options, "object_ids": self.object_ids}
        return {**super().to_dict(revision), **extra}


def start_everything(
    ws: Workspace, board: JobBoard, media_id: int, frame: int, overrides: dict
) -> EverythingJob:
    """Start segment everything on image ``frame`` with the project's saved options updated by
    ``overrides``."""
    m = ws.media(media_id)
    if m.kind != "images":
        raise StudioError("segment everything works on image sets; for a video, prompt objects instead")
    ws.frame_size(media_id, frame)
    if not isinstance(overrides, dict):
        raise StudioError("the request body must be an object of segment-everything options")
    options = check_options({**(ws.project.get_setting("everything", {}) or {}), **overrides})
    with ws.lock:
        ws.check_idle(media_id, "segment everything")
        total = options["points_per_side"] ** 2
        job = EverythingJob(media_id=media_id, total=total, frame=frame, options=options)
        return board.launch(job, lambda j: _run(ws, j))


def _run(ws: Workspace, job: EverythingJob) -> None:
    def progress(batches: int, _total: int) -> None:
        job.check()  # a batch that ends after a cancel is not counted: the run stops here
        # one crop layer: every batch is full except the grid's last one
        job.done = min(batches * POINTS_PER_BATCH, job.total)

    job.check()
    job.object_ids = segment_everything(
        ws, job.media_id, job.frame, progress=progress, points_per_batch=POINTS_PER_BATCH, **job.options
    )


def segment_everything(
    ws: Workspace, media_id: int, frame: int, progress: Callable[[int, int], None] | None = None, **options
) -> list[int]:
    """Segment everything on an image of ``ws``; each mask becomes a done object labeled "object". Returns
    their ids. ``progress(done, total)`` is called after each batch of points (it may raise to stop:
    then nothing is stored); ``options`` are AutoMaskGenerator's."""
    from ..inference.automask import AutoMaskGenerator

    m = ws.media(media_id)
    if m.kind != "images":
        raise StudioError("segment everything works on image sets; for a video, prompt objects instead")
    ws.frame_size(media_id, frame)
    with ws.lock:
        gen = AutoMaskGenerator(ws.model, **options)
        records = gen.generate(ws.reader(media_id).rgb(frame), progress=progress)
        ids = []
        with ws.project.transaction():
            items = []
            for r in records:
                obj = ws.project.new_object(media_id, frame)
                ws.project.finish_object(obj.id, "object")
                items.append((obj.id, frame, np.asarray(r["segmentation"], bool), "auto", r["predicted_iou"]))
                ids.append(obj.id)
            ws.project.put_masks(items)
        return ids
