"""``LRUCache``: a least-recently-used cache bounded by the summed size of its values and/or their count.

The one cache type of masklet: decoded video frames (:mod:`masklet.io.frames`), preprocessed frame
tensors (:mod:`masklet.io.frame_loader`), image-encoder features in the studio and in training, and
training's mask files and open videos. It sits below every package (it imports nothing of masklet).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["LRUCache", "nbytes_of"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def nbytes_of(value) -> int:
    """The ``nbytes`` of a numpy array or torch tensor (the default size of a cached value)."""
    return int(value.nbytes)


def _check_bound(value: int | None, name: str) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"{name} must be an int >= 0 (or None for no bound), got {value!r}")
    return value


class LRUCache(Generic[K, V]):
    """Values by key; beyond ``max_bytes`` (summed ``size(value)``) or ``max_items`` the least recently
    used go first.

    * ``get`` marks a value most recently used and counts a hit or a miss (``hits``, ``misses``);
      ``in`` and ``len`` look without touching the order.
    * ``put`` of a key already present replaces its value (and makes it the most recent). A value larger
      than ``max_bytes`` on its own is not kept (and nothing is evicted for it); the key then holds
      nothing.
    * ``on_evict(key, value)`` is called for each value pushed out by the bounds (not for values removed
      by ``pop``, ``remove_if``, ``clear`` or replaced by ``put``), after the cache's lock is released.
    * Values must not be None (``get`` returns None for a miss). Every method is thread-safe.

    Args:
        max_bytes: bound on the summed sizes (None: no bound); 0 keeps nothing of nonzero size.
        max_items: bound on the number of values (None: no bound).
        size: the size in bytes of a value; default ``value.nbytes`` (numpy arrays, torch tensors).
        on_evict: called with each evicted key and value, e.g. to close a file.
    """

    def __init__(
        self,
        max_bytes: int | None = None,
        *,
        max_items: int | None = None,
        size: Callable[[V], int] = nbytes_of,
        on_evict: Callable[[K, V], None] | None = None,
    ) -> None:
        self._max_bytes = _check_bound(max_bytes, "max_bytes")
        self._max_items = _check_bound(max_items, "max_items")
        self._size = size
        self._on_evict = on_evict
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._nbytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    @property
    def max_bytes(self) -> int | None:
        return self._max_bytes

    @property
    def max_items(self) -> int | None:
        return self._max_items

    @property
    def nbytes(self) -> int:
        """Summed size of the values held (never above ``max_bytes``)."""
        return self._nbytes

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def keys(self) -> list[K]:
        """The keys, least recently used first (a snapshot)."""
        with self._lock:
            return list(self._items)

    def get(self, key: K) -> V | None:
        """The value of ``key``, now the most recently used, or None."""
        with self._lock:
            entry = self._items.get(key)
            if entry is None:
                self.misses += 1
                return None
            self.hits += 1
            self._items.move_to_end(key)
            return entry[0]

    def put(self, key: K, value: V) -> bool:
        """Store ``value`` under ``key`` as the most recently used; False when it is too large to keep."""
        n = self._size(value)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._nbytes -= old[1]
            if self._max_bytes is not None and n > self._max_bytes:
                return False
            self._items[key] = (value, n)
            self._nbytes += n
            evicted = self._evict()
        self._notify(evicted)
        return True

    def pop(self, key: K) -> V | None:
        """Remove ``key``; its value, or None if it was not there."""
        with self._lock:
            entry = self._items.pop(key, None)
            if entry is None:
                return None
            self._nbytes -= entry[1]
            return entry[0]

    def remove_if(self, predicate: Callable[[K], bool]) -> int:
        """Remove every key for which ``predicate(key)`` is true; how many were removed."""
        with self._lock:
            doomed = [k for k in self._items if predicate(k)]
            for k in doomed:
                self._nbytes -= self._items.pop(k)[1]
            return len(doomed)

    def clear(self) -> None:
        """Remove everything (``on_evict`` is not called)."""
        with self._lock:
            self._items.clear()
            self._nbytes = 0

    def _evict(self) -> list[tuple[K, V]]:
        """Drop least recently used values until within the bounds; called with the lock held."""
        evicted = []
        while (self._max_bytes is not None and self._nbytes > self._max_bytes) or (
            self._max_items is not None and len(self._items) > self._max_items
        ):
            key, (value, n) = self._items.popitem(last=False)
            self._nbytes -= n
            evicted.append((key, value))
        return evicted

    def _notify(self, evicted: list[tuple[K, V]]) -> None:
        if self._on_evict is not None:
            for key, value in evicted:
                self._on_evict(key, value)

    def __repr__(self) -> str:
        bounds = f"max_bytes={self._max_bytes}, max_items={self._max_items}"
        return f"LRUCache({len(self)} items, {self._nbytes} bytes; {bounds})"
