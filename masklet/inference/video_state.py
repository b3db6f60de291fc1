"""Typed tracking state: a video's (or a live stream's) objects, their prompts and frame outputs.

A ``VideoSession`` is what ``VideoPredictor.init_state`` returns (the official "inference_state") and
what a ``StreamTracker`` keeps. Each tracked object has an ``ObjectTrack`` holding its prompts and its
per-frame outputs, split as the official predictor does into prompted ("cond") and tracked
("non_cond") frames, plus the pending ("staged") outputs of prompts not yet turned into memories.

The state changes only through the methods here (add prompts on a frame, stage an output, commit,
store a tracked frame, clear a frame, forget memories outside a window); predictors read the fields.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
import torch

from ..io.frame_loader import FrameLoader
from ..io.frames import FrameSource
from ..modeling.sam2 import ImageFeatures
from .memory_bank import MemoryBank, MemorySelection
from .prompts import PromptError


class FeatureStore(Protocol):
    """A cache of one video's frame features that a session reads before running the image encoder
    and fills after (e.g. the studio's byte-bounded LRU shared by every open video)."""

    def get(self, frame_idx: int) -> ImageFeatures | None: ...

    def put(self, frame_idx: int, features: ImageFeatures) -> None: ...


@dataclass
class FrameOutput:
    """One object's result on one frame.

    - ``pred_masks``: (1, 1, S/4, S/4) float32 low-res logits (None once evicted from a long session)
    - ``obj_ptr``: (1, 256) object pointer; ``object_score``: (1, 1) presence logit
    - ``maskmem_features``: (1, 64, h, w) memory features in the storage dtype (None until encoded or
      once evicted)
    """

    pred_masks: torch.Tensor | None
    obj_ptr: torch.Tensor
    object_score: torch.Tensor
    maskmem_features: torch.Tensor | None = None

    def heavy_bytes(self) -> int:
        return sum(
            t.numel() * t.element_size() for t in (self.pred_masks, self.maskmem_features) if t is not None
        )

    def nbytes(self) -> int:
        """Every tensor's bytes (masks, memory and the small pointer)."""
        return self.heavy_bytes() + self.obj_ptr.numel() * self.obj_ptr.element_size()

    def evict(self) -> None:
        """Drop the large tensors, keeping the pointer and score (enough for pointer memory)."""
        self.pred_masks = None
        self.maskmem_features = None


@dataclass
class ObjectTrack:
    """Prompts and outputs of one object (client id ``obj_id``).

    - ``points`` / ``masks``: the prompts per frame (model-input coordinates / (1, 1, S, S) masks)
    - ``cond`` / ``non_cond``: stored outputs of prompted / tracked frames (what memory reads)
    - ``temp_cond`` / ``temp_non_cond``: staged outputs of new prompts, committed into memory before
      the next tracking
    - ``tracked``: frame -> tracked in reverse (a prompt on such a frame is a correction)
    """

    obj_id: int
    points: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    masks: dict[int, torch.Tensor] = field(default_factory=dict)
    cond: dict[int, FrameOutput] = field(default_factory=dict)
    non_cond: dict[int, FrameOutput] = field(default_factory=dict)
    temp_cond: dict[int, FrameOutput] = field(default_factory=dict)
    temp_non_cond: dict[int, FrameOutput] = field(default_factory=dict)
    tracked: dict[int, bool] = field(default_factory=dict)

    # ------------------------------------------------------------------ prompts
    def set_points(
        self, frame_idx: int, coords: torch.Tensor, labels: torch.Tensor, *, append: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Make (coords (1, N, 2), labels (1, N)) the points of a frame (after the frame's earlier
        points with ``append``); a mask prompt there is replaced. Returns the frame's points."""
        if append and frame_idx in self.points:
            old_c, old_l = self.points[frame_idx]
            coords, labels = torch.cat([old_c, coords], dim=1), torch.cat([old_l, labels], dim=1)
        self.points[frame_idx] = (coords, labels)
        self.masks.pop(frame_idx, None)
        return coords, labels

    def set_mask(self, frame_idx: int, mask: torch.Tensor) -> None:
        """Make a (1, 1, S, S) binary mask the prompt of a frame (replacing its points)."""
        self.masks[frame_idx] = mask
        self.points.pop(frame_idx, None)

    def prompted_frames(self) -> set[int]:
        return set(self.points) | set(self.masks)

    def is_initial(self, frame_idx: int) -> bool:
        """A prompt on a frame not tracked yet is decoded without memory (an initial frame); on a
        tracked frame it is a correction that sees the memory."""
        return frame_idx not in self.tracked

    def has_prompt_output(self) -> bool:
        """Whether the object has a prompted frame (stored or staged): what tracking starts from."""
        return bool(self.cond or self.temp_cond)

    # ------------------------------------------------------------------ outputs
    def temp(self, is_cond: bool) -> dict[int, FrameOutput]:
        return self.temp_cond if is_cond else self.temp_non_cond

    def stage(self, frame_idx: int, out: FrameOutput, *, cond: bool) -> None:
        """Keep a prompt's output as pending until :meth:`commit` (the newest replaces an older one)."""
        self.temp(cond)[frame_idx] = out

    def commit(
        self, memory_of: Callable[[int, FrameOutput], torch.Tensor], *, forget_radius: int = 0
    ) -> list[int]:
        """Turn the staged outputs into memories (``memory_of(frame_idx, output)`` encodes one whose
        memory is missing) and store them as prompted or tracked frames; a prompted frame is no longer
        a tracked one. ``forget_radius`` > 0 drops the tracked frames that near of each committed frame.
        Returns the committed frames."""
        done = []
        for is_cond in (False, True):
            pending = self.temp(is_cond)
            for frame_idx, out in list(pending.items()):
                if out.maskmem_features is None:
                    out.maskmem_features = memory_of(frame_idx, out)
                (self.cond if is_cond else self.non_cond)[frame_idx] = out
                del pending[frame_idx]
                done.append(frame_idx)
                if forget_radius:
                    self.forget_tracked_around(frame_idx, forget_radius)
        for frame_idx in self.cond:
            self.non_cond.pop(frame_idx, None)
        return done

    def store_tracked(self, frame_idx: int, out: FrameOutput, *, reverse: bool) -> None:
        """Store the output of a tracked (unprompted) frame, reached going backward with ``reverse``."""
        self.non_cond[frame_idx] = out
        self.tracked[frame_idx] = reverse

    def mark_tracked(self, frame_idx: int, *, reverse: bool) -> None:
        """Record that tracking passed a frame (its output is a prompted one, kept as it is)."""
        self.tracked[frame_idx] = reverse

    def clear_frame(self, frame_idx: int) -> None:
        """Remove the prompts of a frame; a prompted output there becomes a tracked one (memory kept)."""
        self.points.pop(frame_idx, None)
        self.masks.pop(frame_idx, None)
        self.temp_cond.pop(frame_idx, None)
        self.temp_non_cond.pop(frame_idx, None)
        out = self.cond.pop(frame_idx, None)
        if out is not None:
            self.non_cond[frame_idx] = out
            self.tracked.pop(frame_idx, None)

    def clear(self) -> None:
        for d in (self.points, self.masks, self.cond, self.non_cond, self.temp_cond, self.temp_non_cond):
            d.clear()
        self.tracked.clear()

    def forget_tracked_around(self, frame_idx: int, radius: int) -> None:
        """Drop the tracked frames within ``radius`` of a frame (e.g. around a correction)."""
        for t in range(frame_idx - radius, frame_idx + radius + 1):
            self.non_cond.pop(t, None)

    def keep_recent(self, window: Iterable[int], max_prompt_frames: int) -> None:
        """A live stream's bound: keep tracked frames and pending points inside ``window`` only, and the
        first and the ``max_prompt_frames - 1`` most recent prompted frames."""
        keep = set(window)
        for t in [t for t in self.non_cond if t not in keep]:
            del self.non_cond[t]
        for t in [t for t in self.tracked if t not in keep]:
            del self.tracked[t]
        for t in [t for t in self.points if t not in keep and t not in self.cond]:
            del self.points[t]
        if len(self.cond) > max_prompt_frames:
            frames = sorted(self.cond)
            for t in frames[1 : len(frames) - max_prompt_frames + 1]:
                del self.cond[t]
                self.points.pop(t, None)
                self.masks.pop(t, None)

    # ------------------------------------------------------------------ reading
    def latest(self, frame_idx: int, is_cond: bool) -> FrameOutput | None:
        """The newest output on a frame as the official predictor reports it: a staged one of the given
        kind, else a stored one."""
        out = self.temp(is_cond).get(frame_idx)
        if out is None:
            out = self.cond.get(frame_idx)
        if out is None:
            out = self.non_cond.get(frame_idx)
        return out

    def newest(self, frame_idx: int) -> FrameOutput | None:
        """The newest output on a frame, staged (of either kind) before stored."""
        for d in (self.temp_cond, self.temp_non_cond, self.non_cond, self.cond):
            out = d.get(frame_idx)
            if out is not None:
                return out
        return None

    def select(
        self, bank: MemoryBank, frame_idx: int, *, reverse: bool, num_frames: int | None
    ) -> MemorySelection[FrameOutput]:
        """What this object attends to on a frame, by the memory bank's policy."""
        return bank.select(frame_idx, self.cond, self.non_cond, reverse, num_frames)

    def outputs(self) -> Iterator[FrameOutput]:
        for d in (self.cond, self.non_cond, self.temp_cond, self.temp_non_cond):
            yield from d.values()


@dataclass
class VideoSession:
    """The tracking state of one video or live stream: frames, objects (in the order they were added)
    and feature caches.

    A video session reads frames from ``frames`` through ``loader``; a live session
    (:meth:`live`) has neither and is shown its frames one at a time (:meth:`show_frame`).
    For code written against the official predictor, ``session["num_frames"]`` and the other
    scalar keys of its dict-based state are readable too.
    """

    frames: FrameSource | None
    loader: FrameLoader | None
    device: torch.device
    storage_device: torch.device
    storage_dtype: torch.dtype = torch.bfloat16
    objects: list[ObjectTrack] = field(default_factory=list)
    cached_features: tuple[int, ImageFeatures] | None = None
    # optional shared cache of frame features; without one only the last frame's features are kept
    feature_cache: FeatureStore | None = None
    # live sessions: the current frame, its size, and the stream's length when known (pointer scaling)
    current_frame: int = -1
    live_size: tuple[int, int] = (0, 0)
    expected_frames: int | None = None

    @classmethod
    def live(
        cls,
        device: torch.device,
        storage_dtype: torch.dtype = torch.bfloat16,
        expected_frames: int | None = None,
    ) -> VideoSession:
        """The state of a stream whose frames arrive one at a time (``num_frames`` None: unbounded,
        unless ``expected_frames`` says how many will come)."""
        return cls(None, None, device, device, storage_dtype, expected_frames=expected_frames)

    # ------------------------------------------------------------------ video
    @property
    def num_frames(self) -> int | None:
        return self.frames.num_frames if self.frames is not None else self.expected_frames

    @property
    def video_height(self) -> int:
        return self.frames.height if self.frames is not None else self.live_size[0]

    @property
    def video_width(self) -> int:
        return self.frames.width if self.frames is not None else self.live_size[1]

    def check_frame(self, frame_idx) -> None:
        """PromptError unless ``frame_idx`` is a frame of this video."""
        n = self.num_frames
        ok = isinstance(frame_idx, (int, np.integer)) and not isinstance(frame_idx, bool)
        if not ok or not 0 <= frame_idx < n:
            raise PromptError(
                f"frame_idx must be an integer in [0, {n - 1}] for this {n}-frame video, got {frame_idx!r}"
            )

    def features(self, frame_idx: int, encode: Callable[[torch.Tensor], ImageFeatures]) -> ImageFeatures:
        """A frame's features: the last frame's, else the shared cache's, else ``encode(frame)`` of the
        model-input tensor (1, 3, S, S) (then kept as the last frame's and put in the shared cache)."""
        if self.cached_features is None or self.cached_features[0] != frame_idx:
            if self.loader is None:
                raise PromptError(
                    f"frame {frame_idx} is not the current frame of this stream ({self.current_frame})"
                )
            self.drop_features()  # free the previous frame's features first
            shared = self.feature_cache
            feats = shared.get(frame_idx) if shared is not None else None
            if feats is None:
                feats = encode(self.loader.get(frame_idx))
                if shared is not None:
                    shared.put(frame_idx, feats)
            self.cached_features = (frame_idx, feats)
        return self.cached_features[1]

    def drop_features(self) -> None:
        """Forget the last frame's features (before making the next ones, to bound peak memory)."""
        self.cached_features = None

    def show_frame(self, features: ImageFeatures, height: int, width: int) -> int:
        """A live session's next frame (its features and size); returns its index."""
        self.current_frame += 1
        self.live_size = (height, width)
        self.cached_features = (self.current_frame, features)
        return self.current_frame

    # ------------------------------------------------------------------ objects
    @property
    def obj_ids(self) -> list[int]:
        return [o.obj_id for o in self.objects]

    def find(self, obj_id: int) -> int | None:
        """The index of object ``obj_id`` or None."""
        for i, o in enumerate(self.objects):
            if o.obj_id == obj_id:
                return i
        return None

    def obj_idx(self, obj_id: int) -> int:
        """The index of ``obj_id``, adding the object (at any time, as officially) if it is new."""
        idx = self.find(obj_id)
        if idx is None:
            self.objects.append(ObjectTrack(int(obj_id)))
            idx = len(self.objects) - 1
        return idx

    def object(self, obj_id: int) -> ObjectTrack:
        """Object ``obj_id``, added if it is new."""
        return self.objects[self.obj_idx(obj_id)]

    def remove(self, obj_id: int) -> bool:
        """Remove an object with everything it holds; False if there was none."""
        idx = self.find(obj_id)
        if idx is None:
            return False
        del self.objects[idx]
        return True

    def clear_objects(self) -> None:
        self.objects.clear()

    def subset(self, obj_ids: Iterable[int]) -> VideoSession:
        """A view of this session with only the given objects (in that order): the same ObjectTracks,
        frames and caches, so tracking the view stores its results here. Do not close the view."""
        missing = [i for i in obj_ids if self.find(i) is None]
        if missing:
            raise PromptError(f"no object with id(s) {missing} in this session (ids: {self.obj_ids})")
        return replace(self, objects=[self.objects[self.find(i)] for i in obj_ids], cached_features=None)

    def staged_cond_on(self, frame_idx: int) -> bool:
        """Whether some object has a staged prompted output on a frame."""
        return any(frame_idx in o.temp_cond for o in self.objects)

    # ------------------------------------------------------------------ storage
    def store(self, out: FrameOutput) -> FrameOutput:
        """Move an output to the session's storage (memories in the storage dtype)."""
        if out.maskmem_features is not None:
            out.maskmem_features = out.maskmem_features.to(self.storage_dtype).to(self.storage_device)
        out.pred_masks = out.pred_masks.to(self.storage_device)
        return out

    def heavy_bytes(self) -> int:
        """Bytes held by stored tracked-frame masks and memories (the part that grows with length)."""
        return sum(o.heavy_bytes() for o in self.non_cond_outputs())

    def non_cond_outputs(self) -> Iterator[FrameOutput]:
        for obj in self.objects:
            yield from obj.non_cond.values()

    def trim(self, budget_bytes: int, keep: Iterable[int], around: int) -> None:
        """Bound a long session: while tracked-frame masks and memories exceed ``budget_bytes``, evict
        those farthest from frame ``around`` outside ``keep`` (pointers and prompted frames stay)."""
        excess = self.heavy_bytes() - budget_bytes
        if excess <= 0:
            return
        keep = set(keep)
        cands = [
            (abs(t - around), out) for o in self.objects for t, out in o.non_cond.items() if t not in keep
        ]
        for _, out in sorted(cands, key=lambda c: -c[0]):
            if excess <= 0:
                break
            excess -= out.heavy_bytes()
            out.evict()

    def close(self) -> None:
        if self.loader is not None:
            self.loader.close()
        if self.frames is not None:
            self.frames.close()
        self.cached_features = None

    _KEYS = ("num_frames", "video_height", "video_width", "obj_ids", "device", "storage_device")

    def __getitem__(self, key: str):
        if key not in self._KEYS:
            raise KeyError(f"{key!r}: a VideoSession is typed; readable keys are {', '.join(self._KEYS)}")
        return getattr(self, key)
