"""Image features of a clip's frames: encoded with gradients, without, or from a cache.

With a trainable image encoder every clip's frames are encoded anew (optionally under activation
checkpointing, which recomputes the encoder in the backward pass instead of storing its activations).
With a frozen one the encoder runs without gradients, and ``cache_features`` keeps each frame's
features (per augmentation variant) in memory, so after the first pass over the data a training step
costs no image encoding at all. The decoder's high-resolution projections (``conv_s0``/``conv_s1``)
are part of :meth:`SAM2Model.encode_image` and so are frozen together with the encoder.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.checkpoint import checkpoint

from ..lru import LRUCache
from ..modeling.sam2 import ImageFeatures, SAM2Model
from .clips import Clip

__all__ = ["ClipEncoder", "TrainingFeatureCache"]

CacheKey = tuple[int, int, int, int]  # source, item, augmentation variant, annotated frame


def _tensors_bytes(entry: tuple[torch.Tensor, list[torch.Tensor]]) -> int:
    embed, high_res = entry
    return sum(t.numel() * t.element_size() for t in [embed, *high_res])


class TrainingFeatureCache:
    """Image features of training frames by (source, item, augmentation variant, annotated frame): batch
    1 each, least recently used first out beyond ``capacity_bytes``.

    The position encodings are the same for every frame: they are kept once (``pos``), not per entry.
    """

    def __init__(self, capacity_bytes: int) -> None:
        self._lru: LRUCache[CacheKey, tuple[torch.Tensor, list[torch.Tensor]]] = LRUCache(
            capacity_bytes, size=_tensors_bytes
        )
        self.entry_bytes = 0  # size of one frame's features, once known
        self.pos: list[torch.Tensor] | None = None

    @property
    def capacity(self) -> int:
        return self._lru.max_bytes

    @property
    def nbytes(self) -> int:
        return self._lru.nbytes

    @property
    def hits(self) -> int:
        return self._lru.hits

    @property
    def misses(self) -> int:
        return self._lru.misses

    def __len__(self) -> int:
        return len(self._lru)

    def get(self, key: CacheKey) -> ImageFeatures | None:
        entry = self._lru.get(key)
        if entry is None:
            return None
        return ImageFeatures(entry[0], list(entry[1]), self.pos)

    def put(self, key: CacheKey, feats: ImageFeatures) -> None:
        if self.pos is None:
            self.pos = [p.clone() for p in feats.pos]
        entry = (feats.image_embed.clone(), [h.clone() for h in feats.high_res])
        self.entry_bytes = _tensors_bytes(entry)
        self._lru.put(key, entry)


class ClipEncoder:
    """Gives the per-frame :class:`ImageFeatures` (batch 1 each) of a clip.

    images_for: ``(clip, frame positions) -> (K, 3, S, S)`` model inputs of those frames of the clip.
    """

    def __init__(
        self,
        model: SAM2Model,
        images_for: Callable[[Clip, list[int]], torch.Tensor],
        trainable: bool,
        cache: TrainingFeatureCache | None = None,
        checkpointing: bool = False,
    ) -> None:
        if cache is not None and trainable:
            raise ValueError(
                "features of a trainable image encoder cannot be cached; freeze it or drop the cache"
            )
        self.model = model
        self.images_for = images_for
        self.trainable = trainable
        self.cache = cache
        self.checkpointing = checkpointing

    def __call__(self, clip: Clip) -> list[ImageFeatures]:
        device = self.model.device
        if self.cache is None or clip.spec.variant is None:
            images = (
                clip.images
                if clip.images is not None
                else self.images_for(clip, list(range(clip.num_frames)))
            )
            return self._encode(images.to(device))
        spec = clip.spec
        keys = [(spec.source, spec.item, spec.variant, t) for t in spec.frames]
        found = [self.cache.get(k) for k in keys]
        missing = [i for i, f in enumerate(found) if f is None]
        if missing:
            images = self.images_for(clip, missing).to(device)
            for i, image in zip(missing, images):
                # one frame at a time: a frame's cached features must not depend on which other
                # frames missed the cache with it (batched matmuls may round differently)
                found[i] = self._encode(image[None])[0]
                self.cache.put(keys[i], found[i])
        return found  # type: ignore[return-value]

    def _encode(self, images: torch.Tensor) -> list[ImageFeatures]:
        if not self.trainable:
            with torch.no_grad():
                feats = self.model.encode_image(images)
            return [feats.select(i) for i in range(images.shape[0])]
        if self.checkpointing:
            return [
                checkpoint(self.model.encode_image, images[i : i + 1], use_reentrant=False)
                for i in range(images.shape[0])
            ]
        feats = self.model.encode_image(images)
        return [feats.select(i) for i in range(images.shape[0])]
