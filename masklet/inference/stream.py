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

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..io.images import to_rgb_uint8
from ..io.preprocess import preprocess_video_frame
from ..modeling.sam2 import SAM2Model
from .memory_bank import MemoryBank
from .object_track import ObjectTrack
from .postprocess import keep_highest_object
from .prompts import PromptError
from .video_state import VideoSession
from .video_tracking import CorePredictor, TrackingCore


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


class StreamTracker(CorePredictor):
    """Tracks objects on frames given one at a time (see the module docstring).

    Args mirror :class:`masklet.VideoPredictor`; ``max_prompt_frames`` bounds the prompted frames
    kept per object (the first and the most recent ones). ``add_all_frames_to_correct_as_cond`` is on
    by default here: a correction made on a live frame stays in memory as a prompted frame (up to
    ``max_prompt_frames``) instead of fading out of the recent-frame window. ``expected_frames``: the
    stream's length when known (a file), which SAM 2.1 uses to scale object-pointer distances on
    videos shorter than 16 frames; None (a live source) scales as for a long video.
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
        expected_frames: int | None = None,
    ) -> None:
        self.core = TrackingCore(model, memory_bank or MemoryBank.official(model.cfg), fill_hole_area)
        if max_prompt_frames < 1:
            raise ValueError(f"max_prompt_frames must be >= 1, got {max_prompt_frames}")
        if expected_frames is not None and (
            isinstance(expected_frames, bool) or not isinstance(expected_frames, int) or expected_frames < 1
        ):
            raise ValueError(f"expected_frames must be None or an int >= 1, got {expected_frames!r}")
        self.non_overlap_masks = non_overlap_masks
        self.max_prompt_frames = max_prompt_frames
        self.add_all_frames_to_correct_as_cond = add_all_frames_to_correct_as_cond
        self.state = VideoSession.live(self.device, memory_dtype, expected_frames)

    @property
    def frame_idx(self) -> int:
        """Index of the current frame (-1 before the first)."""
        return self.state.current_frame

    @property
    def obj_ids(self) -> list[int]:
        return self.state.obj_ids

    # ------------------------------------------------------------------ frames
    @torch.inference_mode()
    def track(self, frame) -> StreamResult:
        """Advance to a new frame ((H, W, 3) uint8 RGB, or anything ``to_rgb_uint8`` takes) and track
        every prompted object on it."""
        s = self.state
        image = to_rgb_uint8(frame)
        self.core.commit(s)
        s.drop_features()
        feats = self.core.encode(preprocess_video_frame(image, self.image_size, self.device))
        t = s.show_frame(feats, *image.shape[:2])
        self.core.track(s, t, [o for o in s.objects if o.cond], reverse=False)
        window = self.bank.window(t, False)
        for obj in s.objects:
            obj.keep_recent(window, self.max_prompt_frames)
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
        prompt = self._model_prompt(s, points, labels, box, clear_old_points, normalize_coords)
        obj = self._object(obj_id)
        t = s.current_frame
        pts = obj.set_points(t, *prompt, append=not clear_old_points)
        self.core.prompt(s, obj, t, points=pts, corrections_as_cond=self.add_all_frames_to_correct_as_cond)
        return self._result()

    @torch.inference_mode()
    def add_mask(self, obj_id: int, mask) -> StreamResult:
        """Give object ``obj_id``'s mask on the current frame: (H, W) bool at the frame's size."""
        s = self._need_frame()
        m = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask)
        if m.dim() != 2 or tuple(m.shape) != (s.video_height, s.video_width):
            raise PromptError(
                f"mask must be (H, W) = ({s.video_height}, {s.video_width}) like the frame, "
                f"got {tuple(m.shape)}"
            )
        size = self.image_size
        m = F.interpolate(
            m.to(self.device).float()[None, None], size=(size, size), mode="bilinear", antialias=True
        )
        m = (m >= 0.5).float()
        obj = self._object(obj_id)
        t = s.current_frame
        obj.set_mask(t, m)
        self.core.prompt(s, obj, t, mask=m, corrections_as_cond=self.add_all_frames_to_correct_as_cond)
        return self._result()

    def remove_object(self, obj_id: int) -> None:
        if not self.state.remove(obj_id):
            raise PromptError(f"no object with id {obj_id} (ids: {self.obj_ids})")

    def reset(self) -> None:
        """Forget every object (the next frame starts a new stream)."""
        s = self.state
        self.state = VideoSession.live(self.device, s.storage_dtype, s.expected_frames)

    def state_bytes(self) -> int:
        """Bytes of masks, memories and pointers held (constant once the window is full)."""
        return sum(out.nbytes() for o in self.state.objects for out in o.outputs())

    # ------------------------------------------------------------------ internals
    def _need_frame(self) -> VideoSession:
        if self.state.current_frame < 0:
            raise PromptError("no frame yet: call track(frame) first, then prompt on that frame")
        return self.state

    def _object(self, obj_id: int) -> ObjectTrack:
        if not isinstance(obj_id, (int, np.integer)) or isinstance(obj_id, bool):
            raise PromptError(f"obj_id must be an integer, got {obj_id!r}")
        return self.state.object(int(obj_id))

    def _result(self) -> StreamResult:
        s = self.state
        low = self.core.gather(s, s.current_frame, is_cond=None)
        masks = F.interpolate(low, size=(s.video_height, s.video_width), mode="bilinear", align_corners=False)
        if self.non_overlap_masks:
            masks = keep_highest_object(masks)
        return StreamResult(s.current_frame, s.obj_ids, masks)
