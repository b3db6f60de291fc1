"""LRUCache: eviction order, byte accounting, oversize values, the item bound, replacement, threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from masklet.lru import LRUCache


def arr(n: int, value: int = 0) -> np.ndarray:
    return np.full(n, value, dtype=np.uint8)  # n bytes


def test_least_recently_used_goes_first_and_get_refreshes():
    cache: LRUCache[str, np.ndarray] = LRUCache(30)
    for k in "abc":
        cache.put(k, arr(10))
    assert cache.keys() == ["a", "b", "c"]
    assert cache.get("a") is not None  # a is now the most recent: b goes next
    cache.put("d", arr(10))
    assert cache.keys() == ["c", "a", "d"] and "b" not in cache
    cache.put("e", arr(10))
    assert cache.keys() == ["a", "d", "e"]


def test_contains_and_len_do_not_change_the_order():
    cache: LRUCache[str, np.ndarray] = LRUCache(20)
    cache.put("a", arr(10))
    cache.put("b", arr(10))
    assert "a" in cache and len(cache) == 2
    cache.put("c", arr(10))
    assert cache.keys() == ["b", "c"]


def test_bytes_are_summed_from_each_value_and_freed_on_every_removal():
    cache: LRUCache[int, object] = LRUCache(100)
    cache.put(1, arr(30))
    cache.put(2, torch.zeros(5))  # 20 bytes: torch tensors count their nbytes too
    assert cache.nbytes == 50
    cache.put(3, arr(40))
    assert cache.nbytes == 90
    cache.put(4, arr(30))  # 120 > 100: key 1 (30 bytes) goes
    assert cache.keys() == [2, 3, 4] and cache.nbytes == 90
    assert cache.pop(3).nbytes == 40 and cache.nbytes == 50
    assert cache.pop(3) is None and cache.nbytes == 50
    assert cache.remove_if(lambda k: k == 2) == 1 and cache.nbytes == 30
    cache.clear()
    assert cache.nbytes == 0 and len(cache) == 0


def test_one_value_can_push_out_several():
    cache: LRUCache[int, np.ndarray] = LRUCache(100)
    for k in range(5):
        cache.put(k, arr(20))
    cache.put(9, arr(70))
    assert cache.keys() == [4, 9] and cache.nbytes == 90


def test_a_value_larger_than_the_bound_is_not_kept_and_evicts_nothing():
    cache: LRUCache[str, np.ndarray] = LRUCache(25)
    cache.put("a", arr(10))
    cache.put("b", arr(10))
    assert cache.put("huge", arr(26)) is False
    assert "huge" not in cache and cache.keys() == ["a", "b"] and cache.nbytes == 20
    # replacing a key with an oversize value leaves the key empty rather than stale
    assert cache.put("a", arr(26)) is False
    assert "a" not in cache and cache.nbytes == 10
    assert cache.put("exact", arr(15)) is True and cache.nbytes == 25


def test_zero_bytes_keeps_nothing():
    cache: LRUCache[int, np.ndarray] = LRUCache(0)
    assert cache.put(0, arr(1)) is False and len(cache) == 0 and cache.max_bytes == 0


def test_items_bound_alone_and_with_bytes():
    cache: LRUCache[int, np.ndarray] = LRUCache(max_items=2)
    for k in range(3):
        cache.put(k, arr(1000))
    assert cache.keys() == [1, 2] and cache.nbytes == 2000 and cache.max_bytes is None
    both: LRUCache[int, np.ndarray] = LRUCache(25, max_items=3)
    for k in range(3):
        both.put(k, arr(5))
    both.put(3, arr(5))  # the item bound binds first
    assert both.keys() == [1, 2, 3]
    both.put(4, arr(20))  # then the byte bound: 5 + 5 + 20 > 25
    assert both.keys() == [3, 4] and both.nbytes == 25


def test_replacing_a_key_updates_its_bytes_and_makes_it_the_most_recent():
    cache: LRUCache[str, np.ndarray] = LRUCache(100)
    cache.put("a", arr(10, 1))
    cache.put("b", arr(10))
    cache.put("a", arr(30, 2))
    assert cache.keys() == ["b", "a"] and cache.nbytes == 40 and len(cache) == 2
    assert cache.get("a")[0] == 2


def test_hits_and_misses_are_counted_by_get():
    cache: LRUCache[str, np.ndarray] = LRUCache(100)
    cache.put("a", arr(1))
    cache.get("a")
    cache.get("b")
    cache.get("a")
    assert (cache.hits, cache.misses) == (2, 1)


def test_custom_size_and_eviction_callback():
    evicted = []
    cache: LRUCache[str, list] = LRUCache(
        max_items=2, size=lambda v: 0, on_evict=lambda k, v: evicted.append((k, v))
    )
    cache.put("a", [1])
    cache.put("b", [2])
    cache.put("a", [3])  # a replacement is not an eviction
    cache.put("c", [4])  # b is the least recent now
    cache.pop("a")
    cache.clear()
    assert evicted == [("b", [2])] and cache.nbytes == 0


def test_callback_may_use_the_cache():
    caches: list[LRUCache[int, np.ndarray]] = []

    def keep_zero(key: int, value: np.ndarray) -> None:
        if key == 0:
            caches[0].put(-1, value)  # runs outside the lock: no deadlock

    cache: LRUCache[int, np.ndarray] = LRUCache(max_items=1, on_evict=keep_zero)
    caches.append(cache)
    cache.put(0, arr(1))
    cache.put(1, arr(1))  # evicts 0, whose callback puts -1, which evicts 1
    assert cache.keys() == [-1]


@pytest.mark.parametrize("bad", [-1, 1.5, True, "10"])
def test_bad_bounds_are_refused_with_the_reason(bad):
    with pytest.raises(ValueError, match="max_bytes must be an int >= 0"):
        LRUCache(bad)
    with pytest.raises(ValueError, match="max_items must be an int >= 0"):
        LRUCache(max_items=bad)


def test_threads_keep_the_byte_account_exact():
    cache: LRUCache[int, np.ndarray] = LRUCache(5_000)

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        for _ in range(2_000):
            key = int(rng.integers(50))
            if rng.random() < 0.5:
                cache.put(key, arr(int(rng.integers(1, 400))))
            else:
                cache.get(key)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = cache.nbytes
    held = [cache.pop(k) for k in cache.keys()]
    assert total == sum(v.nbytes for v in held) <= 5_000 and cache.nbytes == 0
