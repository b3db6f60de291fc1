"""``masklet demo``: the whole pipeline on the sample data, images and video.

Photos: a point and a box prompt each, through :class:`~masklet.ImagePredictor`. Video: a click and a box
on frame 0 of a short clip, tracked through its first ``--video-frames`` frames by
:class:`~masklet.VideoPredictor`, written as ``masks/``, ``masks.json`` and ``overlay.mp4`` like
``masklet track``. Where ../shared/data is absent, synthetic stand-ins are used.
"""

from __future__ import annotations

import sys
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from .common import CLIError, add_model_args, check_out_dir, load_model, run_meta
from .segment import segment_one, write_outputs

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def add_demo_parser(sub) -> None:
    demo = sub.add_parser("demo", help="segment the sample photos and track objects in the sample video")
    demo.add_argument(
        "--images",
        type=Path,
        default=None,
        help="folder of images (default: ../shared/data/images, else a synthetic image)",
    )
    demo.add_argument(
        "--video",
        type=Path,
        default=None,
        help="video file or frame folder (default: ../shared/data/videos/bedroom.mp4, else a synthetic clip)",
    )
    demo.add_argument(
        "--video-frames",
        type=int,
        default=8,
        help="frames of the video to track from frame 0 (default: 8; 0 skips the video part)",
    )
    demo.add_argument("--out", type=Path, default=Path("out/demo"))
    add_model_args(demo)


def shared_data(*parts: str) -> Path | None:
    """``../shared/data/<parts>`` seen from the working directory or from the repository, if it exists."""
    roots = [Path("../shared/data"), Path(__file__).resolve().parents[3] / "shared" / "data"]
    for root in roots:
        path = root.joinpath(*parts)
        if path.exists():
            return path
    return None


def cmd_demo(args) -> int:
    from ..inference.image import ImagePredictor

    check_out_dir(args.out)
    if args.video_frames < 0:
        raise CLIError(f"--video-frames must be >= 0 (0 skips the video), got {args.video_frames}")
    images = _demo_images(args.images)
    video = _demo_video_source(args.video) if args.video_frames > 0 else None
    try:
        model, weights = load_model(args, allow_random_fallback=True)
        label = " [RANDOM WEIGHTS]" if weights == "random" else ""
        predictor = ImagePredictor(model)
        for stem, image in images:
            t_embed = _demo_image(args.out, predictor, stem, image, weights)
            h, w = image.shape[:2]
            print(f"{stem}: {w}x{h}, set_image {t_embed:.2f} s, point + box prompts{label} -> {args.out}")
        if video is not None:
            name, source = video
            video = None  # the session owns the source from here on
            _demo_track(args, model, name, source, weights)
    finally:
        if video is not None:
            video[1].close()
    return 0


def _demo_image(out: Path, predictor, stem: str, image: np.ndarray, weights: str) -> float:
    """Segment one photo from a point and from a box; returns the set_image seconds."""
    h, w = image.shape[:2]
    prompts = [
        ("point", [[w * 0.5, h * 0.55, 1]], []),
        ("box", [], [[w * 0.25, h * 0.25, w * 0.75, h * 0.8]]),
    ]
    t0 = time.perf_counter()
    predictor.set_image(image)
    t_embed = time.perf_counter() - t0
    for kind, pts, boxes in prompts:
        masks, scores = segment_one(predictor, image, pts, boxes, multimask=False)
        meta = {
            "image": stem,
            "prompt": kind,
            "points": pts,
            "boxes": boxes,
            **run_meta(predictor.model, weights),
            "set_image_seconds": round(t_embed, 3),
        }
        write_outputs(out, f"{stem}_{kind}", image, masks, scores, meta)
    return t_embed


def _demo_images(folder: Path | None) -> list[tuple[str, np.ndarray]]:
    from ..io.images import load_image

    if folder is not None and not folder.is_dir():
        raise CLIError(f"--images {folder} is not a folder; expected a folder of .jpg/.png images")
    found = folder if folder is not None else shared_data("images")
    if found is not None and found.is_dir():
        files = sorted(p for p in found.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if files:
            return [(p.stem, load_image(p)) for p in files]
    if folder is not None:
        raise CLIError(f"no .jpg/.png images in {folder}")
    print("sample images not found (../shared/data/images): using a synthetic image", file=sys.stderr)
    yy, xx = np.mgrid[0:480, 0:640]
    img = np.stack([xx * 255 // 640, yy * 255 // 480, np.full_like(xx, 90)], -1).astype(np.uint8)
    img[(yy - 260) ** 2 + (xx - 320) ** 2 < 110**2] = (220, 60, 40)
    return [("synthetic", img)]


def _demo_video_source(path: Path | None):
    """(name, FrameSource) of the demo video: ``path``, the sample clip, or synthetic frames."""
    from ..io.frames import ArraySource, open_frames

    if path is not None:
        if not path.exists():
            raise CLIError(f"--video {path}: no such video file or frame folder")
        return path.name, open_frames(path)
    sample = shared_data("videos", "bedroom.mp4")
    if sample is not None:
        return sample.name, open_frames(sample)
    print("sample video not found (../shared/data/videos): using a synthetic clip", file=sys.stderr)
    yy, xx = np.mgrid[0:270, 0:480]
    frames = []
    for i in range(24):
        img = np.stack([xx * 200 // 480, yy * 200 // 270, np.full_like(xx, 70)], -1).astype(np.uint8)
        img[(yy - 170) ** 2 + (xx - 100 - 6 * i) ** 2 < 40**2] = (230, 50, 40)
        img[40:140, 250 + 3 * i : 350 + 3 * i] = (40, 90, 220)
        frames.append(img)
    return "synthetic", ArraySource(frames)


def _demo_track(args, model, name: str, source, weights: str) -> None:
    """Click object 1 and box object 2 on frame 0, track ``--video-frames`` frames, write the outputs."""
    from tqdm import tqdm

    from ..inference.video import VideoPredictor
    from .prompts import open_writers
    from .track import propagate

    out = args.out / "video"
    meta = run_meta(model, weights)
    label = " [RANDOM WEIGHTS]" if weights == "random" else ""
    predictor = VideoPredictor(model)
    state = predictor.init_state(source)
    with ExitStack() as stack:
        stack.callback(state.close)
        h, w = state.video_height, state.video_width
        predictor.add_new_points_or_box(state, 0, 1, points=[[0.22 * w, 0.65 * h]], labels=[1])
        predictor.add_new_points_or_box(state, 0, 2, box=[0.31 * w, 0.0, 0.52 * w, 0.74 * h])
        count = min(args.video_frames, state.num_frames)
        out.mkdir(parents=True, exist_ok=True)
        fps = getattr(state.frames, "fps", None)
        writers, _ = open_writers(
            stack, out, ["png", "rle", "mp4"], name, (h, w), fps, state.frames.frame, False, meta
        )
        bar = stack.enter_context(
            tqdm(total=count, desc="tracking", unit="frame", file=sys.stderr, disable=None, leave=False)
        )
        t0 = time.perf_counter()
        _, steps = propagate(predictor, state, [(0, False, count)], [wr.write for wr in writers], bar)
        per_frame = (time.perf_counter() - t0) / max(steps, 1)
    print(f"{name}: {w}x{h}, tracked 2 objects over {steps} frames, {per_frame:.2f} s/frame{label} -> {out}")
