"""A semi-supervised VOS client that drives a SAM 2 video predictor the way SAM 2's tools/vos_inference.py
does: the same predictor calls, with the same arguments, in the same order, in every mode (masks of the
first frame, all masks with ``--use_all_masks``, objects appearing later with
``--track_object_appearing_later_in_video``, per-object PNG files with ``--per_obj_png_file``).

Written for masklet's tests: ``main(argv, api)`` takes the module providing
``build_sam2_video_predictor`` (``masklet.sam2_compat``, or the official ``sam2.build_sam``), so the same
client runs on both. File handling is this module's own; only the calls into the predictor mirror the
official script's.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from masklet.eval.synthetic import davis_palette

FALLBACK_PALETTE = davis_palette().ravel().tolist()


# ------------------------------------------------------------------------------------------- files
def frame_stems(video_dir: Path) -> list[str]:
    """The JPEG frames of a video folder, by frame number."""
    stems = [p.stem for p in video_dir.iterdir() if p.suffix in (".jpg", ".jpeg", ".JPG", ".JPEG")]
    return sorted(stems, key=int)


def read_png(path: Path) -> tuple[np.ndarray, list[int] | None]:
    with Image.open(path) as im:
        return np.array(im, dtype=np.uint8), im.getpalette()


def object_masks(
    mask_dir: Path, video: str, stem: str, per_object: bool, skip_missing: bool = False
) -> tuple[dict[int, np.ndarray], list[int] | None]:
    """object id -> (H, W) bool mask on one frame, and the PNG palette: from the frame's indexed PNG,
    or from one 0/1 PNG per object folder (``%03d``)."""
    if not per_object:
        path = mask_dir / video / f"{stem}.png"
        if skip_missing and not path.exists():
            return {}, None
        ids, palette = read_png(path)
        return {int(i): ids == i for i in np.unique(ids) if i > 0}, palette
    found: dict[int, np.ndarray] = {}
    palette = None
    for folder in os.listdir(mask_dir / video):
        path = mask_dir / video / folder / f"{stem}.png"
        if skip_missing and not path.exists():
            continue
        values, palette = read_png(path)
        found[int(folder)] = values > 0
    return found, palette


def write_masks(
    out_dir: Path, video: str, stem: str, masks: dict[int, np.ndarray], hw, per_object: bool, palette
) -> None:
    """One indexed PNG per frame (on overlaps the lower id is written), or one 0/1 PNG per object."""
    h, w = hw
    (out_dir / video).mkdir(parents=True, exist_ok=True)
    targets: list[tuple[Path, np.ndarray]] = []
    if per_object:
        for obj, m in masks.items():
            (out_dir / video / f"{obj:03d}").mkdir(parents=True, exist_ok=True)
            targets.append((out_dir / video / f"{obj:03d}" / f"{stem}.png", m.reshape(h, w).astype(np.uint8)))
    else:
        ids = np.zeros((h, w), np.uint8)
        for obj in sorted(masks, reverse=True):
            ids[masks[obj].reshape(h, w)] = obj
        targets.append((out_dir / video / f"{stem}.png", ids))
    for path, array in targets:
        image = Image.fromarray(array)
        image.putpalette(palette)
        image.save(path)


# ------------------------------------------------------------------------------------------- the two runs
@torch.inference_mode()
@torch.autocast(device_type="cuda", dtype=torch.bfloat16)
def track_together(predictor, videos: Path, masks_in: Path, out: Path, video: str, opts) -> None:
    """All objects in one session, prompted by their masks on the first frame (or on every frame that
    has masks), tracked forward together."""
    stems = frame_stems(videos / video)
    state = predictor.init_state(video_path=str(videos / video), async_loading_frames=False)
    hw = (state["video_height"], state["video_width"])
    if opts.use_all_masks:
        if opts.per_obj_png_file:
            have = {i for obj in os.listdir(masks_in / video) for i, s in enumerate(stems)
                    if (masks_in / video / obj / f"{s}.png").exists()}  # fmt: skip
        else:
            have = {i for i, s in enumerate(stems) if (masks_in / video / f"{s}.png").exists()}
        if not have:
            raise RuntimeError(f"{video}: no input masks in {masks_in}")
        prompted = sorted(have)
    else:
        prompted = [0]
    palette, tracked = None, None
    for t in prompted:
        masks, palette = object_masks(masks_in, video, stems[t], opts.per_obj_png_file)
        tracked = set(masks) if tracked is None else tracked
        for obj, mask in masks.items():
            if obj not in tracked:
                raise RuntimeError(f"{video}: object {obj} first appears on frame {t}, after the first")
            predictor.add_new_mask(inference_state=state, frame_idx=t, obj_id=obj, mask=mask)
    if not tracked:
        raise RuntimeError(f"{video}: no objects on the prompted frames {prompted}")
    results = {}
    for t, obj_ids, logits in predictor.propagate_in_video(state):
        results[t] = {obj: (logits[i] > opts.score_thresh).cpu().numpy() for i, obj in enumerate(obj_ids)}
    for t, masks in results.items():
        write_masks(out, video, stems[t], masks, hw, opts.per_obj_png_file, palette or FALLBACK_PALETTE)


@torch.inference_mode()
@torch.autocast(device_type="cuda", dtype=torch.bfloat16)
def track_each(predictor, videos: Path, masks_in: Path, out: Path, video: str, opts) -> None:
    """One object at a time, each from the frames where it has (non-empty) masks, then merged."""
    stems = frame_stems(videos / video)
    state = predictor.init_state(video_path=str(videos / video), async_loading_frames=False)
    h, w = state["video_height"], state["video_width"]
    prompts: dict[int, dict[int, np.ndarray]] = {}
    palette = None
    for t, stem in enumerate(stems):
        if not opts.per_obj_png_file and not (masks_in / video / f"{stem}.png").exists():
            continue
        masks, palette = object_masks(masks_in, video, stem, opts.per_obj_png_file, skip_missing=True)
        for obj, mask in masks.items():
            frames = prompts.setdefault(obj, {})
            if mask.any() and (opts.use_all_masks or not frames):
                frames[t] = mask
    objects = sorted(prompts)
    scores: dict[int, dict[int, np.ndarray]] = {obj: {} for obj in objects}
    for obj in objects:
        frames = sorted(prompts[obj])
        predictor.reset_state(state)
        for t in frames:
            predictor.add_new_mask(inference_state=state, frame_idx=t, obj_id=obj, mask=prompts[obj][t])
        for t, _, logits in predictor.propagate_in_video(state, start_frame_idx=min(frames), reverse=False):
            scores[obj][t] = logits.cpu().numpy()
    for t, stem in enumerate(stems):
        merged = torch.full((len(objects), 1, h, w), -1024.0, dtype=torch.float32)
        for k, obj in enumerate(objects):
            if t in scores[obj]:
                merged[k] = torch.from_numpy(scores[obj][t])
        if not opts.per_obj_png_file:
            merged = predictor._apply_non_overlapping_constraints(merged)
        masks = {obj: (merged[k] > opts.score_thresh).cpu().numpy() for k, obj in enumerate(objects)}
        write_masks(out, video, stem, masks, (h, w), opts.per_obj_png_file, palette or FALLBACK_PALETTE)


# ------------------------------------------------------------------------------------------- command line
def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--sam2_cfg", default="configs/sam2.1/sam2.1_hiera_b+.yaml")
    p.add_argument("--sam2_checkpoint", default="./checkpoints/sam2.1_hiera_base_plus.pt")
    p.add_argument("--base_video_dir", required=True)
    p.add_argument("--input_mask_dir", required=True)
    p.add_argument("--video_list_file", default=None)
    p.add_argument("--output_mask_dir", required=True)
    p.add_argument("--score_thresh", type=float, default=0.0)
    for flag in (
        "--use_all_masks",
        "--per_obj_png_file",
        "--apply_postprocessing",
        "--track_object_appearing_later_in_video",
        "--use_vos_optimized_video_predictor",
    ):
        p.add_argument(flag, action="store_true")
    return p.parse_args(argv)


def build(api, opts: argparse.Namespace, extra_overrides: tuple[str, ...] = ()):
    """The predictor as the official script builds it (its one override: overlapping outputs only
    with per-object PNGs). ``extra_overrides`` exist for tests that run the modes at a smaller size."""
    overlap = "false" if opts.per_obj_png_file else "true"
    return api.build_sam2_video_predictor(
        config_file=opts.sam2_cfg,
        ckpt_path=opts.sam2_checkpoint,
        apply_postprocessing=opts.apply_postprocessing,
        hydra_overrides_extra=[f"++model.non_overlap_masks={overlap}", *extra_overrides],
        vos_optimized=opts.use_vos_optimized_video_predictor,
    )


def run_videos(predictor, opts: argparse.Namespace) -> list[str]:
    """Every video of the list file (else every folder of the video directory); returns their names."""
    videos = Path(opts.base_video_dir)
    if opts.video_list_file is not None:
        names = [line.strip() for line in Path(opts.video_list_file).read_text().splitlines()]
    else:
        names = [p.name for p in videos.iterdir() if p.is_dir()]
    run = track_each if opts.track_object_appearing_later_in_video else track_together
    for name in names:
        run(predictor, videos, Path(opts.input_mask_dir), Path(opts.output_mask_dir), name, opts)
    return names


def main(argv: list[str], api) -> list[str]:
    opts = parse(argv)
    return run_videos(build(api, opts), opts)
