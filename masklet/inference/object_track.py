"""Per-object tracking state: an object's prompts and frame outputs, and the transitions between them.

Each tracked object has an ``ObjectTrack`` holding its prompts and its per-frame outputs, split as the
official predictor does into prompted ("cond") and tracked ("non_cond") frames, plus the pending
("staged") outputs of prompts not yet turned into memories. The state changes only through its
methods (add prompts on a frame, stage an output, commit, store a tracked frame, clear a frame, forget
memories outside a window); predictors read the fields. :class:`~.video_state.VideoSession` holds
the objects of one video or stream.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import torch

from .memory_bank import MemoryBank, MemorySelection

__all__ = ["FrameOutput", "ObjectTrack"]


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
