"""Running a job over its items: checks first, then the items not done yet, in this process or on Ray.

:func:`run_job` is the one entry point of every mode (the CLI and the Python API call it):

1. the options, the items (the job's discovery) and the model settings are checked: every mistake in
   the input stops the run here, before a model is built;
2. the output folder is locked for this run, its recorded job settings checked (a resumed run must
   match the first one), and temporary folders of stopped runs removed;
3. items with a "done" record whose outputs exist are skipped; items recorded as failed are skipped
   unless ``retry_failed``; the rest run, in this process (one :class:`~.worker.ItemWorker`) or on a
   pool of Ray actors (:mod:`.ray_runner`), with a progress bar fed by the items' status records;
4. the job's finish step runs (e.g. the COCO file of ``boxes``), and a :class:`BatchSummary` returns.

Ctrl-C raises :class:`BatchInterrupted` (a KeyboardInterrupt carrying the summary so far): finished
items keep their outputs and records, the interrupted ones leave only temporary folders.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from .items import BatchInputError, Item
from .progress import BatchSummary, ProgressBar
from .records import RunLock, check_job, is_done, read_status
from .spec import ModelSpec, RunOptions
from .staging import remove_temporaries
from .worker import ItemWorker

__all__ = ["BatchInterrupted", "run_job"]


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the run; ``summary`` says what was finished."""

    def __init__(self, summary: BatchSummary) -> None:
        super().__init__("interrupted")
        self.summary = summary


def run_job(
    job,
    out: str | os.PathLike,
    model: ModelSpec | None = None,
    options: RunOptions | None = None,
    progress_file=None,
) -> BatchSummary:
    """Run every item of ``job`` not done yet into ``out``; see the module docstring.

    model: the model each worker builds (default: :class:`ModelSpec`'s defaults); options: workers,
    Ray, limit, resume (default: one worker in this process); progress_file: where the bar is drawn
    (stderr by default; see ``RunOptions.progress``).
    """
    model = model or ModelSpec()
    options = options or RunOptions()
    options.check()
    if options.ray is not False:
        from .ray_runner import check_ray

        check_ray(options)  # Ray installed, the cluster reachable: before anything else
    items, notes = job.discover()
    if options.limit is not None:
        items = items[: options.limit]
    model.check()
    out = Path(out).absolute()  # workers in other processes write there
    if out.exists() and not out.is_dir():
        raise BatchInputError(f"output {out} is a file; expected a folder (it is created if missing)")
    out.mkdir(parents=True, exist_ok=True)
    with RunLock(out):
        check_job(out, {"mode": job.mode, "model": model.settings(), "settings": job.settings()})
        remove_temporaries(out)
        summary, todo = _select(out, items, options.retry_failed)
        if todo:
            _run(job, model, out, todo, options, summary, progress_file)
        done = [it for it in items if is_done(out, read_status(out, it.key))]
        summary.notes = list(notes) + list(job.finish(out, done))
    return summary


def _select(out: Path, items: list[Item], retry_failed: bool) -> tuple[BatchSummary, list[Item]]:
    summary = BatchSummary(total=len(items))
    todo = []
    for item in items:
        status = read_status(out, item.key)
        if is_done(out, status):
            summary.skipped += 1
        elif status is not None and status["state"] == "failed" and not retry_failed:
            summary.failed_earlier.append((item.key, status.get("error") or "failed"))
        else:
            todo.append(item)
    return summary, todo


def _run(job, model, out, todo, options, summary, progress_file) -> None:
    bar = ProgressBar(len(todo), options.progress, progress_file, desc=job.mode)
    returned = set()

    def on_status(status: dict) -> None:
        returned.add(status["item"])
        summary.add(status)
        bar.update(status)

    t0 = time.perf_counter()
    try:
        if options.ray is False:
            _run_local(job, model, out, todo, options, on_status)
        else:
            from .ray_runner import run_on_ray

            run_on_ray(job, model, out, todo, options, on_status)
    except KeyboardInterrupt:
        summary.interrupted = True
        summary.not_run = len(todo) - len(returned)
        summary.seconds = time.perf_counter() - t0
        raise BatchInterrupted(summary) from None
    finally:
        bar.close()
    summary.seconds = time.perf_counter() - t0


def _run_local(job, model, out, todo, options, on_status) -> None:
    import torch

    threads = torch.get_num_threads()  # the worker sets its own; this process gets its setting back
    try:
        worker = ItemWorker(job, model, out, options.threads_per_worker, options.max_retries)
        for item in todo:
            on_status(worker.run(item))
    finally:
        torch.set_num_threads(threads)
