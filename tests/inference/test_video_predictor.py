"""VideoPredictor behaviour that needs no reference: bad inputs, interruptions, options, memory selection.

Parity with the official SAM2VideoPredictor lives in test_video_parity.py. Here a random-weight
sam2.1 tiny model at image_size 128 runs on tiny synthetic videos; its object-score head is shifted
so that objects are mostly present (with the raw random head nearly every mask would be "absent").
"""

from __future__ import annotations

import dataclasses
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from masklet.inference.memory_bank import MemoryBank
from masklet.inference.postprocess import fill_holes
from masklet.inference.prompts import PromptError
from masklet.inference.video import TrackingError, VideoPredictor
from masklet.io.frames import FrameError
from masklet.modeling.sam2 import NO_OBJECT_SCORE, SAM2Model
from masklet.presets import get_preset
from tests.conftest import synthetic_image

H, W, N = 72, 96, 8
CLICK = dict(points=[[40, 30]], labels=[1])  # object 1
BOX = dict(box=[5, 5, 60, 50])  # object 2


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def model() -> SAM2Model:
    torch.manual_seed(0)
    m = SAM2Model(get_preset("sam2.1_hiera_tiny", image_size=128)).eval()
    with torch.no_grad():  # random weights score objects near 0: make them present
        m.sam_mask_decoder.pred_obj_score_head.layers[2].bias += 2.0
    return m


def make_frames(n: int, h: int = H, w: int = W) -> list[np.ndarray]:
    base = synthetic_image(h, w, seed=1)
    return [np.ascontiguousarray(np.roll(base, 3 * i, axis=1)) for i in range(n)]


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return make_frames(N)


@pytest.fixture(scope="module")
def predictor(model) -> VideoPredictor:
    return VideoPredictor(model)


@pytest.fixture
def new_state(predictor, frames):
    """Factory of sessions (default: the module's frames and predictor), closed after the test."""
    made = []

    def make(video=None, p=None, **kwargs):
        s = (p or predictor).init_state(frames if video is None else video, **kwargs)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def prompt_two(p: VideoPredictor, s):
    """Object 1 by a click and object 2 by a box, both on frame 0; returns both results."""
    return p.add_new_points_or_box(s, 0, 1, **CLICK), p.add_new_points_or_box(s, 0, 2, **BOX)


def run(gen) -> dict[int, torch.Tensor]:
    return {f: m.clone() for f, _, m in gen}


@pytest.fixture(scope="module")
def reference(predictor, frames):
    """An uninterrupted session: the two prompts on frame 0, then propagation over all frames.

    Tests must not change ``state``; they compare their own fresh sessions to these results.
    """
    s = predictor.init_state(frames)
    add1, add2 = prompt_two(predictor, s)
    masks = run(predictor.propagate_in_video(s))
    yield SimpleNamespace(state=s, add1=add1, add2=add2, masks=masks)
    s.close()


def assert_same(got: dict[int, torch.Tensor], want: dict[int, torch.Tensor], frames=None) -> None:
    frames = sorted(got) if frames is None else list(frames)
    for f in frames:
        assert torch.equal(got[f], want[f]), f"frame {f} differs from the uninterrupted run"


def assert_same_result(got, want) -> None:
    assert got[0] == want[0] and list(got[1]) == list(want[1])
    assert torch.equal(got[2], want[2])


def overlap(masks: torch.Tensor) -> int:
    return int(((masks > 0).sum(0) > 1).sum())


# ---------------------------------------------------------------------------------------------- bad videos
def test_bad_videos_raise_clear_errors(predictor, frames, tmp_path, new_state):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"this is not a video" * 100)
    empty = tmp_path / "empty"
    empty.mkdir()
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("no frames here")
    cases = [
        (corrupt, "is not a readable video"),
        (tmp_path / "missing.mp4", "no such video file or frame folder"),
        (empty, "no JPEG/PNG frames in folder .* \\(found nothing\\)"),
        (junk, "no JPEG/PNG frames in folder .* \\(found notes.txt\\)"),
        ([], "got no frames"),
        (np.zeros((0, H, W, 3), np.uint8), "got no frames"),
        (frames[0], "got one image of shape"),
        ([frames[0], frames[1][:10]], "frame 1 has shape .* all frames must have the same size"),
        ([frames[0].astype(np.float32)], "expected \\(H, W, 3\\) uint8"),
        (42, "cannot read frames from a int"),
    ]
    for video, message in cases:
        with pytest.raises(FrameError, match=message):
            predictor.init_state(video)
    assert issubclass(FrameError, ValueError)
    s = new_state()  # the predictor is still usable
    assert s.num_frames == N


# ---------------------------------------------------------------------------------------------- bad prompts
BAD_FRAMES = [N, N + 5, -1, 1.0, "0", True, None]


