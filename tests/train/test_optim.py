"""Freezing, AdamW groups with layer-wise decay, the warm-up + cosine schedule, gradient clipping."""

from __future__ import annotations

import pytest
import torch

from masklet.modeling.sam2 import SAM2Model
from masklet.presets import get_preset
from masklet.train.config import ConfigError, OptimConfig
from masklet.train.optim import apply_freeze, build_optimizer, clip_gradients, lr_factor, param_groups


@pytest.fixture(scope="module")
def model():
    return SAM2Model(get_preset("sam2.1_hiera_tiny", 128))


def lr_and_wd(groups):
    return {n: (g["base_lr"], g["weight_decay"]) for g in groups for n in g["names"]}


def test_layer_wise_decay_and_weight_decay(model):
    cfg = OptimConfig(lr=1e-3, encoder_lr=1e-4, layer_decay=0.5, weight_decay=0.1)
    got = lr_and_wd(param_groups(model, cfg))
    blocks = len(model.image_encoder.trunk.blocks)  # 12 for tiny
    enc = "image_encoder.trunk."
    assert got["image_encoder.neck.convs.0.conv.weight"] == (1e-4, 0.1)
    assert got[f"{enc}blocks.{blocks - 1}.mlp.layers.0.weight"] == (pytest.approx(1e-4 * 0.5), 0.1)
    assert got[f"{enc}blocks.0.attn.qkv.weight"] == (pytest.approx(1e-4 * 0.5**blocks), 0.1)
    assert got[f"{enc}patch_embed.proj.weight"] == (pytest.approx(1e-4 * 0.5 ** (blocks + 1)), 0.1)
    assert got[f"{enc}pos_embed"][1] == 0.0  # position embeddings: no weight decay
    assert got["sam_mask_decoder.output_upscaling.0.weight"] == (1e-3, 0.1)
    assert got["sam_mask_decoder.output_upscaling.0.bias"] == (1e-3, 0.0)
    assert got["sam_mask_decoder.iou_token.weight"] == (1e-3, 0.0)  # embedding
    assert got["maskmem_tpos_enc"] == (1e-3, 0.0) and got["no_obj_ptr"] == (1e-3, 0.0)
    assert got["memory_attention.layers.0.norm1.weight"] == (1e-3, 0.0)
    assert len(got) == sum(1 for _ in model.parameters())


def test_freeze(model):
    m = SAM2Model(get_preset("sam2.1_hiera_tiny", 128))
    frozen = apply_freeze(m, ("image_encoder", "sam_prompt_encoder"))
    assert frozen and all(n.startswith(("image_encoder.", "sam_prompt_encoder.")) for n in frozen)
    names = lr_and_wd(param_groups(m, OptimConfig()))
    assert not any(n.startswith("image_encoder.") for n in names) and "no_obj_ptr" in names
    with pytest.raises(
        ConfigError, match=r"train.freeze entry 'image_encodr' matches no parameter; .*memory_attention"
    ):
        apply_freeze(m, ("image_encodr",))
    apply_freeze(m, tuple(sorted({n.split(".")[0] for n, _ in m.named_parameters()})))
    with pytest.raises(ConfigError, match="nothing to train"):
        build_optimizer(m, OptimConfig())


def test_warmup_cosine_schedule():
    cfg = OptimConfig(warmup_steps=10, min_lr_ratio=0.1)
    assert lr_factor(0, 110, cfg) == pytest.approx(0.1)
    assert lr_factor(9, 110, cfg) == pytest.approx(1.0)
    assert lr_factor(10, 110, cfg) == pytest.approx(1.0)
    assert lr_factor(60, 110, cfg) == pytest.approx(0.55)  # half-way down the cosine: (1 + 0.1) / 2
    assert lr_factor(110, 110, cfg) == pytest.approx(0.1)
    values = [lr_factor(s, 110, cfg) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert lr_factor(0, 5, OptimConfig(warmup_steps=0)) == pytest.approx(1.0)


def test_clip_gradients():
    p = torch.nn.Parameter(torch.zeros(4))
    opt = torch.optim.AdamW([{"params": [p], "base_lr": 1.0}])
    p.grad = torch.tensor([3.0, 4.0, 0.0, 0.0])
    assert clip_gradients(opt, 0.0) == pytest.approx(5.0) and p.grad[0] == 3.0  # 0: measure only
    assert clip_gradients(opt, 1.0) == pytest.approx(5.0)
    assert torch.linalg.vector_norm(p.grad).item() == pytest.approx(1.0, rel=1e-5)
