"""Clients that make the predictor calls of SAM 2's example notebooks (image_predictor_example,
video_predictor_example, automatic_mask_generator_example), in their order and with their arguments.

Each takes ``api``: a namespace with the official names (``build_sam2``, ``SAM2ImagePredictor`` ...),
which is ``masklet.sam2_compat`` or the official ``sam2`` modules, and returns every output it got, so
a test can compare two runs. Prompts are the notebooks' pixel values, scaled to the image at hand.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# the image notebook's prompts on truck.jpg (1800 x 1200) and groceries.jpg (1024 x 768)
TRUCK_WH, GROCERIES_WH = (1800, 1200), (1024, 768)
TRUCK_BOXES = [[75, 275, 1725, 850], [425, 600, 700, 875], [1375, 550, 1650, 800], [1240, 675, 1400, 750]]
GROCERIES_BOXES = [[450, 170, 520, 350], [350, 190, 450, 350], [500, 170, 580, 350], [580, 170, 640, 350]]


def scaled(values, from_wh, image: np.ndarray) -> np.ndarray:
    """Pixel coordinates (x, y pairs along the last axis) given for a from_wh image, on ``image``."""
    h, w = image.shape[:2]
    a = np.asarray(values, dtype=np.float32)
    factor = np.tile([w / from_wh[0], h / from_wh[1]], a.shape[-1] // 2)
    return (a * factor).astype(np.float32)


def image_notebook(api, config: str, ckpt: str, device, truck: np.ndarray, groceries: np.ndarray) -> list:
    """The image predictor notebook: one image with clicks, a mask input, boxes; then a batch of two."""
    outs: list = []
    predictor = api.SAM2ImagePredictor(api.build_sam2(config, ckpt, device=device))
    predictor.set_image(truck)
    embed = predictor._features["image_embed"]
    outs.append((tuple(embed.shape), tuple(embed[-1].shape)))
    point, label = scaled([[500, 375]], TRUCK_WH, truck), np.array([1])
    masks, scores, logits = predictor.predict(point_coords=point, point_labels=label, multimask_output=True)
    order = np.argsort(scores)[::-1]
    masks, scores, logits = masks[order], scores[order], logits[order]
    outs.append((masks, scores, logits))
    two = scaled([[500, 375], [1125, 625]], TRUCK_WH, truck)
    best = logits[np.argmax(scores), :, :]
    for labels in (np.array([1, 1]), np.array([1, 0])):
        outs.append(
            predictor.predict(
                point_coords=two, point_labels=labels, mask_input=best[None, :, :], multimask_output=False
            )
        )
    box = scaled([425, 600, 700, 875], TRUCK_WH, truck)
    outs.append(
        predictor.predict(point_coords=None, point_labels=None, box=box[None, :], multimask_output=False)
    )
    near = scaled([[575, 750]], TRUCK_WH, truck)
    outs.append(
        predictor.predict(point_coords=near, point_labels=np.array([0]), box=box, multimask_output=False)
    )
    boxes = scaled(TRUCK_BOXES, TRUCK_WH, truck)
    outs.append(predictor.predict(point_coords=None, point_labels=None, box=boxes, multimask_output=False))
    predictor.set_image_batch([truck, groceries])
    box_batch = [boxes, scaled(GROCERIES_BOXES, GROCERIES_WH, groceries)]
    outs.append(predictor.predict_batch(None, None, box_batch=box_batch, multimask_output=False))
    pts_batch = [scaled([[[500, 375]], [[650, 750]]], TRUCK_WH, truck)]
    pts_batch.append(scaled([[[400, 300]], [[630, 300]]], GROCERIES_WH, groceries))
    labels_batch = [np.array([[1], [1]]), np.array([[1], [1]])]
    masks_batch, scores_batch, _ = predictor.predict_batch(
        pts_batch, labels_batch, box_batch=None, multimask_output=True
    )
    best_masks = [m[range(len(m)), np.argmax(s, axis=-1)] for m, s in zip(masks_batch, scores_batch)]
    outs.append((masks_batch, scores_batch, best_masks))
    return outs


def shown(frame_idx: int, obj_ids, mask_logits) -> tuple:
    """What a notebook cell shows of one prompt's result, taken when it returns (the official predictor
    returns its live list of object ids, which later calls change)."""
    return frame_idx, list(obj_ids), mask_logits


def _propagate(predictor, state) -> dict:
    segments = {}
    for frame_idx, obj_ids, logits in predictor.propagate_in_video(state):
        segments[frame_idx] = {obj: (logits[i] > 0.0).cpu().numpy() for i, obj in enumerate(obj_ids)}
    return segments


def video_notebook(api, config: str, ckpt: str, device, video_dir: Path, overrides: list[str]) -> list:
    """The video predictor notebook: clicks and a refinement on one object, a correction on a later
    frame, a box with a click, and two objects. Frame sizes: the notebook's bedroom clip (960 x 540)."""
    outs: list = []
    predictor = api.build_sam2_video_predictor(config, ckpt, device=device, hydra_overrides_extra=overrides)
    state = predictor.init_state(video_path=str(video_dir))
    last = state["num_frames"] - 1
    predictor.reset_state(state)
    wh = (960, 540)
    probe = np.zeros((state["video_height"], state["video_width"], 3))

    def click(frame, obj, points, labels, **kw):
        pts = scaled(points, wh, probe)
        res = predictor.add_new_points_or_box(
            inference_state=state,
            frame_idx=frame,
            obj_id=obj,
            points=pts,
            labels=np.array(labels, np.int32),
            **kw,
        )
        outs.append(shown(*res))

    click(0, 1, [[210, 350]], [1])
    click(0, 1, [[210, 350], [250, 220]], [1, 1])
    outs.append(_propagate(predictor, state))
    click(last, 1, [[82, 415]], [0])
    outs.append(_propagate(predictor, state))
    predictor.reset_state(state)
    box = scaled([300, 0, 500, 400], wh, probe)
    outs.append(
        shown(*predictor.add_new_points_or_box(inference_state=state, frame_idx=0, obj_id=4, box=box))
    )
    click(0, 4, [[460, 60]], [1], box=box)
    outs.append(_propagate(predictor, state))
    predictor.reset_state(state)
    click(0, 2, [[200, 300]], [1])
    click(0, 2, [[200, 300], [275, 175]], [1, 0])
    click(0, 3, [[400, 150]], [1])
    outs.append(_propagate(predictor, state))
    return outs


def automask_notebook(
    api, config: str, ckpt: str, device, image: np.ndarray, overrides: list[str], default: dict, **tuned
) -> list:
    """The automatic mask generator notebook: the default generator (``default`` options added), then
    the tuned one (its arguments, ``tuned`` replacing some of them)."""
    sam2 = api.build_sam2(
        config, ckpt, device=device, apply_postprocessing=False, hydra_overrides_extra=overrides
    )
    first = api.SAM2AutomaticMaskGenerator(sam2, **default).generate(image)
    options = dict(
        points_per_side=64,
        points_per_batch=128,
        pred_iou_thresh=0.7,
        stability_score_thresh=0.92,
        stability_score_offset=0.7,
        crop_n_layers=1,
        box_nms_thresh=0.7,
        crop_n_points_downscale_factor=2,
        min_mask_region_area=25.0,
        use_m2m=True,
    )
    options.update(tuned)
    second = api.SAM2AutomaticMaskGenerator(model=sam2, **options).generate(image)
    return [first, second]
