"""One tracking step for a batch of objects on one frame, shared by the video and stream predictors.

``FrameTracker._track`` is the official ``track_step``: condition the frame's features on each
object's memory bank (or not, on a first prompted frame), decode masks with the prompts, and encode
the result into a new memory. Sessions provide ``_features(session, frame_idx)`` (cached image
features), ``num_frames`` (None for streams) and per-object ``cond`` / ``non_cond`` outputs.
"""

from __future__ import annotations

import numpy as np
import torch

from ..modeling.sam2 import ImageFeatures, SAM2Model
from .memory_bank import MemoryBank, MemorySelection
from .postprocess import fill_holes
from .prompts import PromptError, check_boxes, check_points
from .video_state import FrameOutput


class FrameTracker:
    def __init__(self, model: SAM2Model, bank: MemoryBank, fill_hole_area: float) -> None:
        if fill_hole_area < 0:
            raise ValueError(f"fill_hole_area must be >= 0, got {fill_hole_area}")
        if bank.num_maskmem > model.cfg.num_maskmem:
            raise ValueError(
                f"the memory bank has {bank.num_maskmem} memory slots but the model encodes only "
                f"{model.cfg.num_maskmem} temporal positions; use num_maskmem <= {model.cfg.num_maskmem}"
            )
        self.model = model
        self.bank = bank
        self.fill_hole_area = fill_hole_area

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def image_size(self) -> int:
        return self.model.image_size

    # ------------------------------------------------------------------ prompt checks
    @staticmethod
    def _check_frame(s, frame_idx) -> None:
        n = s.num_frames
        ok = isinstance(frame_idx, (int, np.integer)) and not isinstance(frame_idx, bool)
        if not ok or not 0 <= frame_idx < n:
            raise PromptError(
                f"frame_idx must be an integer in [0, {n - 1}] for this {n}-frame video, got {frame_idx!r}"
            )

    def _prompt_points(self, s, points, labels, box, clear_old_points: bool, normalize: bool):
        """User points/box -> (coords (1, N, 2) float32 in model pixels, labels (1, N) int32)."""
        if (points is None) != (labels is None):
            raise PromptError("points and labels must be given together (one label per point)")
        if points is None and box is None:
            raise PromptError("give points (with labels) or a box")
        if box is not None and not clear_old_points:
            raise PromptError(
                "a box must come before any click on a frame: use clear_old_points=True with a box"
            )
        wh = (float(s.video_width), float(s.video_height)) if normalize else (1.0, 1.0)
        parts_c, parts_l = [], []
        if box is not None:
            b = check_boxes(box, wh)
            if b.shape[0] != 1:
                raise PromptError(f"one box per call, got {b.shape[0]}")
            parts_c.append(b.reshape(1, 2, 2))
            parts_l.append(np.array([[2, 3]], dtype=np.int32))
        if points is not None:
            c, lab = check_points(points, labels, wh)
            if c.shape[0] != 1:
                raise PromptError(f"points must be (N, 2) for one object, got shape {c.shape}")
            parts_c.append(c)
            parts_l.append(lab)
        coords = torch.from_numpy(np.concatenate(parts_c, axis=1)).to(self.device)
        coords = coords / torch.tensor(wh, device=self.device) * self.image_size
        return coords, torch.from_numpy(np.concatenate(parts_l, axis=1)).to(self.device)

    # ------------------------------------------------------------------ tracking
    def _use_multimask(self, is_init: bool, points) -> bool:
        cfg = self.model.cfg
        n = 0 if points is None else points[1].shape[1]
        return (
            cfg.multimask_output_in_sam
            and (is_init or cfg.multimask_output_for_tracking)
            and cfg.multimask_min_pt_num <= n <= cfg.multimask_max_pt_num
        )

    def _track(self, s, objs, frame_idx, is_init, reverse, points, mask, run_mem, prev):
        """Track ``objs`` on a frame. Returns (their FrameOutputs, (B, 1, S/4, S/4) output logits)."""
        m = self.model
        b = len(objs)
        f = _expand(self._features(s, frame_idx), b)
        if mask is not None:
            res = m.mask_as_output(f.image_embed, f.high_res, mask)
        else:
            if is_init:
                pix = m.embed_without_memory(f.image_embed)
            else:
                sels = [self.bank.select(frame_idx, o.cond, o.non_cond, reverse, s.num_frames) for o in objs]
                mems, ptrs = _stack(sels)
                pix = m.attend_to_memories(f.image_embed, f.pos[-1], mems, ptrs, sels[0].max_pointers)
            res = m.segment_frame(pix, f.high_res, points, prev, self._use_multimask(is_init, points))
        mem = None
        if run_mem:
            mem = self._memory(s, f, res.high_res_masks, res.object_score, binarize=points is not None)
        pred = self._fill(res.low_res_masks)
        outs = [
            self._store(
                FrameOutput(
                    pred[i : i + 1],
                    res.obj_ptr[i : i + 1],
                    res.object_score[i : i + 1],
                    None if mem is None else mem[i : i + 1],
                ),
                s,
            )
            for i in range(b)
        ]
        return outs, pred

    def _memory(self, s, feats: ImageFeatures, high_res_masks, object_score, binarize: bool) -> torch.Tensor:
        b = high_res_masks.shape[0]
        embed = _expand(feats, b).image_embed
        mem, _ = self.model.encode_memory(embed, high_res_masks, object_score, binarize=binarize)
        return mem

    def _fill(self, low_res: torch.Tensor) -> torch.Tensor:
        return fill_holes(low_res, self.fill_hole_area) if self.fill_hole_area > 0 else low_res

    @staticmethod
    def _store(out: FrameOutput, s) -> FrameOutput:
        """Move an output to the session's storage (memories in the storage dtype)."""
        if out.maskmem_features is not None:
            out.maskmem_features = out.maskmem_features.to(s.storage_dtype).to(s.storage_device)
        out.pred_masks = out.pred_masks.to(s.storage_device)
        return out

    def _batches(self, s, objs, frame_idx: int, reverse: bool):
        """Group objects whose memory selections have the same layout (one batched step each)."""
        groups: dict[tuple, list] = {}
        for o in objs:
            sel = self.bank.select(frame_idx, o.cond, o.non_cond, reverse, s.num_frames)
            key = (tuple(t for t, _ in sel.memories), tuple(t for t, _ in sel.pointers))
            groups.setdefault(key, []).append(o)
        return list(groups.values())


def _expand(f: ImageFeatures, b: int) -> ImageFeatures:
    if f.image_embed.shape[0] == b:
        return f
    return ImageFeatures(
        f.image_embed.expand(b, -1, -1, -1),
        [h.expand(b, -1, -1, -1) for h in f.high_res],
        [p.expand(b, -1, -1, -1) for p in f.pos],
    )


def _stack(sels: list[MemorySelection]):
    """Selections of the same layout -> batched (t_pos, (B, 64, h, w)) and (pos, (B, 256)) lists."""
    first = sels[0]
    mems = [
        (
            t,
            torch.cat([sel.memories[k][1].maskmem_features for sel in sels]).to(
                first.memories[k][1].obj_ptr.device
            ),
        )
        for k, (t, _) in enumerate(first.memories)
    ]
    ptrs = [
        (t, torch.cat([sel.pointers[k][1].obj_ptr for sel in sels]))
        for k, (t, _) in enumerate(first.pointers)
    ]
    return mems, ptrs
