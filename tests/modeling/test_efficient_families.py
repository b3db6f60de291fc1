"""EdgeTAM and EfficientTAM boxes: shapes, folding, the pooled and latent attentions, presets, loading.

Parity with the authors' code is tests/inference/test_edge_parity.py; here the modules are checked
on their own (small inputs, random weights).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from masklet.checkpoints import CheckpointError, build_model, infer_preset, save_checkpoint
from masklet.download import checkpoint_url
from masklet.modeling.efficient_attention import PooledMemoryAttention
from masklet.modeling.latent_attention import LatentRoPEAttention
from masklet.modeling.perceiver import SpatialPerceiver
from masklet.modeling.repvit import RepViT
from masklet.modeling.rope import RoPEAttention
from masklet.modeling.sam2 import SAM2Model
from masklet.modeling.vit import ViT
from masklet.presets import REPVIT_M1, VIT_TI, PerceiverConfig, get_preset

EFFICIENT = ["edgetam", "efficienttam_ti", "efficienttam_s_1", "efficienttam_ti_2", "efficienttam_s_512x512"]


def _randomise_norms(module: torch.nn.Module, seed: int) -> None:
    """Batch-norm statistics away from (0, 1), so that folding them is exercised."""
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)


def test_repvit_shapes_and_folded_inference_matches_plain():
    torch.manual_seed(0)
    trunk = RepViT(REPVIT_M1).eval()
    _randomise_norms(trunk, 1)
    x = torch.randn(1, 3, 128, 96)
    with torch.no_grad():
        folded = trunk(x)
    with torch.enable_grad():  # gradients on: the plain conv + batch-norm path
        plain = trunk(x)
    assert [tuple(t.shape) for t in folded] == [
        (1, 48, 32, 24),
        (1, 96, 16, 12),
        (1, 192, 8, 6),
        (1, 384, 4, 3),
    ]
    for a, b in zip(folded, plain, strict=True):
        assert torch.allclose(a, b.detach(), rtol=1e-4, atol=1e-4 * b.abs().max().item())


def test_repvit_rejects_odd_sizes():
    with pytest.raises(ValueError, match="multiples of 32"):
        RepViT(REPVIT_M1)(torch.zeros(1, 3, 100, 96))


def test_vit_shapes_windows_and_errors():
    torch.manual_seed(0)
    vit = ViT(VIT_TI).eval()
    with torch.no_grad():
        (out,) = vit(torch.randn(1, 3, 512, 512))
    assert out.shape == (1, 192, 32, 32)
    with pytest.raises(ValueError, match="multiples of 16"):
        vit(torch.zeros(1, 3, 100, 96))


def test_vit_position_embedding_is_the_learned_grid_at_224():
    vit = ViT(VIT_TI)
    torch.nn.init.normal_(vit.pos_embed)
    pe = vit.position_embedding(14, 14)
    assert torch.equal(pe.reshape(1, 196, -1), vit.pos_embed[:, 1:])
    assert vit.position_embedding(32, 32).shape == (1, 32, 32, 192)


def test_perceiver_shapes_positions_and_batch_independence():
    torch.manual_seed(0)
    per = SpatialPerceiver(PerceiverConfig()).eval()
    mem = torch.randn(3, 64, 32, 32)
    pos = torch.randn(3, 64, 32, 32)
    with torch.no_grad():
        tokens, tpos = per(mem, pos)
        one, _ = per(mem[1:2], pos[1:2])
    assert tokens.shape == (3, 512, 64) and tpos.shape == (3, 512, 64)
    assert torch.allclose(tokens[1:2], one, atol=1e-5)  # several objects in one batch: no mixing
    assert torch.count_nonzero(tpos[:, :256]) == 0  # global latents carry no position
    grid = per.position_encoding.encoding(16, 16, torch.device("cpu")).flatten(1).t()
    assert torch.equal(tpos[0, 256:], grid)
    with pytest.raises(ValueError, match="multiple of the 16x16 window grid"):
        per(torch.zeros(1, 64, 24, 24), torch.zeros(1, 64, 24, 24))


def _attention_inputs(frames: int, h: int, w: int, ptr: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(2, h * w, 256, generator=gen)
    k = torch.randn(2, frames * h * w + ptr, 64, generator=gen)
    v = torch.randn(2, frames * h * w + ptr, 64, generator=gen)
    return q, k, v


def _pooled(key_bias: bool) -> PooledMemoryAttention:
    torch.manual_seed(0)
    return PooledMemoryAttention(
        256, 1, dropout=0.0, kv_in_dim=64, rope_k_repeat=True, key_bias=key_bias
    ).eval()


def test_pooled_attention_equals_full_attention_over_constant_cells():
    """Variant 1 (log 4 on the pooled logits) is exact when each 2x2 cell holds four equal keys and
    values: four identical keys weigh exactly log 4 more than one."""
    attn = _pooled(key_bias=False)
    full = RoPEAttention(256, 1, dropout=0.0, kv_in_dim=64, rope_k_repeat=True).eval()
    full.load_state_dict(attn.state_dict())
    h = w = 8
    _, k, v = _attention_inputs(2, h // 2, w // 2, ptr=4)
    q = torch.randn(2, h * w, 256, generator=torch.Generator().manual_seed(1))
    spatial = 2 * (h // 2) * (w // 2)

    def blow_up(t):  # each token of a (h/2, w/2) grid -> a constant 2x2 cell of an (h, w) grid
        grid = t[:, :spatial].reshape(2, 2, h // 2, w // 2, -1)
        grid = grid.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
        return torch.cat([grid.reshape(2, 2 * h * w, -1), t[:, spatial:]], dim=1)

    # RoPE rotates differently within a cell; without rotation of the keys the identity is exact
    attn.rotate_keys = full.rotate_keys = lambda k, feat_size, num_exclude: k
    with torch.no_grad():
        got = attn(q, blow_up(k), blow_up(v), num_k_exclude_rope=4, feat_size=(h, w))
        want = full(q, blow_up(k), blow_up(v), num_k_exclude_rope=4, feat_size=(h, w))
    assert torch.allclose(got, want, atol=1e-5)


def test_pooled_attention_variants_and_single_frame():
    h = w = 8
    q, k, v = _attention_inputs(3, h, w, ptr=8)
    one, two = _pooled(False), _pooled(True)
    plain = RoPEAttention(256, 1, dropout=0.0, kv_in_dim=64, rope_k_repeat=True).eval()
    plain.load_state_dict(one.state_dict())
    with torch.no_grad():
        a = one(q, k, v, num_k_exclude_rope=8, feat_size=(h, w))
        b = two(q, k, v, num_k_exclude_rope=8, feat_size=(h, w))
        full = plain(q, k, v, num_k_exclude_rope=8, feat_size=(h, w))
        # one remembered frame: no pooling, the plain attention
        single = one(q, k[:, 128:], v[:, 128:], num_k_exclude_rope=8, feat_size=(h, w))
        single_plain = plain(q, k[:, 128:], v[:, 128:], num_k_exclude_rope=8, feat_size=(h, w))
    assert a.shape == b.shape == (2, 64, 256)
    assert not torch.allclose(a, b, atol=1e-3) and not torch.allclose(a, full, atol=1e-3)
    assert torch.allclose(single, single_plain, atol=1e-6)
    with pytest.raises(ValueError, match="even feature grid"):
        one(q[:, :49], k[:, : 3 * 49], v[:, : 3 * 49], num_k_exclude_rope=0, feat_size=(7, 7))


def test_latent_attention_rotates_window_latents_on_their_grid():
    torch.manual_seed(0)
    attn = LatentRoPEAttention(256, 1, dropout=0.0, kv_in_dim=64, rope_k_repeat=True, num_plain=4, grid=2)
    k = torch.randn(1, 1, 2 * 8 + 3, 256)
    out = attn.rotate_keys(k, (8, 8), 3)
    frames = out[..., :16, :].reshape(1, 1, 2, 8, 256)
    src = k[..., :16, :].reshape(1, 1, 2, 8, 256)
    assert torch.equal(frames[..., :4, :], src[..., :4, :])  # global latents unrotated
    assert torch.equal(out[..., 16:, :], k[..., 16:, :])  # pointers unrotated
    grid = attn.rope.rotate(src[..., 4:, :].reshape(1, 1, 8, 256), 2, 2, repeat=True)
    assert torch.allclose(frames[..., 4:, :].reshape(1, 1, 8, 256), grid)
    with pytest.raises(ValueError, match="not a whole number of compressed frames"):
        attn.rotate_keys(torch.randn(1, 1, 13, 256), (8, 8), 3)


@pytest.mark.parametrize("name", EFFICIENT)
def test_preset_roundtrip_auto_and_determinism(name, tmp_path):
    size = 256 if name != "edgetam" else 512
    a = build_model(name, random_seed=3, device="cpu", image_size=size)
    b = build_model(name, random_seed=3, device="cpu", image_size=size)
    path = save_checkpoint(a, tmp_path / f"{name}.pt")
    c = build_model("auto", path, device="cpu", image_size=size)
    assert c.cfg.name == name  # released file names pick among same-layout presets
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        fa, fb, fc = (m.encode_image(x) for m in (a, b, c))
        mem = [c.encode_memory(fc.image_embed, torch.randn(1, 1, size, size), torch.ones(1, 1))[0]]
    assert torch.equal(fa.image_embed, fb.image_embed) and torch.equal(fa.image_embed, fc.image_embed)
    emb = size // 16
    assert fc.image_embed.shape == (1, 256, emb, emb)
    assert len(fc.high_res) == (2 if c.cfg.use_high_res_features else 0)
    want_mem = (1, 64, 1, 512) if name == "edgetam" else (1, 64, emb, emb)
    assert mem[0].shape == want_mem


def test_auto_names_and_layout_checks(tmp_path):
    m = build_model("efficienttam_ti", random_seed=0, device="cpu", image_size=256)
    sd = m.state_dict()
    assert infer_preset(sd) == "efficienttam_ti"
    assert infer_preset(sd, "efficienttam_ti_1.pt") == "efficienttam_ti_1"
    assert infer_preset(sd, "my_finetune.pt") == "efficienttam_ti"
    assert infer_preset(sd, "efficienttam_s_1.pt") == "efficienttam_ti"  # another size's name: ignored
    # a variant loads the plain model's file (same tensors), another size does not
    path = save_checkpoint(sd, tmp_path / "ti.pt")
    assert (
        build_model("efficienttam_ti_2", path, device="cpu", image_size=256).cfg.name == "efficienttam_ti_2"
    )
    with pytest.raises(CheckpointError, match="looks like efficienttam_ti, but the model is efficienttam_s"):
        build_model("efficienttam_s", path, device="cpu", image_size=256)


def test_edgetam_image_size_and_registry():
    with pytest.raises(ValueError, match="must be a multiple of 256"):
        get_preset("edgetam", 640)
    assert checkpoint_url("edgetam").endswith("EdgeTAM/raw/main/checkpoints/edgetam.pt")
    assert checkpoint_url("efficienttam_s_512").endswith(
        "efficient-track-anything/resolve/main/efficienttam_s_512x512.pt"
    )


def test_edgetam_param_count_matches_the_paper():
    n = sum(p.numel() for p in SAM2Model(get_preset("edgetam")).parameters())
    assert math.isclose(n / 1e6, 13.9, abs_tol=0.05)  # "EdgeTAM ... 13.9M parameters"


def test_memory_attention_over_compressed_memories_runs_for_two_objects():
    m = build_model("edgetam", random_seed=0, device="cpu", image_size=512)
    with torch.no_grad():
        f = m.encode_image(torch.randn(1, 3, 512, 512)).expand(2)
        mask = torch.randn(2, 1, 512, 512)
        mem, _ = m.encode_memory(f.image_embed, mask, torch.ones(2, 1))
        ptr = torch.randn(2, 256)
        pix = m.attend_to_memories(f.image_embed, f.pos[-1], [(0, mem), (6, mem)], [(1, ptr)], 16)
        one = m.attend_to_memories(
            f.image_embed[:1], f.pos[-1][:1], [(0, mem[:1]), (6, mem[:1])], [(1, ptr[:1])], 16
        )
    assert pix.shape == (2, 256, 32, 32)
    assert torch.allclose(pix[:1], one, atol=1e-4)
    assert F.mse_loss(pix[0], pix[1]) > 0


def _export(module: torch.nn.Module, *args: torch.Tensor) -> torch.export.ExportedProgram:
    """``module`` traced as the ONNX exporter traces it: the keys' and pointers' counts left free, and
    sizes of 0 or 1 not singled out (``backed_size_oblivious``), so that a graph traced on several
    frames must also serve one."""
    dim = torch.export.Dim.DYNAMIC
    with torch.no_grad(), torch.fx.experimental._config.patch(backed_size_oblivious=True):
        return torch.export.export(module, args, dynamic_shapes=({}, {1: dim}, {1: dim}, {0: dim}))


class _Cross(torch.nn.Module):
    """A memory cross-attention called as memory attention calls it: the pointer count from an input."""

    def __init__(self, attn: torch.nn.Module, h: int, w: int) -> None:
        super().__init__()
        self.attn, self.size = attn, (h, w)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, ptr: torch.Tensor) -> torch.Tensor:
        return self.attn(q, k, v, num_k_exclude_rope=ptr.shape[0], feat_size=self.size)


@pytest.mark.parametrize("key_bias", [False, True])
def test_pooled_attention_exported_with_a_free_frame_count(key_bias):
    """An exported graph traced on three frames still takes the unpooled path for one frame: the choice
    is made inside the graph, not fixed by the frames the tracer saw."""
    h = w = 4
    module = _Cross(_pooled(key_bias), h, w)
    program = _export(module, *_attention_inputs(3, h, w, ptr=2), torch.zeros(2))
    # the tracer also records which sizes were not 1 where that chose a view over a copy; the ONNX
    # graph keeps none of those checks, only the computation, which is what is compared here
    graph = program.module(check_guards=False)
    with torch.no_grad():
        for frames, ptr in ((1, 0), (1, 3), (2, 1), (5, 4)):
            q, k, v = _attention_inputs(frames, h, w, ptr, seed=frames + ptr)
            got = graph(q, k, v, torch.zeros(ptr))
            want = module(q, k, v, torch.zeros(ptr))
            assert torch.allclose(got, want, atol=1e-5), (frames, ptr)


def test_latent_attention_exported_with_a_free_frame_count():
    torch.manual_seed(0)
    attn = LatentRoPEAttention(256, 1, dropout=0.0, kv_in_dim=64, rope_k_repeat=True, num_plain=4, grid=2)
    module = _Cross(attn.eval(), 4, 4)
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(1, 16, 256, generator=gen)
    kv = torch.randn(1, 3 * 8 + 2, 64, generator=gen)
    program = _export(module, q, kv, kv, torch.zeros(2))
    with torch.no_grad():
        for frames, ptr in ((1, 0), (4, 3)):
            kv = torch.randn(1, frames * 8 + ptr, 64, generator=gen)
            got = program.module()(q, kv, kv, torch.zeros(ptr))
            assert torch.allclose(got, module(q, kv, kv, torch.zeros(ptr)), atol=1e-5), (frames, ptr)
