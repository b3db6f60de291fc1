"""Which memories and object pointers a frame attends to.

SAM 2 conditions each new frame on a small memory bank per object: the prompted ("conditioning")
frames, the most recent tracked frames, and the object pointers of up to 16 frames. ``MemoryBank``
holds only that selection policy -- it reads the stored frame outputs and returns what to attend to,
so another policy (wider strides, motion-aware choices) is a new class with the same ``select``.

Frame outputs are anything with ``maskmem_features`` (None when not stored) and ``obj_ptr`` attributes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Out = TypeVar("Out")


@dataclass
class MemorySelection(Generic[Out]):
    """What one frame attends to.

    - ``memories``: (t_pos, output) pairs; t_pos 0 for prompted frames, 1..num_maskmem-1 for recent
      frames (num_maskmem-1 is the adjacent frame)
    - ``pointers``: (temporal position, output) pairs for the object pointers
    - ``max_pointers``: the normaliser of pointer positions
    """

    memories: list[tuple[int, Out]] = field(default_factory=list)
    pointers: list[tuple[int, Out]] = field(default_factory=list)
    max_pointers: int = 16


@dataclass(frozen=True)
class MemoryBank:
    """The official selection: every prompted frame (or the ``max_cond_frames`` closest), the
    ``num_maskmem - 1`` previous frames in tracking order (every ``stride``-th beyond the adjacent
    one), and pointers from prompted frames not in the future plus up to ``max_obj_ptrs - 1``
    previous frames.

    ``signed_pointer_positions`` (SAM 2.1) encodes whether a prompted frame lies before or after.
    """

    num_maskmem: int = 7
    max_obj_ptrs: int = 16
    max_cond_frames: int = -1
    stride: int = 1
    only_past_pointers: bool = True
    signed_pointer_positions: bool = True

    @classmethod
    def official(cls, cfg, **overrides) -> MemoryBank:
        """The official selection for a model config (``SAM2Model.cfg``); ``overrides`` change fields,
        e.g. ``num_maskmem=3`` attends to fewer recent frames (faster, see benchmarks/RESULTS.md)."""
        fields = {
            "num_maskmem": cfg.num_maskmem,
            "max_obj_ptrs": cfg.max_obj_ptrs_in_encoder,
            "only_past_pointers": cfg.only_obj_ptrs_in_the_past_for_eval,
            "signed_pointer_positions": cfg.traits.use_signed_tpos_enc_to_obj_ptrs,
        }
        if "num_maskmem" in overrides and not 1 <= overrides["num_maskmem"] <= cfg.num_maskmem:
            raise ValueError(
                f"num_maskmem must be 1..{cfg.num_maskmem} (the model has {cfg.num_maskmem} temporal "
                f"memory encodings), got {overrides['num_maskmem']}"
            )
        return cls(**{**fields, **overrides})

    def __post_init__(self) -> None:
        for name in ("num_maskmem", "max_obj_ptrs", "stride"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"MemoryBank.{name} must be an int >= 1, got {getattr(self, name)!r}")
        if self.max_cond_frames != -1 and self.max_cond_frames < 2:
            raise ValueError(
                f"MemoryBank.max_cond_frames must be -1 (all) or >= 2, got {self.max_cond_frames}"
            )

    def select(
        self,
        frame_idx: int,
        cond: Mapping[int, Out],
        non_cond: Mapping[int, Out],
        reverse: bool = False,
        num_frames: int | None = None,
    ) -> MemorySelection[Out]:
        """The selection for ``frame_idx`` given one object's prompted (``cond``) and tracked
        (``non_cond``) frame outputs; ``num_frames`` None means an unbounded stream."""
        chosen, spare = self._closest_cond(frame_idx, cond)
        sel: MemorySelection[Out] = MemorySelection(memories=[(0, out) for out in chosen.values()])
        for t_pos in range(1, self.num_maskmem):
            t = self.recent_frame(frame_idx, self.num_maskmem - t_pos, reverse)
            out = non_cond.get(t, spare.get(t))
            if out is not None and getattr(out, "maskmem_features", None) is not None:
                sel.memories.append((t_pos, out))

        max_ptrs = self.max_obj_ptrs if num_frames is None else min(num_frames, self.max_obj_ptrs)
        sel.max_pointers = max_ptrs
        sign = -1 if reverse else 1
        for t, out in chosen.items():
            if self.only_past_pointers and (t < frame_idx if reverse else t > frame_idx):
                continue
            pos = (frame_idx - t) * sign if self.signed_pointer_positions else abs(frame_idx - t)
            sel.pointers.append((pos, out))
        for dt in range(1, max_ptrs):
            t = frame_idx + dt if reverse else frame_idx - dt
            if t < 0 or (num_frames is not None and t >= num_frames):
                break
            out = non_cond.get(t, spare.get(t))
            if out is not None:
                sel.pointers.append((dt, out))
        return sel

    def recent_frame(self, frame_idx: int, t_rel: int, reverse: bool) -> int:
        """The frame ``t_rel`` memory slots before ``frame_idx`` in tracking order."""
        if t_rel == 1:
            return frame_idx + 1 if reverse else frame_idx - 1
        r = self.stride
        if reverse:
            return -(-(frame_idx + 2) // r) * r + (t_rel - 2) * r
        return ((frame_idx - 2) // r) * r - (t_rel - 2) * r

    def window(self, frame_idx: int, reverse: bool) -> range:
        """Frames whose memories or pointers a frame at ``frame_idx`` may use (recent ones only)."""
        reach = max(self.max_obj_ptrs - 1, self.stride * (self.num_maskmem - 1))
        return range(frame_idx, frame_idx + reach + 1) if reverse else range(frame_idx - reach, frame_idx + 1)

    def _closest_cond(self, frame_idx: int, cond: Mapping[int, Out]) -> tuple[dict, dict]:
        if self.max_cond_frames == -1 or len(cond) <= self.max_cond_frames:
            return dict(cond), {}
        chosen: dict[int, Out] = {}
        before = max((t for t in cond if t < frame_idx), default=None)
        after = min((t for t in cond if t >= frame_idx), default=None)
        for t in (before, after):
            if t is not None:
                chosen[t] = cond[t]
        rest = sorted((t for t in cond if t not in chosen), key=lambda t: abs(t - frame_idx))
        for t in rest[: self.max_cond_frames - len(chosen)]:
            chosen[t] = cond[t]
        return chosen, {t: o for t, o in cond.items() if t not in chosen}
