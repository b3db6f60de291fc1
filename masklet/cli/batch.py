"""``masklet batch``: label whole datasets (track / boxes / everything), in this process or on Ray.

masklet batch track videos/ --prompts prompts.jsonl --out out/track
masklet batch boxes images/ --labels instances.json --out out/boxes --ray --workers 4
masklet batch everything images/ --out out/sa1b --ray ray-head:6379 --workers 16 --gpus-per-worker 0.5

Each run checks its input first, skips the items a run into the same --out finished before, and ends
with a summary; the exit status is 0 when every item is done, 1 when any failed, 2 for bad input.
The worker options (:func:`add_worker_args`) are shared with ``masklet eval vos``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import DEFAULT_MODEL, CLIError, add_model_args, parse_device
from .everything import add_generator_args, check_generator_settings, generator_kwargs

MANIFEST_HELP = """\
prompts (--prompts): a JSON list or JSON Lines file (.jsonl), one record per object and frame:
  {"video": "bear", "frame": 0, "object": 1, "points": [[320, 240], [300, 200]], "labels": [1, 0]}
  {"video": "bear", "frame": 0, "object": 2, "box": [100, 80, 300, 260]}
  {"video": "cows", "frame": 12, "object": 1, "mask": "masks/cows_1.png"}
video: the name in VIDEOS (file name without suffix, or frame folder); object: id 1..255; frame:
0 = first (default 0); points [[x, y], ...] in pixels with labels (1 object, 0 background; default
1); box [x0, y0, x1, y1] in pixels; mask: a PNG of the frame's size (nonzero = object), relative to
the manifest. Or a folder with one sub-folder of mask PNGs per video (DAVIS Annotations/480p): each
object is prompted with its mask on the first frame it appears in.

