"""``masklet track --stream SOURCE``: track objects on a live source, one frame at a time.

Frames come from a camera, a URL or a file (:class:`LiveSource`) and go through
:class:`masklet.StreamTracker`, whose memory stays constant however long the stream runs. Prompts use the
``FRAME:...@OBJ`` syntax of ``track``; each is applied when stream frame FRAME arrives. Outputs are
written as frames arrive; ``--max-frames N`` or Ctrl-C stops, keeping everything written so far.
"""

from __future__ import annotations

import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np

from .common import CLIError, check_out_dir, load_model, run_meta
from .live_source import LiveSource
from .prompts import ObjectPrompt, open_writers, track_formats, track_prompts


@dataclass
class StreamRun:
    """How a stream run went: frames tracked, seconds, and why it stopped."""

    frames: int = 0
    seconds: float = 0.0
    interrupted: bool = False


class _CurrentFrame:
    """The frame being written, for the overlay writer (which asks for frames by index)."""

    def __init__(self) -> None:
        self.idx = -1
        self.image: np.ndarray | None = None

    def __call__(self, frame_idx: int) -> np.ndarray:
        if frame_idx != self.idx or self.image is None:
            raise ValueError(f"frame {frame_idx} is gone: a live stream keeps only frame {self.idx}")
        return self.image


def _check_stream_args(args) -> None:
    """The options that make no sense for a live stream, and the ones it needs."""
    if args.video is not None:
        raise CLIError(
            f"give either VIDEO ({args.video}) or --stream {args.stream}, not both: "
            "--stream reads its frames from SOURCE"
        )
    directions = {"--reverse": args.reverse, "--both": args.both, "--start": args.start is not None}
    for flag, given in directions.items():
        if given:
            raise CLIError(
                f"{flag} cannot be used with --stream: a live stream is tracked forward, as frames arrive"
            )
    if not (args.point or args.box or args.mask):
        raise CLIError("give at least one prompt: --point FRAME:X,Y[,LABEL]@OBJ, --box or --mask")
    if args.max_frames is not None and args.max_frames < 1:
        raise CLIError(f"--max-frames must be >= 1, got {args.max_frames}")


def _apply_prompt(tracker, g: ObjectPrompt):
    """One tracker call for one object's prompts on the current frame; returns its StreamResult."""
    if g.mask is not None:
        return tracker.add_mask(g.obj, g.mask)
    points = np.asarray(g.points, dtype=np.float32) if g.points else None
    labels = np.asarray(g.labels, dtype=np.int32) if g.labels else None
    box = np.asarray(g.box, dtype=np.float32) if g.box is not None else None
    return tracker.add_points(g.obj, points=points, labels=labels, box=box)


def run_stream(tracker, frames, groups: dict[tuple[int, int], ObjectPrompt], sinks, current, bar, limit):
    """Track ``frames`` (an iterable of RGB arrays), applying each prompt when its frame arrives and
    handing every frame's (frame_idx, obj_ids, (N, H, W) bool masks) to each sink.

    Stops after ``limit`` frames (None: at the end of the source) or at Ctrl-C, which ends the run
    cleanly: every frame finished so far has been handed to the sinks.
    """
    by_frame: dict[int, list[ObjectPrompt]] = {}
    for (frame, _), g in groups.items():
        by_frame.setdefault(frame, []).append(g)
    run = StreamRun()
    t0 = time.perf_counter()
    try:
        for image in frames:
            result = tracker.track(image)
            for g in by_frame.get(result.frame_idx, []):
                result = _apply_prompt(tracker, g)
            current.idx, current.image = result.frame_idx, image
            masks = result.masks
            for sink in sinks:
                sink(result.frame_idx, result.obj_ids, masks)
            run.frames += 1
            bar.update(1)
            if limit is not None and run.frames >= limit:
                break
    except KeyboardInterrupt:
        run.interrupted = True
    run.seconds = time.perf_counter() - t0
    return run


def cmd_stream(args) -> int:
    from tqdm import tqdm

    from ..inference.stream import StreamTracker

    _check_stream_args(args)
    formats = track_formats(args.format)
    check_out_dir(args.out)
    limit = args.max_frames
    with ExitStack() as stack:
        source = stack.enter_context(LiveSource(args.stream))
        hw = (source.height, source.width)
        range_text = f"--max-frames {limit} stops after frame {limit - 1}" if limit else None
        groups = track_prompts(args, limit, hw, range_text=range_text)
        model, weights = load_model(args)
        bank = None
        if args.memory_frames is not None:
            from ..inference.memory_bank import MemoryBank

            bank = MemoryBank.official(model.cfg, num_maskmem=args.memory_frames)
        tracker = StreamTracker(model, memory_bank=bank)
        args.out.mkdir(parents=True, exist_ok=True)
        current = _CurrentFrame()
        meta = run_meta(model, weights)
        writers, _ = open_writers(stack, args.out, formats, args.stream, hw, source.fps, current, False, meta)
        bar = stack.enter_context(
            tqdm(total=limit, desc="streaming", unit="frame", file=sys.stderr, disable=None, leave=False)
        )
        run = run_stream(tracker, source, groups, [w.write for w in writers], current, bar, limit)
    _report(args, source, groups, run, weights)
    return 0


def _report(args, source: LiveSource, groups, run: StreamRun, weights: str) -> None:
    """Notes on stderr (a broken source, prompts never reached), then the one-line summary on stdout."""
    if source.error and not run.interrupted:
        print(f"note: the stream stopped with an error: {source.error}", file=sys.stderr)
    missed = sorted({f for f, _ in groups if f >= run.frames})
    if missed:
        print(
            f"note: the prompts on frame(s) {', '.join(map(str, missed))} were never applied: "
            f"the stream stopped after {run.frames} frame(s)",
            file=sys.stderr,
        )
    applied = {obj for f, obj in groups if f < run.frames}
    fps = run.frames / run.seconds if run.seconds > 0 else 0.0
    label = " [RANDOM WEIGHTS]" if weights == "random" else ""
    stopped = ", stopped by Ctrl-C" if run.interrupted else ""
    print(
        f"{args.stream}: {run.frames} frame(s), {len(applied)} object(s), {fps:.1f} fps{stopped}{label} "
        f"-> {args.out}"
    )
