"""Tracking jobs: propagate every finished object of a video through its frames in the background.

Each finished frame's masks are committed to the project before the job counts it as done, so the
browser (polling the job) shows masks streaming into the timeline, and cancelling -- or the process
dying -- keeps every frame already counted. Frames where an object has prompts or imported masks keep
those; frames after an object's end (deleted from a frame on) get nothing for it.
"""

from __future__ import annotations

import itertools
import sys
import threading
import traceback
from dataclasses import dataclass, field

from .engine import Workspace
from .errors import Conflict, NotFound, StudioError

DIRECTIONS = ("forward", "backward", "both")
_ids = itertools.count(1)


@dataclass
class TrackJob:
    media_id: int
    start: int
    direction: str
    total: int
    object_ids: list[int]
    id: str = field(default_factory=lambda: f"track-{next(_ids)}")
    state: str = "running"  # running | done | cancelled | failed
    done: int = 0
    last_frame: int | None = None
    error: str | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.state == "running"

    def cancel(self) -> None:
        self.cancel_event.set()

    def wait(self, timeout: float | None = None) -> None:
        if self.thread is not None:
            self.thread.join(timeout)

    def to_dict(self, revision: int) -> dict:
        return {
            "id": self.id,
            "media_id": self.media_id,
            "state": self.state,
            "done": self.done,
            "total": self.total,
            "last_frame": self.last_frame,
            "direction": self.direction,
            "object_ids": self.object_ids,
            "error": self.error,
            "revision": revision,
        }


class Tracker:
    """Starts and keeps the tracking jobs of a workspace (one running job per video)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.jobs: dict[str, TrackJob] = {}

    def job(self, job_id: str) -> TrackJob:
        if job_id not in self.jobs:
            raise NotFound(f"no tracking job {job_id!r}")
        return self.jobs[job_id]

    def start(
        self, media_id: int, frame: int, direction: str = "forward", object_ids: list[int] | None = None
    ) -> TrackJob:
        """Track objects of a video from ``frame``. ``object_ids`` None: the finished objects whose prompts
        changed since they were last tracked (new or corrected ones), or all finished objects when none
        did -- so adding an object mid-video does not re-track (and change) the others."""
        ws = self.ws
        m = ws.media(media_id)
        if m.kind != "video":
            raise StudioError(f"{m.name} is an image set: tracking works on videos")
        ws.frame_size(media_id, frame)
        if direction not in DIRECTIONS:
            raise StudioError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
        with ws.lock:
            ws.check_idle(media_id, "start another tracking")
            pending = ws.project.pending_object(media_id)
            if pending is not None and ws.project.prompts(pending.id):
                raise Conflict(
                    f"object {pending.track_id} is not finished: finish it (f, give it a label) or clear it "
                    "(b), then track"
                )
            done = [o.id for o in ws.project.objects(media_id, status="done") if ws.project.prompts(o.id)]
            if not done:
                raise StudioError("nothing to track: prompt an object and finish it first")
            if object_ids is None:
                chosen = [i for i in done if i in ws.dirty] or done
            else:
                if not isinstance(object_ids, list) or not all(
                    isinstance(i, int) and not isinstance(i, bool) for i in object_ids
                ):
                    raise StudioError("object_ids must be a list of object ids or null")
                bad = sorted(set(object_ids) - set(done))
                if bad or not object_ids:
                    raise StudioError(
                        f"cannot track object(s) {bad or object_ids}: give finished objects with prompts "
                        f"of this video ({done})"
                    )
                chosen = list(dict.fromkeys(object_ids))
            forward = m.num_frames - frame if direction != "backward" else 0
            backward = frame + 1 if direction != "forward" else 0
            job = TrackJob(media_id, frame, direction, forward + backward, chosen)
            ws.tracking[media_id] = job
            self.jobs[job.id] = job
        job.thread = threading.Thread(target=self._run, args=(job,), name=job.id, daemon=True)
        job.thread.start()
        return job

    def _run(self, job: TrackJob) -> None:
        ws = self.ws
        try:
            passes = []
            if job.direction in ("forward", "both"):
                passes.append(False)
            if job.direction in ("backward", "both"):
                passes.append(True)
            for reverse in passes:
                if not self._pass(job, reverse):
                    break
            job.state = "cancelled" if job.cancel_event.is_set() else "done"
            if job.state == "done":
                ws.dirty.difference_update(job.object_ids)
        except Exception as exc:  # the job reports it; the server stays up
            job.error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, StudioError) else str(exc)
            job.state = "failed"
            traceback.print_exc(file=sys.stderr)
        finally:
            with ws.lock:
                if ws.tracking.get(job.media_id) is job:
                    del ws.tracking[job.media_id]

    def _pass(self, job: TrackJob, reverse: bool) -> bool:
        ws, project = self.ws, self.ws.project
        with ws.lock:
            s = ws.session(job.media_id)
            for obj in project.objects(job.media_id):  # objects without prompts can't be tracked
                if s.find(obj.id) is not None and not project.prompts(obj.id):
                    ws.video.remove_object(s, obj.id, need_output=False)
            # a view of the session with only the chosen objects (the same ObjectTracks: their results
            # land in the session); objects are tracked independently, so the others are untouched
            sub = s.subset(job.object_ids)
            keep = {
                (i.object_id, i.frame) for i in project.all_mask_infos(job.media_id) if i.source != "track"
            }
            for oid in job.object_ids:
                keep.update((oid, t) for t in project.prompts(oid))
            ends = {o.id: o.end_frame for o in project.objects(job.media_id) if o.end_frame is not None}
            frames = ws.video.propagate_in_video(sub, start_frame_idx=job.start, reverse=reverse)
        try:
            while not job.cancel_event.is_set():
                with ws.lock:
                    item = next(frames, None)
                    if item is None:
                        return True
                    frame, ids, logits = item
                    masks = (logits[:, 0] > 0).cpu().numpy()
                items = [
                    (oid, frame, masks[i], "track", None)
                    for i, oid in enumerate(ids)
                    if (oid, frame) not in keep and (oid not in ends or frame < ends[oid])
                ]
                if items:
                    project.put_masks(items)
                job.done += 1
                job.last_frame = frame
            return False
        finally:
            with ws.lock:
                frames.close()
