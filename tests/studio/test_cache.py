"""The studio's shared, byte-bounded feature cache, and the video predictor reading from it."""

from __future__ import annotations

import pytest
import torch

from masklet.inference.video import VideoPredictor
from masklet.modeling.sam2 import ImageFeatures
from masklet.studio.cache import FeatureCache, FrameFeatures, feature_bytes

from .conftest import frame_image
from .studio_support import small_model


def _feats(n: int = 1000) -> ImageFeatures:
    t = torch.zeros(n)  # 4 bytes each
    return ImageFeatures(t, [t.clone()], [t.clone()])


def test_lru_eviction_by_bytes():
    one = feature_bytes(_feats())
    assert one == 12000
    cache = FeatureCache(max_bytes=2 * one + 10)
    for k in "abc":
        cache.put(k, _feats())
    assert len(cache) == 2 and cache.get("a") is None and cache.nbytes == 2 * one
    assert cache.get("b") is not None  # b is now the most recent: c goes next
    cache.put("d", _feats())
    assert cache.get("c") is None and cache.get("b") is not None and cache.get("d") is not None
    cache.put("huge", _feats(10_000))  # larger than the whole cache: not kept, nothing evicted
    assert cache.get("huge") is None and len(cache) == 2
    cache.put((7, 1), _feats())
    cache.put((8, 1), _feats())
    cache.drop(7)
    assert cache.get((7, 1)) is None and cache.get((8, 1)) is not None
    assert FeatureCache(0).max_bytes == 0
    with pytest.raises(ValueError, match="max_bytes"):
        FeatureCache(-1)


def test_video_session_reuses_cached_features(studio_checkpoint):
    model = small_model(studio_checkpoint)
    frames = [frame_image(t) for t in range(3)]
    pred = VideoPredictor(model, fill_hole_area=0)
    calls = []
    original = model.encode_image

    def counting(image):
        calls.append(1)
        return original(image)

    cache = FeatureCache()
    s = pred.init_state(frames)
    s.feature_cache = FrameFeatures(cache, "clip")
    model.encode_image = counting
    try:
        _, _, a = pred.add_new_points_or_box(s, 0, 1, points=[[80, 120]], labels=[1])
        pred.add_new_points_or_box(s, 2, 2, points=[[100, 100]], labels=[1])
        _, _, b = pred.add_new_points_or_box(s, 0, 1, points=[[80, 120]], labels=[1])  # back to frame 0
        assert len(calls) == 2 and cache.hits >= 1
        s2 = pred.init_state(frames)  # a second session (another tab) shares the cache
        s2.feature_cache = FrameFeatures(cache, "clip")
        _, _, c = pred.add_new_points_or_box(s2, 0, 1, points=[[80, 120]], labels=[1])
        assert len(calls) == 2
        assert torch.equal(a, c)
    finally:
        del model.encode_image
        s.close()
