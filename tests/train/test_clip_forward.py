"""The training rollout runs the model exactly as VideoPredictor does, and gradients reach every
trained module."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from masklet.eval.synthetic import generate_video
from masklet.inference.video import VideoPredictor
from masklet.modeling.sam2 import NO_OBJECT_SCORE, SAM2Model
from masklet.presets import get_preset
from masklet.train.augment import augment_frames, augment_masks, identity
from masklet.train.clip_forward import ClipForward, ClipRollout, inference_memory_bank
from masklet.train.clips import Clip, ClipSpec
from masklet.train.config import LossConfig, PromptConfig
from masklet.train.features import ClipEncoder
from masklet.train.optim import apply_freeze
from masklet.train.prompts import PromptPlan

S = 128


def make_model(seed: int = 0) -> SAM2Model:
    """Random weights whose objects are judged present, so that masks and memories carry content."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = SAM2Model(get_preset("sam2.1_hiera_tiny", S))
    with torch.no_grad():
        model.sam_mask_decoder.pred_obj_score_head.layers[2].bias += 3.0
    return model


@pytest.fixture(scope="module")
def model():
    return make_model().eval()


@pytest.fixture(scope="module")
def video():
    """5 frames of 128x128 (video pixels = model pixels) with two objects visible on frame 0."""
    v = generate_video(1, seed=2, num_frames=5, size=(S, S), objects=(2, 2), late_objects=0.0)
    masks = np.stack([[v.labels[t] == k for k in (1, 2)] for t in range(5)])
    assert masks[0].reshape(2, -1).any(axis=1).all()
    return v.frames, masks


def rollout(model, frames, masks, plan, rng=None):
    images = augment_frames(list(frames), S, identity())
    gt = augment_masks(masks, S, identity())
    with torch.no_grad():
        feats = model.encode_image(images)
        per_frame = [feats.select(i) for i in range(len(frames))]
        return ClipRollout(model, PromptConfig(correction_sampling="center")).run(
            per_frame, gt, plan, rng or np.random.default_rng(0)
        )


def session_masks(state, t):
    return torch.cat([o.cond.get(t, o.non_cond.get(t)).pred_masks for o in state.objects])


def test_same_memory_bank_and_step_as_inference(model):
    """Training rolls clips out with the predictors' own memory bank and tracking step (no copy of
    the output selection); the selection keeps the candidate with the highest predicted IoU."""
    assert inference_memory_bank(model) == VideoPredictor(model).bank
    assert type(ClipRollout(model, PromptConfig()).step) is type(VideoPredictor(model).core.step)
    torch.manual_seed(0)
    pix = torch.randn(2, 256, 8, 8)
    high = [torch.randn(2, 32, 32, 32), torch.randn(2, 64, 16, 16)]
    points = (torch.tensor([[[40.0, 50.0]], [[90.0, 20.0]]]), torch.ones(2, 1, dtype=torch.int32))
    with torch.no_grad():
        out = model.decode(pix, high, points, None, True)
        out.object_score = torch.tensor([[1.0], [-1.0]])  # the second object judged absent
        res = model.select_output(out, True)
        best = out.iou[0].argmax()
        assert torch.equal(res.low_res_masks[0, 0], out.low_res_masks[0, best])
        assert torch.all(res.low_res_masks[1] == NO_OBJECT_SCORE)
        assert torch.equal(res.obj_ptr[1], model.no_obj_ptr[0])
        assert torch.equal(res.high_res_masks, model.upscale_masks(res.low_res_masks, model.image_size))


def test_mask_prompt_rollout_matches_video_predictor(model, video):
    frames, masks = video
    _, outputs = rollout(model, frames, masks, PromptPlan("mask", (0, 3), 0))
    pred = VideoPredictor(model, fill_hole_area=0, memory_dtype=torch.float32)
    state = pred.init_state(list(frames))
    for t in (0, 3):
        for k in (1, 2):
            pred.add_new_mask(state, t, k, masks[t, k - 1])
    for _ in pred.propagate_in_video(state):
        pass
    for t in range(5):
        ref = session_masks(state, t)
        torch.testing.assert_close(outputs[t].low_res_masks, ref, atol=1e-4, rtol=1e-4)
        assert ((outputs[t].low_res_masks > 0) == (ref > 0)).float().mean() > 0.999


