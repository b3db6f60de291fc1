"""A byte-bounded LRU of image-encoder features, shared by every media and request of a studio process.

Clicking around one frame, going back to a frame, or correcting a tracked frame reuses its features
instead of running the image encoder again; the bound keeps long videos and many open tabs from
exhausting memory (a 1024-px frame of the Tiny model holds about 20 MB of features in float32).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING

from ..lru import LRUCache

if TYPE_CHECKING:  # features come from the predictors' sessions; the studio never makes them
    from ..modeling.sam2 import ImageFeatures


def feature_bytes(f: ImageFeatures) -> int:
    """Bytes held by one frame's features: the embedding, the high-resolution maps, the encodings."""
    return f.nbytes()


class FeatureCache(LRUCache[Hashable, "ImageFeatures"]):
    """Image features by key, least recently used first out above ``max_bytes`` (an
    :class:`~masklet.lru.LRUCache`: ``get(key)`` / ``put(key, features)``, thread-safe).

    Keys are ``(media_id, frame_idx)``: a VideoSession given ``feature_cache=FrameFeatures(cache,
    media_id)`` reads and fills it. ``max_bytes=0`` disables caching.
    """

    def __init__(self, max_bytes: int = 512 * 2**20) -> None:
        if max_bytes is None:
            raise ValueError(
                "max_bytes must be an int >= 0, got None; the studio's feature cache needs a bound"
            )
        super().__init__(max_bytes, size=feature_bytes)

    def drop(self, prefix: Hashable) -> None:
        """Forget every entry whose key is a tuple starting with ``prefix`` (e.g. a closed media)."""
        self.remove_if(lambda key: isinstance(key, tuple) and key[:1] == (prefix,))


class FrameFeatures:
    """The view of a FeatureCache for one video: keys are frame indices (what VideoPredictor uses)."""

    def __init__(self, cache: FeatureCache, media_id: Hashable) -> None:
        self.cache, self.media_id = cache, media_id

    def get(self, frame_idx: int) -> ImageFeatures | None:
        return self.cache.get((self.media_id, frame_idx))

    def put(self, frame_idx: int, features: ImageFeatures) -> None:
        self.cache.put((self.media_id, frame_idx), features)
