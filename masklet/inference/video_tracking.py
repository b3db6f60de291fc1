"""The tracking core shared by the video predictor and the stream tracker.

``TrackingCore`` runs :class:`~.tracking_step.TrackingStep` on a :class:`~.video_state.VideoSession`:
a prompt on a frame (staged until committed), the commit of staged outputs into memories, and the
tracking of a frame for a group of objects (batched when their memory selections share a layout).
Predictors decide which frames and objects; the session's methods do the bookkeeping.
"""

from __future__ import annotations

import numpy as np
import torch

from ..modeling.sam2 import NO_OBJECT_SCORE, ImageFeatures, SAM2Model
from .memory_bank import MemoryBank
from .object_track import FrameOutput, ObjectTrack
from .postprocess import fill_holes
from .prompts import PromptError, check_boxes, check_points
from .tracking_step import StepOutput, TrackingStep
from .video_state import VideoSession

__all__ = ["CorePredictor", "TrackingCore", "prompt_to_model"]


def prompt_to_model(
    points,
    labels,
    box,
    *,
    frame_wh: tuple[float, float],
    image_size: int,
    device: torch.device,
    append: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A user's points/box on one frame -> (coords (1, N, 2) float32 in model-input pixels, labels
    (1, N) int32), the box first as corners labelled 2 and 3. ``frame_wh`` is the frame's (width,
    height) in the coordinates' unit ((1, 1) for relative coordinates); ``append``: the points will
    be added to the frame's earlier ones (a box cannot be)."""
    if (points is None) != (labels is None):
        raise PromptError("points and labels must be given together (one label per point)")
    if points is None and box is None:
        raise PromptError("give points (with labels) or a box")
    if box is not None and append:
        raise PromptError("a box must come before any click on a frame: use clear_old_points=True with a box")
    parts_c, parts_l = [], []
    if box is not None:
        b = check_boxes(box, frame_wh)
        if b.shape[0] != 1:
            raise PromptError(f"one box per call, got {b.shape[0]}")
        parts_c.append(b.reshape(1, 2, 2))
        parts_l.append(np.array([[2, 3]], dtype=np.int32))
    if points is not None:
        c, lab = check_points(points, labels, frame_wh)
        if c.shape[0] != 1:
            raise PromptError(f"points must be (N, 2) for one object, got shape {c.shape}")
        parts_c.append(c)
        parts_l.append(lab)
    coords = torch.from_numpy(np.concatenate(parts_c, axis=1)).to(device)
    coords = coords / torch.tensor(frame_wh, device=device) * image_size
    return coords, torch.from_numpy(np.concatenate(parts_l, axis=1)).to(device)


