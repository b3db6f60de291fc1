"""The studio's workspace: one model shared by every request, the project, and per-media model state.

Prompts become masks here. For a video each media has one ``VideoSession`` whose objects are the
project's objects (object id = project object id), so objects can be added on any frame at any time,
before or after tracking, without touching the others. For an image set each image is prompted with
the image predictor. Every result is committed to the project (prompts and mask in one transaction)
before the call returns; the model state in memory is only a cache of what the project holds and is
rebuilt from the stored prompts when missing (after a restart).

Model work is serialised by one lock; a tracking job takes it frame by frame, so requests on other
media (and every read) go on while a video tracks.
"""

from __future__ import annotations

import threading
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
from .store import Media, ObjectRecord, Project, ProjectError, Prompt

if TYPE_CHECKING:  # the studio only hands the model to predictors
    from ..modeling.sam2 import SAM2Model

MAX_PROMPTS_PER_FRAME = 64


@dataclass
class _History:
    undo: list[list[Prompt]] = field(default_factory=list)
    redo: list[list[Prompt]] = field(default_factory=list)


def parse_prompt(data: dict, width: int, height: int) -> Prompt:
    """A Prompt from the API's JSON ({"kind": "point", "x", "y", "positive"} or a box), checked
    against the frame size (pixels; x in [0, width], y in [0, height])."""
    if not isinstance(data, dict):
        raise StudioError(
            'prompt must be an object like {"kind": "point", "x": 10, "y": 20, "positive": true}'
        )
    kind = data.get("kind")

    def num(key: str, hi: float) -> float:
        v = data.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
            raise StudioError(f"prompt {kind} needs a number {key!r}, got {v!r}")
        if not -0.5 <= v <= hi + 0.5:
            raise StudioError(f"prompt {key}={v} is outside the frame (0..{hi}); click inside the image")
        return float(min(max(v, 0.0), hi))

    if kind == "point":
        positive = data.get("positive", True)
        if not isinstance(positive, bool):
            raise StudioError(f"prompt 'positive' must be true or false, got {positive!r}")
        return Prompt("point", num("x", width), num("y", height), positive=positive)
    if kind == "box":
        x0, y0, x1, y1 = num("x0", width), num("y0", height), num("x1", width), num("y1", height)
        x0, x1, y0, y1 = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)
        if x1 - x0 < 1 or y1 - y0 < 1:
            raise StudioError("the box is smaller than one pixel: drag a larger rectangle")
        return Prompt("box", x0, y0, x1, y1)
    raise StudioError(f"prompt kind must be 'point' or 'box', got {kind!r}")


def _arrays(prompts: list[Prompt]):
    pts = [(p.x0, p.y0) for p in prompts if p.kind == "point"]
    labels = [1 if p.positive else 0 for p in prompts if p.kind == "point"]
    boxes = [p for p in prompts if p.kind == "box"]
    box = (
        None if not boxes else np.array([boxes[-1].x0, boxes[-1].y0, boxes[-1].x1, boxes[-1].y1], np.float32)
    )
    if not pts:
        return None, None, box
    return np.array(pts, np.float32), np.array(labels, np.int32), box


class Workspace:
    """The project plus the model state of its media. All public methods are thread-safe."""

    def __init__(self, project: Project, model: SAM2Model, feature_cache_bytes: int = 512 * 2**20) -> None:
        self.project = project
        self.model = model
        self.lock = threading.RLock()  # model work and the sessions it mutates
        self.features = FeatureCache(feature_cache_bytes)
        self.video = VideoPredictor(model, fill_hole_area=0, add_all_frames_to_correct_as_cond=True)
        self.image = ImagePredictor(model)
        self._image_key: tuple[int, int] | None = None
        self._sessions: dict[int, VideoSession] = {}
        self._readers: dict[int, MediaReader] = {}
        self._history: dict[tuple[int, int], _History] = {}
        self.tracking: dict[int, object] = {}  # media id -> running TrackJob (see tracking.py)
        self.dirty: set[int] = set()  # objects whose prompts changed since they were last tracked

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
        job = self.tracking.get(media_id)
        if job is not None and job.running:
            raise Conflict(f"cannot {what} while this video is tracking: cancel the tracking or wait for it")

    # ------------------------------------------------------------------ prompts
    def add_prompt(self, media_id: int, frame: int, object_id: int | None, prompt: dict) -> int:
        """Add one prompt (API JSON) to an object on a frame; returns the object id."""
        w, h = self.frame_size(media_id, frame)
        p = parse_prompt(prompt, w, h)
        with self.lock:
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

    def history(self, object_id: int, frame: int) -> tuple[bool, bool]:
        h = self._history.get((object_id, frame))
        return (bool(h.undo), bool(h.redo)) if h else (False, False)

    def undo(self, object_id: int, frame: int, redo: bool = False) -> None:
        obj = self.object(object_id)
        self.frame_size(obj.media_id, frame)
        with self.lock:
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
        with self.lock:
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
        pts, labels, box = _arrays(prompts)
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

    def _set_image(self, media_id: int, frame: int) -> None:
        if self._image_key != (media_id, frame):
            self._image_key = None
            self.image.set_image(self.reader(media_id).rgb(frame))
            self._image_key = (media_id, frame)

    def _image_mask(self, m: Media, frame: int, prompts: list[Prompt]):
        self._set_image(m.id, frame)
        pts, labels, box = _arrays(prompts)
        single = box is None and pts is not None and len(pts) == 1
        masks, scores, _ = self.image.predict(pts, labels, box, multimask_output=single)
        best = int(np.argmax(scores))
        return masks[best].astype(bool), float(scores[best])

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

    def everything(self, media_id: int, frame: int, **options) -> list[int]:
        """Segment everything on an image; each mask becomes a done object labeled "object"."""
        from ..inference.automask import AutoMaskGenerator

        m = self.media(media_id)
        if m.kind != "images":
            raise StudioError("segment everything works on image sets; for a video, prompt objects instead")
        self.frame_size(media_id, frame)
        with self.lock:
            gen = AutoMaskGenerator(self.model, **options)
            records = gen.generate(self.reader(media_id).rgb(frame))
            ids = []
            with self.project.transaction():
                items = []
                for r in records:
                    obj = self.project.new_object(media_id, frame)
                    self.project.finish_object(obj.id, "object")
                    items.append(
                        (obj.id, frame, np.asarray(r["segmentation"], bool), "auto", r["predicted_iou"])
                    )
                    ids.append(obj.id)
                self.project.put_masks(items)
            return ids

    def close(self) -> None:
        with self.lock:
            for s in self._sessions.values():
                s.close()
            self._sessions.clear()
            for r in self._readers.values():
                r.close()
            self._readers.clear()
