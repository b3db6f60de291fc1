"""Parity of the memory encoder, memory attention and RoPE with the reference implementation."""

from __future__ import annotations

import pytest
import torch

from masklet.modeling.memory_attention import MemoryAttention
from masklet.modeling.memory_encoder import MemoryEncoder
from masklet.modeling.rope import AxialRoPE, RoPEAttention
from tests.oracle import build_reference

PRESET = "sam2.1_hiera_tiny"
TOL = 1e-4  # max |ours - ref| / std(ref), float32


def rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return ((ours.float() - ref.float()).abs().max() / ref.float().std()).item()


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(a.float().flatten(), b.float().flatten(), dim=0).item()


def prefixed(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}


@pytest.fixture(scope="module")
def models(reference_checkpoint):
    path = reference_checkpoint(PRESET)
    ref = build_reference(PRESET, path)
    sd = torch.load(path, map_location="cpu", weights_only=True)["model"]
    attn = MemoryAttention().eval()
    attn.load_state_dict(prefixed(sd, "memory_attention."), strict=True)
    enc = MemoryEncoder().eval()
    enc.load_state_dict(prefixed(sd, "memory_encoder."), strict=True)
    return ref, attn, enc


def attention_inputs(side: int, frames: int, ptrs: int, batch: int, seed: int = 0):
    """(curr, memory, curr_pos, memory_pos), sequence-first, float32."""
    g = torch.Generator().manual_seed(seed)
    n, m = side * side, frames * side * side + ptrs
    return (
        torch.randn(n, batch, 256, generator=g),
        torch.randn(m, batch, 64, generator=g),
        torch.randn(n, batch, 256, generator=g),
        torch.randn(m, batch, 64, generator=g),
    )


def encoder_inputs(side: int, batch: int = 2, seed: int = 0):
    """(pix_feat (B, 256, side, side), mask logits (B, 1, 16 side, 16 side)), float32."""
    g = torch.Generator().manual_seed(seed)
    pix = torch.randn(batch, 256, side, side, generator=g)
    masks = torch.randn(batch, 1, 16 * side, 16 * side, generator=g) * 8
    return pix, masks


# --- memory encoder ---------------------------------------------------------------------------------


@pytest.mark.parametrize("side,batch", [(32, 2), (64, 1)])
@pytest.mark.parametrize("skip_sigmoid", [False, True])
@torch.no_grad()
def test_memory_encoder_matches_reference(models, side, batch, skip_sigmoid):
    ref, _, enc = models
    pix, masks = encoder_inputs(side, batch)
    if skip_sigmoid:
        masks = (masks > 0).float()
    out = ref.memory_encoder(pix, masks, skip_mask_sigmoid=skip_sigmoid)
    feats, pos = enc(pix, masks, skip_mask_sigmoid=skip_sigmoid)
    assert feats.shape == (batch, 64, side, side) and pos.shape == (batch, 64, side, side)
    assert rel_err(feats, out["vision_features"]) <= TOL
    torch.testing.assert_close(pos, out["vision_pos_enc"][0], rtol=0, atol=1e-6)


@torch.no_grad()
def test_memory_encoder_uses_mask_and_sigmoid_flag(models):
    _, _, enc = models
    pix, masks = encoder_inputs(32)
    with_sigmoid, _ = enc(pix, masks)
    without, _ = enc(pix, masks, skip_mask_sigmoid=True)
    other_mask, _ = enc(pix, -masks)
    assert rel_err(without, with_sigmoid) > 1e-2
    assert rel_err(other_mask, with_sigmoid) > 1e-2


@torch.no_grad()
def test_memory_encoder_bf16(models):
    ref, _, enc = models
    pix, masks = encoder_inputs(32)
    expected = ref.memory_encoder(pix, masks)["vision_features"]
    enc16 = MemoryEncoder().eval()
    enc16.load_state_dict(enc.state_dict())
    enc16.to(torch.bfloat16)
    feats, pos = enc16(pix.bfloat16(), masks.bfloat16())
    assert feats.dtype == pos.dtype == torch.bfloat16
    assert cosine(feats, expected) > 0.99


def test_memory_encoder_rejects_mismatched_mask(models):
    _, _, enc = models
    pix, masks = encoder_inputs(32, batch=1)
    with pytest.raises(ValueError, match=r"masks must be \(B, 1, 16h, 16w\)"):
        enc(pix, masks[..., :256, :256])
    with pytest.raises(ValueError, match=r"pix_feat must be \(B, 256, h, w\)"):
        enc(pix[:, :128], masks)


