"""Prompt encoder, two-way transformer and mask decoder against the reference implementation.

One seeded checkpoint in the official format is loaded into both; our modules load their parts
strictly after the ``sam_prompt_encoder.`` / ``sam_mask_decoder.`` prefixes are stripped.
"""

from __future__ import annotations

import pytest
import torch

from masklet.modeling.mask_decoder import MaskDecoder, stability_score
from masklet.modeling.prompt_encoder import PromptEncoder
from masklet.modeling.transformer import TwoWayTransformer
from tests.oracle import build_reference

PRESETS = ("sam2.1_hiera_tiny", "sam2_hiera_tiny")
MASK_TOL = 1e-4  # max |diff| / std(reference)
SCORE_TOL = 1e-5  # absolute, IoU predictions and object-score logits


def _strip(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}


def build_ours(checkpoint, image_size: int = 1024) -> tuple[PromptEncoder, MaskDecoder]:
    sd = torch.load(checkpoint, map_location="cpu", weights_only=True)["model"]
    emb = image_size // 16
    pe = PromptEncoder(256, (emb, emb), (image_size, image_size), 16)
    md = MaskDecoder()
    pe.load_state_dict(_strip(sd, "sam_prompt_encoder."), strict=True)
    md.load_state_dict(_strip(sd, "sam_mask_decoder."), strict=True)
    return pe.eval(), md.eval()


class Pair:
    """The reference model and our prompt encoder / decoder, loaded from the same checkpoint."""

    def __init__(self, preset: str, checkpoint, image_size: int = 1024) -> None:
        self.checkpoint = checkpoint
        self.image_size = image_size
        self.emb = image_size // 16
        overrides = {} if image_size == 1024 else {"image_size": image_size}
        self.ref = build_reference(preset, checkpoint, **overrides)
        self.pe, self.md = build_ours(checkpoint, image_size)


@pytest.fixture(scope="module", params=PRESETS)
def pair(request, reference_checkpoint) -> Pair:
    return Pair(request.param, reference_checkpoint(request.param))


@pytest.fixture(scope="module")
def pair21(reference_checkpoint) -> Pair:
    return Pair(PRESETS[0], reference_checkpoint(PRESETS[0]))


def assert_rel(ours: torch.Tensor, ref: torch.Tensor, tol: float = MASK_TOL, what: str = "") -> None:
    assert ours.shape == ref.shape, f"{what}: shape {tuple(ours.shape)} != reference {tuple(ref.shape)}"
    assert ours.dtype == ref.dtype, f"{what}: dtype {ours.dtype} != reference {ref.dtype}"
    if ref.numel() == 0:
        return
    scale = ref.float().std() if ref.numel() > 1 else ref.float().abs().clamp(min=1.0)
    err = ((ours.float() - ref.float()).abs().max() / scale).item()
    assert err <= tol, f"{what}: max|diff|/std = {err:.3g} > {tol}"


def assert_abs(ours: torch.Tensor, ref: torch.Tensor, tol: float = SCORE_TOL, what: str = "") -> None:
    assert ours.shape == ref.shape, f"{what}: shape {tuple(ours.shape)} != reference {tuple(ref.shape)}"
    err = (ours.float() - ref.float()).abs().max().item()
    assert err <= tol, f"{what}: max|diff| = {err:.3g} > {tol}"


def random_prompts(kind: str, b: int, image_size: int = 1024, seed: int = 0):
    """(points, boxes, masks) for a prompt kind; points include -1 padding and box-corner labels."""
    g = torch.Generator().manual_seed(seed)
    points = boxes = masks = None
    if "points" in kind:
        coords = torch.rand(b, 5, 2, generator=g) * image_size
        labels = torch.randint(0, 2, (b, 5), generator=g, dtype=torch.int32)
        labels[0, -1] = -1  # padding inside the set (its coordinates must not matter)
        labels[-1, 0] = 2
        labels[-1, 1] = 3
        points = (coords, labels)
    if "box" in kind:
        xy0 = torch.rand(b, 2, generator=g) * image_size / 2
        boxes = torch.cat([xy0, xy0 + torch.rand(b, 2, generator=g) * image_size / 2], dim=1)
    if "mask" in kind:
        side = image_size // 4
        masks = torch.randn(b, 1, side, side, generator=g) * 4
    return points, boxes, masks


