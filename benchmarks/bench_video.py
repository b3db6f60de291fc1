"""Video propagation speed: masklet vs the reference SAM2VideoPredictor, in one run, same weights.

    python benchmarks/bench_video.py [--frames 11] [--precision fp32,bf16] [--image-size 1024] [--write]

Both predictors get the same seeded random checkpoint (official format, object-score head spread so
that the objects are present), the same JPEG clip (the first ``--frames`` frames of
../shared/data/videos/bedroom, or synthetic frames where ../shared is absent) and the same session:
two objects prompted on frame 0 (a click and a box), then ``propagate_in_video`` over every frame.
Hole filling is off on both (``fill_hole_area=0``) so that they do the same work.

Reported per precision: the mean seconds per propagated frame over the frames whose memory bank is
full (index >= 7: the prompted frame and the 6 previous ones), and the total of the propagation call
(its preflight included). float32: both models in float32. bf16: masklet's model built in bfloat16;
the reference in float32 weights with every call under ``torch.autocast("cpu", dtype=torch.bfloat16)``
(its README's recipe). bf16-enc32: masklet's memory attention and memory encoder in bfloat16 with
a float32 image encoder (``build_model(..., encoder_dtype="fp32")``), against the same reference bf16.

A speed-up bought with wrong masks is worth nothing: the float32 masks of the two must agree (IoU >=
0.99 for every object on every frame), otherwise the script exits with an error and writes nothing.
``--write`` updates benchmarks/RESULTS.md between ``<!-- video-speed:start/end -->`` (or the
``--section`` given).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # the reference's progress bars; set before tqdm loads

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from compute_floor import count_flops, matmul_peak  # noqa: E402

from masklet.checkpoints import build_model  # noqa: E402
from masklet.inference.video import VideoPredictor  # noqa: E402
from tests.conftest import synthetic_image  # noqa: E402
from tests.oracle import build_reference_video, reference_error, write_video_checkpoint  # noqa: E402

BEDROOM = ROOT.parent / "shared" / "data" / "videos" / "bedroom"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
FULL_BANK = 7  # frames from this index on attend to num_maskmem = 7 memories
MIN_IOU = 0.99
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "bf16-enc32": torch.bfloat16}
ENCODER_DTYPE = {"bf16-enc32": torch.float32}  # bf16 memory modules with a float32 image encoder


# ---------------------------------------------------------------------- shared with bench_long_video
def machine() -> str:
    """CPU model, core count and torch version of this machine, for RESULTS.md."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}"


def command_line(script: str) -> str:
    """The command that ran this script, as typed from the repository root."""
    return " ".join(["python", f"benchmarks/{script}", *sys.argv[1:]])


