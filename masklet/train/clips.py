"""Clip sampling: which frames and objects a training step sees, and their augmented tensors.

A clip is ``clip_frames`` consecutive annotated frames of one video (fewer near its end; one for an
image) starting on a frame where some object is visible, with up to ``max_objects`` of the objects
visible on that first frame. Sources are drawn by their weights, items uniformly.

With cached features (:class:`~masklet.train.features.TrainingFeatureCache`) each video has a fixed set
of ``variants`` augmentations (variant 0: none), so a frame's features can be reused by every clip that
uses the same variant; otherwise every clip draws its own augmentation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .augment import AugParams, augment_frames, augment_masks, draw_params, identity
from .config import AugmentConfig
from .data import DataError, Source

__all__ = ["Clip", "ClipSampler", "ClipSpec"]

_MAX_TRIES = 50


@dataclass(frozen=True)
class ClipSpec:
    """What to load: ``frames`` (annotated frame indices) and ``objects`` of item ``item`` of source
    ``source``, with augmentation ``aug``; ``variant`` is the cached-augmentation index or None."""

    source: int
    item: int
    frames: tuple[int, ...]
    objects: tuple[int, ...]
    aug: AugParams
    variant: int | None


@dataclass
class Clip:
    """A loaded clip: ``masks`` (T, N, S, S) bool ground truth at model resolution, every object
    visible on frame 0. ``images`` (T, 3, S, S) float32 normalised input, or None until
    :meth:`ClipSampler.load_images` (not needed when the features are cached)."""

    spec: ClipSpec
    masks: torch.Tensor
    images: torch.Tensor | None = None

    @property
    def num_frames(self) -> int:
        return int(self.masks.shape[0])

    @property
    def visible(self) -> np.ndarray:
        """(T, N) bool: object n has a pixel on frame t."""
        return self.masks.flatten(2).any(dim=2).numpy()


class ClipSampler:
    """Draws and loads clips from ``sources`` (weights from their configs) at ``image_size``.

    variants: None draws a fresh augmentation per clip; an int V fixes V augmentations per video
    (variant 0 unaugmented, the others drawn from ``seed``) for feature caching.
    """

    def __init__(
        self,
        sources: list[Source],
        image_size: int,
        clip_frames: int,
        max_objects: int,
        augment: AugmentConfig,
        variants: int | None = None,
        seed: int = 0,
    ) -> None:
        if not sources:
            raise DataError("no training data: add at least one entry to data.sources")
        self.sources = sources
        self.image_size = image_size
        self.clip_frames = clip_frames
        self.max_objects = max_objects
        self.augment = augment
        self.variants = variants
        self.seed = seed
        w = np.array([s.cfg.weight for s in sources], dtype=np.float64)
        self.weights = w / w.sum()
        # frames where some object is visible: the possible clip starts of every item
        self.starts = [[np.flatnonzero(it.visible.any(axis=1)) for it in s.items] for s in sources]

    def variant_params(self, source: int, item: int, variant: int) -> AugParams:
        """The fixed augmentation ``variant`` of an item (0: none), the same in every run and process."""
        if variant == 0 or not self.augment.enabled:
            return identity()
        rng = np.random.default_rng([self.seed, 7, source, item, variant])
        return draw_params(rng, self.augment)

    def draw(self, rng: np.random.Generator) -> ClipSpec:
        """A random clip specification (no file is read)."""
        s = int(rng.choice(len(self.sources), p=self.weights))
        src = self.sources[s]
        i = int(rng.integers(len(src.items)))
        item = src.items[i]
        start = int(rng.choice(self.starts[s][i]))
        frames = tuple(range(start, min(start + self.clip_frames, item.num_frames)))
        ids = np.array(item.object_ids)[item.visible[start]]
        k = min(self.max_objects, ids.size)
        objects = tuple(int(o) for o in sorted(rng.choice(ids, size=k, replace=False)))
        if self.variants is None:
            variant, aug = None, draw_params(rng, self.augment)
        else:
            variant = int(rng.integers(self.variants))
            aug = self.variant_params(s, i, variant)
        return ClipSpec(s, i, frames, objects, aug, variant)

    def sample(self, rng: np.random.Generator, with_images: bool = True) -> Clip:
        """Draw and load a clip whose objects are all visible on its first frame after augmentation
        (objects pushed out of frame 0 by the augmentation are dropped; another clip is drawn if none
        is left)."""
        for _ in range(_MAX_TRIES):
            clip = self.load(self.draw(rng), with_images=False)
            if clip is not None:
                return self.load_images(clip) if with_images else clip
        raise DataError(
            f"{_MAX_TRIES} clips in a row had no object left on their first frame after augmentation; "
            "reduce data.augment.scale / translate / rotate, or check that the masks are not tiny"
        )

    def load(self, spec: ClipSpec, with_images: bool = True) -> Clip | None:
        """Read and augment a clip's masks (and frames); None if no object survives on frame 0."""
        src = self.sources[spec.source]
        raw = np.stack([src.masks(spec.item, t, spec.objects) for t in spec.frames])
        masks = augment_masks(raw, self.image_size, spec.aug)
        keep = masks[0].flatten(1).any(dim=1)
        if not bool(keep.any()):
            return None
        if not bool(keep.all()):
            kept = tuple(o for o, k in zip(spec.objects, keep.tolist()) if k)
            spec = ClipSpec(spec.source, spec.item, spec.frames, kept, spec.aug, spec.variant)
            masks = masks[:, keep]
        clip = Clip(spec, masks)
        return self.load_images(clip) if with_images else clip

    def load_images(self, clip: Clip) -> Clip:
        """Fill ``clip.images`` (reads and augments its frames)."""
        if clip.images is None:
            spec = clip.spec
            src = self.sources[spec.source]
            frames = [src.frame(spec.item, t) for t in spec.frames]
            clip.images = augment_frames(frames, self.image_size, spec.aug)
        return clip

    def frame_images(self, spec: ClipSpec, frames: list[int]) -> torch.Tensor:
        """(len(frames), 3, S, S) model input of some frames of a clip (for features not yet cached)."""
        src = self.sources[spec.source]
        return augment_frames([src.frame(spec.item, t) for t in frames], self.image_size, spec.aug)