@pytest.mark.parametrize("method", ["points", "mask", "clear", "propagate"])
def test_bad_frame_idx_is_rejected_and_the_state_stays_usable(method, predictor, new_state, reference):
    s = new_state()
    mask = np.zeros((H, W), bool)
    mask[10:40, 10:50] = True
    call = {
        "points": lambda f: predictor.add_new_points_or_box(s, f, 1, **CLICK),
        "mask": lambda f: predictor.add_new_mask(s, f, 1, mask),
        "clear": lambda f: predictor.clear_all_prompts_in_frame(s, f, 1),
        "propagate": lambda f: list(predictor.propagate_in_video(s, start_frame_idx=f)),
    }[method]
    if method == "clear":
        assert_same_result(predictor.add_new_points_or_box(s, 0, 1, **CLICK), reference.add1)
    elif method == "propagate":
        prompt_two(predictor, s)

    def snapshot():
        return {o.obj_id: (set(o.points), set(o.masks), set(o.temp_cond), set(o.cond)) for o in s.objects}

    before = snapshot()
    for bad in BAD_FRAMES:
        if bad is None and method == "propagate":
            continue  # None is the default start there
        with pytest.raises(
            PromptError, match=rf"frame_idx must be an integer in \[0, {N - 1}\].*got {bad!r}"
        ):
            call(bad)
        if method != "propagate":  # see test_bad_propagate_arguments_leave_pending_prompts_pending
            assert snapshot() == before
    assert issubclass(PromptError, ValueError)
    # the session goes on exactly as a fresh one (numpy integers are frame indices too)
    if method == "propagate":
        # frames 0..2 of a forward run depend on nothing later: they equal the full run's
        assert_same(run(predictor.propagate_in_video(s, max_frame_num_to_track=2)), reference.masks, range(3))
    elif method == "clear":
        assert_same_result(predictor.add_new_points_or_box(s, np.int64(0), 2, **BOX), reference.add2)
    else:
        assert_same_result(predictor.add_new_points_or_box(s, np.int64(0), 1, **CLICK), reference.add1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(points=[[40, 30]]), "points and labels must be given together"),
        (dict(labels=[1]), "points and labels must be given together"),
        (dict(), "give points \\(with labels\\) or a box"),
        (dict(points=[[40, 30], [10, 10]], labels=[1]), "one label per point: 2 point"),
        (dict(points=[[40, 30]], labels=[1, 0]), "one label per point: 1 point"),
        (dict(points=[[40, 30]], labels=[5]), "unknown point label"),
        (dict(points=[[400, 30]], labels=[1]), "lies outside the image \\(x in \\[0, 96\\]"),
        (dict(points=[[40, 30]], labels=[1], normalize_coords=False), "relative coordinates in \\[0, 1\\]"),
        (dict(points=[[np.nan, 30]], labels=[1]), "NaN"),
        (dict(box=[50, 5, 10, 40]), "x1 < x0"),
        (
            dict(box=[-5, 5, 40, 40]),
            "box \\[-5.0, 5.0, 40.0, 40.0\\] reaches outside the image \\(x in \\[0, 96\\]",
        ),
        (dict(box=[[0, 0, 5, 5], [1, 1, 6, 6]]), "one box per call, got 2"),
        (dict(box=[1, 2, 3]), "box must have shape"),
        (dict(box=[5, 5, 60, 50], clear_old_points=False), "a box must come before any click"),
    ],
)
def test_bad_point_and_box_prompts_change_nothing(kwargs, message, predictor, new_state, reference):
    s = new_state()
    predictor.add_new_points_or_box(s, 0, 1, **CLICK)
    obj = s.objects[0]
    coords, labels = (t.clone() for t in obj.points[0])
    pending = obj.temp_cond[0].pred_masks.clone()
    for obj_id in (1, 3):  # an existing object, and a new one that must not be created
        with pytest.raises(PromptError, match=message):
            predictor.add_new_points_or_box(s, 0, obj_id, **kwargs)
    assert s.obj_ids == [1]
    assert torch.equal(obj.points[0][0], coords) and torch.equal(obj.points[0][1], labels)
    assert torch.equal(obj.temp_cond[0].pred_masks, pending)
    # the session goes on exactly as one that never saw the bad prompt
    assert_same_result(predictor.add_new_points_or_box(s, 0, 2, **BOX), reference.add2)


@pytest.mark.parametrize("shape", [(1, H, W), (H, W, 1), (0, W), (W,)], ids=lambda s: "x".join(map(str, s)))
def test_mask_that_is_not_2d_is_rejected(shape, predictor, new_state, reference):
    s = new_state()
    with pytest.raises(
        PromptError, match=r"mask must be a 2-D \(H, W\) array \(usually at the video resolution"
    ):
        predictor.add_new_mask(s, 0, 1, np.ones(shape, bool))
    assert s.obj_ids == []
    assert_same_result(predictor.add_new_points_or_box(s, 0, 1, **CLICK), reference.add1)


