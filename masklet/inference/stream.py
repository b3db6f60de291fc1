"""Frame-by-frame tracking for live sources (cameras, RTSP, any iterator of frames).

Usage::

    tracker = StreamTracker(build_model("sam2.1_hiera_tiny", image_size=512))
    for frame in frames:                               # (H, W, 3) uint8 RGB, one at a time
        result = tracker.track(frame)                  # masks of every object on this frame
        if clicked:
            result = tracker.add_points(obj_id=1, points=[[x, y]], labels=[1])   # on this frame
        show(frame, result.masks)                      # (N, H, W) bool

Prompts apply to the frame last passed to :meth:`StreamTracker.track`; a new object can be added on
any frame. Memory is constant however long the stream runs: only the memory window (the prompted
frames, at most ``max_prompt_frames`` per object, and the last few tracked frames) is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..io.images import to_rgb_uint8
from ..modeling.sam2 import NO_OBJECT_SCORE, ImageFeatures, SAM2Model
from .memory_bank import MemoryBank
from .postprocess import keep_highest_object
from .prompts import PromptError
from .transforms import preprocess_video_frame
from .video_state import ObjectTrack
from .video_tracking import FrameTracker


@dataclass
class StreamResult:
    """Masks of every object on one stream frame.

    ``logits``: (N, 1, H, W) float32 at the frame's resolution (``NO_OBJECT_SCORE`` where an object
    is absent or has no prompt yet); ``masks``: (N, H, W) bool numpy array.
    """

    frame_idx: int
    obj_ids: list[int]
    logits: torch.Tensor

    @property
    def masks(self) -> np.ndarray:
        return (self.logits[:, 0] > 0).cpu().numpy()


@dataclass
class _StreamState:
    storage_device: torch.device
    storage_dtype: torch.dtype
    objects: list[ObjectTrack] = field(default_factory=list)
    frame_idx: int = -1
    height: int = 0
    width: int = 0
    features: ImageFeatures | None = None
    num_frames: None = None  # unbounded

    @property
    def obj_ids(self) -> list[int]:
        return [o.obj_id for o in self.objects]

    @property
    def video_width(self) -> int:
        return self.width

    @property
    def video_height(self) -> int:
        return self.height


class StreamTracker(FrameTracker):
    """Tracks objects on frames given one at a time (see the module docstring).

    Args mirror :class:`masklet.VideoPredictor`; ``max_prompt_frames`` bounds the prompted frames
    kept per object (the first and the most recent ones). ``add_all_frames_to_correct_as_cond`` is on
    by default here: a correction made on a live frame stays in memory as a prompted frame (up to
    ``max_prompt_frames``) instead of fading out of the recent-frame window.
    """

    def __init__(
        self,
        model: SAM2Model,
        fill_hole_area: int = 8,
        non_overlap_masks: bool = False,
        memory_bank: MemoryBank | None = None,
        memory_dtype: torch.dtype = torch.bfloat16,
        max_prompt_frames: int = 8,
        add_all_frames_to_correct_as_cond: bool = True,
    ) -> None:
        cfg = model.cfg
        bank = memory_bank or MemoryBank.official(cfg)
        super().__init__(model, bank, fill_hole_area)
        if max_prompt_frames < 1:
            raise ValueError(f"max_prompt_frames must be >= 1, got {max_prompt_frames}")
        self.non_overlap_masks = non_overlap_masks
        self.max_prompt_frames = max_prompt_frames
        self.add_all_frames_to_correct_as_cond = add_all_frames_to_correct_as_cond
        self._s = _StreamState(self.device, memory_dtype)

    @property
    def frame_idx(self) -> int:
        """Index of the current frame (-1 before the first)."""
        return self._s.frame_idx

    @property
    def obj_ids(self) -> list[int]:
        return self._s.obj_ids

    # ------------------------------------------------------------------ frames
    @torch.inference_mode()
    def track(self, frame) -> StreamResult:
        """Advance to a new frame ((H, W, 3) uint8 RGB, or anything ``to_rgb_uint8`` takes) and track
        every prompted object on it."""
        s = self._s
        image = to_rgb_uint8(frame)
        self._commit_prompts()
        s.features = None
        s.features = self.model.encode_image(preprocess_video_frame(image, self.image_size, self.device))
        s.frame_idx += 1
        s.height, s.width = image.shape[:2]
        active = [o for o in s.objects if o.cond]
        for group in self._batches(s, active, s.frame_idx, False):
            outs, _ = self._track(s, group, s.frame_idx, False, False, None, None, True, None)
            for obj, out in zip(group, outs):
                obj.non_cond[s.frame_idx] = out
            for obj in group:
                obj.tracked[s.frame_idx] = False
        self._forget_old()
        return self._result()

    # ------------------------------------------------------------------ prompts
    @torch.inference_mode()
    def add_points(
        self,
        obj_id: int,
        points=None,
        labels=None,
        box=None,
        clear_old_points: bool = True,
        normalize_coords: bool = True,
    ) -> StreamResult:
        """Click and/or box object ``obj_id`` on the current frame (coordinates as in VideoPredictor)."""
        s = self._need_frame()
        coords, lab = self._prompt_points(s, points, labels, box, clear_old_points, normalize_coords)
        obj = self._object(obj_id)
        t = s.frame_idx
        if not clear_old_points and t in obj.points:
            old_c, old_l = obj.points[t]
            coords, lab = torch.cat([old_c, coords], dim=1), torch.cat([old_l, lab], dim=1)
        obj.points[t] = (coords, lab)
        obj.masks.pop(t, None)
        is_init, is_cond = self._prompt_kind(obj, t)
        prev = obj.latest(t, is_cond)
        prev_logits = None
        if prev is not None and prev.pred_masks is not None:
            prev_logits = prev.pred_masks.to(self.device).clamp(-32.0, 32.0)
        outs, _ = self._track(s, [obj], t, is_init, False, (coords, lab), None, False, prev_logits)
        obj.temp(is_cond)[t] = outs[0]
        return self._result()

    @torch.inference_mode()
    def add_mask(self, obj_id: int, mask) -> StreamResult:
        """Give object ``obj_id``'s mask on the current frame: (H, W) bool at the frame's size."""
        s = self._need_frame()
        m = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask)
        if m.dim() != 2 or tuple(m.shape) != (s.height, s.width):
            raise PromptError(
                f"mask must be (H, W) = ({s.height}, {s.width}) like the frame, got {tuple(m.shape)}"
            )
        size = self.image_size
        m = F.interpolate(
            m.to(self.device).float()[None, None], size=(size, size), mode="bilinear", antialias=True
        )
        m = (m >= 0.5).float()
        obj = self._object(obj_id)
        t = s.frame_idx
        obj.masks[t] = m
        obj.points.pop(t, None)
        is_init, is_cond = self._prompt_kind(obj, t)
        outs, _ = self._track(s, [obj], t, is_init, False, None, m, False, None)
        obj.temp(is_cond)[t] = outs[0]
        return self._result()

    def remove_object(self, obj_id: int) -> None:
        idx = next((i for i, o in enumerate(self._s.objects) if o.obj_id == obj_id), None)
        if idx is None:
            raise PromptError(f"no object with id {obj_id} (ids: {self.obj_ids})")
        del self._s.objects[idx]

    def reset(self) -> None:
        """Forget every object (the next frame starts a new stream)."""
        self._s = _StreamState(self.device, self._s.storage_dtype)

    def state_bytes(self) -> int:
        """Bytes of masks, memories and pointers held (constant once the window is full)."""
        total = 0
        for o in self._s.objects:
            for d in (o.cond, o.non_cond, o.temp_cond, o.temp_non_cond):
                for out in d.values():
                    total += out.heavy_bytes() + out.obj_ptr.numel() * out.obj_ptr.element_size()
        return total

    # ------------------------------------------------------------------ internals
    def _need_frame(self) -> _StreamState:
        if self._s.features is None:
            raise PromptError("no frame yet: call track(frame) first, then prompt on that frame")
        return self._s

    def _object(self, obj_id: int) -> ObjectTrack:
        if not isinstance(obj_id, (int, np.integer)) or isinstance(obj_id, bool):
            raise PromptError(f"obj_id must be an integer, got {obj_id!r}")
        for o in self._s.objects:
            if o.obj_id == obj_id:
                return o
        self._s.objects.append(ObjectTrack(int(obj_id)))
        return self._s.objects[-1]

    def _prompt_kind(self, obj: ObjectTrack, t: int) -> tuple[bool, bool]:
        """(is_init: decode without memory, is_cond: keep as a prompted frame) for a prompt on frame t.

        A first prompt is decoded on its own; a correction on a tracked frame sees the memory. Both
        become prompted (conditioning) frames unless ``add_all_frames_to_correct_as_cond`` is off, in
        which case a correction is an ordinary tracked frame that leaves memory after the window.
        """
        is_init = t not in obj.tracked
        return is_init, is_init or self.add_all_frames_to_correct_as_cond

    def _features(self, s, frame_idx: int) -> ImageFeatures:
        return s.features

    def _commit_prompts(self) -> None:
        """Encode pending prompt results of the current frame into memory."""
        s = self._s
        for obj in s.objects:
            for is_cond in (False, True):
                for t, out in list(obj.temp(is_cond).items()):
                    high = self.model.upscale_masks(out.pred_masks.to(self.device), self.image_size)
                    out.maskmem_features = self._memory(s, s.features, high, out.object_score, binarize=True)
                    (obj.cond if is_cond else obj.non_cond)[t] = self._store(out, s)
                obj.temp(is_cond).clear()
            for t in obj.cond:
                obj.non_cond.pop(t, None)

    def _forget_old(self) -> None:
        s = self._s
        keep = set(self.bank.window(s.frame_idx, False))
        for obj in s.objects:
            for t in [t for t in obj.non_cond if t not in keep]:
                del obj.non_cond[t]
            for t in [t for t in obj.tracked if t not in keep]:
                del obj.tracked[t]
            for t in [t for t in obj.points if t not in keep and t not in obj.cond]:
                del obj.points[t]
            if len(obj.cond) > self.max_prompt_frames:
                frames = sorted(obj.cond)
                for t in frames[1 : len(frames) - self.max_prompt_frames + 1]:
                    del obj.cond[t]
                    obj.points.pop(t, None)
                    obj.masks.pop(t, None)

    def _result(self) -> StreamResult:
        s = self._s
        side = self.model.cfg.low_res_mask_size
        low = torch.full((len(s.objects), 1, side, side), NO_OBJECT_SCORE, device=self.device)
        for i, obj in enumerate(s.objects):
            t = s.frame_idx
            out = obj.temp_cond.get(t) or obj.temp_non_cond.get(t) or obj.non_cond.get(t) or obj.cond.get(t)
            if out is not None and out.pred_masks is not None:
                low[i : i + 1] = out.pred_masks.to(self.device)
        masks = F.interpolate(low, size=(s.height, s.width), mode="bilinear", align_corners=False)
        if self.non_overlap_masks:
            masks = keep_highest_object(masks)
        return StreamResult(s.frame_idx, s.obj_ids, masks)
