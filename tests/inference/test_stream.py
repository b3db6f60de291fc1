"""StreamTracker: prompts on the current frame at any time, per-frame masks, one-line errors, constant
memory over a 10,000-frame stream, and agreement with VideoPredictor (they share the tracking step).

Models are deliberately tiny (one Hiera block per stage, embed dim 8, one memory-attention layer,
random weights at image size 64 or 128) so that thousands of frames run in seconds per thousand on a
CPU; the decoder and memory widths keep their official sizes (the 10,000-frame test narrows the
features to the memory's 64). Masks are meaningless: the tests check
shapes, bookkeeping, memory and agreement between code paths, not what is segmented.
"""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from masklet.inference.prompts import PromptError
from masklet.inference.stream import StreamResult, StreamTracker
from masklet.inference.video import VideoPredictor
from masklet.modeling.sam2 import SAM2Model
from masklet.presets import SAM2_0_TRAITS, SAM2_1_TRAITS, HieraConfig, ModelConfig

H, W = 32, 48  # stream frames: small and not square, so (H, W) mix-ups show


def micro_model(image_size: int = 64, traits=SAM2_1_TRAITS, seed: int = 0, **widths) -> SAM2Model:
    """A random-weight SAM 2 small enough for 10,000 CPU frames in a few minutes (``widths``: d_model,
    mem_dim, official by default)."""
    hiera = HieraConfig(
        embed_dim=8,
        num_heads=1,
        stages=(1, 1, 1, 1),
        global_att_blocks=(2,),
        window_spec=(4, 2, 2, 1),
        window_pos_embed_bkg_spatial_size=(2, 2),
    )
    cfg = ModelConfig(
        name="micro", hiera=hiera, traits=traits, image_size=image_size, memory_attention_layers=1, **widths
    )
    torch.manual_seed(seed)
    return SAM2Model(cfg).eval()