def test_mask_at_the_model_input_size_is_accepted(predictor, new_state):
    s = new_state()
    mask = np.zeros((128, 128), bool)
    mask[20:100, 30:90] = True
    f, ids, masks = predictor.add_new_mask(s, 0, 1, torch.from_numpy(mask))
    assert (f, ids, masks.shape) == (0, [1], (1, 1, H, W))
    assert masks[0, 0, H // 2, W // 2] > 0 and masks[0, 0, 2, 2] < 0


@pytest.mark.parametrize("shape", [(10, 10), (W, H), (H + 1, W), (128, 127), (2 * H, 2 * W)])
def test_mask_of_any_size_is_resized_to_the_model_input_as_officially(shape, predictor, new_state):
    """The official rule: bilinear resize with antialiasing to S x S, then >= 0.5."""
    mask = np.zeros(shape, bool)
    mask[shape[0] // 5 : shape[0] * 3 // 4, shape[1] // 4 : shape[1] * 2 // 3] = True
    s = predictor.image_size
    t = torch.from_numpy(mask).float()[None, None]
    resized = F.interpolate(t, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
    expected = predictor.add_new_mask(new_state(), 0, 1, (resized[0, 0] >= 0.5).float())
    got = predictor.add_new_mask(new_state(), 0, 1, mask)
    assert_same_result(got, expected)
    assert (got[2] > 0).any() and (got[2] <= 0).any()


def test_mask_array_counts_nonzero_as_the_object(predictor, new_state):
    """A numpy mask of 0/255 is the same mask as its boolean (arrays are read as booleans)."""
    mask = np.zeros((H, W), np.uint8)
    mask[10:50, 20:70] = 255
    read_only = np.asarray(Image.fromarray(mask))
    assert not read_only.flags.writeable
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "non-writable array" warning from torch
        got = predictor.add_new_mask(new_state(), 0, 1, read_only)
    assert_same_result(got, predictor.add_new_mask(new_state(), 0, 1, mask > 0))


def test_propagate_without_any_prompt_is_a_clear_error(predictor, new_state):
    s = new_state()
    with pytest.raises(TrackingError, match="no points, boxes or masks were added to any object"):
        list(predictor.propagate_in_video(s))
    assert issubclass(TrackingError, RuntimeError)  # as the official predictor raises


def test_propagate_with_an_object_left_without_prompts_names_it_and_changes_nothing(
    predictor, new_state, reference
):
    s = new_state()
    prompt_two(predictor, s)
    predictor.clear_all_prompts_in_frame(s, 0, 2)
    obj1 = s.objects[0]
    with pytest.raises(
        TrackingError, match="object id 2 has no points, box or mask on any frame.*remove_object"
    ):
        list(predictor.propagate_in_video(s))
    # nothing was consolidated: object 1's prompt is still pending, no memory was encoded
    assert set(obj1.temp_cond) == {0} and not obj1.cond and not obj1.non_cond
    assert obj1.temp_cond[0].maskmem_features is None
    assert s.obj_ids == [1, 2]
    # removing the empty object lets tracking go on; object 1 tracks as it did beside object 2
    assert predictor.remove_object(s, 2)[0] == [1]
    got = run(predictor.propagate_in_video(s, max_frame_num_to_track=2))
    for f in range(3):
        assert got[f].shape == (1, 1, H, W)
        torch.testing.assert_close(got[f][0], reference.masks[f][0], atol=1e-4, rtol=0)


def test_negative_max_frame_num_to_track_is_rejected(predictor, new_state, reference):
    s = new_state()
    prompt_two(predictor, s)
    with pytest.raises(PromptError, match="max_frame_num_to_track must be an int >= 0 or None, got -1"):
        list(predictor.propagate_in_video(s, max_frame_num_to_track=-1))
    assert_same(run(predictor.propagate_in_video(s, max_frame_num_to_track=1)), reference.masks, range(2))


@pytest.mark.parametrize("bad", [2.5, "3"])
def test_non_integer_max_frame_num_to_track_is_rejected(bad, predictor, new_state):
    s = new_state()
    predictor.add_new_points_or_box(s, 0, 1, **CLICK)
    with pytest.raises(PromptError, match="max_frame_num_to_track must be"):
        list(predictor.propagate_in_video(s, max_frame_num_to_track=bad))


@pytest.mark.parametrize("kwargs", [dict(start_frame_idx=N), dict(max_frame_num_to_track=-1)])
def test_bad_propagate_arguments_leave_pending_prompts_pending(kwargs, predictor, new_state):
    s = new_state()
    predictor.add_new_points_or_box(s, 0, 1, **CLICK)
    with pytest.raises(PromptError):
        list(predictor.propagate_in_video(s, **kwargs))
    assert set(s.objects[0].temp_cond) == {0} and not s.objects[0].cond


def test_remove_unknown_object(predictor, new_state, reference):
    s = new_state()
    predictor.add_new_points_or_box(s, 0, 1, **CLICK)
    with pytest.raises(TrackingError, match=r"cannot remove object id 9: it does not exist \(ids: \[1\]\)"):
        predictor.remove_object(s, 9, strict=True)
    assert predictor.remove_object(s, 9) == ([1], [])
    assert s.obj_ids == [1] and set(s.objects[0].temp_cond) == {0}
    assert_same_result(predictor.add_new_points_or_box(s, 0, 2, **BOX), reference.add2)


def test_negative_fill_hole_area_is_rejected(model):
    with pytest.raises(ValueError, match="fill_hole_area must be >= 0, got -1"):
        VideoPredictor(model, fill_hole_area=-1)


def test_memory_bank_larger_than_the_model_is_rejected(model):
    with pytest.raises(ValueError, match="num_maskmem"):
        VideoPredictor(model, memory_bank=MemoryBank(num_maskmem=model.cfg.num_maskmem + 2))


def test_init_state_takes_the_official_video_path_keyword(predictor, frames, reference):
    s = predictor.init_state(video_path=frames, async_loading_frames=False)
    try:
        add1, add2 = prompt_two(predictor, s)
        assert_same_result(add1, reference.add1)
        assert_same(run(predictor.propagate_in_video(s)), reference.masks)
    finally:
        s.close()


def test_session_keys(predictor, new_state):
    s = new_state()
    predictor.add_new_points_or_box(s, 0, 7, **CLICK)
    assert (s["num_frames"], s["video_height"], s["video_width"], s["obj_ids"]) == (N, H, W, [7])
    assert s["device"] == s["storage_device"] == torch.device("cpu")
    assert "video_height" in s and "images" in s and "point_inputs_per_obj" not in s
    assert s.get("num_frames") == N and s.get("point_inputs_per_obj", "none") == "none"
    assert set(s.keys()) >= {"num_frames", "video_height", "video_width", "obj_ids", "images"}
    assert dict(s)["obj_ids"] == [7]
    assert (s["obj_id_to_idx"], s["obj_idx_to_id"]) == ({7: 0}, {0: 7})
    with pytest.raises(KeyError, match="'point_inputs_per_obj': a VideoSession is typed; readable keys are"):
        s["point_inputs_per_obj"]
    with pytest.raises(TypeError, match="cannot set 'obj_ids': a VideoSession changes only through"):
        s["obj_ids"] = [1]


def test_session_images_are_a_lazy_sequence_of_model_inputs(predictor, new_state, frames):
    s = new_state()
    images = s["images"]
    assert len(images) == N and len(s.loader._cache) == 0  # nothing decoded until a frame is indexed
    first, last = images[0], images[-1]
    assert s.loader._cache.keys() == [0, N - 1]
    size = predictor.image_size
    assert first.shape == (3, size, size) and first.dtype == torch.float32
    assert torch.equal(first, s.loader.get(0)[0]) and torch.equal(last, images[N - 1])
    assert [t.shape for t in images[1:3]] == [(3, size, size)] * 2
    with pytest.raises(IndexError, match=f"frame index {N} out of range for a {N}-frame video"):
        images[N]


def test_session_output_dict_per_obj_is_a_read_only_view(predictor, new_state):
    s = new_state()
    prompt_two(predictor, s)
    run(predictor.propagate_in_video(s, max_frame_num_to_track=2))
    view = s["output_dict_per_obj"]
    assert list(view) == [0, 1]
    obj = view[0]
    assert list(obj["cond_frame_outputs"]) == [0] and list(obj["non_cond_frame_outputs"]) == [1, 2]
    out = obj["non_cond_frame_outputs"][2]
    stored = s.objects[0].non_cond[2]
    assert out["pred_masks"] is stored.pred_masks and out["obj_ptr"] is stored.obj_ptr
    assert out["object_score_logits"] is stored.object_score
    assert out["maskmem_features"] is stored.maskmem_features
    with pytest.raises(TypeError):
        obj["cond_frame_outputs"][5] = out


def test_predictor_to_and_eval_return_the_predictor(model):
    p = VideoPredictor(model)
    assert p.to("cpu") is p and p.eval() is p and not model.training
    assert p.train() is p and model.training
    p.eval()
    assert not model.training


def test_apply_non_overlapping_constraints_keeps_the_highest_object(predictor):
    scores = torch.tensor([[[[3.0, -1.0], [0.5, 2.0]]], [[[1.0, 4.0], [0.2, -20.0]]]])
    out = predictor._apply_non_overlapping_constraints(scores)
    expected = torch.tensor([[[[3.0, -10.0], [0.5, 2.0]]], [[[-10.0, 4.0], [-10.0, -20.0]]]])
    assert torch.equal(out, expected)
    assert torch.equal(predictor._apply_non_overlapping_constraints(scores[:1]), scores[:1])


def test_fill_hole_area_can_be_set_and_is_checked(model):
    p = VideoPredictor(model)
    p.fill_hole_area = 0
    assert p.fill_hole_area == 0 == p.core.fill_hole_area
    with pytest.raises(ValueError, match="fill_hole_area must be >= 0, got -2"):
        p.fill_hole_area = -2


# ---------------------------------------------------------------------------------------------- interruption
@pytest.mark.parametrize("error", [KeyboardInterrupt, ValueError])
def test_consumer_interrupt_keeps_tracked_frames(error, predictor, new_state, reference):
    s = new_state()
    prompt_two(predictor, s)
    seen = {}
    gen = predictor.propagate_in_video(s)
    with pytest.raises(error):
        for f, _, m in gen:
            seen[f] = m.clone()
            if f == 3:
                raise error("stop")
    assert sorted(seen) == [0, 1, 2, 3]
    assert_same(seen, reference.masks)
    for obj in s.objects:
        assert set(obj.cond) == {0} and set(obj.non_cond) == {1, 2, 3}
        assert set(obj.tracked) == {0, 1, 2, 3}
    assert_same(run(predictor.propagate_in_video(s)), reference.masks, range(N))


def test_unreadable_frame_during_propagation(predictor, frames, tmp_path, new_state):
    good, bad = tmp_path / "good", tmp_path / "bad"
    for folder in (good, bad):
        folder.mkdir()
        for i, frame in enumerate(frames):
            Image.fromarray(frame).save(folder / f"{i:05d}.jpg", quality=95)
    k = 5
    data = (good / f"{k:05d}.jpg").read_bytes()
    (bad / f"{k:05d}.jpg").write_bytes(data[: len(data) // 2])  # truncated

    ref_state = new_state(good)
    prompt_two(predictor, ref_state)
    want = run(predictor.propagate_in_video(ref_state))

    s = new_state(bad)
    prompt_two(predictor, s)
    seen = {}
    with pytest.raises(FrameError, match=f"cannot read frame {k} .*{k:05d}.jpg.*truncated"):
        for f, _, m in predictor.propagate_in_video(s):
            seen[f] = m.clone()
    assert sorted(seen) == list(range(k))
    assert_same(seen, want)
    for obj in s.objects:
        assert set(obj.non_cond) == set(range(1, k)) and set(obj.tracked) == set(range(k))
    # once the frame is repaired, tracking resumes and gives what an uninterrupted run gives
    (bad / f"{k:05d}.jpg").write_bytes(data)
    assert_same(run(predictor.propagate_in_video(s)), want, range(N))


# ---------------------------------------------------------------------------------------------- semantics
def test_outputs_shapes_dtypes_and_object_order(predictor, new_state, reference):
    f, ids, m = reference.add1
    assert (f, ids, m.shape, m.dtype) == (0, [1], (1, 1, H, W), torch.float32)
    f, ids, m = reference.add2
    assert (f, ids, m.shape, m.dtype) == (0, [1, 2], (2, 1, H, W), torch.float32)
    assert torch.equal(m[:1], reference.add1[2])  # object 1's row is unchanged by adding object 2
    assert sorted(reference.masks) == list(range(N))
    for masks in reference.masks.values():
        assert masks.shape == (2, 1, H, W) and masks.dtype == torch.float32
        assert (masks > 0).any() and (masks <= 0).any()  # masks are present, not empty nor full
    # ids come in the order objects were added, not sorted
    s = new_state()
    predictor.add_new_points_or_box(s, 0, 5, **CLICK)
    _, ids, m = predictor.add_new_points(s, 0, 2, **BOX)
    assert ids == [5, 2] and s.obj_ids == [5, 2] and m.shape == (2, 1, H, W)


def test_points_can_be_relative_and_accumulate(predictor, new_state, reference):
    s = new_state()
    rel = predictor.add_new_points_or_box(
        s, 0, 1, points=[[40 / W, 30 / H]], labels=[1], normalize_coords=False
    )
    torch.testing.assert_close(rel[2], reference.add1[2], atol=1e-5, rtol=0)
    _, _, m = predictor.add_new_points_or_box(s, 0, 1, points=[[80, 60]], labels=[0], clear_old_points=False)
    coords, labels = s.objects[0].points[0]
    assert coords.shape == (1, 2, 2) and labels.tolist() == [[1, 0]]
    assert not torch.equal(m, reference.add1[2])
    predictor.add_new_points_or_box(s, 0, 1, points=[[80, 60]], labels=[1])  # clear_old_points=True
    assert s.objects[0].points[0][1].tolist() == [[1]]


def test_object_added_after_tracking_started_is_tracked(predictor, new_state, reference):
    s = new_state()
    predictor.add_new_points_or_box(s, 0, 1, **CLICK)
    first = run(predictor.propagate_in_video(s))
    _, ids, m = predictor.add_new_points_or_box(s, 3, 2, **BOX)
    assert ids == [1, 2] and m.shape == (2, 1, H, W)
    torch.testing.assert_close(m[0], first[3][0])  # object 1's tracked mask on that frame
    got = run(predictor.propagate_in_video(s))
    assert sorted(got) == list(range(N))
    obj1, obj2 = s.objects
    assert set(obj2.cond) == {3} and set(obj2.non_cond) == set(range(N)) - {3}
    assert set(obj1.cond) == {0} and set(obj1.non_cond) == set(range(1, N))
    for f in range(N):
        assert got[f].shape == (2, 1, H, W)
        torch.testing.assert_close(got[f][0], first[f][0], atol=1e-4, rtol=0)
        torch.testing.assert_close(got[f][0], reference.masks[f][0], atol=1e-4, rtol=0)
    assert (got[3][1] > 0).any() and any((got[f][1] > 0).any() for f in (0, 1, 2))


def test_remove_object_returns_remaining_ids_and_updated_frames(predictor, new_state):
    s = new_state()
    prompt_two(predictor, s)
    predictor.add_new_points_or_box(s, 4, 2, points=[[20, 20]], labels=[1])
    mask = np.zeros((H, W), bool)
    mask[30:70, 50:90] = True
    _, ids, before = predictor.add_new_mask(s, 0, 3, mask)
    assert ids == [1, 2, 3]
    ids, updated = predictor.remove_object(s, 2)
    assert ids == [1, 3] == s.obj_ids
    assert [f for f, _ in updated] == [0, 4]
    assert torch.equal(updated[0][1], before[[0, 2]])  # the others' masks on frame 0
    assert updated[1][1].shape == (2, 1, H, W) and (updated[1][1] == NO_OBJECT_SCORE).all()  # none on 4
    assert predictor.remove_object(s, 1, need_output=False) == ([3], [])
    got = run(predictor.propagate_in_video(s, max_frame_num_to_track=1))
    assert sorted(got) == [0, 1] and got[1].shape == (1, 1, H, W)
    assert torch.equal(got[0], before[2:])
    assert predictor.remove_object(s, 3) == ([], [])  # the last object: a reset
    assert s.objects == []


def test_reset_state(predictor, new_state, reference):
    s = new_state()
    prompt_two(predictor, s)
    list(predictor.propagate_in_video(s, max_frame_num_to_track=1))
    predictor.reset_state(s)
    assert s.obj_ids == [] and s.num_frames == N
    with pytest.raises(TrackingError, match="no points"):
        list(predictor.propagate_in_video(s))
    assert_same_result(predictor.add_new_points_or_box(s, 0, 1, **CLICK), reference.add1)
    assert_same_result(predictor.add_new_points_or_box(s, 0, 2, **BOX), reference.add2)


def test_reverse_propagation_and_max_frame_num_to_track(predictor, new_state):
    s = new_state()
    predictor.add_new_points_or_box(s, 5, 1, **CLICK)

    def order(**kw):
        return [f for f, _, _ in predictor.propagate_in_video(s, **kw)]

    assert order(reverse=True, max_frame_num_to_track=3) == [5, 4, 3, 2]
    obj = s.objects[0]
    assert set(obj.non_cond) == {2, 3, 4} and all(obj.tracked[f] for f in (2, 3, 4))
    assert order(max_frame_num_to_track=1) == [5, 6]  # default start: the prompted frame
    assert obj.tracked[6] is False
    assert order(start_frame_idx=6, max_frame_num_to_track=10) == [6, 7]
    assert order(start_frame_idx=3, max_frame_num_to_track=0) == [3]
    assert order(start_frame_idx=0, reverse=True) == []  # as officially: nothing before frame 0
    assert order(start_frame_idx=1, reverse=True, max_frame_num_to_track=10) == [1, 0]
    # a correction on a frame tracked in reverse is decoded with the reverse memory layout
    assert obj.tracked[1] is True
    f, _, m = predictor.add_new_points_or_box(s, 1, 1, points=[[30, 40]], labels=[1])
    assert f == 1 and m.shape == (1, 1, H, W) and 1 in obj.temp_non_cond


def test_non_overlap_masks(model, new_state, reference):
    p = VideoPredictor(model, non_overlap_masks=True)
    s = new_state(p=p)
    _, (_, _, m) = prompt_two(p, s)
    assert overlap(reference.add2[2]) > 0 and overlap(m) == 0
    got = run(p.propagate_in_video(s))
    assert sum(overlap(reference.masks[f]) for f in range(N)) > 0  # else the test shows nothing
    for f in range(N):
        assert overlap(got[f]) == 0
        # the union is kept: at each pixel the highest-scoring object keeps its score
        assert torch.equal((got[f] > 0).any(0), (reference.masks[f] > 0).any(0))
        assert torch.equal(got[f].amax(0), reference.masks[f].amax(0))


def test_fill_hole_area(model, new_state):
    solid = np.zeros((H, W), bool)
    solid[10:60, 10:80] = True
    holed = solid.copy()
    holed[30:35, 40:45] = False  # a hole of about 2x2 low-res pixels
    out = {}
    for area in (0, 8):
        p = VideoPredictor(model, fill_hole_area=area)
        s = new_state(p=p)
        p.add_new_mask(s, 0, 1, solid)
        out[area] = p.add_new_mask(s, 0, 2, holed)[2]  # rows: solid, holed
    assert torch.equal(out[0][0], out[8][0])  # no hole: nothing changes
    assert out[0][1, 0, 32, 42] < 0 < out[8][1, 0, 32, 42]  # the hole is filled
    assert torch.equal(out[0][1, 0, :20], out[8][1, 0, :20])  # away from the hole nothing changes


def test_fill_holes_fills_only_small_background_components():
    logits = torch.full((1, 1, 12, 12), 5.0)
    logits[..., 4:6, 4:6] = -3.0  # a 4-pixel hole
    logits[..., :, 9:] = -3.0  # a 36-pixel background band touching the border
    filled = fill_holes(logits, 8)
    assert (filled[..., 4:6, 4:6] == 0.1).all()
    assert torch.equal(filled[..., :, 9:], logits[..., :, 9:])
    assert torch.equal(fill_holes(logits, 0), logits)
    assert torch.equal(fill_holes(logits, 40)[..., :, 9:], torch.full((1, 1, 12, 3), 0.1))
    with pytest.raises(ValueError, match="max_area must be a number >= 0"):
        fill_holes(logits, -1)


def test_offload_to_cpu(predictor, new_state, reference):
    s = new_state(offload_state_to_cpu=True, offload_video_to_cpu=True)
    assert s.storage_device == torch.device("cpu") and s.loader.device == torch.device("cpu")
    prompt_two(predictor, s)
    assert_same(run(predictor.propagate_in_video(s, max_frame_num_to_track=2)), reference.masks, range(3))
    for obj in s.objects:
        for out in [*obj.cond.values(), *obj.non_cond.values()]:
            assert out.pred_masks.device.type == "cpu" and out.maskmem_features.device.type == "cpu"


def test_memory_dtype(model, new_state, reference):
    outs = [o for obj in reference.state.objects for o in (*obj.cond.values(), *obj.non_cond.values())]
    assert len(outs) == 2 * N
    assert {o.maskmem_features.dtype for o in outs} == {torch.bfloat16}
    assert {o.pred_masks.dtype for o in outs} == {torch.float32}
    p = VideoPredictor(model, memory_dtype=torch.float32)
    s = new_state(p=p)
    assert s.storage_dtype == torch.float32
    prompt_two(p, s)
    got = run(p.propagate_in_video(s, max_frame_num_to_track=2))
    outs = [o for obj in s.objects for o in (*obj.cond.values(), *obj.non_cond.values())]
    assert len(outs) == 6 and {o.maskmem_features.dtype for o in outs} == {torch.float32}
    assert torch.equal(got[0], reference.masks[0])  # prompted frame: no memory involved
    for f in (1, 2):  # memories rounded to bfloat16 or not: close results
        torch.testing.assert_close(got[f], reference.masks[f], atol=0.05, rtol=0)


@pytest.mark.parametrize("as_cond", [False, True])
def test_add_all_frames_to_correct_as_cond(as_cond, model, new_state):
    p = VideoPredictor(model, add_all_frames_to_correct_as_cond=as_cond)
    s = new_state(p=p)
    p.add_new_points_or_box(s, 0, 1, **CLICK)
    list(p.propagate_in_video(s, max_frame_num_to_track=5))
    obj = s.objects[0]
    p.add_new_points_or_box(s, 4, 1, points=[[70, 50]], labels=[0])
    assert set(obj.temp_cond if as_cond else obj.temp_non_cond) == {4}
    assert not (obj.temp_non_cond if as_cond else obj.temp_cond)
    list(p.propagate_in_video(s, start_frame_idx=4, max_frame_num_to_track=1))
    if as_cond:
        assert set(obj.cond) == {0, 4} and 4 not in obj.non_cond
    else:
        assert set(obj.cond) == {0} and set(obj.non_cond) == {1, 2, 3, 4, 5}
    assert obj.cond[0].maskmem_features is not None


def test_clear_non_cond_mem_around_input(model, new_state):
    n = 10
    p = VideoPredictor(model, clear_non_cond_mem_around_input=True)
    s = new_state(make_frames(n), p=p)
    p.add_new_points_or_box(s, 0, 1, **CLICK)
    list(p.propagate_in_video(s))
    obj = s.objects[0]
    assert set(obj.non_cond) == set(range(1, n))
    p.add_new_points_or_box(s, 9, 1, points=[[70, 50]], labels=[0])  # a correction on a tracked frame
    p.propagate_in_video_preflight(s)
    r = p.bank.num_maskmem * p.bank.stride
    assert r == 7 and set(obj.non_cond) == {1}  # frames 9-7 .. 9+7 forgotten, the correction included
    list(p.propagate_in_video(s, start_frame_idx=9, max_frame_num_to_track=0))
    assert set(obj.non_cond) == {1, 9}


def test_state_budget_bounds_stored_memories(model, reference, new_state):
    n = 20
    bank = dataclasses.replace(VideoPredictor(model).bank, max_obj_ptrs=4)  # window: 7 frames
    window = len(bank.window(10, False))
    assert window == 7
    per_frame = reference.state.objects[0].non_cond[1].heavy_bytes()
    assert per_frame > 0
    video = make_frames(n)
    runs = {}
    for budget in (3 * per_frame, 2**30):
        p = VideoPredictor(model, memory_bank=bank, state_budget_bytes=budget)
        s = new_state(video, p=p)
        p.add_new_points_or_box(s, 0, 1, **CLICK)
        peak, masks = 0, {}
        for f, _, m in p.propagate_in_video(s):
            peak = max(peak, s.heavy_bytes())
            masks[f] = m
        runs[budget] = (s, peak, masks)
    small, peak, masks = runs[3 * per_frame]
    big, big_peak, big_masks = runs[2**30]
    assert big_peak == big.heavy_bytes() == (n - 1) * per_frame  # unbounded: grows with the video
    assert peak <= window * per_frame < big_peak
    obj = small.objects[0]
    assert set(obj.non_cond) == set(range(1, n))  # pointers and scores kept for every frame
    assert all(o.obj_ptr is not None and o.object_score is not None for o in obj.non_cond.values())
    assert obj.non_cond[1].maskmem_features is None and obj.non_cond[1].pred_masks is None
    assert obj.non_cond[n - 1].maskmem_features is not None
    assert obj.cond[0].maskmem_features is not None  # prompted frames are never evicted
    # only memories no frame would select were dropped: tracking is unchanged and produces masks
    assert_same(masks, big_masks, range(n))
    assert (masks[n - 1] > 0).any()


def test_sessions_from_files_folders_and_arrays_agree(predictor, frames, tmp_path, new_state, reference):
    av = pytest.importorskip("av")
    png = tmp_path / "png"
    png.mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(png / f"frame_{i}.png")
    videos = {}
    for name, codec, pix_fmt in (("lossless.mov", "png", "rgb24"), ("lossy.mp4", "mpeg4", "yuv420p")):
        path = tmp_path / name
        with av.open(str(path), "w") as container:
            stream = container.add_stream(codec, rate=10)
            stream.width, stream.height, stream.pix_fmt = W, H, pix_fmt
            for frame in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode())
        videos[name] = path
    for video in (png, str(png), videos["lossless.mov"], videos["lossy.mp4"]):
        s = new_state(video)
        assert (s.num_frames, s.video_height, s.video_width) == (N, H, W)
        add1, add2 = prompt_two(predictor, s)
        got = run(predictor.propagate_in_video(s, max_frame_num_to_track=3))
        assert sorted(got) == [0, 1, 2, 3]
        if video == videos["lossy.mp4"]:
            assert all(m.shape == (2, 1, H, W) for m in got.values())
            continue
        assert_same_result(add1, reference.add1)
        assert_same_result(add2, reference.add2)
        assert_same(got, reference.masks)


# ---------------------------------------------------------------------------------------------- MemoryBank
def outs(*frames: int, kind: str = "n", stored: bool = True) -> dict[int, SimpleNamespace]:
    """Fake frame outputs named like 'n4' (tracked) or 'c0' (prompted)."""
    return {
        t: SimpleNamespace(name=f"{kind}{t}", maskmem_features=object() if stored else None, obj_ptr=t)
        for t in frames
    }


def names(sel):
    return [(t, o.name) for t, o in sel.memories], [(t, o.name) for t, o in sel.pointers]


def test_official_bank_for_a_model_and_fewer_memory_frames(model):
    bank = MemoryBank.official(model.cfg)
    assert (bank.num_maskmem, bank.max_obj_ptrs) == (model.cfg.num_maskmem, model.cfg.max_obj_ptrs_in_encoder)
    few = MemoryBank.official(model.cfg, num_maskmem=3)
    mems, _ = names(few.select(10, outs(0, kind="c"), outs(*range(1, 10))))
    assert mems == [(0, "c0"), (1, "n8"), (2, "n9")]
    with pytest.raises(ValueError, match="num_maskmem must be 1..7"):
        MemoryBank.official(model.cfg, num_maskmem=9)


def test_memory_bank_forward_selection():
    bank = MemoryBank()
    mems, ptrs = names(bank.select(10, outs(0, kind="c"), outs(*range(1, 10)), num_frames=30))
    assert mems == [(0, "c0"), (1, "n4"), (2, "n5"), (3, "n6"), (4, "n7"), (5, "n8"), (6, "n9")]
    assert ptrs == [(10, "c0")] + [(dt, f"n{10 - dt}") for dt in range(1, 10)]
    # up to max_obj_ptrs - 1 tracked pointers; the normaliser is capped by the video length
    sel = bank.select(40, outs(0, kind="c"), outs(*range(1, 40)), num_frames=50)
    assert [t for t, _ in sel.pointers] == [40, *range(1, 16)] and sel.max_pointers == 16
    assert bank.select(3, outs(0, kind="c"), outs(1, 2), num_frames=5).max_pointers == 5
    assert bank.select(3, outs(0, kind="c"), outs(1, 2)).max_pointers == 16  # a stream


def test_memory_bank_reverse_selection():
    bank = MemoryBank()
    sel = bank.select(5, outs(15, kind="c"), outs(*range(6, 15)), reverse=True, num_frames=20)
    mems, ptrs = names(sel)
    assert mems == [(0, "c15"), (1, "n11"), (2, "n10"), (3, "n9"), (4, "n8"), (5, "n7"), (6, "n6")]
    assert ptrs == [(10, "c15")] + [(dt, f"n{5 + dt}") for dt in range(1, 10)]
    # the video end bounds the pointer search in reverse
    sel = bank.select(17, outs(19, kind="c"), outs(18, 20, 21), reverse=True, num_frames=20)
    assert names(sel)[1] == [(2, "c19"), (1, "n18")]


def test_memory_bank_skips_missing_and_evicted_memories():
    bank = MemoryBank()
    tracked = {**outs(7, 9), **outs(8, stored=False)}
    mems, ptrs = names(bank.select(10, outs(0, kind="c"), tracked))
    assert mems == [(0, "c0"), (4, "n7"), (6, "n9")]  # frame 8's memory was evicted
    assert ptrs == [(10, "c0"), (1, "n9"), (2, "n8"), (3, "n7")]  # its pointer is still used


@pytest.mark.parametrize(
    "reverse, expected",
    [
        (False, [(1, 6), (2, 9), (3, 12), (4, 15), (5, 18), (6, 19)]),
        (True, [(1, 36), (2, 33), (3, 30), (4, 27), (5, 24), (6, 21)]),
    ],
)
def test_memory_bank_stride(reverse, expected):
    bank = MemoryBank(stride=3)
    sel = bank.select(20, {}, outs(*range(0, 60)), reverse=reverse, num_frames=60)
    assert [(t, o.name) for t, o in sel.memories] == [(t_pos, f"n{t}") for t_pos, t in expected]
    assert bank.recent_frame(20, 1, reverse) == (21 if reverse else 19)
    # pointers ignore the stride
    assert [t for t, _ in sel.pointers] == list(range(1, 16))


def test_memory_bank_max_cond_frames():
    cond = outs(0, 4, 8, 12, 20, kind="c")
    bank = MemoryBank(max_cond_frames=2)
    mems, ptrs = names(bank.select(10, cond, outs(9)))
    # the closest prompted frames before and after are chosen; frame 4 is an unselected prompted
    # frame among the recent ones, so it serves as a recent memory
    assert mems == [(0, "c8"), (0, "c12"), (1, "c4"), (6, "n9")]
    assert ptrs == [(2, "c8"), (1, "n9"), (6, "c4"), (10, "c0")]
    mems, _ = names(MemoryBank(max_cond_frames=3).select(10, outs(0, 4, 8, 12, 14, kind="c"), {}))
    assert mems == [(0, "c8"), (0, "c12"), (0, "c14"), (1, "c4")]  # then the closest, on either side
    assert names(MemoryBank().select(10, cond, {}))[0] == [(0, f"c{t}") for t in (0, 4, 8, 12, 20)]
    with pytest.raises(ValueError, match=r"max_cond_frames must be -1 \(all\) or >= 2, got 1"):
        MemoryBank(max_cond_frames=1)


@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("only_past", [True, False])
def test_memory_bank_pointer_positions(signed, only_past):
    bank = MemoryBank(signed_pointer_positions=signed, only_past_pointers=only_past)
    cond = outs(2, 5, 8, kind="c")
    fwd = [(t, o.name) for t, o in bank.select(5, cond, {}).pointers]
    rev = [(t, o.name) for t, o in bank.select(5, cond, {}, reverse=True).pointers]
    future = -3 if signed else 3
    if only_past:
        assert fwd == [(3, "c2"), (0, "c5")]
        assert rev == [(0, "c5"), (3, "c8")]
    else:
        assert fwd == [(3, "c2"), (0, "c5"), (future, "c8")]
        assert rev == [(future, "c2"), (0, "c5"), (3, "c8")]


@pytest.mark.parametrize(
    "bank",
    [MemoryBank(), MemoryBank(stride=3), MemoryBank(max_obj_ptrs=4), MemoryBank(num_maskmem=3, stride=5)],
    ids=["default", "stride3", "ptrs4", "mem3-stride5"],
)
@pytest.mark.parametrize("reverse", [False, True])
def test_memory_bank_window_covers_every_selected_tracked_frame(bank, reverse):
    n = 80
    tracked = outs(*range(n))
    for f in range(n):
        sel = bank.select(f, {}, tracked, reverse=reverse, num_frames=n)
        used = {o.obj_ptr for _, o in sel.memories + sel.pointers}
        # after tracking a frame the session keeps that frame's window: what the next frame uses
        prev = f + 1 if reverse else f - 1
        if not 0 <= prev < n:
            continue
        window = set(bank.window(prev, reverse))
        assert used <= window, f"frame {f}: uses {sorted(used - window)} outside {bank.window(prev, reverse)}"
    assert bank.window(30, reverse) == (
        range(30, 30 + bank_reach(bank) + 1) if reverse else range(30 - bank_reach(bank), 31)
    )


def bank_reach(bank: MemoryBank) -> int:
    return max(bank.max_obj_ptrs - 1, bank.stride * (bank.num_maskmem - 1))


def test_memory_bank_window_values():
    assert MemoryBank().window(10, False) == range(-5, 11)
    assert MemoryBank().window(10, True) == range(10, 26)
    assert MemoryBank(stride=4).window(30, False) == range(6, 31)


def test_memory_bank_rejects_a_zero_stride():
    with pytest.raises(ValueError, match="stride"):
        MemoryBank(stride=0).select(10, {}, outs(8, 9))
