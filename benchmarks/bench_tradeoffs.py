"""Accuracy for speed: smaller inputs and fewer memory frames, measured against the full setting.

    python benchmarks/bench_tradeoffs.py [--precision bf16] [--frames 11] [--write]

masklet only, same seeded random checkpoint and clip as bench_video.py (2 objects: a click and a box on
frame 0). For each setting: seconds per propagated frame (frames with a full memory bank), set_image
seconds, and how far its masks are from the full setting's (1024 px, 7 memory frames): mean and minimum
IoU over every object on every frame. With random weights these agreement figures show how much the
setting changes the computation; with trained weights the change in accuracy is what matters (measure it
with ``masklet eval vos``). ``--write`` updates benchmarks/RESULTS.md between
``<!-- tradeoffs:start/end -->``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_video import clip_folder, command_line, machine, run_session, write_section  # noqa: E402

from masklet.checkpoints import build_model  # noqa: E402
from masklet.inference.image import ImagePredictor  # noqa: E402
from masklet.inference.memory_bank import MemoryBank  # noqa: E402
from masklet.inference.video import VideoPredictor  # noqa: E402
from tests.conftest import load_photo  # noqa: E402
from tests.oracle import reference_error, write_video_checkpoint  # noqa: E402

SETTINGS = [(1024, 7), (768, 7), (512, 7), (1024, 3), (768, 3), (512, 3)]


def ious(a, b) -> list[float]:
    """IoU of every object on every frame of two runs (1.0 where both are empty)."""
    out = []
    for ma, mb in zip(a.masks, b.masks, strict=True):
        for x, y in zip(ma, mb, strict=True):
            union = np.logical_or(x, y).sum()
            out.append(1.0 if union == 0 else float(np.logical_and(x, y).sum() / union))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="sam2.1_hiera_tiny")
    ap.add_argument("--precision", default="bf16", choices=("fp32", "bf16"))
    ap.add_argument("--frames", type=int, default=11)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    err = reference_error()  # the seeded checkpoint is written through the reference
    if err:
        sys.exit(err)
    torch.set_num_threads(args.threads)
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    ckpt = write_video_checkpoint(args.preset, Path(tempfile.gettempdir()) / f"bench-video-{args.preset}.pt")
    image = load_photo("truck.jpg")
    rows, base = [], None
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "clip"
        clip = clip_folder(folder, args.frames)
        for size, mem in SETTINGS:
            model = build_model(args.preset, ckpt, device="cpu", dtype=dtype, image_size=size)
            bank = MemoryBank.official(model.cfg, num_maskmem=mem)
            pred = VideoPredictor(model, fill_hole_area=0, memory_bank=bank)
            run_session(pred, folder, contextlib.nullcontext)  # warm-up
            run = run_session(pred, folder, contextlib.nullcontext)
            ip = ImagePredictor(model)
            ip.set_image(image)
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                ip.set_image(image)
                times.append(time.perf_counter() - t0)
            base = base or run
            agree = ious(run, base)
            rows.append((size, mem, run.per_frame(), statistics.median(times), np.mean(agree), min(agree)))
            print(
                f"{size}px, {mem} memory frames: {run.per_frame():.3f} s/frame, set_image "
                f"{statistics.median(times):.3f} s, IoU vs full mean {np.mean(agree):.3f} "
                f"min {min(agree):.3f}",
                flush=True,
            )
            del model, pred, ip
            gc.collect()
    if args.write:
        write_section("tradeoffs", report(args, clip, rows))


def report(args, clip: str, rows) -> str:
    full = rows[0]
    lines = [
        f"### Accuracy for speed: input size and memory frames, {args.preset}, {args.precision}, {clip}",
        "",
        f"Machine: {machine()}, {torch.get_num_threads()} threads. Date: {time.strftime('%Y-%m-%d')}. "
        f"Command: `{command_line('bench_tradeoffs.py')}`",
        "",
        "masklet only, 2 objects. s/frame: frames with a full memory bank, one session after a warm-up; "
        "set_image: median of 3 on truck.jpg. Agreement: mask IoU against the full setting (1024 px, 7 "
        "memory frames) over every object and frame, on random weights (a measure of how much the "
        "computation changes, not of accuracy on real data).",
        "",
        "| input | memory frames | s/frame | speed-up | set_image | speed-up | mean IoU vs full | min IoU |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for size, mem, spf, si, mean, low in rows:
        lines.append(
            f"| {size} | {mem} | {spf:.3f} s | {full[2] / spf:.2f}x | {si:.3f} s | {full[3] / si:.2f}x | "
            f"{mean:.3f} | {low:.3f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
