"""``masklet train CONFIG.yaml``: fine-tune SAM 2 on your videos and images (see :mod:`masklet.train`).

Single process (CPU or one GPU)::

    masklet train config.yaml --out runs/mine
    masklet train config.yaml --out runs/mine --resume last      # continue after an interruption

Several GPUs: ``torchrun --nproc_per_node 4 -m masklet.cli train config.yaml --out runs/mine``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .common import CLIError


def add_train_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="fine-tune a model on your videos and images",
        description="Fine-tune SAM 2 with its training recipe (simulated prompts on 8-frame clips, memory "
        "as at inference, focal/dice/IoU/object-score losses). The YAML config holds values only; see "
        "examples/train_synthetic.yaml. Writes train.csv, val.csv, checkpoints/ and model.pt to --out.",
    )
    p.add_argument("config", type=Path, help="the training config (YAML)")
    p.add_argument("--out", type=Path, default=None, help="run folder (default: runs/<config name>)")
    p.add_argument(
        "--resume",
        default=None,
        help="continue from a training checkpoint, or 'last' for the newest in --out",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.steps=200 (repeatable; VALUE is read as YAML)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _overrides(items: list[str]) -> dict:
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CLIError(f"--set expects KEY=VALUE (e.g. train.steps=200), got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise CLIError(f"--set {item}: the value is not valid YAML ({exc})") from None
    return out


def _check_start_weights(checkpoint: str | None, config: Path) -> None:
    """The weights to start from must exist before any work: null (random) is the alternative here, not
    the official file the library's message suggests."""
    if checkpoint is not None and not Path(checkpoint).expanduser().exists():
        raise CLIError(
            f"model.checkpoint {checkpoint}: no such file; expected a .pt or .safetensors file. Fix the path "
            f"(in {config} or with --set model.checkpoint=PATH), or set it to null to start from random "
            "weights (model.init_seed)"
        )


def cmd_train(args) -> int:
    from tqdm import tqdm

    from ..train import Trainer, load_config

    cfg = load_config(args.config, _overrides(args.overrides))
    _check_start_weights(cfg.model.checkpoint, args.config)
    out = args.out or Path("runs") / args.config.stem
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} is a file; expected a folder (it is created if missing)")
    bar = None

    def progress(report) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(
                total=report.total_steps,
                initial=report.step - 1,
                unit="step",
                file=sys.stderr,
                disable=args.no_progress or None,
                dynamic_ncols=True,
            )
        bar.update(1)
        frames_s = report.frames / max(report.seconds, 1e-9)
        bar.set_postfix(loss=f"{report.loss:.3f}", frames_s=f"{frames_s:.1f}", lr=f"{report.lr:.2e}")

    trainer = Trainer(cfg, out, resume=args.resume, progress=progress)
    if not trainer.dist.is_main:
        trainer.progress = None
    try:
        result = trainer.run()
    finally:
        if bar is not None:
            bar.close()
    if not trainer.dist.is_main:
        return 0
    stop = " (time limit)" if result.stopped_early else ""
    print(f"trained to step {result.steps_done}{stop}; logs in {out}")
    for step, figures in result.validations[-1:]:
        print(f"held-out at step {step}: " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()))
    print(f"weights (official format): {result.weights}")
    print(f"training state (resume with --resume): {result.checkpoint}")
    return 0


__all__ = ["add_train_parser", "cmd_train"]
