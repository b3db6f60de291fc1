"""The studio's workspace: one model shared by every request, the project, and per-media model state.

Prompts become masks here. For a video each media has one ``VideoSession`` whose objects are the
project's objects (object id = project object id), so objects can be added on any frame at any time,
before or after tracking, without touching the others. For an image set each image is prompted with
the image predictor. Every result is committed to the project (prompts and mask in one transaction)
before the call returns; the model state in memory is only a cache of what the project holds and is
rebuilt from the stored prompts when missing (after a restart).

Model work is serialised by one lock; a tracking job takes it frame by frame, so requests on other
media (and every read) go on while a video tracks. While nothing else needs the model, the frames a
user is about to prompt are encoded ahead (:mod:`.prefetch`), so a first click costs what a later one
does.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..inference.image import ImagePredictor
from ..inference.video import VideoPredictor
from ..inference.video_state import VideoSession
from .cache import FeatureCache, FrameFeatures
from .errors import Conflict, NotFound, StudioError
from .media import MediaReader
from .prefetch import Prefetcher
from .prompting import MAX_PROMPTS_PER_FRAME, parse_prompt, prompt_arrays
from .store import Media, ObjectRecord, Project, ProjectError, Prompt

if TYPE_CHECKING:  # the studio only hands the model to predictors
    from ..modeling.sam2 import SAM2Model
    from .jobs import Job


@dataclass
class _History:
    undo: list[list[Prompt]] = field(default_factory=list)
    redo: list[list[Prompt]] = field(default_factory=list)


class Workspace:
    """The project plus the model state of its media. All public methods are thread-safe.

    Args:
        feature_cache_bytes: memory for the image features of video frames (shared by all videos).
        random_weights: the model has random weights (shown in the app: its masks mean nothing).
        prefetch: frames (or images) after the one on screen to encode in the background; 0: none.
    """

    def __init__(
        self,
        project: Project,
        model: SAM2Model,
        feature_cache_bytes: int = 512 * 2**20,
        random_weights: bool = False,
        prefetch: int = 3,
    ) -> None:
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 0:
            raise ValueError(f"prefetch must be an int >= 0 (frames to encode ahead), got {prefetch!r}")
        self.project = project
        self.model = model
        self.random_weights = random_weights
        self.warnings: list[str] = []  # shown in the app (e.g. files of an image set that were skipped)
        self.lock = threading.RLock()  # model work and the sessions it mutates
        self.features = FeatureCache(feature_cache_bytes)
        self.video = VideoPredictor(model, fill_hole_area=0, add_all_frames_to_correct_as_cond=True)
        # one embedded image per predictor: the image on screen and those encoded ahead of it
        self._images: OrderedDict[tuple[int, int], ImagePredictor] = OrderedDict()
        self._image_slots = prefetch + 2
        self._sessions: dict[int, VideoSession] = {}
        self._readers: dict[int, MediaReader] = {}
        self._history: dict[tuple[int, int], _History] = {}
        self.jobs: dict[int, Job] = {}  # media id -> its running job (see jobs.py)
        self.dirty: set[int] = set()  # objects whose prompts changed since they were last tracked
        self.prefetch = Prefetcher(self, prefetch)

    # ------------------------------------------------------------------ media
    def media(self, media_id: int) -> Media:
        try:
            return self.project.get_media(media_id)
        except ProjectError as exc:
            raise NotFound(str(exc)) from None

    def reader(self, media_id: int) -> MediaReader:
        with self.lock:
            r = self._readers.get(media_id)
            if r is None:
                m = self.media(media_id)
                files = None
                if m.kind == "images":
                    files = [self.project.frame_info(m.id, i).name for i in range(m.num_frames)]
                r = self._readers[media_id] = MediaReader(m.kind, m.source, files)
            return r

    def frame_size(self, media_id: int, frame: int) -> tuple[int, int]:
        """(width, height) of a frame; NotFound outside the media."""
        m = self.media(media_id)
        if isinstance(frame, bool) or not isinstance(frame, int) or not 0 <= frame < m.num_frames:
            raise NotFound(f"frame {frame!r} does not exist: {m.name} has frames 0..{m.num_frames - 1}")
        if m.kind == "video":
            return m.width, m.height
        info = self.project.frame_info(media_id, frame)
        return info.width, info.height

    def object(self, object_id: int) -> ObjectRecord:
        try:
            return self.project.get_object(object_id)
        except ProjectError as exc:
            raise NotFound(str(exc)) from None

    def check_idle(self, media_id: int, what: str) -> None:
        """Conflict while a job (tracking, segment everything) runs on the media."""
        job = self.jobs.get(media_id)
        if job is not None and job.running:
            raise Conflict(f"cannot {what} while {job.busy}: cancel it (Cancel, by its progress) or wait")

    def busy(self) -> bool:
        """True while any job runs (the model is taken, frame by frame or batch by batch)."""
        return any(job.running for job in list(self.jobs.values()))

    # ------------------------------------------------------------------ prompts
    def add_prompt(self, media_id: int, frame: int, object_id: int | None, prompt: dict) -> int:
        """Add one prompt (API JSON) to an object on a frame; returns the object id."""
        w, h = self.frame_size(media_id, frame)
        p = parse_prompt(prompt, w, h)
        with self._prompting():
            self.check_idle(media_id, "add prompts")
            if object_id is None:
                obj = self.project.pending_object(media_id) or self.project.new_object(media_id, frame)
            else:
                obj = self.object(object_id)
                if obj.media_id != media_id:
                    raise StudioError(f"object {object_id} belongs to another media (id {obj.media_id})")
                if obj.end_frame is not None and frame >= obj.end_frame:
                    raise StudioError(
                        f"object {object_id} was deleted from frame {obj.end_frame} on: "
                        "add a new object instead"
                    )
            current = self.project.prompts(obj.id).get(frame, [])
            if len(current) >= MAX_PROMPTS_PER_FRAME:
                raise StudioError(f"an object takes at most {MAX_PROMPTS_PER_FRAME} prompts per frame")
            new = [q for q in current if q.kind != "box"] + [p] if p.kind == "box" else current + [p]
            new.sort(key=lambda q: q.kind != "box")  # the model reads the box first
            self._apply(obj, frame, new)
            hist = self._history.setdefault((obj.id, frame), _History())
            hist.undo.append(current)
            hist.redo.clear()
            return obj.id

    @contextmanager
    def _prompting(self):
        """The lock for a prompt request. The prefetcher hears of it before the request waits for the
        lock (so it lets the request go first) and again when it is done (a burst of clicks may follow)."""
        self.prefetch.touch()
        try:
            with self.lock:
                yield
        finally:
            self.prefetch.touch()

    def history(self, object_id: int, frame: int) -> tuple[bool, bool]:
        h = self._history.get((object_id, frame))
        return (bool(h.undo), bool(h.redo)) if h else (False, False)

    def undo(self, object_id: int, frame: int, redo: bool = False) -> None:
        obj = self.object(object_id)
        self.frame_size(obj.media_id, frame)
        with self._prompting():
            self.check_idle(obj.media_id, "undo")
            h = self._history.setdefault((object_id, frame), _History())
            stack, other = (h.redo, h.undo) if redo else (h.undo, h.redo)
            if not stack:
                raise Conflict(
                    f"nothing to {'redo' if redo else 'undo'} for object {object_id} on frame {frame}"
                )
            current = self.project.prompts(object_id).get(frame, [])
            self._apply(obj, frame, stack[-1])
            stack.pop()
            other.append(current)

    def clear(self, object_id: int, frame: int) -> bool:
        """Drop an object's prompts on a frame; a pending object left without prompts is removed.
        Returns True when the object still exists."""
        obj = self.object(object_id)
        self.frame_size(obj.media_id, frame)
        with self._prompting():
            self.check_idle(obj.media_id, "clear prompts")
            before = self.project.prompts(object_id).get(frame, [])
            self._apply(obj, frame, [])
            if obj.status == "pending" and not self.project.prompts(object_id):
                self._forget(obj)
                return False
            if before:
                h = self._history.setdefault((object_id, frame), _History())
                h.undo.append(before)
                h.redo.clear()
            return True

    def _apply(self, obj: ObjectRecord, frame: int, prompts: list[Prompt]) -> None:
        """Run the model on ``prompts`` (all of the object's prompts on the frame) and commit both."""
        m = self.project.get_media(obj.media_id)
        mask = score = None
        if m.kind == "video":
            mask = self._video_mask(m, obj, frame, prompts)
        elif prompts:
            mask, score = self._image_mask(m, frame, prompts)
        self.dirty.add(obj.id)
        with self.project.transaction():
            self.project.set_prompts(obj.id, frame, prompts)
            if mask is None:
                self.project.delete_masks(obj.id, frames=[frame])
            else:
                self.project.put_masks([(obj.id, frame, mask, "prompt", score)])

    # ------------------------------------------------------------------ model calls
    def session(self, media_id: int) -> VideoSession:
        """The VideoSession of a video, rebuilt from the stored prompts when not in memory."""
        with self.lock:
            s = self._sessions.get(media_id)
            if s is None:
                s = self.video.init_state(self.reader(media_id).frames)
                s.feature_cache = FrameFeatures(self.features, media_id)
                for obj in self.project.objects(media_id):
                    for frame, prompts in sorted(self.project.prompts(obj.id).items()):
                        self._video_call(s, obj.id, frame, prompts)
                self._sessions[media_id] = s
            return s

    def _video_call(self, s, object_id: int, frame: int, prompts: list[Prompt]) -> torch.Tensor:
        pts, labels, box = prompt_arrays(prompts)
        _, ids, logits = self.video.add_new_points_or_box(
            s, frame, object_id, points=pts, labels=labels, box=box, clear_old_points=True
        )
        return logits[ids.index(object_id), 0]

    def _video_mask(self, m: Media, obj: ObjectRecord, frame: int, prompts: list[Prompt]):
        s = self.session(m.id)
        if prompts:
            return (self._video_call(s, obj.id, frame, prompts) > 0).cpu().numpy()
        if s.find(obj.id) is not None:
            self.video.clear_all_prompts_in_frame(s, frame, obj.id, need_output=False)
            if not s.objects[s.find(obj.id)].prompted_frames():
                self.video.remove_object(s, obj.id, need_output=False)
        return None

    def _image_predictor(self, media_id: int, frame: int) -> ImagePredictor:
        """The predictor holding this image's embedding (embedded now unless kept)."""
        key = (media_id, frame)
        predictor = self._images.get(key)
        if predictor is None:
            predictor = ImagePredictor(self.model)
            predictor.set_image(self.reader(media_id).rgb(frame))
            self._images[key] = predictor
            while len(self._images) > self._image_slots:
                self._images.popitem(last=False)
        self._images.move_to_end(key)
        return predictor

    def _image_mask(self, m: Media, frame: int, prompts: list[Prompt]):
        predictor = self._image_predictor(m.id, frame)
        pts, labels, box = prompt_arrays(prompts)
        single = box is None and pts is not None and len(pts) == 1
        masks, scores, _ = predictor.predict(pts, labels, box, multimask_output=single)
        best = int(np.argmax(scores))
        # masks may come as bool or as float 0/1 depending on the predictor: binarise either way
        return np.asarray(masks[best]) > 0.5, float(scores[best])

    def warm(self, media_id: int, frame: int) -> None:
        """Encode a frame (or image) the user may prompt next, unless its features are kept already.

        Called by the prefetcher with the lock held. A video whose model state would first have to be
        rebuilt from stored prompts is left alone: that rebuild is the first click's work.
        """
        m = self.media(media_id)
        if m.kind != "video":
            self._image_predictor(media_id, frame)
            return
        if self.features.max_bytes == 0 or self.features.get((media_id, frame)) is not None:
            return
        s = self._sessions.get(media_id)
        if s is None:
            if any(self.project.prompts(o.id) for o in self.project.objects(media_id)):
                return
            s = self.session(media_id)
        with torch.inference_mode():  # as the predictor's own calls: no autograd state
            self.video.core.features(s, frame)

    # ------------------------------------------------------------------ objects
    def finish(self, object_id: int, label: str) -> ObjectRecord:
        obj = self.object(object_id)
        if not isinstance(label, str) or not label.strip():
            raise StudioError("give the object a label (a non-empty name)")
        if obj.status == "pending" and not self.project.prompts(object_id):
            raise StudioError("the object has no prompts yet: click on it first, then finish it")
        try:
            return self.project.finish_object(object_id, label.strip())
        except ProjectError as exc:
            raise StudioError(str(exc)) from None

    def delete(self, object_id: int, from_frame: int | None = None) -> None:
        obj = self.object(object_id)
        with self.lock:
            self.check_idle(obj.media_id, "delete objects")
            if from_frame is None:
                self._forget(obj)
                return
            self.frame_size(obj.media_id, from_frame)
            s = self._sessions.get(obj.media_id)
            if s is not None and s.find(obj.id) is not None:
                later = [t for t in s.objects[s.find(obj.id)].prompted_frames() if t >= from_frame]
                for t in later:
                    self.video.clear_all_prompts_in_frame(s, t, obj.id, need_output=False)
                if not s.objects[s.find(obj.id)].prompted_frames():
                    self.video.remove_object(s, obj.id, need_output=False)
            self.project.end_object_at(obj.id, from_frame)
            if not self.project.prompts(obj.id) and not self.project.coverage(obj.media_id).get(obj.id):
                self._forget(obj)  # nothing left before that frame either

    def _forget(self, obj: ObjectRecord) -> None:
        s = self._sessions.get(obj.media_id)
        if s is not None:
            self.video.remove_object(s, obj.id, need_output=False)
        self.project.delete_object(obj.id)
        for key in [k for k in self._history if k[0] == obj.id]:
            del self._history[key]

    def close(self) -> None:
        self.prefetch.close()
        with self.lock:
            for s in self._sessions.values():
                s.close()
            self._sessions.clear()
            for r in self._readers.values():
                r.close()
            self._readers.clear()
            self._images.clear()
