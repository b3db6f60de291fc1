"""``masklet track``: prompts on some frames of a video file or frame folder, masks on all of them.

With ``--stream SOURCE`` the frames come from a live source instead (see :mod:`masklet.cli.stream`).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .common import CLIError, add_model_args, check_out_dir, load_model, run_meta
from .prompts import (
    TRACK_PROMPTS,
    ObjectPrompt,
    frame_range,
    open_writers,
    track_formats,
    track_prompts,
)

IMAGE_SIZE_HELP = (
    "model input size (default: the preset's 1024); smaller is faster with the same weights: 768, or 512 "
    "for a live --stream on a CPU (about 6x the frame rate of 1024)"
)


def add_track_parser(sub) -> None:
    tr = sub.add_parser("track", help="track objects through a video from points, boxes or masks")
    tr.add_argument(
        "video",
        type=Path,
        nargs="?",
        default=None,
        help="video file (.mp4, .mov, ...) or a folder of frame images (leave out with --stream)",
    )
    tr.add_argument(
        "--stream",
        metavar="SOURCE",
        default=None,
        help="track a live source frame by frame instead of VIDEO: a webcam index (0 = the first camera), "
        "an rtsp:// or http:// URL, or a file; prompts apply when frame FRAME arrives; "
        "stop with --max-frames N or Ctrl-C",
    )
    for kind, (fmt, example, what) in TRACK_PROMPTS.items():
        tr.add_argument(
            f"--{kind}",
            action="append",
            default=[],
            metavar=fmt,
            help=f"{what}, on frame FRAME (0 = first) for object OBJ (1..255); e.g. {example}; repeatable",
        )
    direction = tr.add_mutually_exclusive_group()
    direction.add_argument("--reverse", action="store_true", help="track backward from --start")
    direction.add_argument(
        "--both", action="store_true", help="track forward, then backward, from --start (merged by frame)"
    )
    tr.add_argument(
        "--start",
        type=int,
        default=None,
        help="first frame to track from (default: the first prompted frame; the last one with --reverse)",
    )
    tr.add_argument(
        "--max-frames",
        type=int,
        default=None,
        help="track at most N frames in each direction (with --stream: stop after N frames)",
    )
    tr.add_argument("--out", type=Path, required=True, help="output folder")
    tr.add_argument(
        "--format",
        default="png,rle,mp4",
        help="comma-separated outputs: png (masks/NNNNN.png, pixel = object id), rle (masks.json), "
        "mp4 (overlay.mp4) (default: all three)",
    )
    tr.add_argument(
        "--memory-frames",
        type=int,
        default=None,
        help="recent frames each frame attends to, 1..7 (default 7, as officially; fewer is faster)",
    )
    add_model_args(tr, image_size_help=IMAGE_SIZE_HELP)


def track_passes(args, prompted: list[int], n_frames: int) -> list[tuple[int, bool, int]]:
    """(start frame, reverse, frames it covers) of each propagation pass, in the order they run."""
    if args.max_frames is not None and args.max_frames < 1:
        raise CLIError(f"--max-frames must be >= 1, got {args.max_frames}")
    start = args.start
    if start is None:
        start = max(prompted) if args.reverse else min(prompted)
    elif not 0 <= start < n_frames:
        raise CLIError(f"--start {start} is out of range; {frame_range(n_frames)}")
    limit = args.max_frames or n_frames
    if args.reverse and start == 0:
        return [(0, False, 1)]  # a backward pass from frame 0 yields nothing (as officially): frame 0 alone
    passes = [(start, False, min(limit, n_frames - start))] if not args.reverse else []
    if (args.reverse or args.both) and start > 0:
        passes.append((start, True, min(limit, start + 1)))
    return passes


def _open_video(path: Path):
    """The video's FrameSource (lazy: nothing is decoded yet), or CLIError when there is none."""
    from ..io.frames import open_frames

    if not path.exists():
        raise CLIError(f"no such video file or frame folder: {path}")
    return open_frames(path)


def _prepare_track(args):
    """Every check a user can fail, before the model loads.

    Returns (frame source, prompts grouped by (frame, object), passes, output formats); the caller
    owns the source.
    """
    if not (args.point or args.box or args.mask):
        raise CLIError("give at least one prompt: --point FRAME:X,Y[,LABEL]@OBJ, --box or --mask")
    formats = track_formats(args.format)
    check_out_dir(args.out)
    source = _open_video(args.video)
    try:
        n_frames = source.num_frames
        groups = track_prompts(args, n_frames, (source.height, source.width))
        passes = track_passes(args, sorted({f for f, _ in groups}), n_frames)
    except BaseException:
        source.close()
        raise
    return source, groups, passes, formats


