"""The ``masklet`` command line: segment, models, download, demo.

Every failure a user can cause ends in one line on stderr and exit status 2 (no traceback); anything
else (a bug) ends in one "unexpected error" line and exit status 1. ``MASKLET_DEBUG=1`` shows the
traceback of either.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_MODEL = "sam2.1_hiera_tiny"


class CLIError(Exception):
    """A user-facing error: printed as one line."""


# ------------------------------------------------------------------ argument parsing helpers
def _floats(text: str, n: tuple[int, ...], what: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be comma-separated numbers, got {text!r}") from None
    if len(vals) not in n:
        raise argparse.ArgumentTypeError(f"{what} needs {' or '.join(map(str, n))} numbers, got {text!r}")
    return vals


def _point(text: str) -> list[float]:
    vals = _floats(text, (2, 3), "--point X,Y[,LABEL]")
    if len(vals) == 3 and vals[2] not in (0.0, 1.0):
        raise argparse.ArgumentTypeError(f"--point label must be 1 (object) or 0 (background), got {text!r}")
    return vals if len(vals) == 3 else vals + [1.0]


def _box(text: str) -> list[float]:
    return _floats(text, (4,), "--box X0,Y0,X1,Y1")


def _add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        default=None,
        help=f"preset name or alias (default: inferred from --checkpoint, else {DEFAULT_MODEL})",
    )
    g.add_argument(
        "--checkpoint", type=Path, help="path to a .pt / .safetensors checkpoint (default: cache/download)"
    )
    g.add_argument("--dtype", default="auto", help="auto (bf16 where fast), fp32 or bf16 (default: auto)")
    g.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    g.add_argument("--image-size", type=int, default=None, help="model input size, e.g. 512/768 for speed")
    g.add_argument(
        "--random-weights",
        action="store_true",
        help="use seeded random weights (masks are meaningless; for testing the pipeline only)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="masklet", description="SAM 2 / SAM 2.1 segmentation from scratch in PyTorch"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    seg = sub.add_parser("segment", help="segment an object in an image from points and/or a box")
    seg.add_argument("image", type=Path)
    seg.add_argument(
        "--point",
        type=_point,
        action="append",
        default=[],
        metavar="X,Y[,LABEL]",
        help="a click in image pixels; LABEL 1 = object (default), 0 = background; repeatable",
    )
    seg.add_argument(
        "--box",
        type=_box,
        action="append",
        default=[],
        metavar="X0,Y0,X1,Y1",
        help="a box in image pixels; several boxes segment several objects at once",
    )
    seg.add_argument(
        "--multimask", action="store_true", help="write the 3 candidate masks, not just the best"
    )
    seg.add_argument("--out", type=Path, required=True, help="output folder")
    _add_model_args(seg)

    sub.add_parser("models", help="list presets, sizes, cache status and download URLs")

    dl = sub.add_parser("download", help="download official checkpoints into the cache")
    dl.add_argument("names", nargs="+", help="preset names or aliases")

    demo = sub.add_parser("demo", help="segment the bundled sample photos end to end")
    demo.add_argument(
        "--images",
        type=Path,
        default=None,
        help="folder of images (default: ../shared/data/images, else synthetic images)",
    )
    demo.add_argument("--out", type=Path, default=Path("out/demo"))
    _add_model_args(demo)
    return parser


# ------------------------------------------------------------------ model loading
def load_model(args, allow_random_fallback: bool = False):
    """Returns (model, weights_label). weights_label is 'official', 'checkpoint:<path>' or 'random'."""
    from . import checkpoints
    from .runtime import parse_dtype

    device = _parse_device(args.device)
    dtype = parse_dtype(args.dtype, device)
    name = args.model or DEFAULT_MODEL
    if args.random_weights:
        if args.checkpoint is not None:
            raise CLIError("--random-weights and --checkpoint exclude each other; pass only one of them")
        return _random_model(name, device, dtype, args.image_size), "random"
    try:
        if args.checkpoint is not None:
            model = checkpoints.build_model(
                args.model or "auto",
                args.checkpoint,
                device=device,
                dtype=dtype,
                image_size=args.image_size,
            )
            return model, f"checkpoint:{args.checkpoint}"
        model = checkpoints.build_model(name, None, device=device, dtype=dtype, image_size=args.image_size)
        return model, "official"
    except checkpoints.CheckpointError as exc:
        # Only a missing official file falls back: a checkpoint the user named must load or fail.
        if not allow_random_fallback or args.checkpoint is not None:
            raise CLIError(str(exc)) from None
        print(
            f"official {name} checkpoint unavailable ({_one_line(exc)}): "
            "running on RANDOM weights, masks are meaningless",
            file=sys.stderr,
        )
        return _random_model(name, device, dtype, args.image_size), "random"


def _parse_device(text: str | None):
    """torch.device for --device (None: the best available); CLIError if unknown or not on this machine."""
    import torch

    from .runtime import default_device

    if not text:
        return default_device()
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise CLIError(f"unknown --device {text!r}: use cpu, cuda, cuda:N or mps") from None
    available = {"cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(device.type, True):
        raise CLIError(
            f"--device {text}: {device.type} is not available on this machine; use --device cpu, "
            "or leave --device out to use the best device there is"
        )
    return device


def _one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (multi-line messages, e.g. key mismatch reports, joined)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return " ".join(lines) if lines else type(exc).__name__


def _random_model(name, device, dtype, image_size):
    import torch

    from .modeling.sam2 import SAM2Model
    from .presets import get_preset

    torch.manual_seed(0)
    model = SAM2Model(get_preset(name, image_size))
    return model.to(device=device).set_compute_dtype(dtype).eval()


# ------------------------------------------------------------------ commands
def _segment_one(predictor, image: np.ndarray, points: list, boxes: list, multimask: bool):
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
    from .io.masks import encode_rle, mask_to_box_xywh, overlay_masks, save_mask_png

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
    from PIL import Image

    overlay = out / f"{stem}_overlay.png"
    Image.fromarray(overlay_masks(image, list(masks))).save(overlay)
    result = {**meta, "image_size_hw": list(image.shape[:2]), "overlay": overlay.name, "masks": records}
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2))
    return result


def cmd_segment(args) -> int:
    from .inference.image import ImagePredictor
    from .io.images import load_image

    if not args.point and not args.box:
        raise CLIError("give at least one prompt: --point X,Y[,LABEL] and/or --box X0,Y0,X1,Y1")
    if len(args.box) > 1 and args.point:
        raise CLIError("several --box values segment several objects; points can only go with a single box")
    _check_out_dir(args.out)
    image = load_image(args.image)
    _check_prompts(args.point, args.box, image)
    model, weights = load_model(args)
    predictor = ImagePredictor(model)
    t0 = time.perf_counter()
    predictor.set_image(image)
    masks, scores = _segment_one(predictor, image, args.point, args.box, args.multimask)
    elapsed = time.perf_counter() - t0
    meta = {
        "image": str(args.image),
        "model": model.cfg.name,
        "weights": weights,
        "dtype": str(model.dtype),
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
    from .inference.prompts import check_boxes, check_points

    frame_wh = (image.shape[1], image.shape[0])
    if points:
        check_points([p[:2] for p in points], [int(p[2]) for p in points], frame_wh)
    if boxes:
        check_boxes(boxes, frame_wh)


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} is a file; expected a folder (it is created if missing)")


def cmd_models(args) -> int:
    from .checkpoints import list_models

    rows = list_models()
    print(f"{'name':24} {'alias':18} {'params':>8} {'file':>8} {'cached':>8}  url")
    for r in rows:
        cached = f"{r['cached_size'] / 2**20:.0f} MiB" if r.get("cached") else "no"
        alias = ",".join(r.get("aliases", []))
        size = f"~{r['approx_mb']} MB"
        print(f"{r['name']:24} {alias:18} {r['params'] / 1e6:7.1f}M {size:>8} {cached:>8}  {r['url']}")
    return 0


def cmd_download(args) -> int:
    from .checkpoints import download_checkpoint

    for name in args.names:
        path = download_checkpoint(name)
        print(f"{name}: {path}")
    return 0


def cmd_demo(args) -> int:
    from .inference.image import ImagePredictor

    _check_out_dir(args.out)
    images = _demo_images(args.images)
    model, weights = load_model(args, allow_random_fallback=True)
    predictor = ImagePredictor(model)
    for stem, image in images:
        h, w = image.shape[:2]
        prompts = [
            ("point", [[w * 0.5, h * 0.55, 1]], []),
            ("box", [], [[w * 0.25, h * 0.25, w * 0.75, h * 0.8]]),
        ]
        t0 = time.perf_counter()
        predictor.set_image(image)
        t_embed = time.perf_counter() - t0
        for kind, pts, boxes in prompts:
            masks, scores = _segment_one(predictor, image, pts, boxes, multimask=False)
            meta = {
                "image": stem,
                "prompt": kind,
                "points": pts,
                "boxes": boxes,
                "model": model.cfg.name,
                "weights": weights,
                "dtype": str(model.dtype),
                "set_image_seconds": round(t_embed, 3),
            }
            write_outputs(args.out, f"{stem}_{kind}", image, masks, scores, meta)
        label = " [RANDOM WEIGHTS]" if weights == "random" else ""
        print(f"{stem}: {w}x{h}, set_image {t_embed:.2f} s, point + box prompts{label} -> {args.out}")
    return 0


def _demo_images(folder: Path | None) -> list[tuple[str, np.ndarray]]:
    from .io.images import load_image

    if folder is not None and not folder.is_dir():
        raise CLIError(f"--images {folder} is not a folder; expected a folder of .jpg/.png images")
    candidates = (
        [folder]
        if folder
        else [
            Path("../shared/data/images"),
            Path(__file__).resolve().parents[2] / "shared" / "data" / "images",
        ]
    )
    for c in candidates:
        if c is not None and c.is_dir():
            files = sorted(p for p in c.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
            if files:
                return [(p.stem, load_image(p)) for p in files]
    if folder is not None:
        raise CLIError(f"no .jpg/.png images in {folder}")
    print("sample images not found (../shared/data/images): using a synthetic image", file=sys.stderr)
    yy, xx = np.mgrid[0:480, 0:640]
    img = np.stack([xx * 255 // 640, yy * 255 // 480, np.full_like(xx, 90)], -1).astype(np.uint8)
    img[(yy - 260) ** 2 + (xx - 320) ** 2 < 110**2] = (220, 60, 40)
    return [("synthetic", img)]


COMMANDS = {"segment": cmd_segment, "models": cmd_models, "download": cmd_download, "demo": cmd_demo}


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean the input was wrong (the messages say what to do), not a bug."""
    from .checkpoints import CheckpointError

    return (CLIError, CheckpointError, ValueError, OSError)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 unexpected error, 2 user error)."""
    args = build_parser().parse_args(argv)
    debug = os.environ.get("MASKLET_DEBUG", "") not in ("", "0")
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one readable line instead of a traceback
        if debug:
            raise
        if isinstance(exc, _user_errors()):
            print(f"masklet {args.command}: error: {_one_line(exc)}", file=sys.stderr)
            return 2
        print(
            f"masklet {args.command}: unexpected error: {type(exc).__name__}: {_one_line(exc)} "
            "(set MASKLET_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
