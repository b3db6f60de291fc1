"""Parity of EdgeTAM and EfficientTAM with the authors' code (PyPI: edgetam-dimos, efficient-track-anything).

The oracle runs in its own virtualenv (tests/setup_edge_oracles.sh; skipped without it) and writes the
seeded random checkpoint itself, in the official format; masklet loads it strictly. Image: the prompt
matrix of tests/inference/test_image_parity.py. Video: a scripted multi-object session (a click, a box
and a mask prompted before tracking, since neither official predictor accepts a new object once
tracking started; propagation, a reverse propagation; EdgeTAM also removes an object), the object-score
head spread so that some frames are absent. A correction on a tracked frame and an object added after
tracking started have their own test: both official predictors predate sam2 1.1.0's per-object state
(they keep a corrected tracked frame through later propagations, where 1.1.0 and masklet track it
again, and they refuse new objects once tracking started), so those checks compare what both define.
float32 logits max|diff|/std <= 1e-3, masks IoU >= 0.999. Small inputs (512 px images, 256 px video)
keep CI cheap.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from masklet.checkpoints import build_model
from masklet.inference.image import ImagePredictor
from masklet.inference.video import VideoPredictor
from tests.conftest import load_photo
from tests.edge_oracle import family_job, oracle_checkpoint, require_oracle, run_oracle
from tests.inference.test_image_parity import _iou, _prompt_cases
from tests.inference.test_video_parity import BEDROOM, Comparer, check_nontrivial, clip_folder

SIZE = 512
VIDEO_SIZE = 256  # the video session at 256 px keeps CI cost down (parity at 512 holds as well)
FAMILY = {"edgetam": "edgetam", "efficienttam_ti": "efficienttam", "efficienttam_ti_1": "efficienttam"}
# presence-logit shifts of these seeded weights that leave many tracked frames present and some absent
# (measured on this script)
SCORE_SHIFT = {"edgetam": 7.5, "efficienttam": -6.0}


def _checkpoint(preset: str, ckpt_dir, kind: str = "image"):
    name = family_job(preset, SIZE)
    score = {"score_scale": 30.0, "score_shift": SCORE_SHIFT[name["family"]]} if kind == "video" else {}
    stem = f"{name['family']}-{name.get('size', '')}-{kind}"  # variants share one file of their size
    return oracle_checkpoint(preset, ckpt_dir / f"oracle-{stem}.pt", SIZE, **score)


def _mask_input(seed: int = 0) -> np.ndarray:
    """A smooth (1, S/4, S/4) low-res logit map standing for a previous prediction."""
    n = SIZE // 4
    y, x = np.mgrid[0:n, 0:n] / n
    return (8.0 * np.sin(6 * x + seed) * np.cos(4 * y) - 1.0)[None].astype(np.float32)


@pytest.mark.parametrize("preset", ["edgetam", "efficienttam_ti"])
def test_image_prompt_matrix_matches_oracle(preset, ckpt_dir, tmp_path):
    require_oracle(FAMILY[preset])
    ckpt = _checkpoint(preset, ckpt_dir)
    image = load_photo("truck.jpg")
    h, w = image.shape[:2]
    cases = [kw for _, kw in _prompt_cases(h, w)]
    pt = np.array([[w * 0.45, h * 0.55]], dtype=np.float32)
    cases.append(
        dict(point_coords=pt, point_labels=np.array([1]), mask_input=_mask_input(), multimask_output=False)
    )
    np.save(tmp_path / "image.npy", image)
    job = {**family_job(preset, SIZE), "task": "image", "checkpoint": str(ckpt)}
    job |= {
        "image": str(tmp_path / "image.npy"),
        "cases": [{k: np.asarray(v).tolist() for k, v in c.items()} for c in cases],
    }
    ref = run_oracle(job, tmp_path)
    ours = ImagePredictor(build_model(preset, ckpt, device="cpu", image_size=SIZE))
    ours.set_image(image)
    nontrivial = 0
    for i, kw in enumerate(cases):
        o_logits, o_scores, o_low = ours.predict(return_logits=True, **kw)
        r_logits, r_scores, r_low = ref[f"{i}_logits"], ref[f"{i}_scores"], ref[f"{i}_low"]
        assert o_logits.shape == r_logits.shape, i
        rel = np.abs(o_logits - r_logits).max() / r_logits.std()
        assert rel <= 1e-3, f"{preset} case {i}: logits max|diff|/std {rel:.2e}"
        np.testing.assert_allclose(o_scores, r_scores, atol=1e-4, err_msg=f"{preset} case {i}")
        np.testing.assert_allclose(o_low, r_low, atol=1e-3 * r_low.std(), err_msg=f"{preset} case {i}")
        for rm, om in zip((r_logits > 0).reshape(-1, h, w), (o_logits > 0).reshape(-1, h, w)):
            assert _iou(rm, om) >= 0.999, f"{preset} case {i}: mask IoU {_iou(rm, om):.5f}"
            nontrivial += 0.001 < rm.mean() < 0.999
    assert nontrivial >= len(cases), f"{preset}: only {nontrivial} non-trivial masks compared"


def _script(n: int, h: int, w: int, mask_path: str, full: bool) -> list[list]:
    ops = [
        ["points", 0, 1, [[0.45 * w, 0.6 * h]], [1], True],
        ["box", 0, 2, [0.05 * w, 0.1 * h, 0.4 * w, 0.7 * h]]
        if full
        else ["points", 0, 2, [[0.2 * w, 0.3 * h]], [1], True],
        ["mask", 0, 3, mask_path],
        ["propagate", None, False],
        ["propagate", n - 2, True],
    ]
    if full:  # the newer predictor API (EdgeTAM): removing an object
        ops += [["remove", 2], ["propagate", None, False]]
    return ops


def _run_ours(pred: VideoPredictor, state, op: str, args: list):
    if op == "points":
        frame, obj, pts, labels, clear = args
        return [
            pred.add_new_points_or_box(state, frame, obj, points=pts, labels=labels, clear_old_points=clear)
        ]
    if op == "box":
        return [pred.add_new_points_or_box(state, args[0], args[1], box=args[2])]
    if op == "mask":
        return [pred.add_new_mask(state, args[0], args[1], np.load(args[2]))]
    if op == "propagate":
        return list(pred.propagate_in_video(state, start_frame_idx=args[0], reverse=args[1]))
    if op == "clear":
        return [pred.clear_all_prompts_in_frame(state, *args)]
    ids, updates = pred.remove_object(state, args[0])
    return [(frame, ids, logits) for frame, logits in updates]


@pytest.mark.parametrize("preset", ["edgetam", "efficienttam_ti_1"])
def test_scripted_video_session_matches_oracle(preset, ckpt_dir, tmp_path):
    require_oracle(FAMILY[preset])
    torch.manual_seed(0)
    n = 5
    ckpt = _checkpoint(preset, ckpt_dir, "video")
    folder = clip_folder(tmp_path, n)
    ours = VideoPredictor(build_model(preset, ckpt, device="cpu", image_size=VIDEO_SIZE), fill_hole_area=0)
    state = ours.init_state(folder)
    h, w = state.video_height, state.video_width
    mask = np.zeros((h, w), bool)
    mask[int(0.5 * h) : int(0.9 * h), int(0.55 * w) : int(0.95 * w)] = True
    np.save(tmp_path / "mask.npy", mask)
    script = _script(n, h, w, str(tmp_path / "mask.npy"), full=preset == "edgetam")
    job = {**family_job(preset, VIDEO_SIZE), "task": "video", "checkpoint": str(ckpt), "frames": str(folder)}
    ref = run_oracle({**job, "script": script}, tmp_path / "oracle")
    c = Comparer()
    for i, (op, *args) in enumerate(script):
        records = _run_ours(ours, state, op, args)
        n_ref = len({k.split("_")[1] for k in ref if k.startswith(f"{i}_")})
        assert len(records) == n_ref, f"operation {i} ({op}): {len(records)} results vs {n_ref}"
        for r, (frame, ids, logits) in enumerate(records):
            want = (int(ref[f"{i}_{r}_frame"]), ref[f"{i}_{r}_ids"].tolist())
            assert (frame, list(ids)) == want, f"operation {i} ({op}) result {r}"
            c.logits(
                logits, torch.from_numpy(ref[f"{i}_{r}_logits"]), f"{preset} op {i} ({op}) frame {frame}"
            )
    check_nontrivial(c)
    print(f"{preset}: {c.count} results compared, worst max|diff|/std {c.worst:.2e}")


def _compare(c: Comparer, records: list, ref: dict, i: int, what: str) -> None:
    """Our records of one operation against the oracle's operation ``i``."""
    n_ref = len({k.split("_")[1] for k in ref if k.startswith(f"{i}_")})
    assert len(records) == n_ref, f"{what}: {len(records)} results vs {n_ref}"
    for r, (frame, ids, logits) in enumerate(records):
        want = (int(ref[f"{i}_{r}_frame"]), ref[f"{i}_{r}_ids"].tolist())
        assert (frame, list(ids)) == want, f"{what} result {r}"
        c.logits(logits, torch.from_numpy(ref[f"{i}_{r}_logits"]), f"{what} frame {frame}")


