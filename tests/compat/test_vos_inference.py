"""SAM 2's tools/vos_inference.py on masklet: a client making the script's calls (vos_client.py) drives
``masklet.sam2_compat`` in every mode, and its PNGs must equal what masklet's own API gives.

The checkpoint is an official-format file of seeded random weights; the data are synthetic DAVIS /
SA-V layout videos. ``main`` runs once as the script does (default 1024 input); the modes run on a
predictor built the same way plus ``++model.image_size=256`` to keep them quick.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

import masklet.sam2_compat as compat
from masklet.inference.postprocess import keep_highest_object
from tests.compat import vos_client
from tests.compat.support import (
    CONFIG,
    NO_POSTPROCESSING,
    gt_masks,
    id_map,
    native_model,
    native_track,
    read_ids,
    sav_data,
    subset_masks,
    tracking_checkpoint,
    vos_data,
)

SIZE = 256
STEMS = [f"{t:05d}" for t in range(5)]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return tracking_checkpoint(tmp_path_factory.mktemp("compat") / "tiny.pt")


@pytest.fixture(scope="module")
def model(ckpt):
    return native_model(ckpt, SIZE, **NO_POSTPROCESSING)


@pytest.fixture(scope="module")
def early(tmp_path_factory) -> Path:
    return vos_data(tmp_path_factory.mktemp("early"), late=False, num_videos=2)


@pytest.fixture(scope="module")
def late(tmp_path_factory) -> Path:
    return vos_data(tmp_path_factory.mktemp("late"), late=True)


def frames_of(root: Path) -> Path:
    return root / "JPEGImages" / "480p"


def annotations_of(root: Path) -> Path:
    return root / "Annotations" / "480p"


def run_mode(ckpt: Path, videos: Path, masks: Path, out: Path, *flags: str) -> list[str]:
    argv = ["--sam2_cfg", CONFIG, "--sam2_checkpoint", str(ckpt), "--base_video_dir", str(videos)]
    argv += ["--input_mask_dir", str(masks), "--output_mask_dir", str(out), *flags]
    opts = vos_client.parse(argv)
    predictor = vos_client.build(compat, opts, extra_overrides=(f"++model.image_size={SIZE}",))
    assert isinstance(predictor, compat.SAM2VideoPredictor) and predictor.fill_hole_area == 0
    assert predictor.non_overlap_masks == ("--per_obj_png_file" not in flags)
    return vos_client.run_videos(predictor, opts)


def binary(logits: dict[int, torch.Tensor], k: int) -> dict[int, np.ndarray]:
    return {t: (x[k, 0] > 0).numpy() for t, x in logits.items()}


def check_nontrivial(maps: list[np.ndarray], prompted: set[int]) -> None:
    tracked = [m for t, m in enumerate(maps) if t not in prompted]
    assert any(m.any() for m in tracked), "every tracked frame is empty: the comparison would be trivial"


# ------------------------------------------------------------------------------------------ joint modes
def test_first_frame_masks_match_the_native_api(ckpt, model, early, tmp_path):
    out = tmp_path / "out"
    names = run_mode(ckpt, frames_of(early), annotations_of(early), out)
    assert sorted(names) == ["synth_000", "synth_001"]
    for name in names:
        first = gt_masks(annotations_of(early) / name, STEMS[0])
        assert len(first) == 2
        want = native_track(model, frames_of(early) / name, {0: first}, non_overlap=True)
        objs = sorted(first)
        maps = [read_ids(out / name / f"{s}.png") for s in STEMS]
        for t, got in enumerate(maps):
            expected = id_map({obj: (want[t][k, 0] > 0).numpy() for k, obj in enumerate(objs)})
            np.testing.assert_array_equal(got, expected, err_msg=f"{name} frame {t}")
        check_nontrivial(maps, {0})


def test_all_masks_mode_prompts_every_annotated_frame(ckpt, model, early, tmp_path):
    masks_in = subset_masks(annotations_of(early), tmp_path / "some", [STEMS[0], STEMS[3]])
    out = tmp_path / "out"
    list_file = tmp_path / "list.txt"
    list_file.write_text("synth_001\n")
    run_mode(ckpt, frames_of(early), masks_in, out, "--use_all_masks", "--video_list_file", str(list_file))
    assert sorted(os.listdir(out)) == ["synth_001"]
    video = annotations_of(early) / "synth_001"
    prompts = {0: gt_masks(video, STEMS[0]), 3: gt_masks(video, STEMS[3])}
    want = native_track(model, frames_of(early) / "synth_001", prompts, non_overlap=True)
    objs = sorted(prompts[0])
    maps = [read_ids(out / "synth_001" / f"{s}.png") for s in STEMS]
    for t, got in enumerate(maps):
        np.testing.assert_array_equal(
            got, id_map({o: (want[t][k, 0] > 0).numpy() for k, o in enumerate(objs)})
        )
    check_nontrivial(maps, {0, 3})


def test_per_object_png_files_keep_overlaps(ckpt, model, early, tmp_path):
    sav = sav_data(early, tmp_path / "sav")
    out = tmp_path / "out"
    masks_in = sav / "Annotations_6fps"
    run_mode(ckpt, sav / "JPEGImages_24fps", masks_in, out, "--per_obj_png_file")
    for name in ("synth_000", "synth_001"):
        order = [int(f) for f in os.listdir(masks_in / name)]  # the order the client adds them in
        first = {obj: read_ids(masks_in / name / f"{obj:03d}" / f"{STEMS[0]}.png") > 0 for obj in order}
        want = native_track(model, sav / "JPEGImages_24fps" / name, {0: first}, non_overlap=False)
        for k, obj in enumerate(order):
            for t, mask in binary(want, k).items():
                got = read_ids(out / name / f"{obj:03d}" / f"{STEMS[t]}.png")
                np.testing.assert_array_equal(got, mask.astype(np.uint8), err_msg=f"{name} {obj} {t}")


def test_a_new_object_after_the_first_frame_needs_the_later_flag(ckpt, late, tmp_path):
    with pytest.raises(RuntimeError, match="object 2 first appears on frame 2, after the first"):
        run_mode(ckpt, frames_of(late), annotations_of(late), tmp_path / "out", "--use_all_masks")


# ---------------------------------------------------------------------------------- one object at a time
def separate_expected(model, video: Path, prompts: dict[int, dict[int, np.ndarray]], overlap: bool, n: int):
    """masklet's own API for the per-object mode: each object alone from its first prompted frame, the
    frames it was not tracked on at -1024, then (unless overlapping) the highest object per pixel."""
    objs = sorted(prompts)
    h, w = next(iter(prompts[objs[0]].values())).shape
    scores = torch.full((n, len(objs), 1, h, w), -1024.0)
    for k, obj in enumerate(objs):
        tracked = native_track(
            model, video, {t: {obj: m} for t, m in prompts[obj].items()}, non_overlap=False
        )
        for t, logits in tracked.items():
            scores[t, k] = logits[0]
    if not overlap:
        scores = torch.stack([keep_highest_object(s) for s in scores])
    return objs, scores > 0


@pytest.mark.parametrize("use_all", [False, True], ids=["first-appearance", "all-masks"])
def test_objects_appearing_later_are_tracked_one_by_one(ckpt, model, late, tmp_path, use_all):
    flags = ["--track_object_appearing_later_in_video"] + (["--use_all_masks"] if use_all else [])
    masks_in = subset_masks(annotations_of(late), tmp_path / "some", [STEMS[0], STEMS[2], STEMS[4]])
    out = tmp_path / "out"
    run_mode(ckpt, frames_of(late), masks_in, out, *flags)
    video = annotations_of(late) / "synth_000"
    prompts: dict[int, dict[int, np.ndarray]] = {}
    for t in (0, 2, 4):
        for obj, m in gt_masks(video, STEMS[t]).items():
            if m.any() and (use_all or obj not in prompts):
                prompts.setdefault(obj, {})[t] = m
    assert min(prompts[2]) == 2  # object 2 enters on frame 2
    objs, masks = separate_expected(model, frames_of(late) / "synth_000", prompts, overlap=False, n=5)
    maps = [read_ids(out / "synth_000" / f"{s}.png") for s in STEMS]
    for t, got in enumerate(maps):
        np.testing.assert_array_equal(got, id_map({o: masks[t, k, 0].numpy() for k, o in enumerate(objs)}))
    assert not (maps[0] == 2).any() and (maps[3] == 2).any()
    check_nontrivial(maps, {0, 2, 4} if use_all else {0, 2})


def test_objects_appearing_later_with_per_object_pngs(ckpt, model, late, tmp_path):
    sav = sav_data(late, tmp_path / "sav")
    out = tmp_path / "out"
    masks_in = sav / "Annotations_6fps"
    run_mode(
        ckpt,
        sav / "JPEGImages_24fps",
        masks_in,
        out,
        "--per_obj_png_file",
        "--track_object_appearing_later_in_video",
    )
    folder = masks_in / "synth_000"
    prompts = {}
    for obj in sorted(int(f) for f in os.listdir(folder)):
        for t, stem in enumerate(STEMS):
            m = read_ids(folder / f"{obj:03d}" / f"{stem}.png") > 0
            if m.any():
                prompts[obj] = {t: m}
                break
    objs, masks = separate_expected(model, sav / "JPEGImages_24fps" / "synth_000", prompts, overlap=True, n=5)
    for k, obj in enumerate(objs):
        for t, stem in enumerate(STEMS):
            got = read_ids(out / "synth_000" / f"{obj:03d}" / f"{stem}.png")
            np.testing.assert_array_equal(got, masks[t, k, 0].numpy().astype(np.uint8), err_msg=f"{obj} {t}")


# ------------------------------------------------------------------------------------------ the script's main
def test_main_as_the_script_runs_it(ckpt, tmp_path):
    """The script's own build (no device, default input size, its one override), one short video."""
    data = vos_data(tmp_path / "data", late=False)
    out = tmp_path / "out"
    argv = ["--sam2_cfg", CONFIG, "--sam2_checkpoint", str(ckpt), "--base_video_dir", str(frames_of(data))]
    argv += ["--input_mask_dir", str(annotations_of(data)), "--output_mask_dir", str(out)]
    assert vos_client.main(argv, compat) == ["synth_000"]
    pngs = sorted(os.listdir(out / "synth_000"))
    assert pngs == [f"{s}.png" for s in STEMS]
    first = gt_masks(annotations_of(data) / "synth_000", STEMS[0])
    got = read_ids(out / "synth_000" / pngs[0])
    for obj, mask in first.items():  # a mask prompt is its own output on its frame
        inter, union = ((got == obj) & mask).sum(), ((got == obj) | mask).sum()
        assert inter / union >= 0.9, f"object {obj}: IoU {inter / union:.3f} with its input mask"
