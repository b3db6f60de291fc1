"""``masklet eval``: benchmark evaluation, one sub-command per task.

``masklet eval score PRED_DIR GT_DIR`` scores a folder of predicted masks with the official video
object segmentation protocols (see :mod:`masklet.eval.score`); ``masklet eval vos`` runs the video
predictor on a dataset and scores it, ``masklet eval image`` measures click mIoU on images
(:mod:`.eval_run`).

A new task is one entry in :data:`EVAL_COMMANDS`: a name mapped to a function that adds its parser to
the ``eval`` sub-parsers and a function that runs it and returns the exit status.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from .common import CLIError
from .eval_run import add_image_parser, add_vos_parser, cmd_image, cmd_vos


def add_score_parser(sub) -> None:
    from ..eval.layouts import LAYOUTS
    from ..eval.metrics import PROTOCOLS

    sc = sub.add_parser(
        "score",
        help="score predicted masks against ground truth (J, F, J&F)",
        description="Score a folder of predicted masks (one folder per video) against a benchmark's "
        "ground truth, with the numbers of the official DAVIS 2017 and SA-V / MOSE scorers.",
    )
    sc.add_argument(
        "pred_dir", type=Path, help="predictions: <video>/<frame>.png (sav: <video>/<obj>/<frame>.png)"
    )
    sc.add_argument("gt_dir", type=Path, help="the dataset folder or its annotation folder")
    sc.add_argument(
        "--layout", choices=LAYOUTS, default="davis", help="folder layout of both (default: davis)"
    )
    sc.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default=None,
        help="davis (DAVIS 2017 semi-supervised) or sav (SA-V/MOSE scorer); default: davis for the davis "
        "layout, sav for the others",
    )
    sc.add_argument("--split", default=None, help="split name or .txt list of videos (default: DAVIS val)")
    frames = sc.add_mutually_exclusive_group()
    frames.add_argument(
        "--skip-first-last",
        dest="skip_first_last",
        action="store_true",
        default=True,
        help="leave out each video's first and last annotated frames, as the official scorers (default)",
    )
    frames.add_argument(
        "--all-frames", dest="skip_first_last", action="store_false", help="score every annotated frame"
    )
    sc.add_argument(
        "--exclude-void",
        action="store_true",
        help="leave DAVIS void pixels (255) out of J and F; the official tool counts them as background",
    )
    sc.add_argument("--out", type=Path, default=None, help="write per-video rows and the summary as CSV")
    sc.add_argument("--objects-csv", type=Path, default=None, help="write per-object rows as CSV")
    sc.add_argument("--per-object", action="store_true", help="print one row per object, not per video")


def cmd_score(args) -> int:
    from tqdm import tqdm

    from ..eval.score import score_folder, write_csv

    for opt, path in (("--out", args.out), ("--objects-csv", args.objects_csv)):
        if path is not None and path.is_dir():
            raise CLIError(f"{opt} {path} is a folder; expected a .csv file path")
    with tqdm(desc="scoring", unit="video", file=sys.stderr, disable=None, leave=False) as bar:

        def progress(done: int, total: int, video: str) -> None:
            bar.total = total
            bar.set_postfix_str(video, refresh=False)
            bar.update(1)

        report = score_folder(
            args.pred_dir,
            args.gt_dir,
            layout=args.layout,
            skip_first_last=args.skip_first_last,
            protocol=args.protocol,
            split=args.split,
            exclude_void=args.exclude_void,
            progress=progress,
        )
    for note in report.warnings:
        print(f"note: {note}", file=sys.stderr)
    if report.extra_videos:
        print(
            f"note: {len(report.extra_videos)} predicted video(s) not in the ground truth were ignored",
            file=sys.stderr,
        )
    print(report.table(per_object=args.per_object))
    if args.out is not None:
        print(f"per-video results: {write_csv(report, args.out, 'video')}")
    if args.objects_csv is not None:
        print(f"per-object results: {write_csv(report, args.objects_csv, 'object')}")
    return 0


# name -> (add its parser to the eval sub-parsers, run it)
EVAL_COMMANDS: dict[str, tuple[Callable[[argparse._SubParsersAction], None], Callable[..., int]]] = {
    "score": (add_score_parser, cmd_score),
    "vos": (add_vos_parser, cmd_vos),
    "image": (add_image_parser, cmd_image),
}


def add_eval_parser(sub) -> None:
    ev = sub.add_parser("eval", help="evaluate on benchmarks: run and score (J&F, click mIoU)")
    tasks = ev.add_subparsers(dest="eval_command", required=True, metavar="{" + ",".join(EVAL_COMMANDS) + "}")
    for add, _ in EVAL_COMMANDS.values():
        add(tasks)


def cmd_eval(args) -> int:
    return EVAL_COMMANDS[args.eval_command][1](args)
