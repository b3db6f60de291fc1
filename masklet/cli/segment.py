"""``masklet segment``: one image, objects from points and boxes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .common import CLIError, add_model_args, check_out_dir, load_model, parse_box, parse_point, run_meta


def add_segment_parser(sub) -> None:
    seg = sub.add_parser("segment", help="segment an object in an image from points and/or a box")
    seg.add_argument("image", type=Path)
    seg.add_argument(
        "--point",
        type=parse_point,
        action="append",
        default=[],
        metavar="X,Y[,LABEL]",
        help="a click in image pixels; LABEL 1 = object (default), 0 = background; repeatable",
    )
    seg.add_argument(
        "--box",
        type=parse_box,
        action="append",
        default=[],
        metavar="X0,Y0,X1,Y1",
        help="a box in image pixels; several boxes segment several objects at once",
    )
    seg.add_argument(
        "--multimask", action="store_true", help="write the 3 candidate masks, not just the best"
    )
    seg.add_argument("--out", type=Path, required=True, help="output folder")
    add_model_args(seg)


def segment_one(predictor, image: np.ndarray, points: list, boxes: list, multimask: bool):
    """Returns masks (K, H, W) bool, scores (K,)."""
    coords = np.array([p[:2] for p in points], dtype=np.float32) if points else None
    labels = np.array([int(p[2]) for p in points], dtype=np.int32) if points else None
    box = np.array(boxes, dtype=np.float32) if boxes else None
    if box is not None and len(boxes) == 1:
        box = box[0]
    multimask_output = multimask or (points is not None and len(points) == 1 and box is None)
    masks, scores, _ = predictor.predict(
        point_coords=coords, point_labels=labels, box=box, multimask_output=multimask_output
    )
    if masks.ndim == 4:  # several boxes: best mask of each object
        best = scores.argmax(1)
        return masks[np.arange(len(best)), best], scores[np.arange(len(best)), best]
    if not multimask:
        i = int(scores.argmax())
        return masks[i : i + 1], scores[i : i + 1]
    return masks, scores


def write_outputs(
    out: Path, stem: str, image: np.ndarray, masks: np.ndarray, scores: np.ndarray, meta: dict
) -> dict:
    """Write ``stem_maskI.png`` per mask, ``stem_overlay.png`` and ``stem.json``; returns the JSON dict."""
    from PIL import Image

    from ..io.masks import encode_rle, mask_to_box_xywh, overlay_masks, save_mask_png

    out.mkdir(parents=True, exist_ok=True)
    records = []
    for i, (m, s) in enumerate(zip(masks, scores)):
        png = out / f"{stem}_mask{i}.png"
        save_mask_png(m, png)
        records.append(
            {
                "index": i,
                "score": float(s),
                "area": int(m.sum()),
                "bbox_xywh": mask_to_box_xywh(m),
                "segmentation": encode_rle(m),
                "png": png.name,
            }
        )
    overlay = out / f"{stem}_overlay.png"
    Image.fromarray(overlay_masks(image, list(masks))).save(overlay)
    result = {**meta, "image_size_hw": list(image.shape[:2]), "overlay": overlay.name, "masks": records}
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2))
    return result


def cmd_segment(args) -> int:
    from ..inference.image import ImagePredictor
    from ..io.images import load_image

    if not args.point and not args.box:
        raise CLIError("give at least one prompt: --point X,Y[,LABEL] and/or --box X0,Y0,X1,Y1")
    if len(args.box) > 1 and args.point:
        raise CLIError("several --box values segment several objects; points can only go with a single box")
    check_out_dir(args.out)
    image = load_image(args.image)
    _check_prompts(args.point, args.box, image)
    model, weights = load_model(args)
    predictor = ImagePredictor(model)
    t0 = time.perf_counter()
    predictor.set_image(image)
    masks, scores = segment_one(predictor, image, args.point, args.box, args.multimask)
    elapsed = time.perf_counter() - t0
    meta = {
        "image": str(args.image),
        **run_meta(model, weights),
        "device": str(model.device),
        "seconds": round(elapsed, 3),
    }
    write_outputs(args.out, args.image.stem, image, masks, scores, meta)
    label = " [RANDOM WEIGHTS]" if weights == "random" else ""
    print(
        f"{args.image.name}: {len(masks)} mask(s), scores {', '.join(f'{s:.3f}' for s in scores)}, "
        f"{elapsed:.2f} s{label} -> {args.out}"
    )
    return 0


def _check_prompts(points: list, boxes: list, image: np.ndarray) -> None:
    """Fail on prompts outside the image before the model loads (the predictor checks them again)."""
    from ..inference.prompts import check_boxes, check_points

    frame_wh = (image.shape[1], image.shape[0])
    if points:
        check_points([p[:2] for p in points], [int(p[2]) for p in points], frame_wh)
    if boxes:
        check_boxes(boxes, frame_wh)