def synthetic_frames(n: int, h: int = H, w: int = W) -> list[np.ndarray]:
    """n (h, w, 3) uint8 frames: a red disc moving right (and wrapping) over a smooth background."""
    yy, xx = np.mgrid[:h, :w]
    frames = []
    for i in range(n):
        img = np.stack([xx * 200 // w, yy * 200 // h, np.full_like(xx, 60)], -1)
        cx = 8 + (2 * i) % (w - 16)
        img[(yy - h // 2) ** 2 + (xx - cx) ** 2 < 7**2] = (230, 40, 30)
        frames.append(img.astype(np.uint8))
    return frames


def disc_mask(cx: int, cy: int = H // 2, r: int = 7) -> np.ndarray:
    yy, xx = np.mgrid[:H, :W]
    return (yy - cy) ** 2 + (xx - cx) ** 2 < r * r


def stored_outputs(tracker: StreamTracker) -> int:
    """Frame outputs the tracker holds over all objects (prompted, tracked and pending).

    Reads the tracker's private state: there is no public count, and this is what must stay bounded.
    """
    return sum(
        len(o.cond) + len(o.non_cond) + len(o.temp_cond) + len(o.temp_non_cond) for o in tracker.state.objects
    )


def rss_bytes() -> int:
    """Resident set size of this process, from /proc/self/status (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS line in /proc/self/status")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The micro model's ops are tiny: one thread is fastest, and fair to a shared CI machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model() -> SAM2Model:
    return micro_model()


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return synthetic_frames(16)


# ------------------------------------------------------------------------------- frames and prompts
def test_masks_per_frame_have_the_frame_shape(model, frames):
    tracker = StreamTracker(model)
    assert (tracker.frame_idx, tracker.obj_ids) == (-1, [])
    r = tracker.track(frames[0])
    assert isinstance(r, StreamResult) and r.frame_idx == 0 and r.obj_ids == []
    assert r.logits.shape == (0, 1, H, W) and r.masks.shape == (0, H, W)  # nothing prompted yet

    r = tracker.add_points(1, points=[[12, 16]], labels=[1])
    assert (r.frame_idx, r.obj_ids) == (0, [1])
    assert r.logits.shape == (1, 1, H, W) and r.logits.dtype == torch.float32
    assert r.masks.shape == (1, H, W) and r.masks.dtype == np.bool_
    for i in range(1, 6):
        r = tracker.track(frames[i])
        assert (r.frame_idx, r.obj_ids, tracker.frame_idx) == (i, [1], i)
        assert r.logits.shape == (1, 1, H, W) and r.masks.shape == (1, H, W)
        assert torch.isfinite(r.logits).all()


def test_new_objects_can_be_added_on_any_frame(model, frames):
    tracker = StreamTracker(model)
    tracker.track(frames[0])
    tracker.add_points(1, points=[[12, 16]], labels=[1])
    for i in range(1, 5):
        tracker.track(frames[i])
    before = tracker.track(frames[5])
    r = tracker.add_mask(2, disc_mask(18))  # a mask prompt is taken as the frame's output
    assert r.obj_ids == [1, 2] and r.frame_idx == 5
    assert torch.equal(r.logits[0], before.logits[0])  # object 1 is untouched on this frame
    iou = (r.masks[1] & disc_mask(18)).sum() / (r.masks[1] | disc_mask(18)).sum()
    assert iou > 0.8
    r = tracker.add_points(3, box=[30, 2, 46, 14])
    assert r.obj_ids == [1, 2, 3]
    for i in range(6, 10):
        r = tracker.track(frames[i])
        assert r.obj_ids == [1, 2, 3] and r.masks.shape == (3, H, W)


def test_corrections_change_only_the_corrected_object(model, frames):
    tracker = StreamTracker(model)
    tracker.track(frames[0])
    tracker.add_points(1, points=[[12, 16]], labels=[1])
    tracker.add_points(2, box=[30, 2, 46, 14])
    for i in range(1, 4):
        tracked = tracker.track(frames[i])
    corrected = tracker.add_points(1, points=[[30, 16], [8, 4]], labels=[1, 0])
    assert corrected.frame_idx == 3 and corrected.obj_ids == [1, 2]
    assert not torch.equal(corrected.logits[0], tracked.logits[0])
    assert torch.equal(corrected.logits[1], tracked.logits[1])
    # more clicks on top of the correction; the next frame then tracks from the corrected memory
    more = tracker.add_points(1, points=[[20, 20]], labels=[1], clear_old_points=False)
    assert more.logits.shape == (2, 1, H, W)
    assert tracker.track(frames[4]).frame_idx == 4


def test_non_overlap_masks_keep_one_object_per_pixel(model, frames):
    tracker = StreamTracker(model, non_overlap_masks=True)
    tracker.track(frames[0])
    tracker.add_mask(1, disc_mask(12))
    r = tracker.add_mask(2, disc_mask(16))  # overlapping discs
    assert not (r.masks[0] & r.masks[1]).any()
    assert r.masks.any(axis=0).sum() >= disc_mask(12).sum()


def test_remove_object_and_reset(model, frames):
    tracker = StreamTracker(model)
    tracker.track(frames[0])
    tracker.add_points(1, points=[[12, 16]], labels=[1])
    tracker.add_points(2, box=[30, 2, 46, 14])
    tracker.track(frames[1])
    tracker.remove_object(1)
    assert tracker.obj_ids == [2]
    r = tracker.track(frames[2])
    assert r.obj_ids == [2] and r.masks.shape == (1, H, W)
    tracker.reset()
    assert (tracker.frame_idx, tracker.obj_ids, tracker.state_bytes()) == (-1, [], 0)
    with pytest.raises(PromptError, match="no frame yet"):
        tracker.add_points(1, points=[[1, 1]], labels=[1])
    assert tracker.track(frames[3]).frame_idx == 0  # a new stream


@pytest.mark.parametrize("image_size", [64, 128])
def test_smaller_model_input_sizes(image_size, frames):
    tracker = StreamTracker(micro_model(image_size))
    tracker.track(frames[0])
    r = tracker.add_points(1, points=[[12, 16]], labels=[1])
    assert r.logits.shape == (1, 1, H, W)
    for frame in frames[1:4]:
        r = tracker.track(frame)
        assert r.masks.shape == (1, H, W)
    side = image_size // 16
    assert tracker.state_bytes() > 0 and all(
        out.maskmem_features.shape[-2:] == (side, side) for out in tracker.state.objects[0].cond.values()
    )


def test_memory_as_wide_as_the_model(frames):
    """d_model == mem_dim: the memory encoder has no output projection (an identity) and still tracks."""
    tracker = StreamTracker(micro_model(d_model=64, mem_dim=64))
    tracker.track(frames[0])
    tracker.add_points(1, points=[[12, 16]], labels=[1])
    for frame in frames[1:4]:
        assert tracker.track(frame).masks.shape == (1, H, W)
    assert tracker.state.objects[0].cond[0].maskmem_features.shape[1] == 64


def test_a_preset_model_at_image_size_128():
    from masklet.presets import get_preset

    torch.manual_seed(0)
    tracker = StreamTracker(SAM2Model(get_preset("sam2.1_hiera_tiny", 128)).eval())
    big = synthetic_frames(3, 90, 120)
    tracker.track(big[0])
    r = tracker.add_points(1, box=[10, 20, 60, 70])
    assert r.masks.shape == (1, 90, 120)
    assert tracker.track(big[1]).masks.shape == (1, 90, 120)


# ------------------------------------------------------------------------------------------- errors
def test_prompts_before_any_frame_say_to_track_first(model):
    tracker = StreamTracker(model)
    with pytest.raises(PromptError, match=r"no frame yet: call track\(frame\) first"):
        tracker.add_points(1, points=[[1, 1]], labels=[1])
    with pytest.raises(PromptError, match=r"no frame yet: call track\(frame\) first"):
        tracker.add_mask(1, np.ones((H, W), bool))


@pytest.mark.parametrize(
    "mask, message",
    [
        (np.ones((W, H), bool), r"mask must be \(H, W\) = \(32, 48\) like the frame, got \(48, 32\)"),
        (np.ones((64, 64), bool), r"got \(64, 64\)"),
        (np.ones((H, W, 3), bool), r"got \(32, 48, 3\)"),
        (np.ones(W, bool), r"got \(48,\)"),
    ],
)
def test_mask_of_the_wrong_size(model, frames, mask, message):
    tracker = StreamTracker(model)
    tracker.track(frames[0])
    with pytest.raises(PromptError, match=message):
        tracker.add_mask(1, mask)
    assert tracker.obj_ids == []  # nothing was added


@pytest.mark.parametrize("obj_id", ["1", 1.5, True, None])
def test_obj_id_must_be_an_integer(model, frames, obj_id):
    tracker = StreamTracker(model)
    tracker.track(frames[0])
    with pytest.raises(PromptError, match=f"obj_id must be an integer, got {obj_id!r}"):
        tracker.add_points(obj_id, points=[[1, 1]], labels=[1])
    with pytest.raises(PromptError, match="obj_id must be an integer"):
        tracker.add_mask(obj_id, np.ones((H, W), bool))
    assert tracker.obj_ids == []


def test_remove_unknown_object(model, frames):
    tracker = StreamTracker(model)
    tracker.track(frames[0])
    tracker.add_points(1, points=[[1, 1]], labels=[1])
    with pytest.raises(PromptError, match=r"no object with id 7 \(ids: \[1\]\)"):
        tracker.remove_object(7)
    assert tracker.obj_ids == [1]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"points": [[1, 1]]}, "points and labels must be given together"),
        ({}, "give points"),
        ({"points": [[60, 1]], "labels": [1]}, r"lies outside the image \(x in \[0, 48\], y in \[0, 32\]\)"),
        ({"box": [0, 0, 10, 10], "clear_old_points": False}, "a box must come before any click"),
    ],
)
def test_bad_points_and_boxes(model, frames, kwargs, message):
    tracker = StreamTracker(model)
    tracker.track(frames[0])
    with pytest.raises(PromptError, match=message):
        tracker.add_points(1, **kwargs)


def test_bad_constructor_arguments(model):
    with pytest.raises(ValueError, match="max_prompt_frames must be >= 1, got 0"):
        StreamTracker(model, max_prompt_frames=0)
    with pytest.raises(ValueError, match="fill_hole_area must be >= 0, got -1"):
        StreamTracker(model, fill_hole_area=-1)


# ------------------------------------------------------------------------------ agreement with video
def _video_and_stream(model, frames, fill_hole_area=8):
    """(video logits per frame, stream logits per frame): two objects prompted on frame 0, forward."""
    video = VideoPredictor(model, fill_hole_area=fill_hole_area)
    state = video.init_state(frames)
    video.add_new_points_or_box(state, 0, 1, points=[[12, 16]], labels=[1])
    video.add_new_points_or_box(state, 0, 2, box=[30, 2, 46, 14])
    by_video = [logits for _, _, logits in video.propagate_in_video(state)]
    state.close()
    tracker = StreamTracker(model, fill_hole_area=fill_hole_area)
    by_stream = []
    for i, frame in enumerate(frames):
        r = tracker.track(frame)
        if i == 0:
            tracker.add_points(1, points=[[12, 16]], labels=[1])
            r = tracker.add_points(2, box=[30, 2, 46, 14])
        by_stream.append(r.logits)
    return by_video, by_stream


@pytest.mark.parametrize(
    "traits, n_frames",
    [(SAM2_1_TRAITS, 16), (SAM2_0_TRAITS, 8)],
    ids=["sam2.1-16-frames", "sam2.0-8-frames"],
)
def test_stream_matches_video_predictor(traits, n_frames):
    """Same frames, same prompts on frame 0: the same masks frame for frame.

    SAM 2.1 scales object-pointer distances by min(video length, 16) - 1, which a stream of unknown
    length takes as 15: so 2.1 agrees from 16 frames on (see the next test), 2.0 on any length.
    """
    model = micro_model(traits=traits)
    by_video, by_stream = _video_and_stream(model, synthetic_frames(n_frames))
    assert len(by_video) == len(by_stream) == n_frames
    for i, (v, s) in enumerate(zip(by_video, by_stream)):
        assert v.shape == s.shape == (2, 1, H, W)
        torch.testing.assert_close(s, v, atol=1e-5, rtol=0, msg=lambda m, i=i: f"frame {i}: {m}")
        assert np.array_equal((s > 0).numpy(), (v > 0).numpy()), f"frame {i}: masks differ"


def test_short_video_pointer_scaling_is_the_only_difference(model):
    """On a SAM 2.1 video shorter than 16 frames the video predictor (as the official one) scales
    pointer distances by the video's length; the stream cannot know it. Telling the stream the length
    (``expected_frames``) makes the two identical."""
    frames = synthetic_frames(8)
    by_video, by_stream = _video_and_stream(model, frames)
    assert torch.equal(by_stream[0], by_video[0])  # frame 0 has no pointers to attend to
    assert max((s - v).abs().max().item() for s, v in zip(by_stream[1:], by_video[1:])) > 0

    tracker = StreamTracker(model, expected_frames=len(frames))
    for i, frame in enumerate(frames):
        r = tracker.track(frame)
        if i == 0:
            tracker.add_points(1, points=[[12, 16]], labels=[1])
            r = tracker.add_points(2, box=[30, 2, 46, 14])
        torch.testing.assert_close(r.logits, by_video[i], atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------------ corrections
def test_corrections_are_kept_as_prompted_frames_up_to_max_prompt_frames(model, frames):
    tracker = StreamTracker(model, max_prompt_frames=3)
    tracker.track(frames[0])
    tracker.add_points(1, points=[[12, 16]], labels=[1])
    for i in range(1, 200):
        tracker.track(frames[i % len(frames)])
        if i % 20 == 0:  # a correction every 20 frames
            tracker.add_points(1, points=[[24, 16]], labels=[1])
    prompted = sorted(tracker.state.objects[0].cond)
    assert prompted == [0, 160, 180], "the first and the most recent corrections are kept"


def test_corrections_can_be_ordinary_tracked_frames(model, frames):
    """With add_all_frames_to_correct_as_cond=False (the video predictor's default) a correction is a
    tracked frame: it leaves memory with the recent-frame window and only frame 0 stays prompted."""
    tracker = StreamTracker(model, add_all_frames_to_correct_as_cond=False)
    tracker.track(frames[0])
    tracker.add_points(1, points=[[12, 16]], labels=[1])
    for i in range(1, 60):
        tracker.track(frames[i % len(frames)])
        if i == 20:
            tracker.add_points(1, points=[[24, 16]], labels=[1])
    obj = tracker.state.objects[0]
    assert sorted(obj.cond) == [0]
    assert 20 not in obj.non_cond and min(obj.non_cond) > 20


def test_a_live_correction_matches_the_video_predictor(model):
    """A correction on frame 10 of a 16-frame stream gives the masks of the video predictor (with
    add_all_frames_to_correct_as_cond=True) corrected on frame 10 and propagated from there."""
    frames, k = synthetic_frames(16), 10
    video = VideoPredictor(model, add_all_frames_to_correct_as_cond=True)
    state = video.init_state(frames)
    video.add_new_points_or_box(state, 0, 1, points=[[12, 16]], labels=[1])
    first = [logits for _, _, logits in video.propagate_in_video(state)]
    video.add_new_points_or_box(state, k, 1, points=[[40, 8]], labels=[0], clear_old_points=False)
    second = [logits for _, _, logits in video.propagate_in_video(state, start_frame_idx=k)]
    expected = first[:k] + second
    assert len(expected) == len(frames)
    tracker = StreamTracker(model)
    for i, frame in enumerate(frames):
        r = tracker.track(frame)
        if i == 0:
            r = tracker.add_points(1, points=[[12, 16]], labels=[1])
        if i == k:
            r = tracker.add_points(1, points=[[40, 8]], labels=[0], clear_old_points=False)
        torch.testing.assert_close(
            r.logits, expected[i], atol=1e-5, rtol=0, msg=lambda m, i=i: f"frame {i}: {m}"
        )
    assert not torch.equal(first[k + 2], second[2]), "the correction must change later frames"
    assert sorted(tracker.state.objects[0].cond) == [0, k]


# ------------------------------------------------------------------------------------ long streams
@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads VmRSS from /proc/self/status")
def test_memory_is_constant_over_10000_frames():
    """The key promise of a live tracker: nothing grows with the stream's length.

    Two objects prompted on frame 0 (a click and a mask: they track as one batch, which keeps the
    test near 10 ms a frame), a correction every 500 frames. Corrections stay as prompted frames up to
    ``max_prompt_frames`` per object (reached at frame 3,500), so state bytes and stored outputs are
    equal at frames 5,000 and 10,000, and RSS at frame 10,000 is within a few MiB of frame 5,000 (before
    the state is full, differently sized attention buffers still settle in the allocator). Objects
    added mid-stream are covered by the short test below. The model's features are as narrow as its
    memory (64): what is kept per frame, not its width, is under test, and it halves the run time.
    """
    frames = synthetic_frames(40)
    tracker = StreamTracker(micro_model(d_model=64, mem_dim=64))
    marks: dict[int, tuple[int, int, int]] = {}
    t0 = time.perf_counter()
    for i in range(10_000):
        r = tracker.track(frames[i % len(frames)])
        if i == 0:
            tracker.add_points(1, points=[[12, 16]], labels=[1])
            r = tracker.add_mask(2, disc_mask(30))
        elif i % 500 == 0:
            r = tracker.add_points(1, points=[[20, 16]], labels=[1])
        assert r.masks.shape == (len(r.obj_ids), H, W)
        if i + 1 in (200, 5_000, 10_000):
            gc.collect()
            marks[i + 1] = (tracker.state_bytes(), stored_outputs(tracker), rss_bytes())
    elapsed = time.perf_counter() - t0
    print(f"\n10,000 frames in {elapsed:.1f} s ({10_000 / elapsed:.0f} fps); marks {marks}")
    assert tracker.obj_ids == [1, 2] and tracker.frame_idx == 9_999
    (bytes_200, outs_200, _), (bytes_5k, outs_5k, rss_5k), (bytes_10k, outs_10k, rss_10k) = (
        marks[200],
        marks[5_000],
        marks[10_000],
    )
    assert 0 < bytes_200 < bytes_5k == bytes_10k
    # each object: its prompted frames + the last 16 tracked frames (the 6 memories and 15 pointers
    # reach); object 1 also keeps its 7 most recent corrections (max_prompt_frames = 8 in all)
    assert outs_200 == 2 * (1 + 16)
    assert outs_5k == outs_10k == 2 * (1 + 16) + tracker.max_prompt_frames - 1
    assert sorted(tracker.state.objects[0].cond) == [0, *range(6_500, 10_000, 500)]
    grew = rss_10k - rss_5k
    assert grew < 8 * 2**20, f"RSS grew by {grew / 2**20:.1f} MiB between frames 5,000 and 10,000"


def test_state_is_bounded_with_objects_added_mid_stream(model, frames):
    """A quick version of the long test: objects added on frames 0, 30 and 45 (so tracked in three
    batches), corrections of object 2 on frames 70 and 90 (kept as prompted frames); after frame 62 the
    windows are full and stay put until the corrections, and again once they left the window."""
    tracker = StreamTracker(model)
    sizes = []
    for i in range(120):
        tracker.track(frames[i % len(frames)])
        if i == 0:
            tracker.add_points(1, points=[[12, 16]], labels=[1])
        elif i == 30:
            tracker.add_points(2, box=[30, 2, 46, 14])
        elif i == 45:
            tracker.add_mask(3, disc_mask(24))
        elif i in (70, 90):
            tracker.add_points(2, points=[[40, 8]], labels=[1])
        sizes.append((tracker.state_bytes(), stored_outputs(tracker)))
    assert sizes[10][0] < sizes[40][0] < sizes[62][0]  # it grew while objects came and windows filled
    assert set(sizes[62:70]) == {sizes[62]} and sizes[62][1] == 3 * (1 + 16)
    assert sizes[70][1] == sizes[69][1] + 1  # a correction pending until the next frame
    # frame 90 + 16: both corrections are prompted frames outside the recent-frame window
    assert set(sizes[106:]) == {sizes[106]} and sizes[106][1] == 3 * (1 + 16) + 2
    assert sorted(tracker.state.objects[1].cond) == [30, 70, 90]