def random_image_features(b: int, emb: int = 64, seed: int = 1):
    """Image embedding (b, 256, emb, emb) and projected high-res features, as the model feeds them."""
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(b, 256, emb, emb, generator=g)
    high_res = [
        torch.randn(b, 32, 4 * emb, 4 * emb, generator=g),
        torch.randn(b, 64, 2 * emb, 2 * emb, generator=g),
    ]
    return image, high_res


# ------------------------------------------------------------------------------------------ checkpoint


def test_parameter_names_and_shapes_equal_checkpoint(pair):
    sd = torch.load(pair.checkpoint, map_location="cpu", weights_only=True)["model"]
    for prefix, module in (("sam_prompt_encoder.", pair.pe), ("sam_mask_decoder.", pair.md)):
        expected = {k: tuple(v.shape) for k, v in _strip(sd, prefix).items()}
        ours = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        assert ours == expected


# -------------------------------------------------------------------------------------- prompt encoder

PROMPT_KINDS = ("points", "box", "points+box", "points+mask", "box+mask", "mask", "none")


@pytest.mark.parametrize("kind", PROMPT_KINDS)
def test_prompt_encoder_matches_reference(pair21, kind):
    points, boxes, masks = random_prompts(kind, b=3)
    with torch.no_grad():
        ref_sparse, ref_dense = pair21.ref.sam_prompt_encoder(points, boxes, masks)
        sparse, dense = pair21.pe(points, boxes, masks)
    assert_rel(sparse, ref_sparse, 1e-6, "sparse")
    assert_rel(dense, ref_dense, 1e-5, "dense")


def test_prompt_encoder_token_counts(pair21):
    points, boxes, _ = random_prompts("points+box", b=2)
    assert pair21.pe(points, None, None)[0].shape == (2, 6, 256)  # 5 points + padding token
    assert pair21.pe(points, boxes, None)[0].shape == (2, 7, 256)  # no padding with a box
    assert pair21.pe(None, boxes, None)[0].shape == (2, 2, 256)
    assert pair21.pe(None, None, None)[0].shape == (1, 0, 256)


def test_padding_point_ignores_its_coordinates(pair21):
    points, _, _ = random_prompts("points", b=3)
    coords, labels = points
    moved = coords.clone()
    moved[0, -1] += 300.0  # labels[0, -1] is -1
    with torch.no_grad():
        a = pair21.pe((coords, labels), None, None)[0]
        b = pair21.pe((moved, labels), None, None)[0]
    assert torch.equal(a, b)
    assert torch.equal(a[0, -2], pair21.pe.not_a_point_embed.weight[0])


def test_unusual_labels_and_coordinate_dtypes_match_reference(pair21):
    """Labels outside -1..3 keep the bare position encoding; integer / float64 coords are accepted."""
    coords = torch.tensor([[[10, 20], [500, 7], [1023, 1023], [0, 0]]])
    labels = torch.tensor([[5, -2, 1, 0]])
    with torch.no_grad():
        for c in (coords, coords.double(), coords.float() + 0.25):
            ref = pair21.ref.sam_prompt_encoder((c, labels), None, None)[0]
            ours = pair21.pe((c, labels), None, None)[0]
            assert_rel(ours, ref.float(), 1e-6, f"coords {c.dtype}")


def test_dense_pe_matches_reference(pair21):
    ref = pair21.ref.sam_prompt_encoder.get_dense_pe()
    ours = pair21.pe.get_dense_pe()
    assert ours.shape == (1, 256, 64, 64)
    assert_rel(ours, ref, 1e-6, "dense pe")


# ----------------------------------------------------------------------------------------- transformer


def test_transformer_matches_reference_with_broadcast_pe(pair21):
    """Our transformer takes a batch-1 position encoding without copying it per prompt."""
    ours = TwoWayTransformer()
    ours.load_state_dict(pair21.md.transformer.state_dict(), strict=True)
    g = torch.Generator().manual_seed(3)
    image = torch.randn(2, 256, 16, 16, generator=g)
    pe = torch.randn(1, 256, 16, 16, generator=g)
    tokens = torch.randn(2, 9, 256, generator=g)
    with torch.no_grad():
        ref_q, ref_k = pair21.ref.sam_mask_decoder.transformer(image, pe.expand(2, -1, -1, -1), tokens)
        q, k = ours(image, pe, tokens)
    assert_rel(q, ref_q, 1e-5, "queries")
    assert_rel(k, ref_k, 1e-5, "keys")


# ---------------------------------------------------------------------------------------- mask decoder


