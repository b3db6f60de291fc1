"""A byte-bounded LRU of image-encoder features, shared by every media and request of a studio process.

Clicking around one frame, going back to a frame, or correcting a tracked frame reuses its features
instead of running the image encoder again; the bound keeps long videos and many open tabs from
exhausting memory (a 1024-px frame of the Tiny model holds about 20 MB of features in float32).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

from ..modeling.sam2 import ImageFeatures


def feature_bytes(f: ImageFeatures) -> int:
    tensors = [f.image_embed, *f.high_res, *f.pos]
    return sum(t.numel() * t.element_size() for t in tensors)


class FeatureCache:
    """``get(key)`` / ``put(key, features)`` with least-recently-used eviction above ``max_bytes``.

    A VideoSession given ``feature_cache=FrameFeatures(cache, media_id)`` reads and fills it.
    ``max_bytes=0`` disables caching. Thread-safe.
    """

    def __init__(self, max_bytes: int = 512 * 2**20) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError(f"max_bytes must be an int >= 0, got {max_bytes!r}")
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, tuple[ImageFeatures, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable) -> ImageFeatures | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item[0]

    def put(self, key: Hashable, features: ImageFeatures) -> None:
        size = feature_bytes(features)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if size > self.max_bytes:
                return
            self._items[key] = (features, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, n) = self._items.popitem(last=False)
                self._bytes -= n

    def drop(self, prefix: Hashable) -> None:
        """Forget every entry whose key is a tuple starting with ``prefix`` (e.g. a closed media)."""
        with self._lock:
            for key in [k for k in self._items if isinstance(k, tuple) and k[:1] == (prefix,)]:
                self._bytes -= self._items.pop(key)[1]


class FrameFeatures:
    """The view of a FeatureCache for one video: keys are frame indices (what VideoPredictor uses)."""

    def __init__(self, cache: FeatureCache, media_id: Hashable) -> None:
        self.cache, self.media_id = cache, media_id

    def get(self, frame_idx: int) -> ImageFeatures | None:
        return self.cache.get((self.media_id, frame_idx))

    def put(self, frame_idx: int, features: ImageFeatures) -> None:
        self.cache.put((self.media_id, frame_idx), features)
