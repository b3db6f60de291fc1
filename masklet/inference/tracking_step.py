"""The one tracking step: a frame's features, what it remembers, and its prompts -> its result.

Every video path calls :class:`TrackingStep`: the video predictor (prompts and propagation), the stream
tracker and the training rollout (with gradients). It is the official ``track_step``:

1. condition the frame's stride-16 features on the objects' memory selections (memory attention), or,
   on an initial frame (no memory given), add the learned no-memory embedding;
2. decode the prompts: a mask prompt is taken as the output (:meth:`SAM2Model.mask_as_output`); points
   and boxes (or nothing, on tracked frames) go through the prompt encoder and mask decoder, with the
   previous low-resolution logits as mask input when refining; with several candidates the model's
   :meth:`~SAM2Model.select_output` keeps the best, by the config's ``multimask_for`` rule;
3. optionally encode the result into a memory (binarised when the frame was clicked and the config's
   ``binarize_mask_from_pts_for_mem_enc`` is on, as the official video builder sets it).

The step holds no state and takes no decisions about what to remember: that is the session's
(:mod:`.video_state`) and the memory bank's (:mod:`.memory_bank`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..modeling.sam2 import DecoderOutput, FrameResult, ImageFeatures, SAM2Model, points_or_padding
from .memory_bank import MemorySelection

__all__ = ["StepOutput", "TrackingStep", "stack_selections"]


@dataclass
class StepOutput:
    """The result of one step for B objects.

    - ``result``: the chosen mask logits (B, 1, S/4, S/4) (``NO_OBJECT_SCORE`` where absent), the same
      upscaled to (B, 1, S, S), the object pointer (B, 256) and the occlusion logit (B, 1)
    - ``decoded``: the raw decoder output (all candidates, before absent objects' masks are replaced;
      what training supervises); None for a mask prompt, which is not decoded into its output
    - ``memory``: (B, 64, S/16, S/16) memory features when asked for, else None
    """

    result: FrameResult
    decoded: DecoderOutput | None
    memory: torch.Tensor | None = None


def stack_selections(
    selections: Sequence[MemorySelection], device: torch.device
) -> tuple[list[tuple[int, torch.Tensor]], list[tuple[int, torch.Tensor]], int]:
    """Selections of the same layout (the same temporal positions, one per object or one for a batch
    of objects) -> the batched memories [(t_pos, (B, 64, h, w))] and pointers [(pos, (B, 256))] that
    :meth:`SAM2Model.attend_to_memories` takes, plus the pointer-position normaliser."""
    first = selections[0]
    mems = [
        (t, torch.cat([sel.memories[k][1].maskmem_features for sel in selections]).to(device))
        for k, (t, _) in enumerate(first.memories)
    ]
    ptrs = [
        (t, torch.cat([sel.pointers[k][1].obj_ptr for sel in selections]).to(device))
        for k, (t, _) in enumerate(first.pointers)
    ]
    return mems, ptrs, first.max_pointers


class TrackingStep:
    """Runs the tracking step of :class:`SAM2Model` (see the module docstring)."""

    def __init__(self, model: SAM2Model) -> None:
        self.model = model

    def __call__(
        self,
        features: ImageFeatures,
        *,
        memories: Sequence[MemorySelection] | None = None,
        points: tuple[torch.Tensor, torch.Tensor] | None = None,
        mask: torch.Tensor | None = None,
        prev_logits: torch.Tensor | None = None,
        encode_memory: bool = False,
    ) -> StepOutput:
        """One frame for B objects.

        Args:
            features: the frame's features, batch 1 (shared by the objects) or B.
            memories: what each object attends to (one selection per object, or one selection whose
                outputs are batched over the B objects); None on an initial frame (no memory).
            points: (coords (B, N, 2) float32 in model-input pixels, labels (B, N) int32: 1 object,
                0 background, 2/3 box corners), or None.
            mask: (B, 1, S, S) binary mask prompt, taken as the output (exclusive with points).
            prev_logits: (B, 1, S/4, S/4) previous low-res logits, the decoder's mask input when
                refining with more clicks.
            encode_memory: also encode the result into a memory (binarised when ``points`` were given
                and the config's ``binarize_mask_from_pts_for_mem_enc`` is on).
        """
        if mask is not None and points is not None:
            raise ValueError("a tracking step takes a mask prompt or points, not both")
        m = self.model
        b = self._batch(features, memories, points, mask)
        f = features.expand(b)
        decoded = None
        if mask is not None:
            res = m.mask_as_output(f.image_embed, f.high_res, mask)
        else:
            if memories is None:
                pix = m.embed_without_memory(f.image_embed)
            else:
                mems, ptrs, max_ptrs = stack_selections(memories, f.image_embed.device)
                pix = m.attend_to_memories(f.image_embed, f.pos[-1], mems, ptrs, max_ptrs)
            num_points = 0 if points is None else points[1].shape[1]
            multimask = m.cfg.multimask_for(initial=memories is None, num_points=num_points)
            decoded = m.decode(pix, f.high_res, points_or_padding(points, pix), prev_logits, multimask)
            res = m.select_output(decoded, multimask)
        memory = None
        if encode_memory:
            clicked = points is not None and m.cfg.binarize_mask_from_pts_for_mem_enc
            memory = self.memory(f, res.high_res_masks, res.object_score, binarize=clicked)
        return StepOutput(res, decoded, memory)

    def memory(
        self,
        features: ImageFeatures,
        high_res_masks: torch.Tensor,
        object_score: torch.Tensor,
        *,
        binarize: bool,
    ) -> torch.Tensor:
        """(B, 64, h, w) memory features of a frame's mask logits (B, 1, S, S); ``binarize`` thresholds
        them at 0 first (prompted frames)."""
        b = high_res_masks.shape[0]
        embed = features.expand(b).image_embed
        mem, _ = self.model.encode_memory(embed, high_res_masks, object_score, binarize=binarize)
        return mem

    def prompt_memory(
        self, features: ImageFeatures, low_res_masks: torch.Tensor, object_score: torch.Tensor
    ) -> torch.Tensor:
        """The memory of a prompted frame once its prompts are final: its (B, 1, S/4, S/4) output
        logits upscaled, and binarised unless the config's ``binarize_mask_from_pts_for_mem_enc`` is off
        (as the official predictor consolidates prompted frames, clicked or masked)."""
        m = self.model
        high = m.upscale_masks(low_res_masks, m.image_size)
        return self.memory(features, high, object_score, binarize=m.cfg.binarize_mask_from_pts_for_mem_enc)

    @staticmethod
    def _batch(features: ImageFeatures, memories, points, mask) -> int:
        if points is not None:
            return points[0].shape[0]
        if mask is not None:
            return mask.shape[0]
        if memories is not None:
            return sum(_objects_in(sel) for sel in memories)
        return features.batch_size


def _objects_in(sel: MemorySelection) -> int:
    """How many objects a selection's outputs hold (their batch dimension)."""
    if not sel.memories:
        raise ValueError("a memory selection without any memory: an object needs a prompted frame first")
    return sel.memories[0][1].obj_ptr.shape[0]