def run_both(pair: Pair, kind: str, b: int, multimask: bool, repeat_image: bool, seed: int = 0):
    points, boxes, masks = random_prompts(kind, b, pair.image_size, seed)
    image, high_res = random_image_features(1 if repeat_image else b, pair.emb, seed + 1)
    outs = []
    with torch.no_grad():
        for pe, md in ((pair.ref.sam_prompt_encoder, pair.ref.sam_mask_decoder), (pair.pe, pair.md)):
            sparse, dense = pe(points, boxes, masks)
            outs.append(md(image, pe.get_dense_pe(), sparse, dense, multimask, repeat_image, high_res))
    return outs


def assert_decoder_outputs_match(ref_out, our_out) -> None:
    names = ("masks", "iou_pred", "sam_tokens_out", "object_score_logits")
    assert_rel(our_out[0], ref_out[0], MASK_TOL, "masks")
    assert_abs(our_out[1], ref_out[1], SCORE_TOL, "iou_pred")
    assert_rel(our_out[2], ref_out[2], 1e-5, "sam_tokens_out")
    assert_abs(our_out[3], ref_out[3], SCORE_TOL, "object_score_logits")
    for name, o, r in zip(names, our_out, ref_out):
        assert o.shape == r.shape, name


DECODER_CASES = [
    # kind, batch, multimask, repeat_image
    ("points", 3, True, False),
    ("points", 3, False, False),
    ("points", 5, True, True),  # one image, many prompts: the shared-image fast path
    ("box", 2, True, True),
    ("box", 1, False, False),
    ("points+box", 2, False, True),
    ("points+mask", 2, True, False),
    ("none", 1, True, False),
]


@pytest.mark.parametrize("kind,b,multimask,repeat_image", DECODER_CASES)
def test_decoder_matches_reference(pair21, kind, b, multimask, repeat_image):
    ref_out, our_out = run_both(pair21, kind, b, multimask, repeat_image)
    m = 3 if multimask else 1
    assert our_out[0].shape == (b, m, 256, 256)
    assert our_out[1].shape == (b, m)
    assert our_out[2].shape == (b, m, 256)
    assert our_out[3].shape == (b, 1)
    assert_decoder_outputs_match(ref_out, our_out)


@pytest.mark.parametrize("multimask", [True, False])
def test_decoder_matches_reference_sam2_and_sam21(pair, multimask):
    ref_out, our_out = run_both(pair, "points+mask", 2, multimask, repeat_image=True, seed=5)
    assert_decoder_outputs_match(ref_out, our_out)


def test_decoder_training_mode_returns_mask_zero(pair21):
    """No stability fallback in training: single-mask output is always token 0 (as in the reference)."""
    pair21.md.train()
    pair21.ref.sam_mask_decoder.train()
    try:
        ref_out, our_out = run_both(pair21, "points", 2, multimask=False, repeat_image=False)
        with torch.no_grad():
            points, _, _ = random_prompts("points", 2)
            image, high_res = random_image_features(2)
            sparse, dense = pair21.pe(points, None, None)
            all_masks = pair21.md.predict_masks(
                image, pair21.pe.get_dense_pe(), sparse, dense, False, high_res
            )[0]
    finally:
        pair21.md.eval()
        pair21.ref.sam_mask_decoder.eval()
    assert_decoder_outputs_match(ref_out, our_out)
    assert torch.equal(our_out[0], all_masks[:, :1])


def test_dynamic_multimask_fallback_switches_only_unstable_items(pair21):
    """Item 1 gets strong high-res features (large logits: a stable single mask); items 0 and 2 keep
    random ones, whose single mask is unstable, so they must switch to the best multimask output."""
    points, _, _ = random_prompts("points", 3, seed=7)
    image, high_res = random_image_features(3, seed=8)
    high_res[0][1] *= 30
    pe, md = pair21.pe, pair21.md
    ref_md = pair21.ref.sam_mask_decoder
    with torch.no_grad():
        sparse, dense = pe(points, None, None)
        dense_pe = pe.get_dense_pe()
        all_masks, all_iou, _, _ = md.predict_masks(image, dense_pe, sparse, dense, False, high_res)
        ours = md(image, dense_pe, sparse, dense, False, False, high_res)
        ref = ref_md(image, dense_pe, sparse, dense, False, False, high_res)
    ref_stability = ref_md._get_stability_scores(all_masks[:, :1])[:, 0]
    assert_abs(stability_score(all_masks[:, 0], 0.05), ref_stability, 0.0, "stability")
    stable = ref_stability >= 0.98
    assert stable.tolist() == [False, True, False], f"test setup: stability {ref_stability.tolist()}"
    assert_decoder_outputs_match(ref, ours)
    best = 1 + all_iou[:, 1:].argmax(dim=1)
    for i in range(3):
        chosen = 0 if stable[i] else int(best[i])
        assert torch.equal(ours[0][i, 0], all_masks[i, chosen]), f"item {i} should use mask {chosen}"
        assert ours[1][i, 0] == all_iou[i, chosen]
    # the switch is real: the chosen multimask output differs from the single-mask output
    assert not torch.allclose(ours[0][0, 0], all_masks[0, 0])
    # the pointer token stays the single-mask token either way
    with torch.no_grad():
        single_token = md.predict_masks(image, dense_pe, sparse, dense, False, high_res)[2][:, :1]
    assert torch.equal(ours[2], single_token)


