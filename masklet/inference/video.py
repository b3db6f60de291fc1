"""Promptable video segmentation: ``VideoPredictor``, a drop-in for the official SAM2VideoPredictor.

Usage::

    predictor = VideoPredictor(build_model("sam2.1_hiera_tiny"))
    state = predictor.init_state(video_path="clip.mp4") # or a folder of JPEGs, or a list of arrays
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
from ..modeling.sam2 import SAM2Model
from .memory_bank import MemoryBank
from .object_track import ObjectTrack
from .postprocess import keep_highest_object
from .prompts import PromptError
from .video_state import VideoSession
from .video_tracking import CorePredictor, TrackingCore


class TrackingError(RuntimeError, ValueError):
    """A request the session cannot serve yet (no prompts, unknown object); the state is unchanged."""


class VideoPredictor(CorePredictor):
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
        self.core = TrackingCore(model, memory_bank or MemoryBank.official(model.cfg), fill_hole_area)
        self.non_overlap_masks = non_overlap_masks
        self.clear_non_cond_mem_around_input = clear_non_cond_mem_around_input
        self.add_all_frames_to_correct_as_cond = add_all_frames_to_correct_as_cond
        self.memory_dtype = memory_dtype
        self.state_budget_bytes = state_budget_bytes

    # ------------------------------------------------------------------ session
    @torch.inference_mode()
    def init_state(
        self,
        video_path,
        offload_video_to_cpu: bool = False,
        offload_state_to_cpu: bool = False,
        async_loading_frames: bool = False,
    ) -> VideoSession:
        """Open ``video_path`` lazily: a video file, a folder of JPEG/PNG frames, or HxWx3 uint8 arrays.

        Frames are decoded when needed (and prefetched in the background while tracking), so this
        returns quickly for any length. ``offload_video_to_cpu`` keeps preprocessed frames on the CPU;
        ``offload_state_to_cpu`` stores masks and memories on the CPU. ``async_loading_frames`` is
        accepted for compatibility (loading is always lazy).
        """
        source = open_frames(video_path)
        frame_device = torch.device("cpu") if offload_video_to_cpu else self.device
        loader = FrameLoader(source, self.model.image_size, frame_device)
        storage = torch.device("cpu") if offload_state_to_cpu else self.device
        return VideoSession(source, loader, self.device, storage, self.memory_dtype)

    @torch.inference_mode()
    def reset_state(self, inference_state: VideoSession) -> None:
        """Remove every object with its prompts and results (frames and caches stay)."""
        inference_state.clear_objects()

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
        s.check_frame(frame_idx)
        prompt = self._model_prompt(s, points, labels, box, clear_old_points, normalize_coords)
        obj = s.object(obj_id)
        pts = obj.set_points(frame_idx, *prompt, append=not clear_old_points)
        return self._prompted(s, obj, frame_idx, points=pts)

    def add_new_points(self, *args, **kwargs):
        """Older name of :meth:`add_new_points_or_box`."""
        return self.add_new_points_or_box(*args, **kwargs)

    @torch.inference_mode()
    def add_new_mask(
        self, inference_state: VideoSession, frame_idx: int, obj_id: int, mask
    ) -> tuple[int, list[int], torch.Tensor]:
        """Give an object's mask on a frame: a 2-D (H, W) mask of any size, usually the video's.

        An array (numpy, list) counts as a boolean mask (nonzero = object); a tensor is read as 0/1
        values. A mask other than the model's S x S is resized to it (bilinear with antialiasing,
        then >= 0.5), as officially.
        """
        s = inference_state
        s.check_frame(frame_idx)
        m = self._mask_prompt(s, mask)
        obj = s.object(obj_id)
        obj.set_mask(frame_idx, m)
        return self._prompted(s, obj, frame_idx, mask=m)

    def _prompted(self, s: VideoSession, obj: ObjectTrack, frame_idx: int, points=None, mask=None):
        is_cond = self.core.prompt(
            s,
            obj,
            frame_idx,
            points=points,
            mask=mask,
            corrections_as_cond=self.add_all_frames_to_correct_as_cond,
        )
        return frame_idx, s.obj_ids, self._to_video(s, self.core.gather(s, frame_idx, is_cond=is_cond))

    # ------------------------------------------------------------------ propagation
    @torch.inference_mode()
    def propagate_in_video_preflight(self, inference_state: VideoSession) -> None:
        """Turn pending prompt results into memories (done by :meth:`propagate_in_video`)."""
        s = inference_state
        if not s.objects:
            raise TrackingError("no points, boxes or masks were added to any object: add a prompt first")
        for obj in s.objects:
            if not obj.has_prompt_output():
                raise TrackingError(
                    f"object id {obj.obj_id} has no points, box or mask on any frame: add a prompt for it "
                    "or remove it with remove_object"
                )
        self.core.commit(s, forget_radius=self._forget_radius())

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
            s.check_frame(start_frame_idx)
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
        masks: dict[int, torch.Tensor] = {}
        todo = []
        for obj in s.objects:
            if frame_idx in obj.cond:
                masks[obj.obj_id] = obj.cond[frame_idx].pred_masks.to(self.device)
                if self.clear_non_cond_mem_around_input:
                    obj.forget_tracked_around(frame_idx, self._forget_radius())
            else:
                todo.append(obj)
        masks.update(self.core.track(s, frame_idx, todo, reverse=reverse))
        for obj in s.objects:
            obj.mark_tracked(frame_idx, reverse=reverse)
        s.trim(self.state_budget_bytes, self.bank.window(frame_idx, reverse), around=frame_idx)
        return self._to_video(s, torch.cat([masks[i] for i in s.obj_ids]))

    # ------------------------------------------------------------------ existing masks as memory
    @torch.inference_mode()
    def add_mask_memory(
        self, inference_state: VideoSession, frame_idx: int, obj_id: int, mask, reverse: bool = False
    ) -> None:
        """Use an existing mask of an object on a frame (an earlier run's, a machine pre-label) as if
        tracking had produced it: the frame becomes a tracked frame whose memory and object pointer
        come from the mask, without becoming a prompt. Tracking from a nearby frame then remembers it,
        and a click on that frame is a correction that sees the memory. A frame prompted for the
        object keeps its prompt (the mask is ignored there).

        mask: (H, W) bool/0-1 at the video resolution (or the model's S x S); ``reverse``: as if
        reached tracking backward (what a later correction there refines from).
        """
        s = inference_state
        s.check_frame(frame_idx)
        m = self._mask_prompt(s, mask)
        obj = s.object(obj_id)
        if frame_idx in obj.prompted_frames():
            return
        self.core.remember(s, obj, frame_idx, m, reverse=reverse)

    # ------------------------------------------------------------------ editing
    @torch.inference_mode()
    def clear_all_prompts_in_frame(
        self, inference_state: VideoSession, frame_idx: int, obj_id: int, need_output: bool = True
    ):
        """Remove an object's prompts on a frame; its prompted result there becomes a tracked one."""
        s = inference_state
        s.check_frame(frame_idx)
        s.object(obj_id).clear_frame(frame_idx)
        if not need_output:
            return None
        return frame_idx, s.obj_ids, self._frame_output(s, frame_idx)

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
        s.remove(obj_id)
        updated = [(t, self._frame_output(s, t)) for t in frames] if need_output else []
        return s.obj_ids, updated

    # ------------------------------------------------------------------ helpers
    def _mask_prompt(self, s: VideoSession, mask) -> torch.Tensor:
        """A 2-D (H, W) mask of any size -> (1, 1, S, S) float 0/1 on the device (:meth:`add_new_mask`)."""
        m = mask if isinstance(mask, torch.Tensor) else torch.from_numpy(np.asarray(mask) != 0)
        size = self.image_size
        if m.dim() != 2 or 0 in m.shape:
            raise PromptError(
                f"mask must be a 2-D (H, W) array (usually at the video resolution ({s.video_height}, "
                f"{s.video_width})), got shape {tuple(m.shape)}"
            )
        m = m.to(self.device).float()[None, None]
        if m.shape[-2:] != (size, size):
            m = F.interpolate(m, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
            m = (m >= 0.5).float()
        return m

    def _frame_output(self, s: VideoSession, frame_idx: int) -> torch.Tensor:
        """Every object's newest logits on a frame at the video resolution (as after a prompt there)."""
        return self._to_video(s, self.core.gather(s, frame_idx, is_cond=s.staged_cond_on(frame_idx)))

    def _to_video(self, s: VideoSession, low_res: torch.Tensor) -> torch.Tensor:
        masks = F.interpolate(low_res.float(), size=(s.video_height, s.video_width), mode="bilinear")
        return keep_highest_object(masks) if self.non_overlap_masks else masks

    # ------------------------------------------------------------------ official model methods
    def _apply_non_overlapping_constraints(self, pred_masks: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) logits of N objects -> only the highest object keeps its score at each pixel
        (the others at most -10), as the official predictor's method of that name."""
        return keep_highest_object(pred_masks)

    def to(self, *args, **kwargs) -> VideoPredictor:
        """Move the model (``torch.nn.Module.to`` arguments); the official predictor is the model."""
        self.model.to(*args, **kwargs)
        return self

    def eval(self) -> VideoPredictor:
        self.model.eval()
        return self

    def train(self, mode: bool = True) -> VideoPredictor:
        self.model.train(mode)
        return self

    def _forget_radius(self) -> int:
        """How far around a correction ``clear_non_cond_mem_around_input`` forgets tracked memories."""
        return self.bank.stride * self.bank.num_maskmem if self.clear_non_cond_mem_around_input else 0
