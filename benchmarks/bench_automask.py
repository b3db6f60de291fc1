"""Segment everything: masklet's AutoMaskGenerator vs the reference SAM2AutomaticMaskGenerator, one run.

    python benchmarks/bench_automask.py [--image truck.jpg] [--points-per-side 32] [--precision fp32,bf16]
                                        [--repeats 1] [--write]

Both get the same seeded random checkpoint in the official format (``write_automask_checkpoint``: its
masks are local blobs, so that masks pass the filters and the whole pipeline -- upsampling, stability,
boxes, RLE, NMS -- does real work; plain random weights give one image-wide mask per point) and the
same photo, with points_per_side 32 and the IoU / stability thresholds lowered to 0.5 / 0.05 (random
weights predict IoUs near 0.5). float32: both models in float32. bf16: masklet's model built in
bfloat16; the reference in float32 under ``torch.autocast("cpu", dtype=torch.bfloat16)``.

Seconds per image are medians over ``--repeats`` calls of ``generate`` after one untimed call each.
In the same run the float32 masks must match the reference's 1:1 (IoU >= 0.99, same count), otherwise
the script exits with an error and writes nothing; for bf16 the share of reference masks matched at
IoU >= 0.99 is reported. ``--write`` updates benchmarks/RESULTS.md between
``<!-- automask:start/end -->``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_video import command_line, machine, write_section  # noqa: E402

from masklet.checkpoints import build_model  # noqa: E402
from masklet.inference.automask import AutoMaskGenerator  # noqa: E402
from tests.conftest import synthetic_image  # noqa: E402
from tests.oracle import build_reference, reference_error, write_automask_checkpoint  # noqa: E402

IMAGES = ROOT.parent / "shared" / "data" / "images"
PRESET = "sam2.1_hiera_tiny"
SEED = 5
SETTINGS = {"pred_iou_thresh": 0.5, "stability_score_thresh": 0.05}
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


def load_image(name: str) -> tuple[np.ndarray, str]:
    path = IMAGES / name
    if path.exists():
        rgb = np.asarray(Image.open(path).convert("RGB"))
        return rgb, f"{name} ({rgb.shape[1]}x{rgb.shape[0]})"
    return synthetic_image(1200, 1800, seed=1), "a synthetic 1800x1200 image (../shared is absent)"


def timed(generator, image: np.ndarray, repeats: int, autocast) -> tuple[float, list[dict], list[float]]:
    with torch.inference_mode(), autocast():
        generator.generate(image)  # untimed: kernel selection, allocations
        times, records = [], None
        for _ in range(repeats):
            t = time.perf_counter()
            records = generator.generate(image)
            times.append(time.perf_counter() - t)
    gc.collect()
    return statistics.median(times), records, times


def matched(ours: list[dict], ref: list[dict]) -> int:
    """Reference masks with their own counterpart among ours at IoU >= 0.99 (greedy, 1:1)."""
    free = [r["segmentation"] for r in ours]
    hits = 0
    for r in ref:
        m = r["segmentation"]
        best, best_i = 0.0, None
        for i, o in enumerate(free):
            if o is None:
                continue
            union = np.logical_or(o, m).sum()
            iou = np.logical_and(o, m).sum() / union if union else 1.0
            if iou > best:
                best, best_i = iou, i
        if best >= 0.99:
            hits += 1
            free[best_i] = None
    return hits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", default="truck.jpg")
    ap.add_argument("--points-per-side", type=int, default=32)
    ap.add_argument("--precision", default="fp32,bf16")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = ap.parse_args()
    precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    if not precisions or any(p not in PRECISIONS for p in precisions):
        sys.exit(
            f"--precision takes a comma-separated list of {', '.join(PRECISIONS)}; got {args.precision!r}"
        )
    err = reference_error()
    if err:
        sys.exit(err)
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    torch.set_num_threads(args.threads)
    print(f"{machine()}; {torch.get_num_threads()} threads", flush=True)
    ckpt = write_automask_checkpoint(PRESET, Path(tempfile.gettempdir()) / f"bench-automask-{SEED}.pt", SEED)
    image, what = load_image(args.image)
    print(f"image: {what}", flush=True)
    kwargs = dict(points_per_side=args.points_per_side, **SETTINGS)
    ref = SAM2AutomaticMaskGenerator(build_reference(PRESET, ckpt), **kwargs)
    rows, failures = [], []
    ref32 = None
    for label in precisions:
        dtype = PRECISIONS[label]
        ours = AutoMaskGenerator(build_model(PRESET, ckpt, device="cpu", dtype=dtype), **kwargs)
        bf16 = functools.partial(torch.autocast, "cpu", dtype=torch.bfloat16)
        ref_autocast = bf16 if dtype == torch.bfloat16 else contextlib.nullcontext
        t_ref, r_ref, _ = timed(ref, image, args.repeats, ref_autocast)
        t_ours, r_ours, _ = timed(ours, image, args.repeats, contextlib.nullcontext)
        if dtype == torch.float32:
            ref32 = r_ref
        base = ref32 if ref32 is not None else r_ref
        hits = matched(r_ours, base)
        rows.append((label, t_ref, t_ours, len(r_ref), len(r_ours), hits, len(base)))
        print(
            f"{label}: reference {t_ref:.2f} s ({len(r_ref)} masks)  "
            f"masklet {t_ours:.2f} s ({len(r_ours)} masks)  speed-up {t_ref / t_ours:.2f}x  "
            f"matched {hits}/{len(base)} reference masks",
            flush=True,
        )
        if dtype == torch.float32 and not (hits == len(r_ref) == len(r_ours)):
            failures.append(f"float32 masks differ: {hits} of {len(r_ref)} matched, {len(r_ours)} found")
        del ours
        gc.collect()
    if failures:
        sys.exit("; ".join(failures) + ": the timings compare different results, not written")
    if args.write:
        write_section("automask", report(args, what, rows))


def report(args, what: str, rows) -> str:
    command = command_line("bench_automask.py")
    lines = [
        f"### Segment everything, {PRESET}, {what}, points_per_side {args.points_per_side}",
        "",
        f"Machine: {machine()}, {torch.get_num_threads()} threads. Command: `{command}`",
        "",
        f"Seconds per image: median of {args.repeats} `generate` call(s) after one untimed call, same "
        "seeded random checkpoint (official format, masks made local so that they pass the filters), "
        "pred_iou_thresh 0.5, stability_score_thresh 0.05, other settings the official defaults. bf16: "
        "masklet's model in bfloat16, the reference under torch.autocast(bfloat16). Matched: reference "
        "float32 masks (bf16 row: when float32 was run too) with a 1:1 counterpart at IoU >= 0.99.",
        "",
        "| precision | reference | masklet | speed-up | masks (reference / masklet) | matched |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label, t_ref, t_ours, n_ref, n_ours, hits, n_base in rows:
        speed = f"{t_ref / t_ours:.2f}x"
        counts = f"{n_ref} / {n_ours} | {hits}/{n_base}"
        lines.append(f"| {label} | {t_ref:.2f} s | {t_ours:.2f} s | {speed} | {counts} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