def test_stability_score_matches_reference_definitions(pair21):
    from sam2.utils.amg import calculate_stability_score

    g = torch.Generator().manual_seed(11)
    logits = torch.randn(4, 2, 32, 32, generator=g) * 3
    logits[0, 0] = -5.0  # empty under both cuts
    logits[1, 1] = 0.01  # inside the +-0.05 band everywhere: intersection empty, union full
    ref = pair21.ref.sam_mask_decoder._get_stability_scores(logits)
    ours = stability_score(logits, 0.05)
    assert_abs(ours, ref, 0.0, "decoder stability")
    assert ours[0, 0] == 1.0 and ours[1, 1] == 0.0
    ref_amg = calculate_stability_score(logits, 0.0, 1.0)
    ours_amg = stability_score(logits, 1.0, threshold=0.0, empty=float("nan"))
    assert torch.equal(ours_amg.isnan(), ref_amg.isnan())
    ok = ~ref_amg.isnan()
    assert_abs(ours_amg[ok], ref_amg[ok], 0.0, "amg stability")


# ------------------------------------------------------------------------------------- other image size


@pytest.fixture(scope="module")
def pair512(reference_checkpoint) -> Pair:
    return Pair(PRESETS[0], reference_checkpoint(PRESETS[0]), image_size=512)


@pytest.mark.parametrize("kind,multimask", [("points+mask", True), ("points+box", False)])
def test_image_size_512_matches_reference(pair512, kind, multimask):
    assert pair512.pe.get_dense_pe().shape == (1, 256, 32, 32)
    assert_rel(pair512.pe.get_dense_pe(), pair512.ref.sam_prompt_encoder.get_dense_pe(), 1e-6, "dense pe")
    ref_out, our_out = run_both(pair512, kind, 2, multimask, repeat_image=False, seed=2)
    assert our_out[0].shape[-2:] == (128, 128)
    assert_decoder_outputs_match(ref_out, our_out)


# ---------------------------------------------------------------------------------------------- bfloat16


def test_bfloat16_close_to_float32(pair21):
    pe16, md16 = (m.to(torch.bfloat16) for m in build_ours(pair21.checkpoint))
    points, _, masks = random_prompts("points+mask", 2, seed=4)
    image, high_res = random_image_features(2, seed=5)
    with torch.no_grad():
        sparse, dense = pair21.pe(points, None, masks)
        ref = pair21.md(image, pair21.pe.get_dense_pe(), sparse, dense, True, False, high_res)
        sparse16, dense16 = pe16(points, None, masks.bfloat16())
        out = md16(
            image.bfloat16(),
            pe16.get_dense_pe(),
            sparse16,
            dense16,
            True,
            False,
            [h.bfloat16() for h in high_res],
        )
    assert all(t.dtype == torch.bfloat16 for t in (sparse16, dense16, *out))
    agree = ((out[0] > 0) == (ref[0] > 0)).float().mean().item()
    assert agree > 0.98, f"bf16 masks agree in sign on {agree:.2%} of pixels"
    assert_abs(out[1], ref[1], 0.02, "bf16 iou")
    assert_abs(out[3], ref[3], 0.05, "bf16 object score")


# ------------------------------------------------------------------------------------------- bad inputs


@pytest.fixture(scope="module")
def small_modules() -> tuple[PromptEncoder, MaskDecoder]:
    return PromptEncoder(256, (8, 8), (128, 128), 16).eval(), MaskDecoder().eval()


