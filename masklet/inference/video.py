"""Promptable video segmentation: ``VideoPredictor``, a drop-in for the official SAM2VideoPredictor.

Usage::

    predictor = VideoPredictor(build_model("sam2.1_hiera_tiny"))
    state = predictor.init_state("clip.mp4")            # or a folder of JPEGs, or a list of arrays
    predictor.add_new_points_or_box(state, frame_idx=0, obj_id=1, points=[[210, 350]], labels=[1])
    predictor.add_new_points_or_box(state, frame_idx=0, obj_id=2, box=[300, 0, 500, 400])
    for frame_idx, obj_ids, mask_logits in predictor.propagate_in_video(state):
        masks = (mask_logits > 0).cpu().numpy()       # (N, 1, H, W) at the video's resolution

Objects are tracked independently and can be added, refined or removed at any time. Frames are
decoded lazily (any length), and on long videos only the memories near the tracking position are
kept once ``state_budget_bytes`` is exceeded.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ..io.frame_loader import FrameLoader
from ..io.frames import open_frames
from ..modeling.sam2 import NO_OBJECT_SCORE, ImageFeatures, SAM2Model
from .memory_bank import MemoryBank
from .postprocess import keep_highest_object
from .prompts import PromptError
from .video_state import VideoSession
from .video_tracking import FrameTracker


class TrackingError(RuntimeError, ValueError):
    """A request the session cannot serve yet (no prompts, unknown object); the state is unchanged."""


class VideoPredictor(FrameTracker):
    """Click, box or mask an object on any frame and get its masks on every frame.

    Args:
        model: a ``SAM2Model`` (``masklet.build_model``).
        fill_hole_area: fill background holes up to this area (low-res mask pixels) in outputs.
        non_overlap_masks: at each pixel keep only the highest-scoring object in outputs.
        clear_non_cond_mem_around_input: after a correction, forget that object's tracked memories
            within ``num_maskmem`` frames of it.
        add_all_frames_to_correct_as_cond: corrected frames become prompted (conditioning) frames.
        memory_bank: the memory selection policy (default: the official one for the model).
        memory_dtype: dtype of stored memory features (bfloat16 as officially; float32 to keep them exact).
        state_budget_bytes: above this many bytes of stored tracked-frame masks and memories, those
            farthest from the tracking position are dropped (pointers and prompts are always kept).
    """

    def __init__(
        self,
        model: SAM2Model,
        fill_hole_area: int = 8,
        non_overlap_masks: bool = False,
        clear_non_cond_mem_around_input: bool = False,
        add_all_frames_to_correct_as_cond: bool = False,
        memory_bank: MemoryBank | None = None,
        memory_dtype: torch.dtype = torch.bfloat16,
        state_budget_bytes: int = 512 * 2**20,
    ) -> None:
        cfg = model.cfg
        bank = memory_bank or MemoryBank.official(cfg)
        super().__init__(model, bank, fill_hole_area)
        self.non_overlap_masks = non_overlap_masks
        self.clear_non_cond_mem_around_input = clear_non_cond_mem_around_input
        self.add_all_frames_to_correct_as_cond = add_all_frames_to_correct_as_cond
        self.memory_dtype = memory_dtype
        self.state_budget_bytes = state_budget_bytes

    # ------------------------------------------------------------------ session
    @torch.inference_mode()
    def init_state(
        self,
        video,
        offload_video_to_cpu: bool = False,
        offload_state_to_cpu: bool = False,
        async_loading_frames: bool = False,
    ) -> VideoSession:
        """Open ``video`` lazily: a video file, a folder of JPEG/PNG frames, or HxWx3 uint8 arrays.

        Frames are decoded when needed (and prefetched in the background while tracking), so this
        returns quickly for any length. ``offload_video_to_cpu`` keeps preprocessed frames on the CPU;
        ``offload_state_to_cpu`` stores masks and memories on the CPU. ``async_loading_frames`` is
        accepted for compatibility (loading is always lazy).
        """
        source = open_frames(video)
        frame_device = torch.device("cpu") if offload_video_to_cpu else self.device
        loader = FrameLoader(source, self.model.image_size, frame_device)
        storage = torch.device("cpu") if offload_state_to_cpu else self.device
        return VideoSession(source, loader, self.device, storage, self.memory_dtype)

    @torch.inference_mode()
    def reset_state(self, inference_state: VideoSession) -> None:
        """Remove every object with its prompts and results (frames and caches stay)."""
        inference_state.objects.clear()

    # ------------------------------------------------------------------ prompts
    @torch.inference_mode()
    def add_new_points_or_box(
        self,
        inference_state: VideoSession,
        frame_idx: int,
        obj_id: int,
        points=None,
        labels=None,
        clear_old_points: bool = True,
        normalize_coords: bool = True,
        box=None,
    ) -> tuple[int, list[int], torch.Tensor]:
        """Click (points with labels 1 = object, 0 = background) and/or box an object on a frame.

        points: (N, 2) x, y in video pixels (or relative in [0, 1] with ``normalize_coords=False``);
        labels: (N,); box: (4,) x0, y0, x1, y1. Returns (frame_idx, obj_ids, mask logits (N_obj, 1,
        H, W) float32 at the video resolution, all objects on this frame).
        """
        s = inference_state
        self._check_frame(s, frame_idx)
        coords, lab = self._prompt_points(s, points, labels, box, clear_old_points, normalize_coords)
        obj = s.objects[s.obj_idx(obj_id)]
        if not clear_old_points and frame_idx in obj.points:
            old_c, old_l = obj.points[frame_idx]
            coords, lab = torch.cat([old_c, coords], dim=1), torch.cat([old_l, lab], dim=1)
        obj.points[frame_idx] = (coords, lab)
        obj.masks.pop(frame_idx, None)
        return self._prompted(s, obj, frame_idx, points=(coords, lab))

    def add_new_points(self, *args, **kwargs):
        """Older name of :meth:`add_new_points_or_box`."""
        return self.add_new_points_or_box(*args, **kwargs)

    @torch.inference_mode()
    def add_new_mask(
        self, inference_state: VideoSession, frame_idx: int, obj_id: int, mask
    ) -> tuple[int, list[int], torch.Tensor]:
        """Give an object's mask on a frame: (H, W) bool/0-1 at the video resolution (or S x S)."""
        s = inference_state
        self._check_frame(s, frame_idx)
        m = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask)
        size = self.model.image_size
        if m.dim() != 2 or tuple(m.shape) not in ((s.video_height, s.video_width), (size, size)):
            raise PromptError(
                f"mask must be a 2-D (H, W) array at the video resolution ({s.video_height}, "
                f"{s.video_width}) (or the model's {size}x{size}), got shape {tuple(m.shape)}"
            )
        m = m.to(self.device).float()[None, None]
        if m.shape[-2:] != (size, size):
            m = F.interpolate(m, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
            m = (m >= 0.5).float()
        obj = s.objects[s.obj_idx(obj_id)]
        obj.masks[frame_idx] = m
        obj.points.pop(frame_idx, None)
        return self._prompted(s, obj, frame_idx, mask=m)

    def _prompted(self, s: VideoSession, obj, frame_idx: int, points=None, mask=None):
        is_init = frame_idx not in obj.tracked
        reverse = False if is_init else obj.tracked[frame_idx]
        is_cond = is_init or self.add_all_frames_to_correct_as_cond
        prev = None
        if points is not None:
            out = obj.latest(frame_idx, is_cond)
            if out is not None and out.pred_masks is not None:
                prev = out.pred_masks.to(self.device).clamp(-32.0, 32.0)
        out, _ = self._track(s, [obj], frame_idx, is_init, reverse, points, mask, False, prev)
        obj.temp(is_cond)[frame_idx] = out[0]
        return frame_idx, s.obj_ids, self._to_video(s, self._gather(s, frame_idx, is_cond))

    # ------------------------------------------------------------------ propagation
    @torch.inference_mode()
    def propagate_in_video_preflight(self, inference_state: VideoSession) -> None:
        """Turn pending prompt results into memories (done by :meth:`propagate_in_video`)."""
        s = inference_state
        if not s.objects:
            raise TrackingError("no points, boxes or masks were added to any object: add a prompt first")
        for obj in s.objects:
            if not obj.cond and not obj.temp_cond:
                raise TrackingError(
                    f"object id {obj.obj_id} has no points, box or mask on any frame: add a prompt for it "
                    "or remove it with remove_object"
                )
        for obj in s.objects:
            for is_cond in (False, True):
                pending = obj.temp(is_cond)
                for frame_idx, out in list(pending.items()):
                    if out.maskmem_features is None:
                        high = self.model.upscale_masks(out.pred_masks.to(self.device), self.model.image_size)
                        feats = self._features(s, frame_idx)
                        out.maskmem_features = self._memory(s, feats, high, out.object_score, binarize=True)
                        self._store(out, s)
                    (obj.cond if is_cond else obj.non_cond)[frame_idx] = out
                    del pending[frame_idx]
                    if self.clear_non_cond_mem_around_input:
                        self._forget_around(obj, frame_idx)
            for frame_idx in obj.cond:
                obj.non_cond.pop(frame_idx, None)

    @torch.inference_mode()
    def propagate_in_video(
        self,
        inference_state: VideoSession,
        start_frame_idx: int | None = None,
        max_frame_num_to_track: int | None = None,
        reverse: bool = False,
    ) -> Iterator[tuple[int, list[int], torch.Tensor]]:
        """Track every object from ``start_frame_idx`` (default: the earliest prompted frame) forward
        (or backward with ``reverse``) over ``max_frame_num_to_track`` frames (default: all).

        Yields (frame_idx, obj_ids, mask logits (N_obj, 1, H, W) float32 at the video resolution).
        Stopping early (break, an exception, Ctrl-C) keeps every frame finished so far.
        """
        s = inference_state
        n = s.num_frames
        if start_frame_idx is not None:
            self._check_frame(s, start_frame_idx)
        if max_frame_num_to_track is None:
            max_frame_num_to_track = n
        if (
            not isinstance(max_frame_num_to_track, (int, np.integer))
            or isinstance(max_frame_num_to_track, bool)
            or max_frame_num_to_track < 0
        ):
            raise PromptError(
                f"max_frame_num_to_track must be an int >= 0 or None, got {max_frame_num_to_track!r}"
            )
        self.propagate_in_video_preflight(s)
        if start_frame_idx is None:
            start_frame_idx = min(t for o in s.objects for t in o.cond)
        if reverse:
            end = max(start_frame_idx - max_frame_num_to_track, 0)
            order = range(start_frame_idx, end - 1, -1) if start_frame_idx > 0 else range(0)
        else:
            end = min(start_frame_idx + max_frame_num_to_track, n - 1)
            order = range(start_frame_idx, end + 1)
        s.loader.hint(order)
        for frame_idx in order:
            yield frame_idx, s.obj_ids, self._propagate_frame(s, frame_idx, reverse)

    def _propagate_frame(self, s: VideoSession, frame_idx: int, reverse: bool) -> torch.Tensor:
        masks: list[torch.Tensor | None] = [None] * len(s.objects)
        todo = []
        for i, obj in enumerate(s.objects):
            if frame_idx in obj.cond:
                masks[i] = obj.cond[frame_idx].pred_masks.to(self.device)
                if self.clear_non_cond_mem_around_input:
                    self._forget_around(obj, frame_idx)
            else:
                todo.append(i)
        for group in self._batches(s, [s.objects[i] for i in todo], frame_idx, reverse):
            outs, pred = self._track(s, group, frame_idx, False, reverse, None, None, True, None)
            for obj, out, p in zip(group, outs, pred.split(1)):
                obj.non_cond[frame_idx] = out
                masks[s.objects.index(obj)] = p
        for obj in s.objects:
            obj.tracked[frame_idx] = reverse
        self._trim(s, frame_idx, reverse)
        return self._to_video(s, torch.cat(masks))

    # ------------------------------------------------------------------ editing
    @torch.inference_mode()
    def clear_all_prompts_in_frame(
        self, inference_state: VideoSession, frame_idx: int, obj_id: int, need_output: bool = True
    ):
        """Remove an object's prompts on a frame; its prompted result there becomes a tracked one."""
        s = inference_state
        self._check_frame(s, frame_idx)
        obj = s.objects[s.obj_idx(obj_id)]
        obj.points.pop(frame_idx, None)
        obj.masks.pop(frame_idx, None)
        obj.temp_cond.pop(frame_idx, None)
        obj.temp_non_cond.pop(frame_idx, None)
        out = obj.cond.pop(frame_idx, None)
        if out is not None:
            obj.non_cond[frame_idx] = out
            obj.tracked.pop(frame_idx, None)
        if not need_output:
            return None
        is_cond = any(frame_idx in o.temp_cond for o in s.objects)
        return frame_idx, s.obj_ids, self._to_video(s, self._gather(s, frame_idx, is_cond))

    @torch.inference_mode()
    def remove_object(
        self, inference_state: VideoSession, obj_id: int, strict: bool = False, need_output: bool = True
    ):
        """Remove an object; returns (remaining obj_ids, [(frame_idx, masks)] of its prompted frames)."""
        s = inference_state
        idx = s.find(obj_id)
        if idx is None:
            if strict:
                raise TrackingError(f"cannot remove object id {obj_id}: it does not exist (ids: {s.obj_ids})")
            return s.obj_ids, []
        if len(s.objects) == 1:
            self.reset_state(s)
            return s.obj_ids, []
        frames = sorted(s.objects[idx].prompted_frames())
        for t in frames:
            self.clear_all_prompts_in_frame(s, t, obj_id, need_output=False)
        del s.objects[idx]
        updated = []
        if need_output:
            for t in frames:
                is_cond = any(t in o.temp_cond for o in s.objects)
                updated.append((t, self._to_video(s, self._gather(s, t, is_cond))))
        return s.obj_ids, updated

    # ------------------------------------------------------------------ helpers
    def _gather(self, s: VideoSession, frame_idx: int, is_cond: bool) -> torch.Tensor:
        """(N_obj, 1, S/4, S/4) newest logits of every object on a frame (absent: NO_OBJECT_SCORE)."""
        side = self.model.cfg.low_res_mask_size
        out = torch.full((len(s.objects), 1, side, side), NO_OBJECT_SCORE, device=self.device)
        for i, obj in enumerate(s.objects):
            o = obj.latest(frame_idx, is_cond)
            if o is not None and o.pred_masks is not None:
                out[i : i + 1] = o.pred_masks.to(self.device)
        return out

    def _to_video(self, s: VideoSession, low_res: torch.Tensor) -> torch.Tensor:
        masks = F.interpolate(low_res.float(), size=(s.video_height, s.video_width), mode="bilinear")
        return keep_highest_object(masks) if self.non_overlap_masks else masks

    def _forget_around(self, obj, frame_idx: int) -> None:
        r = self.bank.stride * self.bank.num_maskmem
        for t in range(frame_idx - r, frame_idx + r + 1):
            obj.non_cond.pop(t, None)

    def _trim(self, s: VideoSession, frame_idx: int, reverse: bool) -> None:
        """Bound the session: drop masks/memories of tracked frames far from ``frame_idx``."""
        excess = s.heavy_bytes() - self.state_budget_bytes
        if excess <= 0:
            return
        keep = self.bank.window(frame_idx, reverse)
        cands = [
            (abs(t - frame_idx), out) for o in s.objects for t, out in o.non_cond.items() if t not in keep
        ]
        for _, out in sorted(cands, key=lambda c: -c[0]):
            if excess <= 0:
                break
            excess -= out.heavy_bytes()
            out.evict()

    def _features(self, s: VideoSession, frame_idx: int) -> ImageFeatures:
        if s.cached_features is None or s.cached_features[0] != frame_idx:
            s.cached_features = None  # free the previous frame's features first
            shared = s.feature_cache
            feats = shared.get(frame_idx) if shared is not None else None
            if feats is None:
                feats = self.model.encode_image(s.loader.get(frame_idx).to(self.device))
                if shared is not None:
                    shared.put(frame_idx, feats)
            s.cached_features = (frame_idx, feats)
        return s.cached_features[1]
