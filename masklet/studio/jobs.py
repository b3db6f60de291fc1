"""Background jobs of the studio: tracking a video (tracking.py), segmenting everything on an image
(everything.py).

A job runs in its own thread and counts its progress in ``done`` / ``total`` (frames or points); the
browser polls its record and may cancel it. One job runs per media at a time: the workspace lists it in
``Workspace.jobs`` while it runs, and edits of that media are refused meanwhile (``check_idle``).
Cancelling only sets a flag: the job stops at its next check (between two frames, between two batches
of points) and the cancel request itself never waits for the model.
"""

from __future__ import annotations

import itertools
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from .errors import NotFound, StudioError

_ids = itertools.count(1)


class Cancelled(Exception):
    """Raised by a job's work when it stopped for a cancel (the job ends "cancelled"; returning normally
    ends it "done")."""


@dataclass(kw_only=True)
class Job:
    """One background job. ``state``: running | done | cancelled | failed."""

    kind: ClassVar[str] = "job"
    unit: ClassVar[str] = "steps"  # what done / total count
    busy: ClassVar[str] = "a job runs on this media"  # why edits of the media are refused meanwhile

    media_id: int
    total: int
    id: str = ""
    state: str = "running"
    done: int = 0
    error: str | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.id = self.id or f"{self.kind}-{next(_ids)}"

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def cancelling(self) -> bool:
        return self.running and self.cancel_event.is_set()

    def cancel(self) -> None:
        self.cancel_event.set()

    def check(self) -> None:
        """Raise :class:`Cancelled` once a cancel was asked for."""
        if self.cancel_event.is_set():
            raise Cancelled

    def wait(self, timeout: float | None = None) -> None:
        if self.thread is not None:
            self.thread.join(timeout)

    def to_dict(self, revision: int) -> dict:
        return {
            "id": self.id,
            "kind": self.kind,
            "media_id": self.media_id,
            "state": self.state,
            "cancelling": self.cancelling,
            "done": self.done,
            "total": self.total,
            "unit": self.unit,
            "error": self.error,
            "revision": revision,
        }


class JobBoard:
    """The jobs of one workspace: starts them in threads, finds them by id, keeps the finished ones."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.jobs: dict[str, Job] = {}

    def job(self, job_id: str) -> Job:
        if job_id not in self.jobs:
            raise NotFound(f"no job {job_id!r}")
        return self.jobs[job_id]

    def running(self) -> list[Job]:
        return [j for j in self.jobs.values() if j.running]

    def launch(self, job: Job, work: Callable[[Job], None]) -> Job:
        """Register ``job`` as its media's running job and run ``work(job)`` in a thread. The caller holds
        the workspace lock and has checked that the media is idle."""
        self.ws.jobs[job.media_id] = job
        self.jobs[job.id] = job
        job.thread = threading.Thread(target=self._run, args=(job, work), name=job.id, daemon=True)
        job.thread.start()
        return job

    def _run(self, job: Job, work: Callable[[Job], None]) -> None:
        try:
            work(job)
            job.state = "done"
        except Cancelled:
            job.state = "cancelled"
        except Exception as exc:  # the job reports it; the server stays up
            job.error = str(exc) if isinstance(exc, StudioError) else f"{type(exc).__name__}: {exc}"
            job.state = "failed"
            traceback.print_exc(file=sys.stderr)
        finally:
            with self.ws.lock:
                if self.ws.jobs.get(job.media_id) is job:
                    del self.ws.jobs[job.media_id]
