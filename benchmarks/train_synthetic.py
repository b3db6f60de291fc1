"""Fine-tuning within a wall-clock budget: held-out J&F on synthetic videos before, during and after.

    python benchmarks/train_synthetic.py [--minutes 15] [--threads 2] [--write]

1. A synthetic DAVIS-layout dataset (:func:`masklet.eval.synthetic.make_vos_dataset`): ``--train-videos``
   videos to train on and ``--val-videos`` held-out ones, 240x320, 24 frames, 1-3 textured objects that
   move, turn, scale, occlude each other, leave and come back.
2. The starting checkpoint: a seeded random initialisation of sam2.1_hiera_tiny (official format), so
   that all it knows is learned here.
3. The small configuration (``small_config``): image size 128, 4-frame clips, every module trained
   (image encoder included, at the same learning rate: a random encoder has nothing to preserve).
   ``--freeze-encoder`` trains only what follows the encoder, on cached features instead (the default
   for fine-tuning pretrained weights on small datasets; from a random start it learns far less: its
   features are random projections).
4. Two trivial baselines on the held-out videos, for scale: every mask empty (objects are absent on
   some frames, which then count as right) and the first frame's ground truth copied to every frame.
5. Held-out J&F before training (semi-supervised VOS, ground-truth mask on each object's first frame,
   DAVIS 2017 scoring), then training for ``--minutes`` of training time (filling the feature cache
   and a short step-time calibration included; the evaluations are not), evaluating ``--evals`` times
   along the way, and a final evaluation. The learning-rate schedule is set to end at the budget from
   the measured step time.

``--write`` records the figures and the curve in benchmarks/RESULTS.md between
``<!-- train:start -->`` and ``<!-- train:end -->``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_video import machine as _machine  # noqa: E402
from bench_video import write_section  # noqa: E402

from masklet.checkpoint_files import save_checkpoint  # noqa: E402
from masklet.eval.score import score_folder  # noqa: E402
from masklet.eval.synthetic import VOID, make_vos_dataset  # noqa: E402
from masklet.io.masks import read_id_png  # noqa: E402
from masklet.modeling.sam2 import SAM2Model  # noqa: E402
from masklet.presets import get_preset  # noqa: E402
from masklet.train import Trainer, config_from_dict  # noqa: E402

PRESET = "sam2.1_hiera_tiny"
CALIBRATION_STEPS = 15


def small_config(root: Path, start: Path, args) -> dict:
    """The configuration trained here (values only, as a YAML file would hold them)."""
    return {
        "model": {"preset": PRESET, "checkpoint": str(start), "image_size": args.image_size},
        "data": {
            "sources": [{"kind": "davis", "root": str(root), "split": "train"}],
            "val": {"kind": "davis", "root": str(root), "split": "val"},
            "clip_frames": args.clip_frames,
            "max_objects": 3,
        },
        "prompts": {"correction_iters": 2},
        "optim": {
            "lr": args.lr,
            "encoder_lr": args.lr if args.encoder_lr is None else args.encoder_lr,
            "layer_decay": 1.0,
            "warmup_steps": 30,
            "weight_decay": 0.05,
            "grad_clip": 1.0,
        },
        "train": {
            "steps": 1_000_000,  # replaced by the budget once the step time is measured
            "seed": args.seed,
            "threads": args.threads,
            "freeze": ["image_encoder"] if args.freeze_encoder else [],
            "cache_features": args.freeze_encoder,
            "cache_variants": args.cache_variants,
            "log_every": 25,
            "tensorboard": "off",
        },
    }


def machine() -> str:
    return f"{_machine()}, {torch.get_num_threads()} threads"


def evaluate(trainer: Trainer, curve: list, train_s: float, losses: list[float]) -> float:
    t0 = time.perf_counter()
    jf = trainer.validate()["J&F"]
    recent = losses[-50:]
    loss = sum(recent) / len(recent) if recent else float("nan")  # nan: before the first step
    curve.append((train_s / 60, trainer.step, loss, jf))
    print(
        f"[{train_s / 60:5.1f} min] step {trainer.step:5d}  loss {loss:7.3f}  held-out J&F {jf:.3f} "
        f"(evaluated in {time.perf_counter() - t0:.0f} s)",
        flush=True,
    )
    return jf


def train(trainer: Trainer, budget_s: float, evals: int) -> tuple[list, list[float], float, float]:
    """Fill the cache, calibrate, then train to the budget. Returns (curve, losses, train seconds, fill s)."""
    curve: list = []
    losses: list[float] = []
    evaluate(trainer, curve, 0.0, losses)
    t0 = time.perf_counter()
    frames = trainer.prefill_cache()
    fill_s = time.perf_counter() - t0
    print(f"cached the features of {frames} frames in {fill_s:.0f} s", flush=True)
    spent = fill_s
    for _ in range(CALIBRATION_STEPS):
        losses.append(trainer.train_step().loss)
    calib = time.perf_counter() - t0 - fill_s
    spent += calib
    per_step = calib / CALIBRATION_STEPS
    trainer.total_steps = trainer.step + max(int((budget_s - spent) / per_step), 1)
    print(f"{per_step:.2f} s/step: scheduling {trainer.total_steps} steps", flush=True)
    marks = [round(spent + (budget_s - spent) * (k + 1) / evals) for k in range(evals - 1)]
    while trainer.step < trainer.total_steps and spent < budget_s:
        t = time.perf_counter()
        losses.append(trainer.train_step().loss)
        spent += time.perf_counter() - t
        if marks and spent >= marks[0]:
            marks.pop(0)
            evaluate(trainer, curve, spent, losses)
    trainer.flush_log()
    evaluate(trainer, curve, spent, losses)
    return curve, losses, spent, fill_s


def baselines(root: Path, work: Path) -> dict[str, float]:
    """Held-out J&F of two trivial trackers: every mask empty, and frame 0's ground truth everywhere."""
    ann = root / "Annotations" / "480p"
    split = root / "ImageSets" / "2017" / "val.txt"
    out = {}
    for name in ("empty", "copy"):
        pred = work / name
        for video in split.read_text().split():
            files = sorted((ann / video).glob("*.png"))
            first = read_id_png(files[0]).astype(np.uint8)
            ids = np.zeros_like(first) if name == "empty" else np.where(first == VOID, 0, first)
            (pred / video).mkdir(parents=True, exist_ok=True)
            for f in files:
                Image.fromarray(ids).save(pred / video / f.name)  # 8-bit gray: value = object id
        out[name] = score_folder(pred, ann, "davis", protocol="davis", split=split).summary.jf_mean
    return out


