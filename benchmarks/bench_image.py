"""set_image speed: masklet vs the reference SAM2ImagePredictor, in one run, same weights, same image.

    python benchmarks/bench_image.py [--preset sam2.1_hiera_tiny] [--repeats 5] [--write]

float32: both models in float32. bf16: masklet's model in bfloat16 weights; the reference in float32
weights under ``torch.autocast("cpu", dtype=torch.bfloat16)`` (its README's recipe). Each repeat times
the reference, then masklet (A B A B ...), after one warm-up each; reports the median and best.

Equivalence in the same run: after timing, both predict masks for three point prompts and a box
(multimask) and every masklet mask must match the float32 reference's (IoU >= 0.99 in float32; the bf16
figure is reported). Compute floor: the FLOPs of ``set_image`` (matmuls and convolutions, counted) over
this machine's measured matmul peak at that precision. ``--write`` updates benchmarks/RESULTS.md.
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

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_video import command_line, machine, write_section  # noqa: E402
from compute_floor import count_flops, matmul_peak  # noqa: E402

from masklet import ImagePredictor, build_model  # noqa: E402
from tests.conftest import load_photo  # noqa: E402
from tests.oracle import build_reference, reference_error, write_reference_checkpoint  # noqa: E402

MIN_IOU = 0.99


def time_once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def image_prompts(h: int, w: int) -> list[dict]:
    pts = [(0.5, 0.5), (0.3, 0.6), (0.7, 0.4)]
    out = [{"point_coords": np.array([[x * w, y * h]]), "point_labels": np.array([1])} for x, y in pts]
    out.append({"box": np.array([0.2 * w, 0.2 * h, 0.6 * w, 0.7 * h])})
    return out


def predict_masks(predictor, prompts, autocast) -> list[np.ndarray]:
    with torch.inference_mode(), autocast():
        return [predictor.predict(**p, multimask_output=True)[0].astype(bool) for p in prompts]


def min_mask_iou(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    worst = 1.0
    for x, y in zip(a, b, strict=True):
        for mx, my in zip(x, y, strict=True):
            union = np.logical_or(mx, my).sum()
            if union:
                worst = min(worst, np.logical_and(mx, my).sum() / union)
    return float(worst)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="sam2.1_hiera_tiny")
    ap.add_argument("--image", default="truck.jpg")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    err = reference_error()
    if err:
        sys.exit(err)
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    image = load_photo(args.image)
    prompts = image_prompts(*image.shape[:2])
    ckpt = write_reference_checkpoint(args.preset, Path(tempfile.gettempdir()) / f"bench-{args.preset}.pt")
    ref = SAM2ImagePredictor(build_reference(args.preset, ckpt))
    rows, ref_fp32, failures = [], None, []
    for label, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        ours = ImagePredictor(build_model(args.preset, ckpt, device="cpu", dtype=dtype))
        autocast = (
            (lambda: torch.autocast("cpu", dtype=torch.bfloat16))
            if dtype == torch.bfloat16
            else contextlib.nullcontext
        )

        def run_ref(autocast=autocast):
            with torch.inference_mode(), autocast():
                ref.set_image(image)

        def run_ours(ours=ours):
            ours.set_image(image)

        run_ref(), run_ours()  # warm-up
        t_ref, t_ours = [], []
        for _ in range(args.repeats):  # A B A B
            t_ref.append(time_once(run_ref))
            t_ours.append(time_once(run_ours))
        ref_masks = predict_masks(ref, prompts, autocast)
        if dtype == torch.float32:
            ref_fp32 = ref_masks
        iou = min_mask_iou(predict_masks(ours, prompts, contextlib.nullcontext), ref_fp32)
        ref_iou = min_mask_iou(ref_masks, ref_fp32)  # the reference's own agreement (1.0 in float32)
        flops = count_flops(run_ours)
        peak = matmul_peak(dtype)
        row = (label, statistics.median(t_ref), min(t_ref), statistics.median(t_ours), min(t_ours))
        rows.append((*row, iou, ref_iou, flops, peak))
        print(
            f"{label:9} reference {row[1]:.3f} s  masklet {row[3]:.3f} s  speed-up {row[1] / row[3]:.2f}x  "
            f"min mask IoU vs fp32 reference {iou:.4f} (reference's own {ref_iou:.4f})  "
            f"floor {flops / peak:.3f} s",
            flush=True,
        )
        if dtype == torch.float32 and iou < MIN_IOU:
            failures.append(f"float32 masks differ: min IoU {iou:.4f} < {MIN_IOU}")
    if failures:
        sys.exit("; ".join(failures) + ": the timings compare different results, not written")
    if args.write:
        _write(args, image.shape, rows)


def _write(args, shape, rows) -> None:
    lines = [
        f"### set_image, {args.preset}, {shape[1]}x{shape[0]} photo ({args.image}) -> 1024x1024",
        "",
        f"Machine: {machine()}, {torch.get_num_threads()} threads. Date: {time.strftime('%Y-%m-%d')}. "
        f"Command: `{command_line('bench_image.py')}`",
        "",
        f"Median (best) of {args.repeats} calls per predictor, alternated reference / masklet, after one "
        "warm-up each. Min IoU: masklet's masks for 3 clicks and a box (3 candidates each) against the "
        "float32 reference's, and the same for the reference's own masks at that precision. Compute "
        "floor: counted FLOPs of set_image over the measured matmul peak.",
        "",
        "| precision | reference median (best) | masklet median (best) | speed-up (median) | compute floor "
        "| masklet / floor | min mask IoU vs fp32 reference: masklet | reference |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, rm, rb, om, ob, iou, ref_iou, flops, peak in rows:
        floor = flops / peak
        lines.append(
            f"| {label} | {rm:.3f} s ({rb:.3f}) | {om:.3f} s ({ob:.3f}) | {rm / om:.2f}x | "
            f"{flops / 1e9:.0f} GFLOP / {peak / 1e12:.2f} TFLOP/s = {floor:.3f} s | {om / floor:.1f}x | "
            f"{iou:.4f} | {ref_iou:.4f} |"
        )
    write_section("bench_image", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