# --- memory attention -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "side,frames,ptrs,batch",
    [
        (32, 2, 0, 1),
        (32, 7, 16, 1),
        (16, 2, 4, 2),
        (16, 7, 16, 2),
        (64, 1, 4, 1),
    ],
)
@torch.no_grad()
def test_memory_attention_matches_reference(models, side, frames, ptrs, batch):
    ref, attn, _ = models
    curr, mem, curr_pos, mem_pos = attention_inputs(side, frames, ptrs, batch)
    expected = ref.memory_attention(curr, mem, curr_pos, mem_pos, num_obj_ptr_tokens=ptrs)
    out = attn(curr, mem, curr_pos, mem_pos, num_obj_ptr_tokens=ptrs)
    assert out.shape == (side * side, batch, 256)
    assert rel_err(out, expected) <= TOL


@torch.no_grad()
def test_memory_attention_grid_change_recomputes_rope(models):
    """Alternating grid sizes must not reuse stale rotary tables."""
    ref, attn, _ = models
    for side in (8, 16, 8):
        curr, mem, curr_pos, mem_pos = attention_inputs(side, 2, 4, 1, seed=side)
        expected = ref.memory_attention(curr, mem, curr_pos, mem_pos, num_obj_ptr_tokens=4)
        assert rel_err(attn(curr, mem, curr_pos, mem_pos, num_obj_ptr_tokens=4), expected) <= TOL


@torch.no_grad()
def test_memory_attention_pointer_tokens_are_not_rotated(models):
    """Treating pointer tokens as an extra frame (rotated) must change the result measurably."""
    _, attn, _ = models
    curr, mem, curr_pos, mem_pos = attention_inputs(16, 1, 256, 1)
    as_ptrs = attn(curr, mem, curr_pos, mem_pos, num_obj_ptr_tokens=256)
    as_frame = attn(curr, mem, curr_pos, mem_pos, num_obj_ptr_tokens=0)
    assert rel_err(as_frame, as_ptrs) > 1e-3


@torch.no_grad()
def test_memory_attention_bf16(models):
    ref, attn, _ = models
    curr, mem, curr_pos, mem_pos = attention_inputs(32, 2, 4, 1)
    expected = ref.memory_attention(curr, mem, curr_pos, mem_pos, num_obj_ptr_tokens=4)
    attn16 = MemoryAttention().eval()
    attn16.load_state_dict(attn.state_dict())
    attn16.to(torch.bfloat16)
    args = [t.bfloat16() for t in (curr, mem, curr_pos, mem_pos)]
    out = attn16(*args, num_obj_ptr_tokens=4)
    assert out.dtype == torch.bfloat16
    assert cosine(out, expected) > 0.99


