"""Tracking jobs: propagate finished objects of a video through its frames in the background.

A job tracks to the end of the video (in one or both directions), over a number of frames, or to a
given frame. Each finished frame's masks are committed to the project before the job counts it as
done, so the browser (polling the job) shows masks streaming into the timeline, and cancelling -- or
the process dying -- keeps every frame already counted. A cancel takes effect within one frame: the
frame being computed when it comes is not stored and no other frame is started. Frames where an object
has prompts or imported masks keep those; frames after an object's end (deleted from a frame on) get
nothing for it.

What a pass may overwrite: masks made by a model (tracked before, or a batch run's pre-labels of
source "machine"); prompted frames and imported labels are a person's and stay. Re-tracking an
imported object from a correction first remembers the batch run's masks on the frames the correction
attends to (``Tracker.imported_memory``), as if this studio had tracked them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .engine import Workspace
from .errors import Conflict, StudioError
from .jobs import Cancelled, Job, JobBoard
from .store_records import MACHINE_SOURCES

DIRECTIONS = ("forward", "backward", "both")


@dataclass(kw_only=True)
class TrackJob(Job):
    kind = "track"
    unit = "frames"
    busy = "this video is tracking"

    start: int
    direction: str
    object_ids: list[int]
    frames: int | None = None  # frames to track beyond the start in each direction; None: to the end
    last_frame: int | None = None
    passes: list[bool] = field(default_factory=list)  # reverse flag of each pass, in order

    def to_dict(self, revision: int) -> dict:
        return {
            **super().to_dict(revision),
            "start": self.start,
            "last_frame": self.last_frame,
            "direction": self.direction,
            "frames": self.frames,
            "object_ids": self.object_ids,
        }


def _count(value, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise StudioError(f"{name!r} must be an integer or null, got {value!r}")
    return value


def track_range(
    num_frames: int, start: int, direction: str, frames: int | None, end_frame: int | None
) -> tuple[str, int | None]:
    """(direction, frames beyond the start) of a tracking request; StudioError when they disagree.

    ``frames``: how many frames past ``start`` to track in each direction (>= 1); ``end_frame``: the
    last frame to track, which also sets the direction (after ``start``: forward, before: backward).
    Neither: to the end of the video.
    """
    frames, end_frame = _count(frames, "frames"), _count(end_frame, "end_frame")
    if frames is not None and end_frame is not None:
        raise StudioError("give either frames (how many to track) or end_frame (where to stop), not both")
    if frames is not None and frames < 1:
        raise StudioError(f"frames must be at least 1 (frames to track past frame {start}), got {frames}")
    if end_frame is None:
        return direction, frames
    if not 0 <= end_frame < num_frames:
        raise StudioError(f"end_frame {end_frame} is not a frame of this video (0..{num_frames - 1})")
    if end_frame == start:
        raise StudioError(f"end_frame is the start frame {start}: pick a frame before or after it")
    wanted = "forward" if end_frame > start else "backward"
    if direction not in (None, wanted):
        raise StudioError(
            f"end_frame {end_frame} lies {'after' if wanted == 'forward' else 'before'} frame {start}, so "
            f"the direction is {wanted}, not {direction}; leave direction out or match it"
        )
    return wanted, abs(end_frame - start)


def pass_length(num_frames: int, start: int, reverse: bool, frames: int | None) -> int:
    """Frames one pass from ``start`` yields (the start frame included), as the video predictor orders
    them: a backward pass from frame 0 yields none."""
    if reverse:
        return 0 if start == 0 else start - max(start - (num_frames if frames is None else frames), 0) + 1
    return min(start + (num_frames if frames is None else frames), num_frames - 1) - start + 1


class Tracker:
    """Starts the tracking jobs of a workspace (one running job per media) on its job board.

    ``imported_memory``: a pass first remembers the uncorrected machine masks of a batch run (source
    "machine") on the frames its start frame attends to, so a correction re-tracks with them as memory
    (off: the pass remembers only what this studio tracked).
    """

    def __init__(self, ws: Workspace, board: JobBoard, imported_memory: bool = True) -> None:
        self.ws = ws
        self.board = board
        self.imported_memory = imported_memory

    def start(
        self,
        media_id: int,
        frame: int,
        direction: str | None = "forward",
        object_ids: list[int] | None = None,
        frames: int | None = None,
        end_frame: int | None = None,
    ) -> TrackJob:
        """Track objects of a video from ``frame`` (see :func:`track_range` for ``frames`` and
        ``end_frame``). ``object_ids`` None: the finished objects whose prompts changed since they were
        last tracked (new or corrected ones), or all finished objects when none did -- so adding an
        object mid-video does not re-track (and change) the others."""
        ws = self.ws
        m = ws.media(media_id)
        if m.kind != "video":
            raise StudioError(f"{m.name} is an image set: tracking works on videos")
        ws.frame_size(media_id, frame)
        if direction is not None and direction not in DIRECTIONS:
            raise StudioError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
        direction, frames = track_range(m.num_frames, frame, direction, frames, end_frame)
        direction = direction or "forward"
        with ws.lock:
            ws.check_idle(media_id, "start another tracking")
            chosen = self._objects(media_id, object_ids)
            passes = [r for r, on in ((False, direction != "backward"), (True, direction != "forward")) if on]
            total = sum(pass_length(m.num_frames, frame, r, frames) for r in passes)
            job = TrackJob(
                media_id=media_id, total=total, start=frame, direction=direction, object_ids=chosen,
                frames=frames, passes=passes,
            )  # fmt: skip
            return self.board.launch(job, self._run)

    def _objects(self, media_id: int, object_ids: list[int] | None) -> list[int]:
        project = self.ws.project
        pending = project.pending_object(media_id)
        if pending is not None and project.prompts(pending.id):
            raise Conflict(
                f"object {pending.track_id} is not finished: finish it (f, give it a label) or clear it "
                "(b), then track"
            )
        done = [o.id for o in project.objects(media_id, status="done") if project.prompts(o.id)]
        if not done:
            raise StudioError("nothing to track: prompt an object and finish it first")
        if object_ids is None:
            return [i for i in done if i in self.ws.dirty] or done
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
        return list(dict.fromkeys(object_ids))

    def _run(self, job: TrackJob) -> None:
        for reverse in job.passes:
            if not self._pass(job, reverse):
                raise Cancelled
        self.ws.dirty.difference_update(job.object_ids)

    def _remember_imported(self, session, infos, job: TrackJob, reverse: bool) -> None:
        """Put the machine masks of a batch run on the recent frames before the start (in the tracking
        direction: the num_maskmem - 1 frames whose memories the start frame reads) into the session's
        memory. A corrected frame holds a prompt instead of a machine mask, so only uncorrected ones
        are remembered."""
        ws, start = self.ws, job.start
        reach = ws.video.bank.stride * (ws.video.bank.num_maskmem - 1)  # the recent memories' frames
        window = set(range(start + 1, start + reach + 1) if reverse else range(start - reach, start))
        chosen = set(job.object_ids)
        for i in infos:
            if job.cancel_event.is_set():  # each frame encodes its image: a cancel stops here too
                return
            if i.source == "machine" and i.object_id in chosen and i.frame in window:
                mask = ws.project.mask(i.object_id, i.frame)
                ws.video.add_mask_memory(session, i.frame, i.object_id, mask, reverse=reverse)

    def _pass(self, job: TrackJob, reverse: bool) -> bool:
        """One direction; False when cancelled."""
        ws, project = self.ws, self.ws.project
        with ws.lock:
            if job.cancel_event.is_set():
                return False
            s = ws.session(job.media_id)
            for obj in project.objects(job.media_id):  # objects without prompts can't be tracked
                if s.find(obj.id) is not None and not project.prompts(obj.id):
                    ws.video.remove_object(s, obj.id, need_output=False)
            # a view of the session with only the chosen objects (the same ObjectTracks: their results
            # land in the session); objects are tracked independently, so the others are untouched
            sub = s.subset(job.object_ids)
            infos = project.all_mask_infos(job.media_id)
            # a person's masks stay; machine-made ones (tracked here, a batch run's) are replaced
            keep = {(i.object_id, i.frame) for i in infos if i.source not in MACHINE_SOURCES}
            if self.imported_memory:
                self._remember_imported(sub, infos, job, reverse)
            for oid in job.object_ids:
                keep.update((oid, t) for t in project.prompts(oid))
            ends = {o.id: o.end_frame for o in project.objects(job.media_id) if o.end_frame is not None}
            steps = ws.video.propagate_in_video(
                sub, start_frame_idx=job.start, max_frame_num_to_track=job.frames, reverse=reverse
            )
        try:
            while True:
                with ws.lock:
                    if job.cancel_event.is_set():
                        return False
                    item = next(steps, None)
                    if item is None:
                        return True
                    frame, ids, logits = item
                    masks = (logits[:, 0] > 0).cpu().numpy()
                if job.cancel_event.is_set():  # came while this frame was computed: it is not stored
                    return False
                items = [
                    (oid, frame, masks[i], "track", None)
                    for i, oid in enumerate(ids)
                    if (oid, frame) not in keep and (oid not in ends or frame < ends[oid])
                ]
                if items:
                    project.put_masks(items)
                job.done += 1
                job.last_frame = frame
        finally:
            with ws.lock:
                steps.close()