def report(args, curve: list, steps: int, spent: float, fill_s: float, cmd: str, base: dict) -> str:
    before, after = curve[0][3], curve[-1][3]
    if args.freeze_encoder:
        trained = (
            f"everything after the frozen image encoder (its features cached, {args.cache_variants} "
            "augmentation variant(s) per video)"
        )
        fill = f"filling the feature cache, {fill_s:.0f} s, "
    else:
        lr = args.lr if args.encoder_lr is None else args.encoder_lr
        trained = f"every module, the image encoder included (its lr {lr:g})"
        fill = ""
    rows = "\n".join(
        f"| {m:.1f} | {s} | {'-' if s == 0 else f'{loss:.3f}'} | {jf:.3f} |" for m, s, loss, jf in curve
    )
    return f"""### Fine-tuning: held-out J&F on synthetic videos, {args.minutes:g} minutes on the CPU

Machine: {machine()}. Command: `{cmd}`

- data: `make_vos_dataset` (seed {args.seed}): {args.train_videos} training and {args.val_videos} held-out
  videos, 24 frames of 240x320, 1-3 objects each;
- start: seeded random {PRESET} weights (official format), so everything measured is learned here;
- trained: {trained}, image size {args.image_size}, {args.clip_frames}-frame clips with up to 3 objects,
  first prompt mask / click / box 50/25/25 on up to 2 frames plus 2 corrective clicks, focal + dice
  (20:1) + IoU + object-score losses, AdamW lr {args.lr:g}, warm-up then cosine to the end of the budget;
- held-out J&F: each object's ground-truth mask on its first frame, tracked to the end, DAVIS 2017
  protocol (what `masklet eval vos` measures).

| | held-out J&F |
| --- | --- |
| every mask empty (no model) | {base["empty"]:.3f} |
| frame 0's ground truth on every frame (no model) | {base["copy"]:.3f} |
| before (random start) | {before:.3f} |
| after {spent / 60:.1f} min of training ({steps} steps) | {after:.3f} |

Curve (training minutes include {fill}the step-time calibration, not the evaluations; loss: mean
of the last 50 steps):

| training minutes | step | loss | held-out J&F |
| --- | --- | --- | --- |
{rows}
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=15.0, help="training budget in minutes (default 15)")
    ap.add_argument("--train-videos", type=int, default=24)
    ap.add_argument("--val-videos", type=int, default=12)
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=5e-4, help="peak learning rate (default 5e-4)")
    ap.add_argument(
        "--freeze-encoder",
        action="store_true",
        help="keep the image encoder fixed and cache its features (trained by default)",
    )
    ap.add_argument("--encoder-lr", type=float, default=None, help="image encoder lr (default: --lr)")
    ap.add_argument("--clip-frames", type=int, default=4, help="frames per training clip (default 4)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument(
        "--cache-variants", type=int, default=2, help="cached augmentation variants per video (default 2)"
    )
    ap.add_argument("--evals", type=int, default=5, help="held-out evaluations during training (default 5)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--out", type=Path, default=None, help="keep the dataset and run here (default: temporary)"
    )
    ap.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cmd = " ".join(["python", "benchmarks/train_synthetic.py", *sys.argv[1:]])
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        root = make_vos_dataset(
            out / "data",
            args.train_videos + args.val_videos,
            24,
            train_videos=args.train_videos,
            seed=args.seed,
        )
        torch.manual_seed(args.seed)
        start = save_checkpoint(SAM2Model(get_preset(PRESET, args.image_size)), out / "start.pt")
        cfg = config_from_dict(small_config(root, start, args))
        trainer = Trainer(cfg, out / "run")
        curve, losses, spent, fill_s = train(trainer, args.minutes * 60, args.evals)
        trainer.save()
        base = baselines(root, out / "baselines")
        section = report(args, curve, trainer.step, spent, fill_s, cmd, base)
    print(section)
    if args.write:
        write_section("train", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