outputs: OUT/<video>/NNNNN.png (palette PNG per frame, pixel = object id; `masklet eval score OUT
GT` reads it) and OUT/<video>.json (SA-V style: COCO RLE per frame and object). Tracking runs forward
from the earliest prompted frame, then backward from it to frame 0.
"""

RESUME_HELP = """\
resume: every item's outputs appear whole (temporary name, then a rename) and a status record is
written last (OUT/.masklet/status); rerunning the same command skips done items and keeps failed
ones failed unless --retry-failed. Exit status: 0 all done, 1 some item failed, 2 bad input.
"""


def add_worker_args(p: argparse.ArgumentParser, resume: bool = True) -> None:
    """The options that spread work over workers (and, with ``resume``, --limit and --retry-failed)."""
    g = p.add_argument_group("workers")
    g.add_argument(
        "--ray",
        nargs="?",
        const=True,
        default=False,
        metavar="ADDRESS",
        help="run on Ray: the cluster at ADDRESS (host:port or ray://host:port), else the one of "
        "RAY_ADDRESS, else a local Ray instance for this run (needs pip install 'masklet[ray]')",
    )
    g.add_argument(
        "--workers", type=int, default=1, help="model replicas at once, each a Ray actor (default 1)"
    )
    g.add_argument(
        "--threads-per-worker",
        type=int,
        default=None,
        metavar="T",
        help="CPU threads of each worker (default: torch's choice without --ray, 1 per Ray worker)",
    )
    g.add_argument(
        "--gpus-per-worker",
        type=float,
        default=0.0,
        metavar="G",
        help="GPUs Ray reserves per worker; fractions share a GPU (0.5: two workers per GPU)",
    )
    if resume:
        g.add_argument("--limit", type=int, default=None, help="only the first N items (in name order)")
        g.add_argument(
            "--retry-failed",
            action="store_true",
            help="run again the items an earlier run recorded as failed",
        )


def add_batch_parser(sub) -> None:
    b = sub.add_parser(
        "batch",
        help="label whole datasets: track videos, boxes to masks, segment everything (here or on Ray)",
        description="Run a model over every video or image of a dataset, in this process or on a Ray "
        "cluster (one model per worker), resumably.",
    )
    modes = b.add_subparsers(dest="batch_command", required=True, metavar="{track,boxes,everything}")
    raw = argparse.RawDescriptionHelpFormatter
    tr = modes.add_parser(
        "track",
        help="track prompted objects through every video of a folder",
        description="Track the objects of a prompt manifest (or annotation folder) through every video.",
        epilog=MANIFEST_HELP + "\n" + RESUME_HELP,
        formatter_class=raw,
    )
    tr.add_argument("videos", type=Path, help="folder of video files and/or folders of frames")
    tr.add_argument("--prompts", type=Path, required=True, help="JSON/JSONL manifest or folder of mask PNGs")
    tr.add_argument("--out", type=Path, required=True, help="output folder")
    tr.add_argument(
        "--memory-frames", type=int, default=None, help="recent frames attended to, 1..7 (default 7)"
    )
    bx = modes.add_parser(
        "boxes",
        help="detection boxes (COCO json or YOLO labels) to masks: COCO RLE and YOLO-seg out",
        description="One mask per box. Writes OUT/annotations.json (COCO, RLE segmentations), "
        "OUT/labels/*.txt (YOLO-seg) and OUT/classes.txt.",
        epilog=RESUME_HELP,
        formatter_class=raw,
    )
    bx.add_argument("images", type=Path, help="folder of images (sub-folders included)")
    bx.add_argument(
        "--labels",
        type=Path,
        required=True,
        help="COCO .json (file_name relative to IMAGES) or YOLO label folder",
    )
    bx.add_argument("--out", type=Path, required=True, help="output folder")
    ev = modes.add_parser(
        "everything",
        help="segment everything in every image: one SA-1B style json per image",
        description="Automatic mask generation per image; writes OUT/<image>.json (SA-1B style: RLE "
        "masks, boxes, scores).",
        epilog=RESUME_HELP,
        formatter_class=raw,
    )
    ev.add_argument("images", type=Path, help="folder of images (sub-folders included)")
    ev.add_argument("--out", type=Path, required=True, help="output folder")
    add_generator_args(ev)
    for p in (tr, bx, ev):
        add_worker_args(p)
        add_model_args(p)


def run_options(args, resume: bool = True):
    """:class:`masklet.batch.RunOptions` of the parsed worker options; CLIError for conflicts."""
    from ..batch import RunOptions

    threads = args.threads_per_worker
    if args.threads is not None and threads is not None and args.threads != threads:
        raise CLIError("--threads and --threads-per-worker disagree; give only --threads-per-worker")
    if isinstance(args.ray, str) and args.ray != "auto" and ":" not in args.ray:
        raise CLIError(
            f"--ray {args.ray!r} is not an address: give host:port, ray://host:port or auto, or write "
            "--ray after the folders when it has no address"
        )
    if args.workers < 1:
        raise CLIError(f"--workers must be >= 1, got {args.workers}")
    if args.ray is not False and args.gpus_per_worker and (args.device or "").startswith("cpu"):
        raise CLIError("--gpus-per-worker with --device cpu: leave --device out to use the GPUs Ray gives")
    extra = {"limit": args.limit, "retry_failed": args.retry_failed} if resume else {}
    return RunOptions(
        workers=args.workers,
        threads_per_worker=threads if threads is not None else args.threads,
        gpus_per_worker=args.gpus_per_worker,
        ray=args.ray,
        progress=None,
        **extra,
    )


def model_spec(args):
    """:class:`masklet.batch.ModelSpec` of the parsed model options (the workers build the model)."""
    import torch

    from ..batch import ModelSpec

    if args.backend != "torch":
        raise CLIError("masklet batch runs the PyTorch model in its workers: leave out --backend onnx")
    if args.ray is False:
        parse_device(args.device)  # this machine runs the items: the device must be here
    elif args.device:
        try:
            torch.device(args.device)
        except (RuntimeError, ValueError):
            raise CLIError(f"unknown --device {args.device!r}: use cpu, cuda, cuda:N or mps") from None
    name = args.model or ("auto" if args.checkpoint is not None else DEFAULT_MODEL)
    return ModelSpec(
        name=name,
        checkpoint=None if args.checkpoint is None else str(args.checkpoint),
        dtype=args.dtype,
        device=args.device,
        image_size=args.image_size,
        encoder_dtype=args.encoder_dtype,
        random_weights=args.random_weights,
        compile=args.compile,
    )


def _job(args):
    from ..batch import BoxesJob, EverythingJob, TrackJob

    if args.batch_command == "track":
        return TrackJob(str(args.videos), str(args.prompts), args.memory_frames)
    if args.batch_command == "boxes":
        return BoxesJob(str(args.images), str(args.labels))
    generator = generator_kwargs(args)
    check_generator_settings(generator)  # named by their options, before anything else
    generator.pop("output_mode")
    return EverythingJob(str(args.images), generator)


def run_batch(job, out: Path, spec, options):
    """Run a job for the CLI: the summary, or CLIError / exit 130 as one line each."""
    from ..batch import run_job
    from ..batch.ray_runner import WorkerStartError

    try:
        return run_job(job, out, spec, options)
    except WorkerStartError as exc:
        raise CLIError(str(exc)) from None


def cmd_batch(args) -> int:
    from ..batch import BatchInterrupted

    spec = model_spec(args)
    options = run_options(args)
    try:
        summary = run_batch(_job(args), args.out, spec, options)
    except BatchInterrupted as exc:
        print("\n".join(exc.summary.lines()), file=sys.stderr)
        return 130
    label = " [RANDOM WEIGHTS: masks are meaningless]" if spec.random_weights else ""
    lines = summary.lines()
    print(f"masklet batch {args.batch_command}: {lines[0]}{label} -> {args.out}")
    for line in lines[1:]:
        print(line, file=sys.stderr if line.startswith("failed") else sys.stdout)
    return 0 if summary.ok else 1
