"""``masklet export onnx``: the whole tracker as ONNX files (see :mod:`masklet.export`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import DEFAULT_MODEL, CLIError, check_out_dir, load_model


def add_export_parser(sub) -> None:
    p = sub.add_parser("export", help="export the model to other runtimes")
    fmt = p.add_subparsers(dest="format", required=True)
    o = fmt.add_parser(
        "onnx",
        help="image encoder, decoder (samexporter's SAM 2 format), memory attention and memory "
        "encoder as ONNX files, plus masklet.json",
    )
    o.add_argument("--model", default=None, help=f"preset name or alias (default: {DEFAULT_MODEL})")
    o.add_argument("--checkpoint", type=Path, help="a .pt / .safetensors checkpoint (default: cache)")
    o.add_argument("--random-weights", action="store_true", help="seeded random weights (for testing)")
    o.add_argument("--image-size", type=int, default=None, help="model input side (default 1024)")
    o.add_argument("--opset", type=int, default=None, help="ONNX opset (default: 18, the oldest that works)")
    o.add_argument("--out", type=Path, required=True, help="folder for the files (created if missing)")
    # the graphs are traced in float32 on the CPU, whatever the machine's defaults
    o.set_defaults(device="cpu", dtype="fp32", encoder_dtype=None, compile=False, threads=None)


def cmd_export(args: argparse.Namespace) -> int:
    try:
        from ..export.onnx_export import MIN_OPSET, check_opset, export_onnx
    except ImportError as exc:
        raise CLIError(
            f"ONNX export needs the onnx extra ({exc.name} is missing): pip install 'masklet[onnx]'"
        ) from None
    opset = MIN_OPSET if args.opset is None else args.opset
    check_opset(opset)  # before loading weights: a wrong opset fails at once
    check_out_dir(args.out)
    model, label = load_model(args)
    path = export_onnx(model, args.out, opset=opset, weights=label)
    print(
        f"wrote {model.cfg.name} at {model.image_size} px (opset {opset}) to {path.parent}", file=sys.stderr
    )
    return 0
