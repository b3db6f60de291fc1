"""Image encoder (Hiera trunk + FPN neck): parity with the reference and unit tests of its pieces."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from masklet.modeling import hiera, kernels
from masklet.modeling.hiera import (
    Hiera,
    MultiScaleBlock,
    max_pool_channels_last,
    window_partition,
    window_unpartition,
)
from masklet.modeling.kernels import linear, softmax_attention
from masklet.modeling.neck import ImageEncoder
from masklet.presets import get_preset
from tests.oracle import build_reference

TOL = 1e-4


def _load_ours(preset: str, checkpoint, image_size: int) -> ImageEncoder:
    sd = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)["model"]
    prefix = "image_encoder."
    ours = ImageEncoder(get_preset(preset, image_size))
    ours.load_state_dict({k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}, strict=True)
    return ours.eval()


def _image(size: int, batch: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _rel_max(ref: torch.Tensor, ours: torch.Tensor) -> float:
    return ((ours.float() - ref.float()).abs().max() / ref.float().std()).item()


def _check_parity(preset: str, image_size: int, checkpoint, batch: int = 1) -> None:
    ref = build_reference(preset, checkpoint).image_encoder
    ours = _load_ours(preset, checkpoint, image_size)
    x = _image(image_size, batch)
    with torch.inference_mode():
        expected = ref(x)
        feats, pos = ours(x)
    assert len(feats) == len(pos) == 3
    for level, (e, f) in enumerate(zip(expected["backbone_fpn"], feats)):
        side = image_size // (4 * 2**level)
        assert f.shape == (batch, 256, side, side)
        assert f.dtype == torch.float32
        assert _rel_max(e, f) <= TOL, f"{preset}@{image_size} feature level {level}: {_rel_max(e, f):.2e}"
    for level, (e, p) in enumerate(zip(expected["vision_pos_enc"], pos)):
        assert p.shape == e.shape
        assert _rel_max(e, p) <= TOL, f"{preset}@{image_size} position level {level}: {_rel_max(e, p):.2e}"


@pytest.mark.parametrize(
    "preset, image_size, batch",
    [
        ("sam2.1_hiera_tiny", 1024, 1),
        ("sam2.1_hiera_tiny", 512, 2),
        # two heads in the first stage, a 14x14 background embedding; at 768 both windowed stages pad
        ("sam2_hiera_base_plus", 768, 1),
    ],
)
def test_parity_with_reference(preset, image_size, batch, reference_checkpoint):
    _check_parity(preset, image_size, reference_checkpoint(preset), batch)


@pytest.mark.slow
def test_parity_with_reference_large(reference_checkpoint):
    # window_spec (8, 4, 16, 8) and 48 blocks
    _check_parity("sam2.1_hiera_large", 512, reference_checkpoint("sam2.1_hiera_large"))


def test_bfloat16_close_to_float32_reference(reference_checkpoint):
    preset, size = "sam2.1_hiera_tiny", 512
    ckpt = reference_checkpoint(preset)
    ref = build_reference(preset, ckpt).image_encoder
    ours = _load_ours(preset, ckpt, size).to(torch.bfloat16)
    x = _image(size, seed=1)
    with torch.inference_mode():
        expected = ref(x)["backbone_fpn"]
        feats, pos = ours(x.bfloat16())
    for level, (e, f) in enumerate(zip(expected, feats)):
        assert f.dtype == torch.bfloat16 and pos[level].dtype == torch.bfloat16
        e, f = e.double().flatten(), f.double().flatten()
        cos = F.cosine_similarity(e, f, dim=0).item()
        rel = ((f - e).norm() / e.norm()).item()
        # measured: relative error 0.005 / 0.007 / 0.011 per level, as good as the reference itself
        # under bf16 autocast (0.004 / 0.007 / 0.012 at 1024)
        assert cos > 0.999 and rel < 0.03, f"level {level}: cosine {cos:.5f}, relative error {rel:.4f}"


def test_window_partition_round_trip_with_padding():
    x = torch.randn(2, 10, 13, 5)
    windows, padded = window_partition(x, 4)
    assert padded == (12, 16)
    assert windows.shape == (2 * 3 * 4, 4, 4, 5)
    # window (b=1, row 2, col 3) holds rows 8..11, cols 12..15 of the zero-padded grid
    assert torch.equal(windows[12 + 2 * 4 + 3, :2, :1], x[1, 8:10, 12:13])
    assert windows[12 + 2 * 4 + 3, 2:].abs().sum() == 0 and windows[12 + 2 * 4 + 3, :, 1:].abs().sum() == 0
    assert torch.equal(window_unpartition(windows, padded, (10, 13)), x)


def test_max_pool_matches_max_pool2d():
    x = torch.randn(2, 8, 6, 7)
    expected = F.max_pool2d(x.permute(0, 3, 1, 2), kernel_size=2, stride=2).permute(0, 2, 3, 1)
    assert torch.equal(max_pool_channels_last(x, (2, 2)), expected)
    # strided input, as the queries sliced out of the fused qkv projection are
    q = torch.randn(2, 8, 6, 21)[..., :7]
    expected = F.max_pool2d(q.permute(0, 3, 1, 2), kernel_size=2, stride=2).permute(0, 2, 3, 1)
    assert torch.equal(max_pool_channels_last(q, (2, 2)), expected)


def _tiny_trunk() -> Hiera:
    return Hiera(get_preset("sam2.1_hiera_tiny").hiera).eval()


def test_trunk_shapes_and_parameter_names():
    trunk = _tiny_trunk()
    names = set(dict(trunk.named_parameters()))
    assert {"pos_embed", "pos_embed_window", "patch_embed.proj.weight", "blocks.1.proj.weight"} <= names
    assert "blocks.0.proj.weight" not in names and "blocks.1.mlp.layers.1.bias" in names
    with torch.inference_mode():
        outs = trunk(_image(256))
    assert [tuple(o.shape) for o in outs] == [
        (1, c, 64 // 2**i, 64 // 2**i) for i, c in enumerate((96, 192, 384, 768))
    ]


def test_position_embedding_cache_follows_weights():
    trunk = _tiny_trunk()
    with torch.no_grad():
        first = trunk.position_embedding(64, 64, torch.float32).clone()
        assert trunk.position_embedding(64, 64, torch.float32).data_ptr() == trunk._pos_cache[1].data_ptr()
        trunk.pos_embed.add_(1.0)  # an in-place edit, as load_state_dict makes
        second = trunk.position_embedding(64, 64, torch.float32)
    assert torch.allclose(second, first + 1.0, atol=1e-5)
    with torch.enable_grad():  # with gradients on, it is recomputed and differentiable
        assert trunk.position_embedding(64, 64, torch.float32).requires_grad


def test_trunk_rejects_bad_image_size():
    with pytest.raises(ValueError, match="multiples of 32"):
        _tiny_trunk()(torch.zeros(1, 3, 100, 128))


def _sdpa(q, k, v):
    """The plain version of softmax_attention: token-major in and out."""
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    return out.transpose(1, 2)


@pytest.mark.parametrize(
    "batch, lq, lk, heads, block_elems",
    [
        (1, 300, 300, 2, 1 << 21),  # one step
        (1, 300, 300, 3, 5000),  # query slabs with a remainder, single-matrix GEMMs
        (3, 300, 300, 2, 5000),  # the same, image by image
        (7, 64, 64, 2, 3 * 64 * 64),  # window groups with a one-window remainder
        (5, 16, 64, 1, 1 << 21),  # pooled queries
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_softmax_attention_matches_sdpa(batch, lq, lk, heads, block_elems, dtype):
    gen = torch.Generator().manual_seed(0)
    qkv = torch.randn(batch, lk, 3, heads, 24, generator=gen).to(dtype)
    q, k, v = qkv.unbind(2)  # strided views, as in the model
    q = q[:, :lq] * 2.0
    with torch.inference_mode():
        got = softmax_attention(q, k, v, block_elems=block_elems)
        expected = _sdpa(q.float(), k.float(), v.float())
    assert got.shape == (batch, lq, heads, 24) and got.is_contiguous() and got.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 3e-2
    torch.testing.assert_close(got.float(), expected, atol=tol, rtol=tol)


def test_softmax_attention_differentiable():
    q, k, v = (torch.randn(2, 10, 2, 8, requires_grad=True) for _ in range(3))
    out = softmax_attention(q, k, v)
    torch.testing.assert_close(out, _sdpa(q, k, v))
    out.sum().backward()
    assert q.grad is not None and v.grad is not None


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_linear_matches_plain(dtype):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 5, 48, generator=gen).to(dtype)[:, :, :40]  # strided rows
    w, b = torch.randn(32, 40, generator=gen).to(dtype) / 6, torch.randn(32, generator=gen).to(dtype)
    res = torch.randn(6, 5, 32, generator=gen).to(dtype)
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    with torch.inference_mode():
        plain = F.linear(x.float(), w.float(), b.float())
        torch.testing.assert_close(linear(x, w, b).float(), plain, atol=tol, rtol=tol)
        torch.testing.assert_close(linear(x, w, b, gelu=True).float(), F.gelu(plain), atol=tol, rtol=tol)
        torch.testing.assert_close(linear(x, w, b, relu=True).float(), F.relu(plain), atol=tol, rtol=tol)
        torch.testing.assert_close(linear(x, w, None).float(), plain - b.float(), atol=tol, rtol=tol)
        fused = linear(x, w, b, residual=res).float()
        torch.testing.assert_close(fused, plain + res.float(), atol=tol, rtol=tol)
    for combo in (
        {"gelu": True, "residual": res},
        {"relu": True, "residual": res},
        {"gelu": True, "relu": True},
    ):
        with pytest.raises(ValueError, match="one of a GELU, a ReLU or a residual"):
            linear(x, w, b, **combo)


def test_fused_linear_keeps_autograd():
    layer = torch.nn.Linear(8, 4)
    x = torch.randn(3, 8)
    y = linear(x, layer.weight, layer.bias, gelu=True)
    y.sum().backward()
    assert layer.weight.grad is not None


def test_block_fast_paths_match_plain(monkeypatch):
    # small slabs so that every chunked path (window groups, row bands, MLP slabs) runs several steps
    monkeypatch.setattr(hiera, "_CHUNK_ELEMS", 1 << 14)
    torch.manual_seed(0)
    block = MultiScaleBlock(32, 64, num_heads=2, window_size=8, q_stride=(2, 2)).eval()
    x = torch.randn(2, 24, 40, 32)
    normed = block.norm1(x)
    with torch.no_grad():
        shortcut = block._shortcut(x, normed)
        windows, _ = window_partition(normed, 8)
        attended = block.attn.attend(windows)
        fast = block(x)
        y = torch.randn(2, 12, 20, 64)
        mlp = block.mlp_residual_(y.clone())
    with torch.enable_grad():  # the autograd-friendly code: F.linear, whole tensors, SDPA
        x.requires_grad_(True)
        plain = block(x)
        expected_attn = block.attn.attend(windows.requires_grad_(True))
        expected_shortcut = block._shortcut(x, block.norm1(x))
    torch.testing.assert_close(shortcut, expected_shortcut.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(attended, expected_attn.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast, plain.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(mlp, y + block.mlp(block.norm2(y)), atol=1e-5, rtol=1e-5)


def test_trunk_inference_matches_autograd_path():
    trunk = _tiny_trunk()
    x = _image(128)
    with torch.inference_mode():
        fast = trunk(x)
    slow = trunk(x)  # parameters require grad: the plain, differentiable code
    for f, s in zip(fast, slow):
        assert s.requires_grad
        assert _rel_max(s.detach(), f) < 1e-4


def test_fast_path_probe_leaves_global_rng_alone():
    kernels._onednn_linear_works.cache_clear()
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    with torch.inference_mode():
        linear(torch.ones(2, 8), torch.ones(4, 8))
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.filterwarnings("ignore:TF32")
def test_fast_path_off_when_onednn_disabled(monkeypatch):
    calls = []
    monkeypatch.setattr(F, "linear", lambda *a: calls.append(1) or torch.zeros(2, 4))
    with torch.inference_mode(), torch.backends.mkldnn.flags(enabled=False):
        linear(torch.ones(2, 8), torch.ones(4, 8))
    assert calls == [1]
