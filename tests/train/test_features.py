"""The feature cache: reuse, eviction, prefill; and a trainable encoder under bf16 autocast."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from masklet.modeling.sam2 import ImageFeatures
from masklet.train import Trainer
from masklet.train.features import TrainingFeatureCache
from tests.train.helpers import build, tiny_vos


@pytest.fixture(scope="module")
def vos(tmp_path_factory):
    return tiny_vos(tmp_path_factory.mktemp("vos"))


def feats(value: float) -> ImageFeatures:
    return ImageFeatures(
        torch.full((1, 4, 2, 2), value), [torch.full((1, 2, 8, 8), value)], [torch.zeros(1, 4, 2, 2)]
    )


def test_cache_evicts_least_recently_used_beyond_its_bytes():
    one = (16 + 128) * 4  # bytes of one entry
    cache = TrainingFeatureCache(capacity_bytes=2 * one)
    cache.put((0, 0, 0, 0), feats(0.0))
    cache.put((0, 0, 0, 1), feats(1.0))
    assert cache.get((0, 0, 0, 0)).image_embed[0, 0, 0, 0] == 0.0  # now the most recent
    cache.put((0, 0, 0, 2), feats(2.0))
    assert cache.get((0, 0, 0, 1)) is None and len(cache) == 2 and cache.nbytes == 2 * one
    assert cache.hits == 1 and cache.misses == 1


def test_prefill_then_every_step_hits_the_cache(vos, tmp_path):
    trainer = Trainer(build(vos, train={"steps": 3, "cache_variants": 2}), tmp_path)
    cache = trainer.forward.features.cache
    assert trainer.prefill_cache() == 2 * 6 * 2  # 2 videos, 6 frames, 2 variants
    before = cache.misses
    trainer.train_step()
    assert cache.misses == before and cache.hits > 0
    # features from the cache equal a fresh encoding of the same (augmented) frames
    clip = trainer.sampler.sample(np.random.default_rng(0), with_images=True)
    cached = trainer.forward.features(clip)
    with torch.no_grad():
        fresh = trainer.model.encode_image(clip.images[:1])
    torch.testing.assert_close(cached[0].image_embed, fresh.image_embed)


def test_trainable_encoder_with_bf16_autocast_and_checkpointing(vos, tmp_path):
    cfg = build(
        vos,
        train={
            "steps": 2,
            "amp": "bf16",
            "freeze": [],
            "cache_features": False,
            "activation_checkpointing": True,
        },
        optim={"encoder_lr": 1e-4},
    )
    trainer = Trainer(cfg, tmp_path)
    report = trainer.train_step()
    assert np.isfinite(report.loss)
    grads = [p.grad for p in trainer.model.image_encoder.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