def _add_track_prompts(predictor, state, groups: dict[tuple[int, int], ObjectPrompt]) -> None:
    """One predictor call per (frame, object): its points and box together, or its mask."""
    for g in groups.values():
        if g.mask is not None:
            predictor.add_new_mask(state, g.frame, g.obj, g.mask)
        else:
            predictor.add_new_points_or_box(
                state, g.frame, g.obj, points=g.points or None, labels=g.labels or None, box=g.box
            )


def propagate(predictor, state, passes, sinks, bar) -> tuple[set[int], int]:
    """Run the passes, handing each frame's (frame_idx, obj_ids, (N, H, W) bool masks) to every sink.

    Returns (distinct frame indices, frames processed over all passes).
    """
    seen: set[int] = set()
    steps = 0
    for start, reverse, count in passes:
        bar.set_description("tracking backward" if reverse else "tracking")
        for frame_idx, obj_ids, logits in predictor.propagate_in_video(
            state, start_frame_idx=start, max_frame_num_to_track=count - 1, reverse=reverse
        ):
            masks = logits > 0  # (N, 1, H, W) logits at the video's resolution
            masks = (masks[:, 0] if masks.ndim == 4 else masks).cpu().numpy()
            ids = [int(i) for i in obj_ids]
            for sink in sinks:
                sink(int(frame_idx), ids, masks)
            seen.add(int(frame_idx))
            steps += 1
            bar.update(1)
    return seen, steps


def cmd_track(args) -> int:
    from contextlib import ExitStack

    if args.memory_frames is not None and not 1 <= args.memory_frames <= 7:
        raise CLIError(f"--memory-frames must be 1..7, got {args.memory_frames}")
    if args.stream is not None:
        from .stream import cmd_stream

        return cmd_stream(args)
    if args.video is None:
        raise CLIError("give the VIDEO to track (a video file or a folder of frames), or --stream SOURCE")
    source, groups, passes, formats = _prepare_track(args)
    with ExitStack() as stack:
        stack.callback(source.close)
        from ..inference.memory_bank import MemoryBank
        from ..inference.video import VideoPredictor

        model, weights = load_model(args)
        bank = None
        if args.memory_frames is not None:
            bank = MemoryBank.official(model.cfg, num_maskmem=args.memory_frames)
        predictor = VideoPredictor(model, memory_bank=bank)
        state = predictor.init_state(source)  # the source opened for the checks, not a second one
        stack.callback(state.close)
        _add_track_prompts(predictor, state, groups)
        args.out.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        seen, steps = _track_and_write(args, predictor, state, passes, formats, run_meta(model, weights))
        elapsed = time.perf_counter() - t0
    label = " [RANDOM WEIGHTS]" if weights == "random" else ""
    objects = len({obj for _, obj in groups})
    print(
        f"{args.video.name}: {len(seen)} frame(s), {objects} object(s), "
        f"{elapsed / max(steps, 1):.3f} s/frame{label} -> {args.out}"
    )
    return 0


def _track_and_write(args, predictor, state, passes, formats: list[str], meta: dict) -> tuple[set[int], int]:
    """Propagate and write every requested output; returns (distinct frames, frames processed)."""
    from contextlib import ExitStack

    from tqdm import tqdm

    from ..io.exporters import RleFrames

    # Both directions: the mp4 must be in frame order, so it waits for the merged (RLE) frames.
    buffered = "mp4" in formats and len(passes) > 1
    with ExitStack() as stack:
        hw = (state.video_height, state.video_width)
        fps = getattr(state.frames, "fps", None)
        writers, video = open_writers(
            stack, args.out, formats, str(args.video), hw, fps, state.frames.frame, buffered, meta
        )
        merged = RleFrames(*hw) if buffered else None
        sinks = [w.write for w in writers] + ([merged.add] if merged is not None else [])
        total = sum(p[2] for p in passes)
        bar = stack.enter_context(
            tqdm(total=total, desc="tracking", unit="frame", file=sys.stderr, disable=None, leave=False)
        )
        seen, steps = propagate(predictor, state, passes, sinks, bar)
        if merged is not None:
            for frame_idx in merged.frame_indices():
                video.write(frame_idx, *merged.masks(frame_idx))
    return seen, steps