def write_section(name: str, section: str) -> None:
    """Replace (or append) the block between ``<!-- name:start -->`` and ``<!-- name:end -->``."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{section.rstrip()}\n{end}"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if start in text:
        pre, rest = text.split(start, 1)
        text = pre + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)
    print(f"wrote {RESULTS}")


# ---------------------------------------------------------------------- the session
def clip_folder(dest: Path, n: int) -> str:
    """Fill ``dest`` with exactly ``n`` JPEG frames (the reference reads every JPEG of a folder).

    Returns a description of the clip for the report.
    """
    dest.mkdir(parents=True, exist_ok=True)
    real = sorted(BEDROOM.glob("*.jpg")) if BEDROOM.is_dir() else []
    if len(real) >= n:
        for i, src in enumerate(real[:n]):
            (dest / f"{i:05d}.jpg").write_bytes(src.read_bytes())
        w, h = Image.open(real[0]).size
        return f"the first {n} frames of bedroom ({w}x{h} JPEG)"
    base = synthetic_image(540, 960, seed=3)
    for i in range(n):
        Image.fromarray(np.roll(base, 8 * i, axis=1)).save(dest / f"{i:05d}.jpg", quality=95)
    return f"{n} synthetic 960x540 JPEG frames (../shared is absent)"


@dataclass
class Run:
    """One propagation: seconds until each frame was yielded (consumer time excluded) and its masks."""

    seconds: list[float]
    masks: list[np.ndarray]  # per frame: (N_obj, H, W) bool
    flops: int = 0  # of the last frame, when counted

    @property
    def total(self) -> float:
        return sum(self.seconds)

    def per_frame(self) -> float:
        """Mean seconds per frame over the frames with a full memory bank (all but frame 0 if none)."""
        first = FULL_BANK if len(self.seconds) > FULL_BANK else 1
        return statistics.mean(self.seconds[first:])


def prompt_objects(predictor, state, n: int) -> None:
    """Prompt ``n`` objects on frame 0: clicks and boxes alternating, spread over the frame."""
    h, w = state["video_height"], state["video_width"]
    spots = [(0.45, 0.6), (0.22, 0.4), (0.75, 0.35), (0.6, 0.8), (0.3, 0.85), (0.85, 0.65)]
    for i in range(n):
        x, y = spots[i % len(spots)]
        if i % 2 == 0:
            predictor.add_new_points_or_box(state, 0, i + 1, points=[[x * w, y * h]], labels=[1])
        else:
            box = [
                max(0.0, x - 0.15) * w,
                max(0.0, y - 0.2) * h,
                min(1.0, x + 0.15) * w,
                min(1.0, y + 0.2) * h,
            ]
            predictor.add_new_points_or_box(state, 0, i + 1, box=box)


def run_session(predictor, folder: Path, autocast, objects: int = 2, count_last: bool = False) -> Run:
    """Prompt ``objects`` objects on frame 0 and time ``propagate_in_video``.

    count_last: also count the FLOPs of the last frame (slower; only for the compute floor)."""
    flops = 0
    with torch.inference_mode(), autocast():
        state = predictor.init_state(str(folder))
        prompt_objects(predictor, state, objects)
        seconds, masks = [], []
        frames = predictor.propagate_in_video(state)
        n = state["num_frames"]
        t = time.perf_counter()
        for i in range(n):
            if count_last and i == n - 1:
                box = {}

                def step(box=box, it=frames):
                    box["item"] = next(it)

                flops = count_flops(step)
                frame_idx, _, logits = box["item"]
            else:
                frame_idx, _, logits = next(frames)
            seconds.append(time.perf_counter() - t)
            assert frame_idx == len(masks), "frames are yielded in order from frame 0"
            masks.append((logits[:, 0] > 0).cpu().numpy())
            t = time.perf_counter()
    del state, frames
    gc.collect()
    return Run(seconds, masks, flops)


def min_iou(a: Run, b: Run) -> float:
    """Smallest mask IoU over every object on every frame (1.0 where both masks are empty)."""
    worst = 1.0
    for ma, mb in zip(a.masks, b.masks, strict=True):
        for x, y in zip(ma, mb, strict=True):
            union = np.logical_or(x, y).sum()
            if union:
                worst = min(worst, np.logical_and(x, y).sum() / union)
    return float(worst)


def median_run(runs: list[Run]) -> Run:
    """The run with the median per-frame time (the only run when repeats is 1)."""
    return sorted(runs, key=Run.per_frame)[(len(runs) - 1) // 2]


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="sam2.1_hiera_tiny")
    ap.add_argument("--frames", type=int, default=11, help="clip length (>= 8 to reach a full memory bank)")
    ap.add_argument("--objects", default="1,2,4", help="comma-separated object counts (default 1,2,4)")
    ap.add_argument("--precision", default="fp32,bf16", help="comma-separated: fp32, bf16")
    ap.add_argument("--image-size", type=int, default=1024, help="model input side (1024 officially)")
    ap.add_argument("--repeats", type=int, default=1, help="sessions per predictor, alternated; median kept")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--no-floor", action="store_true", help="skip counting FLOPs for the compute floor")
    ap.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    ap.add_argument("--section", default="video-speed", help="RESULTS.md block to write (video-speed)")
    args = ap.parse_args()
    args.precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    bad = [p for p in args.precisions if p not in PRECISIONS]
    if bad or not args.precisions:
        sys.exit(
            f"--precision takes a comma-separated list of {', '.join(PRECISIONS)}; got {args.precision!r}"
        )
    try:
        args.counts = sorted({int(k) for k in args.objects.split(",")})
    except ValueError:
        sys.exit(f"--objects takes comma-separated counts such as 1,2,4; got {args.objects!r}")
    if args.frames < 2 or min(args.counts) < 1:
        sys.exit(f"--frames must be at least 2 (use >= {FULL_BANK + 1} for a full memory bank), objects >= 1")
    return args


def main() -> None:
    args = parse_args()
    err = reference_error()
    if err:
        sys.exit(err)
    torch.set_num_threads(args.threads)
    print(f"{machine()}; {torch.get_num_threads()} threads", flush=True)
    ckpt = write_video_checkpoint(args.preset, Path(tempfile.gettempdir()) / f"bench-video-{args.preset}.pt")
    ref = build_reference_video(args.preset, ckpt, args.image_size)
    rows, failures, flops, fp32_ref = [], [], {}, {}
    bf16 = functools.partial(torch.autocast, "cpu", dtype=torch.bfloat16)
    with tempfile.TemporaryDirectory() as tmp:
        folder, warm, short = Path(tmp) / "clip", Path(tmp) / "warm", Path(tmp) / "short"
        clip = clip_folder(folder, args.frames)
        clip_folder(warm, 3)
        clip_folder(short, FULL_BANK + 1)
        print(f"clip: {clip}", flush=True)
        for label in args.precisions:
            dtype = PRECISIONS[label]
            model = build_model(
                args.preset,
                ckpt,
                device="cpu",
                dtype=dtype,
                image_size=args.image_size,
                encoder_dtype=ENCODER_DTYPE.get(label),
            )
            ours = VideoPredictor(model, fill_hole_area=0)
            ref_autocast = bf16 if dtype == torch.bfloat16 else contextlib.nullcontext
            peak = matmul_peak(dtype)
            # first calls pay for kernel selection and allocation
            run_session(ref, warm, ref_autocast, max(args.counts))
            run_session(ours, warm, contextlib.nullcontext, max(args.counts))
            for k in args.counts:
                refs, ourss = [], []
                for _ in range(args.repeats):  # alternated: A B A B
                    refs.append(run_session(ref, folder, ref_autocast, k))
                    ourss.append(run_session(ours, folder, contextlib.nullcontext, k))
                r, o = median_run(refs), median_run(ourss)
                # the same arithmetic at either precision (no single peak for the mixed mode)
                if k not in flops and not args.no_floor and label not in ENCODER_DTYPE:
                    flops[k] = run_session(ours, short, contextlib.nullcontext, k, count_last=True).flops
                if label == "fp32":
                    fp32_ref[k] = r
                iou = min_iou(o, fp32_ref.get(k, r))
                ref_iou = min_iou(r, fp32_ref.get(k, r))  # the reference's own agreement
                fl = 0 if label in ENCODER_DTYPE else flops.get(k, 0)
                rows.append((label, k, r, o, iou, ref_iou, fl, peak))
                print(
                    f"{label} {k} object(s): reference {r.per_frame():.3f} s/frame  masklet "
                    f"{o.per_frame():.3f} s/frame  speed-up {r.per_frame() / o.per_frame():.2f}x  "
                    f"min mask IoU vs fp32 reference {iou:.4f} (reference's own {ref_iou:.4f})",
                    flush=True,
                )
                if label == "fp32" and iou < MIN_IOU:
                    failures.append(f"float32 masks differ ({k} objects): min IoU {iou:.4f} < {MIN_IOU}")
            del model, ours
            gc.collect()
    if failures:
        sys.exit("; ".join(failures) + ": the timings compare different results, not written")
    if args.write:
        write_section(args.section, report(args, clip, rows))


def report(args, clip: str, rows) -> str:
    n = args.frames
    first = FULL_BANK if n > FULL_BANK else 1
    per_frame = f"frames {first}..{n - 1}" + (" (memory bank full)" if first == FULL_BANK else "")
    lines = [
        f"### propagate_in_video, {args.preset}, {clip} -> {args.image_size}x{args.image_size}",
        "",
        f"Machine: {machine()}, {torch.get_num_threads()} threads. Date: {time.strftime('%Y-%m-%d')}. "
        f"Command: `{command_line('bench_video.py')}`",
        "",
        f"s/frame: mean over {per_frame}, median of {args.repeats} session(s) per predictor, sessions "
        "alternated reference / masklet, after one untimed warm-up each. Objects prompted on frame 0 "
        "(clicks and boxes alternating). Both with fill_hole_area=0, same seeded random checkpoint "
        "(official format). bf16: masklet's model in bfloat16, the reference under "
        "torch.autocast(bfloat16); bf16-enc32: masklet's memory attention and memory encoder in "
        "bfloat16 with a float32 image encoder, the reference under torch.autocast(bfloat16). "
        "Compute floor: masklet's FLOPs of a frame with a full memory bank "
        "(matmuls and convolutions, counted) over the machine's measured matmul peak at that precision. "
        "Min IoU: every object on every frame against the float32 reference's mask, masklet's and the "
        "reference's own at that precision.",
        "",
        "| precision | objects | reference s/frame | masklet s/frame | speed-up | compute floor | "
        "masklet / floor | min mask IoU vs fp32 reference: masklet | reference |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, k, r, o, iou, ref_iou, fl, peak in rows:
        if fl:
            floor = fl / peak
            cells = f"{fl / 1e9:.0f} GFLOP / {peak / 1e12:.2f} TFLOP/s = {floor:.3f} s | "
            cells += f"{o.per_frame() / floor:.1f}x"
        else:
            cells = "- | -"
        lines.append(
            f"| {label} | {k} | {r.per_frame():.3f} s | {o.per_frame():.3f} s | "
            f"{r.per_frame() / o.per_frame():.2f}x | {cells} | {iou:.4f} | {ref_iou:.4f} |"
        )
    lines.append("")
    for label in args.precisions:
        per = {k: o.per_frame() for lab, k, _, o, *_ in rows if lab == label}
        if 1 in per and max(per) > 1:
            k = max(per)
            lines.append(f"- {label}: {k} objects cost {per[k] / per[1]:.2f}x of 1 object (masklet)")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
