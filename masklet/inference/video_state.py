"""Typed tracking state of a video or live stream: ``VideoSession``.

A ``VideoSession`` is what ``VideoPredictor.init_state`` returns (the official "inference_state") and
what a ``StreamTracker`` keeps: the frames, the objects (:class:`~.object_track.ObjectTrack`, in the
order they were added) and the feature caches. It changes only through its methods; predictors read
the fields.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Protocol

import numpy as np
import torch

from ..io.frame_loader import FrameLoader
from ..io.frames import FrameSource
from ..modeling.sam2 import ImageFeatures
from .object_track import FrameOutput, ObjectTrack
from .prompts import PromptError

__all__ = ["FeatureStore", "FrameOutput", "ObjectTrack", "VideoSession"]


class FeatureStore(Protocol):
    """A cache of one video's frame features that a session reads before running the image encoder
    and fills after (e.g. the studio's byte-bounded LRU shared by every open video)."""

    def get(self, frame_idx: int) -> ImageFeatures | None: ...

    def put(self, frame_idx: int, features: ImageFeatures) -> None: ...


@dataclass
class VideoSession:
    """The tracking state of one video or live stream: frames, objects (in the order they were added)
    and feature caches.

    A video session reads frames from ``frames`` through ``loader``; a live session
    (:meth:`live`) has neither and is shown its frames one at a time (:meth:`show_frame`).

    For code written against the official predictor, the keys of its dict-based state that scripts
    read are readable too (``session["video_height"]``, ``in``, ``.get``, ``.keys()``; see
    :meth:`keys`): ``"images"`` is a lazy sequence of the preprocessed frames and
    ``"output_dict_per_obj"`` a read-only view of the stored outputs. Nothing can be set that way.
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

    # ------------------------------------------------------------------ the official state's keys
    _KEYS = (
        "num_frames",
        "video_height",
        "video_width",
        "obj_ids",
        "device",
        "storage_device",
        "images",
        "obj_id_to_idx",
        "obj_idx_to_id",
        "output_dict_per_obj",
    )

    def keys(self) -> tuple[str, ...]:
        """The keys of the official predictor's state dict that this session answers (read-only):
        num_frames, video_height, video_width, obj_ids, device, storage_device, images (a lazy
        sequence: ``len``, index -> the preprocessed (3, S, S) float32 frame, decoded on access),
        obj_id_to_idx, obj_idx_to_id and output_dict_per_obj (object index -> {"cond_frame_outputs",
        "non_cond_frame_outputs"} -> frame -> {"pred_masks", "obj_ptr", "object_score_logits",
        "maskmem_features"}; entries of evicted frames hold None)."""
        return self._KEYS if self.loader is not None else tuple(k for k in self._KEYS if k != "images")

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def get(self, key: str, default=None):
        return self[key] if key in self.keys() else default

    def __getitem__(self, key: str):
        if key not in self.keys():
            raise KeyError(
                f"{key!r}: a VideoSession is typed; readable keys are {', '.join(self.keys())} "
                "(the rest of its state is in its fields and methods)"
            )
        if key == "images":
            return _LazyFrames(self.loader, self.num_frames)
        if key == "obj_id_to_idx":
            return {o: i for i, o in enumerate(self.obj_ids)}
        if key == "obj_idx_to_id":
            return dict(enumerate(self.obj_ids))
        if key == "output_dict_per_obj":
            return MappingProxyType({i: _outputs_view(o) for i, o in enumerate(self.objects)})
        return getattr(self, key)

    def __setitem__(self, key: str, value) -> None:
        raise TypeError(
            f"cannot set {key!r}: a VideoSession changes only through the predictor's methods "
            "(add_new_points_or_box, add_new_mask, propagate_in_video, reset_state, ...)"
        )


class _LazyFrames(Sequence):
    """``session["images"]``: the preprocessed frames, each decoded when indexed."""

    def __init__(self, loader: FrameLoader, n: int) -> None:
        self._loader, self._n = loader, n

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, idx):
        """Frame ``idx`` as a (3, S, S) float32 tensor (a list of them for a slice)."""
        if isinstance(idx, slice):
            return [self[i] for i in range(*idx.indices(self._n))]
        i = operator.index(idx)
        if not -self._n <= i < self._n:
            raise IndexError(f"frame index {idx} out of range for a {self._n}-frame video")
        return self._loader.get(i % self._n)[0]


def _outputs_view(obj: ObjectTrack) -> MappingProxyType:
    """An object's stored outputs as the official state's read-only nested mapping."""

    def view(outputs: dict[int, FrameOutput]) -> MappingProxyType:
        return MappingProxyType(
            {
                t: MappingProxyType(
                    {
                        "pred_masks": out.pred_masks,
                        "obj_ptr": out.obj_ptr,
                        "object_score_logits": out.object_score,
                        "maskmem_features": out.maskmem_features,
                    }
                )
                for t, out in sorted(outputs.items())
            }
        )

    return MappingProxyType(
        {"cond_frame_outputs": view(obj.cond), "non_cond_frame_outputs": view(obj.non_cond)}
    )
