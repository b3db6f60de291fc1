"""The ``masklet`` command line: segment, track (files and live streams), everything, models, download,
demo.

Every failure a user can cause ends in one line on stderr and exit status 2 (no traceback); anything
else (a bug) ends in one "unexpected error" line and exit status 1. ``MASKLET_DEBUG=1`` shows the
traceback of either.

One module per command family: :mod:`.common` (errors, model options and loading), :mod:`.segment`
(segment), :mod:`.demo` (demo), :mod:`.track` (track a video), :mod:`.stream` (track --stream),
:mod:`.everything` (segment everything), :mod:`.models` (models, download), :mod:`.export` (export
onnx); :mod:`.prompts` holds the ``FRAME:...@OBJ`` prompt syntax and output writers.
"""

from __future__ import annotations

import argparse
import os
import sys

from .batch import add_batch_parser, cmd_batch
from .common import DEFAULT_MODEL, ArgumentParser, CLIError, load_model, one_line, user_errors
from .demo import add_demo_parser, cmd_demo
from .eval import add_eval_parser, cmd_eval
from .everything import add_everything_parser, cmd_everything
from .export import add_export_parser, cmd_export
from .models import add_models_parsers, cmd_download, cmd_models
from .prompts import MAX_OBJ_ID, TRACK_FORMATS, TRACK_PROMPTS
from .segment import add_segment_parser, cmd_segment, write_outputs
from .studio import add_studio_parser, cmd_studio
from .track import add_track_parser, cmd_track, track_passes
from .train import add_train_parser, cmd_train

__all__ = [
    "COMMANDS",
    "DEFAULT_MODEL",
    "MAX_OBJ_ID",
    "TRACK_FORMATS",
    "TRACK_PROMPTS",
    "CLIError",
    "build_parser",
    "load_model",
    "main",
    "track_passes",
    "write_outputs",
]

COMMANDS = {
    "segment": cmd_segment,
    "track": cmd_track,
    "everything": cmd_everything,
    "models": cmd_models,
    "download": cmd_download,
    "demo": cmd_demo,
    "studio": cmd_studio,
    "eval": cmd_eval,
    "train": cmd_train,
    "batch": cmd_batch,
    "export": cmd_export,
}


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="masklet", description="SAM 2 / SAM 2.1 segmentation from scratch in PyTorch"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add_segment_parser(sub)
    add_track_parser(sub)
    add_everything_parser(sub)
    add_models_parsers(sub)
    add_demo_parser(sub)
    add_studio_parser(sub)
    add_eval_parser(sub)
    add_train_parser(sub)
    add_batch_parser(sub)
    add_export_parser(sub)
    return parser


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
        if isinstance(exc, user_errors()):
            print(f"masklet {args.command}: error: {one_line(exc)}", file=sys.stderr)
            return 2
        print(
            f"masklet {args.command}: unexpected error: {type(exc).__name__}: {one_line(exc)} "
            "(set MASKLET_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1