@pytest.mark.parametrize(
    "points,boxes,masks,message",
    [
        (
            (torch.zeros(2, 3, 2), torch.zeros(2, 4)),
            None,
            None,
            r"labels must have shape \(B, N\) = \(2, 3\)",
        ),
        ((torch.zeros(2, 3, 3), torch.zeros(2, 3)), None, None, r"coords must have shape \(B, N, 2\)"),
        ((torch.zeros(3, 2),), None, None, r"points must be a pair"),
        (None, torch.zeros(2, 2), None, r"boxes must have shape \(B, 4\)"),
        (None, None, torch.zeros(2, 1, 64, 64), r"mask prompt must have shape \(B, 1, 32, 32\)"),
        ((torch.zeros(2, 3, 2), torch.zeros(2, 3)), torch.zeros(3, 4), None, r"disagree on the batch size"),
    ],
)
def test_prompt_encoder_rejects_bad_inputs(small_modules, points, boxes, masks, message):
    with pytest.raises(ValueError, match=message):
        small_modules[0](points, boxes, masks)


def _decoder_inputs(b_img=2, b=2, pe_batch=1, grid=8, dense_grid=8, channels=256, high_res=True):
    return dict(
        image_embeddings=torch.zeros(b_img, channels, grid, grid),
        image_pe=torch.zeros(pe_batch, 256, grid, grid),
        sparse_prompt_embeddings=torch.zeros(b, 3, 256),
        dense_prompt_embeddings=torch.zeros(b, 256, dense_grid, dense_grid),
        high_res_features=[
            torch.zeros(b_img, 32, 4 * grid, 4 * grid),
            torch.zeros(b_img, 64, 2 * grid, 2 * grid),
        ]
        if high_res
        else None,
    )


@pytest.mark.parametrize(
    "inputs,repeat_image,message",
    [
        (_decoder_inputs(channels=128), False, r"image_embeddings must be \(B, 256, h, w\)"),
        (_decoder_inputs(pe_batch=2), False, r"image_pe must be \(1, 256, 8, 8\)"),
        (_decoder_inputs(dense_grid=4), False, r"dense_prompt_embeddings must be \(2, 256, 8, 8\)"),
        (_decoder_inputs(b_img=3), False, r"image_embeddings batch \(3\) must equal the prompt batch \(2\)"),
        (_decoder_inputs(b_img=2), True, r"repeat_image=True .* must have batch 1; got 2"),
        (_decoder_inputs(high_res=False), False, r"needs high_res_features"),
    ],
)
def test_decoder_rejects_bad_inputs(small_modules, inputs, repeat_image, message):
    with pytest.raises(ValueError, match=message):
        small_modules[1](**inputs, multimask_output=True, repeat_image=repeat_image)


def test_decoder_accepts_good_small_inputs(small_modules):
    """The bad-input cases differ from this valid call in one argument only."""
    with torch.no_grad():
        out = small_modules[1](**_decoder_inputs(), multimask_output=True, repeat_image=False)
        shared = small_modules[1](**_decoder_inputs(b_img=1), multimask_output=False, repeat_image=True)
    assert out[0].shape == (2, 3, 32, 32)
    assert shared[0].shape == (2, 1, 32, 32)


# ------------------------------------------------------------------------ folded cross attention
@pytest.mark.parametrize("shared", [False, True])
def test_folded_attention_equals_the_plain_forms(shared):
    """attend_to_many / attend_from_many (inference fast paths) equal forward(), also with the image
    side shared (batch 1) by several prompt sets."""
    from masklet.modeling.common import Attention

    torch.manual_seed(0)
    attn = Attention(256, 8, downsample_rate=2).eval()
    few = torch.randn(3, 7, 256)
    many = torch.randn(1 if shared else 3, 300, 256)
    residual = torch.randn(1 if shared else 3, 300, 256)
    expanded = many.expand(3, -1, -1)
    with torch.no_grad():
        assert attn.folds(7) and not attn.folds(16)  # 8 heads x 16 tokens = the 128-wide projection
        to_many = attn.attend_to_many(few, many, many)
        from_many = attn.attend_from_many(many, few, few, residual=residual)
    with torch.enable_grad():
        assert not attn.folds(7)
        plain_to = attn(few, expanded, expanded).detach()
        plain_from = (residual + attn(expanded, few, few)).detach()
    torch.testing.assert_close(to_many, plain_to, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(from_many, plain_from, rtol=1e-5, atol=1e-5)