class TrackingCore:
    """The model, the memory policy and output hole filling, applied to sessions.

    Args:
        model: the ``SAM2Model``.
        bank: which memories and pointers a frame attends to.
        fill_hole_area: fill background holes up to this area (low-res mask pixels) in outputs (the
            memories are encoded from the unfilled masks, as officially).
    """

    def __init__(self, model: SAM2Model, bank: MemoryBank, fill_hole_area: float) -> None:
        if bank.num_maskmem > model.cfg.num_maskmem:
            raise ValueError(
                f"the memory bank has {bank.num_maskmem} memory slots but the model encodes only "
                f"{model.cfg.num_maskmem} temporal positions; use num_maskmem <= {model.cfg.num_maskmem}"
            )
        self.model = model
        self.bank = bank
        self.fill_hole_area = fill_hole_area
        self.step = TrackingStep(model)

    @property
    def fill_hole_area(self) -> float:
        return self._fill_hole_area

    @fill_hole_area.setter
    def fill_hole_area(self, value: float) -> None:
        if value < 0:
            raise ValueError(f"fill_hole_area must be >= 0, got {value}")
        self._fill_hole_area = value

    @property
    def device(self) -> torch.device:
        return self.model.device

    def encode(self, frame: torch.Tensor) -> ImageFeatures:
        """(1, 3, S, S) model input -> its features."""
        return self.model.encode_image(frame.to(self.device))

    def features(self, s: VideoSession, frame_idx: int) -> ImageFeatures:
        return s.features(frame_idx, self.encode)

    # ------------------------------------------------------------------ prompts
    def prompt(
        self,
        s: VideoSession,
        obj: ObjectTrack,
        frame_idx: int,
        *,
        points: tuple[torch.Tensor, torch.Tensor] | None = None,
        mask: torch.Tensor | None = None,
        corrections_as_cond: bool,
    ) -> bool:
        """Decode an object's prompts on a frame (its points, or a mask) and stage the output.

        On a frame not tracked yet (or with nothing in memory yet) the prompt is decoded without
        memory and becomes a prompted (conditioning) frame; on a tracked frame it is a correction
        that sees the object's memory, prompted too with ``corrections_as_cond`` or else an
        ordinary tracked frame. Clicks refine
        the frame's newest output (its logits as mask input). Returns whether the output is prompted.
        """
        memories = None
        if not obj.is_initial(frame_idx):
            reverse = obj.tracked[frame_idx]
            sel = obj.select(self.bank, frame_idx, reverse=reverse, num_frames=s.num_frames)
            # frames given as memory (add_mask_memory) can be tracked without any memory to see yet
            memories = [sel] if sel.memories else None
        initial = memories is None
        cond = initial or corrections_as_cond
        prev = None
        if points is not None:
            out = obj.latest(frame_idx, cond)
            if out is not None and out.pred_masks is not None:
                prev = out.pred_masks.to(self.device).clamp(-32.0, 32.0)
        f = self.features(s, frame_idx)
        res = self.step(f, memories=memories, points=points, mask=mask, prev_logits=prev)
        obj.stage(frame_idx, self._outputs(s, res)[0][0], cond=cond)
        return cond

    def commit(self, s: VideoSession, *, forget_radius: int = 0) -> None:
        """Encode every staged prompt output into a memory and store it (before tracking)."""

        def memory_of(frame_idx: int, out: FrameOutput) -> torch.Tensor:
            f = self.features(s, frame_idx)
            mem = self.step.prompt_memory(f, out.pred_masks.to(self.device), out.object_score)
            return mem.to(s.storage_dtype).to(s.storage_device)

        for obj in s.objects:
            obj.commit(memory_of, forget_radius=forget_radius)

    def remember(
        self, s: VideoSession, obj: ObjectTrack, frame_idx: int, mask: torch.Tensor, *, reverse: bool
    ) -> None:
        """Store a given (1, 1, S, S) binary mask as the object's tracked output on a frame, with the
        memory and pointer a mask prompt there would give (not a prompt: it is not a conditioning frame)."""
        f = self.features(s, frame_idx)
        res = self.step(f, mask=mask).result
        memory = self.step.prompt_memory(f, res.low_res_masks, res.object_score)
        outs, _ = self._outputs(s, StepOutput(res, None, memory))
        obj.store_tracked(frame_idx, outs[0], reverse=reverse)

    # ------------------------------------------------------------------ tracking
    def track(
        self, s: VideoSession, frame_idx: int, objects: list[ObjectTrack], *, reverse: bool
    ) -> dict[int, torch.Tensor]:
        """Track ``objects`` (each with a prompted frame) on a frame from their memories, store the
        outputs and memories; returns obj_id -> (1, 1, S/4, S/4) output logits on the device."""
        masks = {}
        for group in self._groups(s, objects, frame_idx, reverse):
            sels = [o.select(self.bank, frame_idx, reverse=reverse, num_frames=s.num_frames) for o in group]
            res = self.step(self.features(s, frame_idx), memories=sels, encode_memory=True)
            outs, pred = self._outputs(s, res)
            for obj, out, p in zip(group, outs, pred.split(1)):
                obj.store_tracked(frame_idx, out, reverse=reverse)
                masks[obj.obj_id] = p
        return masks

    def _groups(self, s: VideoSession, objects, frame_idx: int, reverse: bool) -> list[list[ObjectTrack]]:
        """Group objects whose memory selections have the same layout (one batched step each)."""
        groups: dict[tuple, list[ObjectTrack]] = {}
        for o in objects:
            sel = o.select(self.bank, frame_idx, reverse=reverse, num_frames=s.num_frames)
            key = (tuple(t for t, _ in sel.memories), tuple(t for t, _ in sel.pointers))
            groups.setdefault(key, []).append(o)
        return list(groups.values())

    # ------------------------------------------------------------------ outputs
    def gather(self, s: VideoSession, frame_idx: int, *, is_cond: bool | None) -> torch.Tensor:
        """(N_obj, 1, S/4, S/4) newest logits of every object on a frame (``NO_OBJECT_SCORE`` where
        none): with ``is_cond`` as the official predictor reports a prompt's frame (staged outputs of
        that kind only), with None the newest of any kind."""
        side = self.model.cfg.low_res_mask_size
        out = torch.full((len(s.objects), 1, side, side), NO_OBJECT_SCORE, device=self.device)
        for i, obj in enumerate(s.objects):
            o = obj.newest(frame_idx) if is_cond is None else obj.latest(frame_idx, is_cond)
            if o is not None and o.pred_masks is not None:
                out[i : i + 1] = o.pred_masks.to(self.device)
        return out

    def _outputs(self, s: VideoSession, res: StepOutput) -> tuple[list[FrameOutput], torch.Tensor]:
        """The step's per-object outputs in the session's storage, and the (hole-filled) output logits
        (B, 1, S/4, S/4) on the device."""
        r = res.result
        pred = self._fill(r.low_res_masks)
        mem = res.memory
        outs = [
            s.store(
                FrameOutput(
                    pred[i : i + 1],
                    r.obj_ptr[i : i + 1],
                    r.object_score[i : i + 1],
                    None if mem is None else mem[i : i + 1],
                )
            )
            for i in range(pred.shape[0])
        ]
        return outs, pred

    def _fill(self, low_res: torch.Tensor) -> torch.Tensor:
        return fill_holes(low_res, self.fill_hole_area) if self.fill_hole_area > 0 else low_res


class CorePredictor:
    """What a predictor built on a :class:`TrackingCore` (``self.core``) exposes of it."""

    core: TrackingCore

    @property
    def model(self) -> SAM2Model:
        return self.core.model

    @property
    def bank(self) -> MemoryBank:
        return self.core.bank

    @property
    def fill_hole_area(self) -> float:
        return self.core.fill_hole_area

    @fill_hole_area.setter
    def fill_hole_area(self, value: float) -> None:
        self.core.fill_hole_area = value

    @property
    def device(self) -> torch.device:
        return self.core.device

    @property
    def image_size(self) -> int:
        return self.model.image_size

    def _model_prompt(
        self, s: VideoSession, points, labels, box, clear_old_points: bool, normalize_coords: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A user's points/box on a frame of ``s`` (video pixels, or relative with
        ``normalize_coords=False``) -> (coords (1, N, 2), labels (1, N)) in model-input pixels."""
        wh = (float(s.video_width), float(s.video_height)) if normalize_coords else (1.0, 1.0)
        return prompt_to_model(
            points,
            labels,
            box,
            frame_wh=wh,
            image_size=self.image_size,
            device=self.device,
            append=not clear_old_points,
        )
