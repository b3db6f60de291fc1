"""torch.compile on this machine: masklet eager vs masklet compiled, set_image and video, same weights.

    python benchmarks/bench_compile.py [--precision fp32,bf16] [--repeats 5] [--frames 11] [--write]

For each precision: two models from the same seeded checkpoint (official format), one eager and one
passed through :func:`masklet.compile.compile_model` (inductor). The compiled one pays its compile time
first -- :func:`masklet.compile.warm_up` for the image encoder, one propagation over a short clip for
memory attention (dynamic shapes: the memory grows during tracking) -- and that time is reported on its
own line. Then ``set_image`` on a photo, alternated eager / compiled, median of ``--repeats``; and one
propagation each of 1 object over the first ``--frames`` frames of the bedroom clip (seconds per frame
with a full memory bank). Equivalence in the same run: the compiled masks against the eager ones (min
IoU over 3 clicks and a box, and over every tracked frame). ``--write`` updates benchmarks/RESULTS.md
between ``<!-- compile:start -->`` and ``<!-- compile:end -->``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_image import image_prompts, min_mask_iou, predict_masks, time_once  # noqa: E402
from bench_video import (  # noqa: E402
    FULL_BANK,
    PRECISIONS,
    clip_folder,
    command_line,
    machine,
    min_iou,
    run_session,
    write_section,
)

from masklet import ImagePredictor, build_model  # noqa: E402
from masklet.compile import compile_model, compile_status, warm_up  # noqa: E402
from masklet.inference.video import VideoPredictor  # noqa: E402
from tests.conftest import load_photo  # noqa: E402
from tests.oracle import write_video_checkpoint  # noqa: E402


def measure(label: str, args, ckpt: Path, image, clip: Path, warm: Path) -> dict:
    dtype = PRECISIONS[label]
    eager = build_model(args.preset, ckpt, device="cpu", dtype=dtype)
    fast = compile_model(build_model(args.preset, ckpt, device="cpu", dtype=dtype))
    t0 = time.perf_counter()
    encoder_s = warm_up(fast)
    run_session(VideoPredictor(fast, fill_hole_area=0), warm, contextlib.nullcontext, 1)
    compile_s = time.perf_counter() - t0
    status = compile_status(fast)
    print(f"{label}: compiled in {compile_s:.0f} s (image encoder {encoder_s:.0f} s): {status}", flush=True)
    ie, ic = ImagePredictor(eager), ImagePredictor(fast)
    ie.set_image(image), ic.set_image(image)  # warm-up
    te, tc = [], []
    for _ in range(args.repeats):  # A B A B
        te.append(time_once(lambda: ie.set_image(image)))
        tc.append(time_once(lambda: ic.set_image(image)))
    prompts = image_prompts(*image.shape[:2])
    image_iou = min_mask_iou(
        predict_masks(ic, prompts, contextlib.nullcontext), predict_masks(ie, prompts, contextlib.nullcontext)
    )
    ve = run_session(VideoPredictor(eager, fill_hole_area=0), clip, contextlib.nullcontext, 1)
    vc = run_session(VideoPredictor(fast, fill_hole_area=0), clip, contextlib.nullcontext, 1)
    row = {
        "label": label,
        "compile_s": compile_s,
        "encoder_s": encoder_s,
        "status": status,
        "image": (statistics.median(te), statistics.median(tc)),
        "image_iou": image_iou,
        "video": (ve.per_frame(), vc.per_frame()),
        "video_iou": min_iou(vc, ve),
    }
    print(
        f"{label}: set_image eager {row['image'][0]:.3f} s compiled {row['image'][1]:.3f} s; video "
        f"eager {row['video'][0]:.3f} s/frame compiled {row['video'][1]:.3f} s/frame; min IoU "
        f"{image_iou:.4f} / {row['video_iou']:.4f}",
        flush=True,
    )
    return row


def report(args, rows: list[dict], clip: str) -> str:
    lines = [
        f"### torch.compile (inductor), {args.preset} at 1024, masklet eager vs compiled",
        "",
        f"Machine: {machine()}, {torch.get_num_threads()} threads. "
        f"Date: {time.strftime('%Y-%m-%d')}. Command: `{command_line('bench_compile.py')}`",
        "",
        f"set_image: median of {args.repeats} calls each, alternated, after a warm-up (truck.jpg). "
        f"Video: one propagation of 1 object over {clip}, s/frame over frames {FULL_BANK}.. "
        "(memory bank full). "
        "Compile: the one-time cost before the first use (image encoder, then memory attention on a "
        "short clip). Min IoU: compiled masks against eager ones.",
        "",
        "| precision | compile once | set_image eager | compiled | speed-up | video eager s/frame | "
        "compiled | speed-up | min IoU image / video | status |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        (ie, ic), (ve, vc) = r["image"], r["video"]
        status = ", ".join(f"{k}: {v}" for k, v in r["status"].items())
        lines.append(
            f"| {r['label']} | {r['compile_s']:.0f} s | {ie:.3f} s | {ic:.3f} s | {ie / ic:.2f}x | "
            f"{ve:.3f} s | {vc:.3f} s | {ve / vc:.2f}x | {r['image_iou']:.4f} / {r['video_iou']:.4f} | "
            f"{status} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="sam2.1_hiera_tiny")
    ap.add_argument("--precision", default="fp32,bf16", help="comma-separated: fp32, bf16")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--frames", type=int, default=11)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    labels = [p.strip() for p in args.precision.split(",") if p.strip()]
    if not labels or any(p not in PRECISIONS for p in labels):
        sys.exit(
            f"--precision takes a comma-separated list of {', '.join(PRECISIONS)}; got {args.precision!r}"
        )
    torch.set_num_threads(args.threads)
    ckpt = write_video_checkpoint(args.preset, Path(tempfile.gettempdir()) / f"bench-video-{args.preset}.pt")
    image = load_photo("truck.jpg")
    with tempfile.TemporaryDirectory() as tmp:
        clip = clip_folder(Path(tmp) / "clip", args.frames)
        clip_folder(Path(tmp) / "warm", FULL_BANK + 1)
        rows = [measure(lb, args, ckpt, image, Path(tmp) / "clip", Path(tmp) / "warm") for lb in labels]
    if args.write:
        write_section("compile", report(args, rows, clip))


if __name__ == "__main__":
    main()
