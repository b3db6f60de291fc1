"""VideoPredictor.add_mask_memory: an existing mask (an earlier run's, a machine pre-label) enters memory
as a tracked frame, with exactly the memory and pointer a mask prompt there gives, without a prompt."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from masklet.inference.prompts import PromptError
from masklet.inference.video import TrackingError, VideoPredictor
from masklet.modeling.sam2 import SAM2Model
from masklet.presets import get_preset
from tests.conftest import synthetic_image

H, W, N = 72, 96, 8


@pytest.fixture(scope="module")
def model() -> SAM2Model:
    torch.manual_seed(0)
    m = SAM2Model(get_preset("sam2.1_hiera_tiny", image_size=128)).eval()
    with torch.no_grad():  # random weights score objects near 0: make them present
        m.sam_mask_decoder.pred_obj_score_head.layers[2].bias += 2.0
    return m


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    base = synthetic_image(H, W, seed=1)
    return [np.ascontiguousarray(np.roll(base, 3 * i, axis=1)) for i in range(N)]


def blob(t: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[20:50, 10 + 3 * t : 40 + 3 * t] = True
    return m


def test_a_remembered_mask_is_a_tracked_frame_with_a_mask_prompts_memory(model, frames):
    p = VideoPredictor(model, memory_dtype=torch.float32, fill_hole_area=0)
    remembered = p.init_state(frames)
    p.add_mask_memory(remembered, 3, 1, blob(3))
    obj = remembered.objects[0]
    assert set(obj.non_cond) == {3} and obj.tracked == {3: False}
    assert not obj.points and not obj.masks and not obj.cond and not obj.temp_cond
    with pytest.raises(TrackingError, match="object id 1 has no points, box or mask"):
        list(p.propagate_in_video(remembered))  # a remembered mask is not a prompt

    prompted = p.init_state(frames)
    p.add_new_mask(prompted, 3, 1, blob(3))
    p.propagate_in_video_preflight(prompted)
    ours, ref = obj.non_cond[3], prompted.objects[0].cond[3]
    assert torch.equal(ours.maskmem_features, ref.maskmem_features)
    assert torch.equal(ours.obj_ptr, ref.obj_ptr) and torch.equal(ours.pred_masks, ref.pred_masks)
    assert (ours.pred_masks > 0).any() and not (ours.pred_masks > 0).all()


def test_tracking_attends_to_remembered_frames(model, frames):
    p = VideoPredictor(model, fill_hole_area=0)

    def track(remember: bool) -> torch.Tensor:
        s = p.init_state(frames)
        p.add_new_points_or_box(s, 0, 1, points=[[25, 35]], labels=[1])
        if remember:
            for t in range(1, 5):
                p.add_mask_memory(s, t, 1, blob(t))
        sel = s.objects[0].select(p.bank, 5, reverse=False, num_frames=N)
        used = [id(out) for _, out in sel.memories]
        if remember:
            assert all(id(s.objects[0].non_cond[t]) in used for t in range(1, 5))
        (_, _, logits), *_ = p.propagate_in_video(s, start_frame_idx=5, max_frame_num_to_track=0)
        s.close()
        return logits

    with_memory, without = track(True), track(False)
    assert not torch.equal(with_memory, without)


def test_a_click_on_a_remembered_frame_is_a_correction(model, frames):
    for as_cond in (False, True):
        p = VideoPredictor(model, add_all_frames_to_correct_as_cond=as_cond)
        s = p.init_state(frames)
        p.add_new_points_or_box(s, 0, 1, points=[[25, 35]], labels=[1])
        for t in (2, 3, 4):
            p.add_mask_memory(s, t, 1, blob(t))
        p.add_new_points_or_box(s, 4, 1, points=[[30, 35]], labels=[1])
        obj = s.objects[0]
        assert set(obj.temp_cond if as_cond else obj.temp_non_cond) == {4} | ({0} if as_cond else set())
        assert 0 in obj.temp_cond  # the initial prompt, still staged


def test_a_click_with_nothing_in_memory_yet_is_an_initial_prompt(model, frames):
    """A remembered frame alone gives a correction nothing to attend to: the click is decoded
    without memory (refining the remembered mask, the frame's newest output) and becomes a
    prompted frame, as on an untracked frame."""
    p = VideoPredictor(model)
    s = p.init_state(frames)
    p.add_mask_memory(s, 4, 1, blob(4))
    p.add_new_points_or_box(s, 4, 1, points=[[30, 35]], labels=[1])
    obj = s.objects[0]
    assert set(obj.temp_cond) == {4} and not obj.temp_non_cond
    p.propagate_in_video_preflight(s)
    assert set(obj.cond) == {4} and 4 not in obj.non_cond


def test_prompted_frames_keep_their_prompt_and_bad_masks_change_nothing(model, frames):
    p = VideoPredictor(model)
    s = p.init_state(frames)
    p.add_new_points_or_box(s, 2, 1, points=[[25, 35]], labels=[1])
    staged = s.objects[0].temp_cond[2]
    p.add_mask_memory(s, 2, 1, blob(2))
    assert s.objects[0].temp_cond[2] is staged and 2 not in s.objects[0].non_cond
    with pytest.raises(PromptError, match=r"mask must be a 2-D \(H, W\) array"):
        p.add_mask_memory(s, 3, 1, np.ones((1, 10, 10), bool))
    with pytest.raises(PromptError, match="frame_idx must be an integer in"):
        p.add_mask_memory(s, N, 1, blob(1))
    assert s.obj_ids == [1] and not s.objects[0].non_cond
