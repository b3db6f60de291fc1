"""Typed session state of the video predictor: frames, objects, their prompts and frame outputs.

A ``VideoSession`` is what ``VideoPredictor.init_state`` returns (the official "inference_state").
Each tracked object has an ``ObjectTrack`` holding its prompts and its per-frame outputs, split as the
official predictor does into prompted ("cond") and tracked ("non_cond") frames, plus the pending
outputs of prompts not yet consolidated into memory ("temp_*").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..io.frame_loader import FrameLoader
from ..io.frames import FrameSource
from ..modeling.sam2 import ImageFeatures


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

    def evict(self) -> None:
        """Drop the large tensors, keeping the pointer and score (enough for pointer memory)."""
        self.pred_masks = None
        self.maskmem_features = None


@dataclass
class ObjectTrack:
    """Prompts and outputs of one object (client id ``obj_id``)."""

    obj_id: int
    points: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    masks: dict[int, torch.Tensor] = field(default_factory=dict)
    cond: dict[int, FrameOutput] = field(default_factory=dict)
    non_cond: dict[int, FrameOutput] = field(default_factory=dict)
    temp_cond: dict[int, FrameOutput] = field(default_factory=dict)
    temp_non_cond: dict[int, FrameOutput] = field(default_factory=dict)
    tracked: dict[int, bool] = field(default_factory=dict)  # frame -> tracked in reverse

    def temp(self, is_cond: bool) -> dict[int, FrameOutput]:
        return self.temp_cond if is_cond else self.temp_non_cond

    def latest(self, frame_idx: int, is_cond: bool) -> FrameOutput | None:
        """The newest output on a frame: a pending one (of the given kind), else a stored one."""
        out = self.temp(is_cond).get(frame_idx)
        if out is None:
            out = self.cond.get(frame_idx)
        if out is None:
            out = self.non_cond.get(frame_idx)
        return out

    def clear_results(self) -> None:
        for d in (self.points, self.masks, self.cond, self.non_cond, self.temp_cond, self.temp_non_cond):
            d.clear()
        self.tracked.clear()

    def prompted_frames(self) -> set[int]:
        return set(self.points) | set(self.masks)


@dataclass
class VideoSession:
    """The state of one video: frames, objects (in the order they were added) and caches.

    For code written against the official predictor, ``session["num_frames"]`` and the other
    scalar keys of its dict-based state are readable too.
    """

    frames: FrameSource
    loader: FrameLoader
    device: torch.device
    storage_device: torch.device
    storage_dtype: torch.dtype = torch.bfloat16
    objects: list[ObjectTrack] = field(default_factory=list)
    cached_features: tuple[int, ImageFeatures] | None = None
    # optional shared cache of frame features (get(frame_idx) / put(frame_idx, features)), e.g. the
    # studio's byte-bounded LRU; without one only the last frame's features are kept
    feature_cache: object | None = None

    @property
    def num_frames(self) -> int:
        return self.frames.num_frames

    @property
    def video_height(self) -> int:
        return self.frames.height

    @property
    def video_width(self) -> int:
        return self.frames.width

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
            self.objects.append(ObjectTrack(obj_id))
            idx = len(self.objects) - 1
        return idx

    def heavy_bytes(self) -> int:
        """Bytes held by stored tracked-frame masks and memories (the part that grows with length)."""
        return sum(o.heavy_bytes() for o in self.non_cond_outputs())

    def non_cond_outputs(self):
        for obj in self.objects:
            yield from obj.non_cond.values()

    def close(self) -> None:
        self.loader.close()
        self.frames.close()
        self.cached_features = None

    _KEYS = ("num_frames", "video_height", "video_width", "obj_ids", "device", "storage_device")

    def __getitem__(self, key: str):
        if key not in self._KEYS:
            raise KeyError(f"{key!r}: a VideoSession is typed; readable keys are {', '.join(self._KEYS)}")
        return getattr(self, key)