@pytest.mark.parametrize("preset", ["edgetam", "efficienttam_ti_1"])
def test_refinement_and_late_objects_match_oracle(preset, ckpt_dir, tmp_path):
    """A correction on a tracked frame, and an object added after tracking started.

    Correction: both official predictors predate sam2 1.1.0's per-object state and keep a corrected
    tracked frame through later propagations, where 1.1.0 (and masklet) track it again; so the check
    is the correction itself and a propagation from the frame after it, which both build on the
    corrected frame's memory. Late objects: neither official predictor accepts a new object once
    tracking started, so masklet's session (object 2 added after a propagation) is checked against a
    fresh oracle session with both objects prompted up front: each object's memory is its own, so
    every later result must be the same.
    """
    require_oracle(FAMILY[preset])
    if not BEDROOM.exists() and preset == "edgetam":
        pytest.skip(
            "../shared is absent: on the synthetic stand-in clip the correction click leaves edgetam's "
            "tracked mask unchanged, so the correction would go untested; run beside ../shared"
        )
    torch.manual_seed(0)
    n, fix = 5, 3
    ckpt = _checkpoint(preset, ckpt_dir, "video")
    folder = clip_folder(tmp_path, n)
    ours = VideoPredictor(build_model(preset, ckpt, device="cpu", image_size=VIDEO_SIZE), fill_hole_area=0)
    state = ours.init_state(folder)
    h, w = state.video_height, state.video_width
    # object 1 stays present over the clip with these weights, and the correction changes its mask
    click1 = ["points", 0, 1, [[0.2 * w, 0.3 * h]], [1], True]
    click2 = ["points", 0, 2, [[0.3 * w, 0.5 * h]], [1], True]
    refine = ["points", fix, 1, [[0.8 * w, 0.2 * h]], [1], False]
    script_a = [click1, ["propagate", None, False], refine, ["propagate", fix + 1, False]]
    script_b = [click1, click2, ["propagate", None, False], ["propagate", n - 1, True]]
    job = {**family_job(preset, VIDEO_SIZE), "task": "video", "checkpoint": str(ckpt), "frames": str(folder)}
    ref_a = run_oracle({**job, "script": script_a}, tmp_path / "oracle-a")
    ref_b = run_oracle({**job, "script": script_b}, tmp_path / "oracle-b")

    c = Comparer()
    tracked = None
    for i, (op, *args) in enumerate(script_a):
        records = _run_ours(ours, state, op, args)
        _compare(c, records, ref_a, i, f"{preset} refinement op {i} ({op})")
        if i == 1:
            tracked = next(logits for frame, _, logits in records if frame == fix).clone()
        if i == 2:
            changed = ((records[0][2] > 0) != (tracked > 0)).float().mean().item()
            assert changed > 0.001, "the correction did not change the tracked mask: nothing was tested"

    late = ours.init_state(folder)
    forward, backward = ["propagate", None, False], ["propagate", n - 1, True]
    ours_b = [click1, forward, click2, forward, backward]
    counterpart = {0: (ref_a, 0), 1: (ref_a, 1), 2: (ref_b, 1), 3: (ref_b, 2), 4: (ref_b, 3)}
    for i, (op, *args) in enumerate(ours_b):
        ref, j = counterpart[i]
        _compare(c, _run_ours(ours, late, op, args), ref, j, f"{preset} late objects op {i} ({op})")
    assert c.present >= 10, f"only {c.present} present-object comparisons: the test would be trivial"
    print(f"{preset}: {c.count} results compared, worst max|diff|/std {c.worst:.2e}")