def test_memory_attention_trains():
    """Gradients reach every parameter through RoPE, pointer exclusion and dropout."""
    torch.manual_seed(0)
    attn = MemoryAttention(num_layers=2).train()
    curr, mem, curr_pos, mem_pos = attention_inputs(8, 2, 4, 2)
    mem.requires_grad_(True)
    attn(curr, mem, curr_pos, mem_pos, num_obj_ptr_tokens=4).square().mean().backward()
    assert mem.grad is not None and mem.grad[-4:].abs().sum() > 0
    missing = [n for n, p in attn.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_memory_attention_rejects_bad_inputs(models):
    _, attn, _ = models
    curr, mem, curr_pos, mem_pos = attention_inputs(8, 2, 4, 2)
    with pytest.raises(ValueError, match="same batch size"):
        attn(curr, mem[:, :1], curr_pos, mem_pos[:, :1])
    with pytest.raises(ValueError, match=r"memory must be \(M, B, 64\)"):
        attn(curr, curr, curr_pos, curr_pos)
    with pytest.raises(ValueError, match="num_obj_ptr_tokens must be between 0 and the 132"):
        attn(curr, mem, curr_pos, mem_pos, num_obj_ptr_tokens=200)
    with pytest.raises(ValueError, match="must be a multiple of 64"):
        attn(curr, mem, curr_pos, mem_pos, num_obj_ptr_tokens=0)
    with pytest.raises(ValueError, match="do not form a square grid"):
        attn(curr[:60], mem, curr_pos[:60], mem_pos, num_obj_ptr_tokens=4)
    with pytest.raises(ValueError, match=r"feat_size \(4, 4\) does not hold the 64 tokens"):
        attn(curr, mem, curr_pos, mem_pos, num_obj_ptr_tokens=4, feat_size=(4, 4))


# --- RoPE ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("h,w,reps,exclude", [(8, 8, 1, 0), (6, 10, 3, 4), (12, 5, 2, 0)])
def test_rotation_matches_reference_formula(h, w, reps, exclude):
    """Real-valued rotation vs the reference's complex rotation, non-square grids included."""
    from tests.oracle import require_reference

    require_reference()
    from sam2.modeling.position_encoding import apply_rotary_enc, compute_axial_cis

    g = torch.Generator().manual_seed(h * w)
    q = torch.randn(2, 1, h * w, 64, generator=g)
    k = torch.randn(2, 1, reps * h * w + exclude, 64, generator=g)
    freqs = compute_axial_cis(dim=64, end_x=w, end_y=h)
    n_rot = reps * h * w
    ref_q, ref_k_rot = apply_rotary_enc(q, k[:, :, :n_rot], freqs, repeat_freqs_k=True)
    rope = AxialRoPE(64)
    torch.testing.assert_close(rope.rotate(q, h, w), ref_q, rtol=0, atol=1e-5)
    ours_k = rope.rotate(k, h, w, num_exclude=exclude, repeat=True)
    torch.testing.assert_close(ours_k[:, :, :n_rot], ref_k_rot, rtol=0, atol=1e-5)
    assert torch.equal(ours_k[:, :, n_rot:], k[:, :, n_rot:])


def test_rope_attention_feat_size_matches_reference_module():
    """Explicit feat_size equals the square default; the reference module is the oracle."""
    from tests.oracle import require_reference

    require_reference()
    from sam2.modeling.sam.transformer import RoPEAttention as RefRoPEAttention

    torch.manual_seed(0)
    ref = RefRoPEAttention(128, 2, kv_in_dim=32, rope_k_repeat=True, feat_sizes=(16, 16)).eval()
    ours = RoPEAttention(128, 2, kv_in_dim=32, rope_k_repeat=True).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    q, k = torch.randn(2, 256, 128), torch.randn(2, 3 * 256 + 8, 32)
    with torch.no_grad():
        expected = ref(q, k, k, num_k_exclude_rope=8)
        assert rel_err(ours(q, k, k, num_k_exclude_rope=8), expected) <= TOL
        assert rel_err(ours(q, k, k, num_k_exclude_rope=8, feat_size=(16, 16)), expected) <= TOL
        assert rel_err(ours(q, k, k, num_k_exclude_rope=8, feat_size=(8, 32)), expected) > 1e-3


def test_rope_rejects_bad_shapes():
    rope = AxialRoPE(64)
    x = torch.zeros(1, 1, 70, 64)
    with pytest.raises(ValueError, match=r"rotated tokens \(70\) must be equal to 64"):
        rope.rotate(x, 8, 8)
    with pytest.raises(ValueError, match=r"rotated tokens \(66\) must be a multiple of 64"):
        rope.rotate(x, 8, 8, num_exclude=4, repeat=True)
    with pytest.raises(ValueError, match="cannot exclude 80 tokens"):
        rope.rotate(x, 8, 8, num_exclude=80, repeat=True)
    with pytest.raises(ValueError, match="divisible by 4"):
        AxialRoPE(66)


@pytest.mark.parametrize("heads", [1, 2])
@pytest.mark.parametrize("block", [None, 20000])
def test_rope_attention_cpu_kernel_matches_plain_sdpa(monkeypatch, block, heads):
    """The CPU inference path (blocked kernel, value projection after the attention) equals the plain
    SDPA path (used with autograd), and really mixes the 64-wide raw memory tokens."""
    import masklet.modeling.rope as rope_module

    if block is not None:  # several query slabs per call
        monkeypatch.setattr(rope_module, "MEMORY_ATTN_BLOCK_BYTES", block)
    value_widths = []
    kernel = rope_module.softmax_attention

    def spy(q, k, v, **kw):
        value_widths.append(v.shape[-1])
        return kernel(q, k, v, **kw)

    monkeypatch.setattr(rope_module, "softmax_attention", spy)
    torch.manual_seed(0)
    attn = RoPEAttention(256, heads, kv_in_dim=64, rope_k_repeat=True).eval()
    q, k, v = torch.randn(2, 256, 256), torch.randn(2, 3 * 256 + 8, 64), torch.randn(2, 3 * 256 + 8, 64)
    with torch.no_grad():
        fast = attn(q, k, v, num_k_exclude_rope=8)
    assert value_widths == [64]
    plain = attn(q.requires_grad_(), k, v, num_k_exclude_rope=8).detach()
    assert value_widths == [64], "the autograd path must not use the CPU kernel"
    assert rel_err(fast, plain) <= 1e-5


def test_rope_attention_cpu_kernel_bf16_close_to_float32():
    torch.manual_seed(0)
    attn = RoPEAttention(256, 1, kv_in_dim=64, rope_k_repeat=True).eval()
    q, k, v = torch.randn(1, 256, 256), torch.randn(1, 2 * 256 + 4, 64), torch.randn(1, 2 * 256 + 4, 64)
    with torch.no_grad():
        ref = attn(q, k, v, num_k_exclude_rope=4)
        low = attn.to(torch.bfloat16)(q.bfloat16(), k.bfloat16(), v.bfloat16(), num_k_exclude_rope=4)
    assert low.dtype == torch.bfloat16
    assert cosine(low, ref) > 0.999
