"""Shared pieces of the drop-in tests: seeded official-format checkpoints, synthetic VOS data, PNG reading."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from masklet.checkpoints import build_model, save_checkpoint
from masklet.eval.synthetic import make_vos_dataset, to_sav_layout
from masklet.inference.video import VideoPredictor
from masklet.modeling.sam2 import SAM2Model
from tests.oracle import blob_mask_weights, perturbed_state_dict

PRESET = "sam2.1_hiera_tiny"
CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
SCORE_HEAD = "sam_mask_decoder.pred_obj_score_head.layers.2"
# the settings of the official builders without apply_postprocessing (tools/vos_inference.py's default)
NO_POSTPROCESSING = dict(dynamic_multimask_via_stability=False, binarize_mask_from_pts_for_mem_enc=False)


def tracking_checkpoint(path: Path, seed: int = 0) -> Path:
    """masklet's seeded random weights saved as an official checkpoint ({"model": state_dict}), with the
    object-score head spread and shifted so that tracked objects are mostly present (with raw random
    weights every tracked frame would be "absent" and any two runs would agree)."""
    if not path.exists():
        sd = build_model(PRESET, device="cpu", random_seed=seed).state_dict()
        sd[f"{SCORE_HEAD}.weight"] = sd[f"{SCORE_HEAD}.weight"] * 30.0
        sd[f"{SCORE_HEAD}.bias"] = sd[f"{SCORE_HEAD}.bias"] * 30.0 + 2.0
        save_checkpoint(sd, path)
    return path


def blob_checkpoint(path: Path, seed: int = 2) -> Path:
    """masklet's seeded random weights, perturbed and with the decoder changes of the oracle's automatic
    mask checkpoint (small point-dependent blobs instead of image-wide masks), as an official file.
    Seed 2 gives about twenty masks on the test image at input size 256 (measured)."""
    if not path.exists():
        model = build_model(PRESET, device="cpu", random_seed=seed)
        save_checkpoint(blob_mask_weights(perturbed_state_dict(model, seed)), path)
    return path


def native_model(ckpt: Path, image_size: int | None = None, **behaviour) -> SAM2Model:
    """The model through masklet's own API (``build_model`` + ``configure``)."""
    return build_model(PRESET, ckpt, device="cpu", image_size=image_size).configure(**behaviour)


def vos_data(root: Path, late: bool, num_videos: int = 1) -> Path:
    """A DAVIS-layout dataset of 5-frame 72x96 videos with two objects: both on the first frame, or
    (``late``) the second entering on frame 2 (measured for seed 1)."""
    return make_vos_dataset(
        root,
        num_videos=num_videos,
        num_frames=5,
        size=(72, 96),
        objects=(2, 2),
        seed=1,
        late_objects=float(late),
    )


def sav_data(davis: Path, out: Path) -> Path:
    """The same dataset with one PNG folder per object (what ``--per_obj_png_file`` reads)."""
    return to_sav_layout(davis, out)


def subset_masks(ann_dir: Path, out: Path, stems: list[str]) -> Path:
    """A copy of a DAVIS annotation folder with only the given frames annotated."""
    for video in ann_dir.iterdir():
        (out / video.name).mkdir(parents=True, exist_ok=True)
        for stem in stems:
            shutil.copyfile(video / f"{stem}.png", out / video.name / f"{stem}.png")
    return out


def read_ids(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.array(im)


def gt_masks(ann_video: Path, stem: str) -> dict[int, np.ndarray]:
    ids = read_ids(ann_video / f"{stem}.png")
    return {int(k): ids == k for k in np.unique(ids) if 0 < k < 255}


def native_track(
    model: SAM2Model, video: Path, prompts: dict[int, dict[int, np.ndarray]], non_overlap: bool
) -> dict[int, torch.Tensor]:
    """masklet's own API: every object prompted by its masks (frame -> obj -> mask, in that order),
    tracked together from the first prompted frame; frame -> (N, 1, H, W) logits, objects in the order
    they were added."""
    predictor = VideoPredictor(model, fill_hole_area=0, non_overlap_masks=non_overlap)
    state = predictor.init_state(video)
    for t in sorted(prompts):
        for obj, mask in prompts[t].items():
            predictor.add_new_mask(state, t, obj, mask)
    out = {t: logits.clone() for t, _, logits in predictor.propagate_in_video(state)}
    state.close()
    return out


def id_map(masks: dict[int, np.ndarray]) -> np.ndarray:
    """obj -> (H, W) bool masks as one id map where the lower id wins on overlaps."""
    first = next(iter(masks.values()))
    ids = np.zeros(first.shape, np.uint8)
    for obj in sorted(masks, reverse=True):
        ids[masks[obj]] = obj
    return ids
