"""``masklet everything``: segment everything in an image (no prompts), with the automatic mask generator.

Writes ``<stem>_everything.png`` (every mask in its own colour over the image), ``<stem>_everything.json``
(COCO-style: the image, one annotation per mask with its RLE, box, area, scores, prompting point and
crop) and, with ``--mask-pngs``, ``<stem>_masks/NNNN.png`` (0/255, largest mask first).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from .common import CLIError, add_model_args, check_out_dir, load_model, run_meta

# Masks decoded at once while drawing the overlay (bounded memory on large images).
_DRAW_CHUNK = 16


def add_everything_parser(sub) -> None:
    ev = sub.add_parser("everything", help="segment everything in an image (automatic mask generation)")
    ev.add_argument("image", type=Path)
    ev.add_argument("--out", type=Path, required=True, help="output folder")
    add_generator_args(ev)
    ev.add_argument("--mask-pngs", action="store_true", help="also write one 0/255 PNG per mask")
    add_model_args(ev)


def add_generator_args(p) -> None:
    """The automatic mask generator's settings (shared with ``masklet batch everything``)."""
    g = p.add_argument_group("generator (defaults: the official SAM 2 settings)")
    g.add_argument("--points-per-side", type=int, default=32, help="grid of N x N point prompts (default 32)")
    g.add_argument("--points-per-batch", type=int, default=64, help="points decoded together (default 64)")
    g.add_argument("--pred-iou-thresh", type=float, default=0.8, help="minimum predicted IoU (default 0.8)")
    g.add_argument(
        "--stability-thresh", type=float, default=0.95, help="minimum stability score (default 0.95)"
    )
    g.add_argument(
        "--box-nms-thresh", type=float, default=0.7, help="box NMS IoU within a crop (default 0.7)"
    )
    g.add_argument("--crop-layers", type=int, default=0, help="layers of zoomed-in crops (default 0)")
    g.add_argument(
        "--crop-nms-thresh", type=float, default=0.7, help="box NMS IoU across crops (default 0.7)"
    )
    g.add_argument(
        "--crop-points-downscale",
        type=int,
        default=1,
        help="fewer points per side in deeper crops (default 1)",
    )
    g.add_argument(
        "--min-region-area",
        type=int,
        default=0,
        help="fill holes and remove specks up to this area, in low-res mask pixels (default 0: off)",
    )
    g.add_argument("--m2m", action="store_true", help="refine each mask once with its own logits")
    g.add_argument("--single-mask", action="store_true", help="one mask per point instead of three")


def generator_kwargs(args) -> dict:
    """AutoMaskGenerator keyword arguments of the options of :func:`add_generator_args` (RLE output)."""
    return dict(
        points_per_side=args.points_per_side,
        points_per_batch=args.points_per_batch,
        pred_iou_thresh=args.pred_iou_thresh,
        stability_score_thresh=args.stability_thresh,
        box_nms_thresh=args.box_nms_thresh,
        crop_n_layers=args.crop_layers,
        crop_nms_thresh=args.crop_nms_thresh,
        crop_n_points_downscale_factor=args.crop_points_downscale,
        min_mask_region_area=args.min_region_area,
        use_m2m=args.m2m,
        multimask_output=not args.single_mask,
        output_mode="coco_rle",
    )


def check_generator_settings(kwargs: dict, image_hw: tuple[int, int] | None = None) -> None:
    """Every setting a user can get wrong, before the model loads (same checks as the generator);
    with ``image_hw``, also that the crops fit the image."""
    from ..inference.automask_config import AutoMaskConfig
    from ..inference.automask_ops import crop_boxes

    flags = {
        "points_per_side": "--points-per-side",
        "points_per_batch": "--points-per-batch",
        "pred_iou_thresh": "--pred-iou-thresh",
        "stability_score_thresh": "--stability-thresh",
        "box_nms_thresh": "--box-nms-thresh",
        "crop_n_layers": "--crop-layers",
        "crop_nms_thresh": "--crop-nms-thresh",
        "crop_n_points_downscale_factor": "--crop-points-downscale",
        "min_mask_region_area": "--min-region-area",
    }
    try:
        cfg = AutoMaskConfig(**kwargs)
        cfg.layer_grids()
    except ValueError as exc:
        text = str(exc)
        for name, flag in flags.items():
            text = text.replace(name, flag)
        raise CLIError(text) from None
    if image_hw is None:
        return
    for x0, y0, x1, y1 in crop_boxes(image_hw, cfg.crop_n_layers, cfg.crop_overlap_ratio)[0]:
        if x1 - x0 < 1 or y1 - y0 < 1:
            raise CLIError(
                f"the image ({image_hw[1]}x{image_hw[0]}) is too small for --crop-layers "
                f"{cfg.crop_n_layers}; use fewer crop layers"
            )


