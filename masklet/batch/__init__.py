"""Label whole datasets: track videos, turn boxes into masks, segment everything, on one machine or Ray.

Python API (each call is one ``masklet batch ...`` command)::

    from masklet.batch import ModelSpec, track_videos, box_images, segment_everything

    model = ModelSpec("sam2.1_hiera_base_plus", dtype="bf16")
    summary = track_videos("videos/", "prompts.jsonl", "out/track", model=model)            # this process
    summary = box_images("images/", "instances.json", "out/boxes", model=model, ray=True, workers=4)
    summary = segment_everything("images/", "out/sa1b", model=model, ray="10.0.0.1:6379",
                                 workers=8, gpus_per_worker=0.5, generator={"points_per_side": 16})
    print("\\n".join(summary.lines())); assert summary.ok

The keyword options are :class:`RunOptions` fields (``workers``, ``threads_per_worker``,
``gpus_per_worker``, ``limit``, ``ray``, ``retry_failed``, ``max_retries``, ``progress``). ``model``
is a :class:`ModelSpec` or a preset name. Every call checks its input first (:class:`BatchInputError`
before any model is built), skips items an earlier run into the same ``out`` finished, and returns a
:class:`BatchSummary`; Ctrl-C raises :class:`BatchInterrupted` (finished items are kept).

Modes and their outputs: :mod:`.track` (palette PNGs per frame + SA-V style JSON per video),
:mod:`.boxes` (COCO json with RLE + YOLO-seg labels), :mod:`.everything` (SA-1B style JSON per image);
the prompt manifest format is in :mod:`.manifest`. How it runs: :mod:`.runner` (checks, resume,
progress), :mod:`.worker` (the per-item code, the same in this process and in Ray actors),
:mod:`.ray_runner` (Ray Data actor pool, fault tolerance), :mod:`.staging` and :mod:`.records`
(atomic outputs, status records).
"""

from __future__ import annotations

import os

from .boxes import BoxesJob
from .eval_vos import VosEvalJob
from .everything import EverythingJob
from .items import BatchInputError, Item, ItemError
from .progress import BatchSummary
from .runner import BatchInterrupted, run_job
from .spec import ModelSpec, RunOptions
from .track import TrackJob

__all__ = [
    "BatchInputError",
    "BatchInterrupted",
    "BatchSummary",
    "BoxesJob",
    "EverythingJob",
    "Item",
    "ItemError",
    "ModelSpec",
    "RunOptions",
    "TrackJob",
    "VosEvalJob",
    "box_images",
    "run_job",
    "segment_everything",
    "track_videos",
]

PathLike = str | os.PathLike


def _spec(model: ModelSpec | str | None) -> ModelSpec:
    if model is None:
        return ModelSpec()
    return ModelSpec(model) if isinstance(model, str) else model


def track_videos(
    videos: PathLike,
    prompts: PathLike,
    out: PathLike,
    model: ModelSpec | str | None = None,
    memory_frames: int | None = None,
    **options,
) -> BatchSummary:
    """Track the objects of a prompt manifest (or annotation folder) through every video of a folder;
    writes ``out/<video>/NNNNN.png`` and ``out/<video>.json`` (see :mod:`.track`)."""
    job = TrackJob(str(videos), str(prompts), memory_frames)
    return run_job(job, out, _spec(model), RunOptions(**options))


def box_images(
    images: PathLike, labels: PathLike, out: PathLike, model: ModelSpec | str | None = None, **options
) -> BatchSummary:
    """One mask per detection box (COCO json or YOLO labels); writes ``out/annotations.json`` and
    ``out/labels/*.txt`` (see :mod:`.boxes`)."""
    return run_job(BoxesJob(str(images), str(labels)), out, _spec(model), RunOptions(**options))


def segment_everything(
    images: PathLike,
    out: PathLike,
    model: ModelSpec | str | None = None,
    generator: dict | None = None,
    **options,
) -> BatchSummary:
    """Segment everything in every image of a folder; writes one SA-1B style JSON per image (see
    :mod:`.everything`; ``generator``: AutoMaskGenerator settings by their official names)."""
    job = EverythingJob(str(images), dict(generator or {}))
    return run_job(job, out, _spec(model), RunOptions(**options))
