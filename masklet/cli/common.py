"""What every ``masklet`` command shares: the user-error type, number parsing, model options and loading."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

DEFAULT_MODEL = "sam2.1_hiera_tiny"
# How the command line says where a checkpoint can come from when the official file cannot be had.
OWN_CHECKPOINT = "pass --checkpoint PATH (or --random-weights to test the pipeline)"


class CLIError(Exception):
    """A user-facing error: printed as one line."""


# ------------------------------------------------------------------ argument parsing helpers
class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, except that a value starting with a negative number (``--point -5,10``,
    ``--box -3,0,40,50``) is a value: argparse takes only plain numbers (``-5``) for values and anything
    else after a ``-`` for an unknown option. No masklet option starts with ``-`` and a digit, so the
    two cannot be confused. Sub-command parsers inherit the class."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"-\.?\d")


def parse_floats(text: str, n: tuple[int, ...], what: str) -> list[float]:
    """Comma-separated numbers, as many as one of ``n``; ArgumentTypeError naming ``what`` otherwise."""
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be comma-separated numbers, got {text!r}") from None
    if len(vals) not in n:
        raise argparse.ArgumentTypeError(f"{what} needs {' or '.join(map(str, n))} numbers, got {text!r}")
    return vals


def parse_point(text: str) -> list[float]:
    """``X,Y[,LABEL]`` -> [x, y, label] (label 1 unless given)."""
    vals = parse_floats(text, (2, 3), "--point X,Y[,LABEL]")
    if len(vals) == 3 and vals[2] not in (0.0, 1.0):
        raise argparse.ArgumentTypeError(f"--point label must be 1 (object) or 0 (background), got {text!r}")
    return vals if len(vals) == 3 else vals + [1.0]


def parse_box(text: str) -> list[float]:
    """``X0,Y0,X1,Y1`` -> [x0, y0, x1, y1]."""
    return parse_floats(text, (4,), "--box X0,Y0,X1,Y1")


def add_model_args(p: argparse.ArgumentParser, image_size_help: str | None = None) -> None:
    """The options that pick and place the model, shared by every command that runs one."""
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
    g.add_argument(
        "--image-size",
        type=int,
        default=None,
        help=image_size_help or "model input size, e.g. 512/768 for speed",
    )
    g.add_argument(
        "--encoder-dtype",
        default=None,
        help="the image encoder's own dtype (fp32 or bf16; default: --dtype). --dtype bf16 "
        "--encoder-dtype fp32 keeps video masks closest to float32 at most of bf16's speed",
    )
    g.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the image encoder and memory attention (for GPUs: on CPUs masklet's eager "
        "kernels measured faster; slow first frame; falls back to eager)",
    )
    g.add_argument(
        "--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)"
    )
    g.add_argument(
        "--random-weights",
        action="store_true",
        help="use seeded random weights (masks are meaningless; for testing the pipeline only)",
    )
    g.add_argument(
        "--backend",
        choices=("torch", "onnx"),
        default="torch",
        help="torch (default), or onnx: run the files `masklet export onnx` wrote to --onnx-dir in "
        "onnxruntime (float32, CPU)",
    )
    g.add_argument("--onnx-dir", type=Path, default=None, help="the export folder for --backend onnx")


def run_meta(model, weights: str) -> dict:
    """What every JSON output records about the run: the preset, the weights ('official',
    'checkpoint:PATH' or 'random': masks from random weights are meaningless) and the precision
    (:func:`masklet.runtime.precision_meta`: ``float32`` / ``bfloat16``)."""
    from ..runtime import precision_meta

    return {"model": model.cfg.name, "weights": weights, **precision_meta(model)}


def check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} is a file; expected a folder (it is created if missing)")


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (multi-line messages, e.g. key mismatch reports, joined)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return " ".join(lines) if lines else type(exc).__name__


# ------------------------------------------------------------------ model loading
def load_model(args, allow_random_fallback: bool = False):
    """Returns (model, weights_label). weights_label is 'official', 'checkpoint:<path>' or 'random'."""
    from ..runtime import parse_dtype

    device = parse_device(args.device)
    dtype = parse_dtype(args.dtype, device)
    enc = getattr(args, "encoder_dtype", None)
    enc = None if enc is None else parse_dtype(enc, device)
    name = args.model or DEFAULT_MODEL
    threads = getattr(args, "threads", None)
    if threads is not None:
        if threads < 1:
            raise CLIError(f"--threads must be >= 1, got {threads}")
        import torch

        torch.set_num_threads(threads)
    model, label = _load(args, device, dtype, enc, name, allow_random_fallback)
    if getattr(args, "compile", False):
        from ..compile import compile_model, compile_status, warm_up

        if model.device.type == "cpu":
            print(
                "note: on CPUs masklet's eager kernels measured about 2x faster than torch.compile "
                "(benchmarks/RESULTS.md); --compile is meant for GPUs",
                file=sys.stderr,
            )
        compile_model(model)
        seconds = warm_up(model)
        print(f"compiled in {seconds:.1f} s: {compile_status(model)}", file=sys.stderr)
    return model, label


def _load(args, device, dtype, enc, name, allow_random_fallback):
    from .. import checkpoints

    place = {"device": device, "dtype": dtype, "image_size": args.image_size, "encoder_dtype": enc}
    if getattr(args, "backend", "torch") == "onnx":
        return _load_onnx(args), f"onnx:{args.onnx_dir}"
    if args.random_weights:
        if args.checkpoint is not None:
            raise CLIError("--random-weights and --checkpoint exclude each other; pass only one of them")
        return checkpoints.build_model(name, random_seed=0, **place), "random"
    if args.checkpoint is None and name == "auto":
        raise CLIError(
            "--model auto infers the preset from a checkpoint file: add --checkpoint PATH, or give a "
            f"preset name such as {DEFAULT_MODEL}"
        )
    if args.checkpoint is not None and not args.checkpoint.expanduser().exists():
        raise CLIError(
            f"--checkpoint {args.checkpoint}: no such file; expected a .pt or .safetensors file. Check the "
            "path, or leave --checkpoint out to use the official file (downloaded once into the cache)"
        )
    try:
        if args.checkpoint is not None:
            model = checkpoints.build_model(args.model or "auto", args.checkpoint, **place)
            return model, f"checkpoint:{args.checkpoint}"
        return checkpoints.build_model(name, None, **place), "official"
    except checkpoints.CheckpointError as exc:
        if isinstance(exc, checkpoints.PresetMismatch) and args.checkpoint is not None:
            raise CLIError(
                f"--checkpoint {args.checkpoint} holds {exc.found} weights, but --model is {args.model}: "
                f"pass --model {exc.found}, or leave --model out to infer it from the file"
            ) from None
        # Only a missing official file falls back: a checkpoint the user named must load or fail.
        if not allow_random_fallback or args.checkpoint is not None:
            raise CLIError(checkpoint_message(exc)) from None
        why = checkpoint_message(exc, "pass --checkpoint PATH")
        print(
            f"official {name} checkpoint unavailable ({why}): running on RANDOM weights, "
            "masks are meaningless",
            file=sys.stderr,
        )
        return checkpoints.build_model(name, random_seed=0, **place), "random"


def _load_onnx(args):
    from .. import checkpoints

    if args.onnx_dir is None:
        raise CLIError("--backend onnx needs --onnx-dir DIR, the folder `masklet export onnx` wrote")
    if args.checkpoint is not None or args.random_weights or getattr(args, "compile", False):
        raise CLIError(
            "--backend onnx runs the weights of its files: leave out --checkpoint, "
            "--random-weights and --compile"
        )
    if args.dtype not in ("auto", "fp32", "float32") or getattr(args, "encoder_dtype", None) not in (
        None,
        "fp32",
        "float32",
    ):
        raise CLIError("--backend onnx computes in float32: leave out --dtype / --encoder-dtype or pass fp32")
    try:
        from ..export.backend import OnnxBackendError
    except ImportError as exc:
        raise CLIError(
            f"--backend onnx needs the onnx extra ({exc.name} is missing): pip install 'masklet[onnx]'"
        ) from None
    try:
        return checkpoints.build_model(
            args.model or "auto",
            backend="onnx",
            onnx_dir=args.onnx_dir,
            image_size=args.image_size,
            device="cpu" if args.device is None else args.device,
        )
    except OnnxBackendError as exc:
        raise CLIError(str(exc)) from None


def checkpoint_message(exc: Exception, own_file: str = OWN_CHECKPOINT) -> str:
    """A checkpoint error on one line; a failed download ends with ``own_file`` (how to pass a file on
    the command line) instead of the Python argument that the library's message names."""
    from ..checkpoints import CheckpointUnavailable

    return one_line(exc.advice(own_file) if isinstance(exc, CheckpointUnavailable) else exc)


def parse_device(text: str | None):
    """torch.device for --device (None: the best available); CLIError if unknown or not on this machine."""
    import torch

    from ..runtime import default_device

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


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean the input was wrong (the messages say what to do), not a bug."""
    from ..checkpoints import CheckpointError

    return (CLIError, CheckpointError, ValueError, OSError)