def cmd_everything(args) -> int:
    from tqdm import tqdm

    from ..inference.automask import AutoMaskGenerator
    from ..io.images import load_image

    check_out_dir(args.out)
    image = load_image(args.image)
    kwargs = generator_kwargs(args)
    check_generator_settings(kwargs, image.shape[:2])
    model, weights = load_model(args)
    generator = AutoMaskGenerator(model, **kwargs)
    batches = _batch_sizes(generator, image.shape[:2])
    t0 = time.perf_counter()
    with tqdm(
        desc="segmenting", total=sum(batches), unit="point", file=sys.stderr, disable=None, leave=False
    ) as bar:
        shown = [0]  # points shown so far (the bar's own count stays 0 while it is disabled)

        def progress(done: int, total: int) -> None:
            points = sum(batches[:done]) if total == len(batches) else sum(batches) * done // total
            bar.update(points - shown[0])
            shown[0] = points

        records = generator.generate(image, progress=progress)
    elapsed = time.perf_counter() - t0
    records.sort(key=lambda r: -r["area"])  # large first, so that small masks are drawn on top
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.image.stem
    meta = {**run_meta(model, weights), "seconds": round(elapsed, 3), "settings": kwargs}
    _write_json(args.out / f"{stem}_everything.json", args.image, image.shape[:2], records, meta)
    _write_overlay(args.out / f"{stem}_everything.png", image, records)
    if args.mask_pngs:
        _write_mask_pngs(args.out / f"{stem}_masks", records)
    label = " [RANDOM WEIGHTS]" if weights == "random" else ""
    print(f"{args.image.name}: {len(records)} mask(s), {elapsed:.2f} s{label} -> {args.out}")
    return 0


def _batch_sizes(generator, image_hw: tuple[int, int]) -> list[int]:
    """Points in each batch the generator decodes, in its order (crop by crop, a crop's grid in
    batches of points_per_batch): the progress bar advances one batch of points at a time."""
    from ..inference.automask_ops import crop_boxes

    cfg = generator.config
    _, layers = crop_boxes(image_hw, cfg.crop_n_layers, cfg.crop_overlap_ratio)
    n = cfg.points_per_batch
    sizes = (len(generator.point_grids[layer]) for layer in layers)
    return [min(n, size - start) for size in sizes for start in range(0, size, n)]


def _write_json(path: Path, image_path: Path, hw: tuple[int, int], records: list[dict], meta: dict) -> None:
    annotations = [
        {
            "id": i + 1,
            "image_id": 1,
            "category_id": 1,
            "segmentation": r["segmentation"],
            "area": r["area"],
            "bbox": r["bbox"],
            "iscrowd": 0,
            "predicted_iou": _finite(r["predicted_iou"]),
            "stability_score": _finite(r["stability_score"]),
            "point_coords": r["point_coords"],
            "crop_box": r["crop_box"],
        }
        for i, r in enumerate(records)
    ]
    doc = {
        "info": meta,
        "images": [{"id": 1, "file_name": image_path.name, "height": hw[0], "width": hw[1]}],
        "categories": [{"id": 1, "name": "object"}],
        "annotations": annotations,
    }
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=1, allow_nan=False))
    tmp.replace(path)


def _finite(value: float) -> float | None:
    """JSON has no NaN: an undefined score (an empty mask's stability, 0 / 0) becomes null."""
    return value if np.isfinite(value) else None


def _write_overlay(path: Path, image: np.ndarray, records: list[dict]) -> None:
    from PIL import Image

    from ..io.masks import decode_rle, mask_colors, overlay_masks

    colors = mask_colors(len(records))
    out = image
    for s in range(0, len(records), _DRAW_CHUNK):
        chunk = records[s : s + _DRAW_CHUNK]
        masks = [decode_rle(r["segmentation"]) for r in chunk]
        out = overlay_masks(out, masks, colors=colors[s : s + len(chunk)])
    Image.fromarray(out).save(path)


def _write_mask_pngs(folder: Path, records: list[dict]) -> None:
    from ..io.masks import decode_rle, save_mask_png

    folder.mkdir(parents=True, exist_ok=True)
    for i, r in enumerate(records):
        save_mask_png(decode_rle(r["segmentation"]), folder / f"{i:04d}.png")
