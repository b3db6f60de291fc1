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
(its README's recipe).

A speed-up bought with wrong masks is worth nothing: the float32 masks of the two must agree (IoU >=
0.99 for every object on every frame), otherwise the script exits with an error and writes nothing.
``--write`` updates benchmarks/RESULTS.md between ``<!-- video-speed:start/end -->``.
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

from masklet.checkpoints import build_model  # noqa: E402
from masklet.inference.video import VideoPredictor  # noqa: E402
from tests.conftest import synthetic_image  # noqa: E402
from tests.oracle import build_reference_video, reference_error, write_video_checkpoint  # noqa: E402

BEDROOM = ROOT.parent / "shared" / "data" / "videos" / "bedroom"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
FULL_BANK = 7  # frames from this index on attend to num_maskmem = 7 memories
MIN_IOU = 0.99
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


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

    @property
    def total(self) -> float:
        return sum(self.seconds)

    def per_frame(self) -> float:
        """Mean seconds per frame over the frames with a full memory bank (all but frame 0 if none)."""
        first = FULL_BANK if len(self.seconds) > FULL_BANK else 1
        return statistics.mean(self.seconds[first:])


def run_session(predictor, folder: Path, autocast) -> Run:
    """Prompt two objects on frame 0 (a click, a box) and time ``propagate_in_video``."""
    with torch.inference_mode(), autocast():
        state = predictor.init_state(str(folder))
        h, w = state["video_height"], state["video_width"]
        predictor.add_new_points_or_box(state, 0, 1, points=[[0.45 * w, 0.6 * h]], labels=[1])
        predictor.add_new_points_or_box(state, 0, 2, box=[0.05 * w, 0.1 * h, 0.4 * w, 0.7 * h])
        seconds, masks = [], []
        t = time.perf_counter()
        for frame_idx, _, logits in predictor.propagate_in_video(state):
            seconds.append(time.perf_counter() - t)
            assert frame_idx == len(masks), "frames are yielded in order from frame 0"
            masks.append((logits[:, 0] > 0).cpu().numpy())
            t = time.perf_counter()
    del state
    gc.collect()
    return Run(seconds, masks)


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="sam2.1_hiera_tiny")
    ap.add_argument("--frames", type=int, default=11, help="clip length (>= 8 to reach a full memory bank)")
    ap.add_argument("--precision", default="fp32,bf16", help="comma-separated: fp32, bf16")
    ap.add_argument("--image-size", type=int, default=1024, help="model input side (1024 officially)")
    ap.add_argument("--repeats", type=int, default=1, help="sessions per predictor; the median is kept")
    ap.add_argument("--warmup", type=int, default=1, help="untimed sessions per predictor first")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = ap.parse_args()
    precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad or not precisions:
        known = ", ".join(PRECISIONS)
        sys.exit(f"--precision takes a comma-separated list of {known}; got {args.precision!r}")
    if args.frames < 2:
        sys.exit(f"--frames must be at least 2 (use >= {FULL_BANK + 1} for a full memory bank)")
    if args.frames <= FULL_BANK:
        print(f"note: with {args.frames} frames the memory bank never fills; timing frames 1..", flush=True)
    err = reference_error()
    if err:
        sys.exit(err)
    torch.set_num_threads(args.threads)
    print(f"{machine()}; {torch.get_num_threads()} threads", flush=True)

    ckpt = write_video_checkpoint(args.preset, Path(tempfile.gettempdir()) / f"bench-video-{args.preset}.pt")
    ref = build_reference_video(args.preset, ckpt, args.image_size)
    rows, failures = [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "clip"
        clip = clip_folder(folder, args.frames)
        print(f"clip: {clip}", flush=True)
        for label in precisions:
            dtype = PRECISIONS[label]
            model = build_model(args.preset, ckpt, device="cpu", dtype=dtype, image_size=args.image_size)
            ours = VideoPredictor(model, fill_hole_area=0)
            bf16 = functools.partial(torch.autocast, "cpu", dtype=torch.bfloat16)
            ref_autocast = bf16 if dtype == torch.bfloat16 else contextlib.nullcontext
            for _ in range(args.warmup):  # first calls pay for kernel selection and allocation
                run_session(ref, folder, ref_autocast)
                run_session(ours, folder, contextlib.nullcontext)
            r = median_run([run_session(ref, folder, ref_autocast) for _ in range(args.repeats)])
            o = median_run([run_session(ours, folder, contextlib.nullcontext) for _ in range(args.repeats)])
            iou = min_iou(o, r)
            rows.append((label, r, o, iou))
            print(
                f"{label}: reference {r.per_frame():.3f} s/frame (total {r.total:.2f} s)  "
                f"masklet {o.per_frame():.3f} s/frame (total {o.total:.2f} s)  "
                f"speed-up {r.per_frame() / o.per_frame():.2f}x  min mask IoU {iou:.4f}",
                flush=True,
            )
            if dtype == torch.float32 and iou < MIN_IOU:
                failures.append(f"float32 masks differ: min IoU {iou:.4f} < {MIN_IOU}")
            del model, ours
            gc.collect()
    if failures:
        sys.exit("; ".join(failures) + ": the timings compare different results, not written")
    if "fp32" in precisions:
        print(f"masks agree in float32: every object-frame IoU >= {MIN_IOU}")
    if args.write:
        write_section("video-speed", report(args, clip, rows))


def report(args, clip: str, rows) -> str:
    n = args.frames
    first = FULL_BANK if n > FULL_BANK else 1
    per_frame = f"frames {first}..{n - 1}" + (" (memory bank full)" if first == FULL_BANK else "")
    lines = [
        f"### propagate_in_video, {args.preset}, 2 objects, {clip} -> {args.image_size}x{args.image_size}",
        "",
        f"Machine: {machine()}, {torch.get_num_threads()} threads. "
        f"Command: `{command_line('bench_video.py')}`",
        "",
        f"s/frame: mean over {per_frame}; total: the whole propagate_in_video over {n} frames "
        f"(preflight included); median of {args.repeats} session(s) after {args.warmup} untimed one(s) "
        "per predictor. Both with fill_hole_area=0, same seeded random checkpoint (official format). "
        "bf16: masklet's model in bfloat16, the reference under torch.autocast(bfloat16). "
        f"Masks checked to agree in float32 (IoU >= {MIN_IOU} on every object-frame).",
        "",
        "| precision | reference s/frame | masklet s/frame | speed-up | reference total | masklet total "
        "| min mask IoU vs reference |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, r, o, iou in rows:
        lines.append(
            f"| {label} | {r.per_frame():.3f} s | {o.per_frame():.3f} s | "
            f"{r.per_frame() / o.per_frame():.2f}x | {r.total:.2f} s | {o.total:.2f} s | {iou:.4f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