@pytest.mark.parametrize("kind", ["click", "box"])
def test_click_and_box_rollout_with_corrections_matches_video_predictor(model, video, kind):
    frames, masks = video
    steps, outputs = rollout(model, frames, masks, PromptPlan(kind, (0,), 2), np.random.default_rng(3))
    coords, labels = steps[2].points  # the last correction step on frame 0 holds every prompt
    first = 2 if kind == "box" else 1
    assert coords.shape == (2, first + 2, 2)
    pred = VideoPredictor(model, fill_hole_area=0, memory_dtype=torch.float32)
    state = pred.init_state(list(frames))
    for i, k in enumerate((1, 2)):
        if kind == "box":
            pred.add_new_points_or_box(state, 0, k, box=coords[i, :2].reshape(-1))
        else:
            pred.add_new_points_or_box(state, 0, k, points=coords[i, :1], labels=labels[i, :1])
        for j in range(first, first + 2):
            pred.add_new_points_or_box(
                state, 0, k, points=coords[i, j : j + 1], labels=labels[i, j : j + 1], clear_old_points=False
            )
    for _ in pred.propagate_in_video(state):
        pass
    for t in range(5):
        ref = session_masks(state, t)
        torch.testing.assert_close(outputs[t].low_res_masks, ref, atol=1e-4, rtol=1e-4)


def clip_of(frames, masks) -> Clip:
    spec = ClipSpec(0, 0, tuple(range(len(frames))), (1, 2), identity(), None)
    images = augment_frames(list(frames), S, identity())
    return Clip(spec, augment_masks(masks, S, identity()), images)


def forward_module(model, trainable: bool, checkpointing: bool) -> ClipForward:
    feats = ClipEncoder(model, lambda clip, pos: clip.images[pos], trainable, None, checkpointing)
    prompts = PromptConfig(
        prob_mask=0.0, prob_click=1.0, prob_box=0.0, correction_iters=1, max_prompted_frames=1
    )
    return ClipForward(model, feats, prompts, LossConfig(), checkpointing)


def loss_and_grads(model, clip, trainable: bool, checkpointing: bool):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(7)
    out = forward_module(model, trainable, checkpointing)([clip], np.random.default_rng(11))
    out.loss.backward()
    return out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_gradients_reach_the_trained_modules_only(video):
    frames, masks = video
    model = make_model().train()
    frozen = apply_freeze(model, ("image_encoder",))
    out, grads = loss_and_grads(model, clip_of(frames[:3], masks[:3]), False, False)
    assert out.steps == 2 + 2 and out.objects == 2 and torch.isfinite(out.loss)  # 2 click steps, 2 tracked
    assert not set(frozen) & set(grads)
    for prefix in (
        "sam_mask_decoder.",
        "sam_prompt_encoder.",
        "memory_attention.",
        "memory_encoder.",
        "obj_ptr_proj.",
    ):
        assert any(n.startswith(prefix) and g.abs().sum() > 0 for n, g in grads.items()), prefix
    assert grads["maskmem_tpos_enc"].abs().sum() > 0 and grads["no_mem_embed"].abs().sum() > 0


def test_activation_checkpointing_gives_the_same_loss_and_gradients(video):
    frames, masks = video
    model = make_model().train()
    clip = clip_of(frames[:3], masks[:3])
    plain, g_plain = loss_and_grads(model, clip, True, False)
    ckpt, g_ckpt = loss_and_grads(model, clip, True, True)
    assert torch.equal(plain.loss, ckpt.loss)
    assert set(g_plain) == set(g_ckpt) and any(n.startswith("image_encoder.trunk.") for n in g_plain)
    for name in g_plain:
        torch.testing.assert_close(g_plain[name], g_ckpt[name], atol=1e-5, rtol=1e-4)
