"""Seconds per tracked frame of the small families against sam2.1_hiera_tiny and the authors' code.

    python benchmarks/bench_edge.py [--presets edgetam,efficienttam_ti,efficienttam_s,sam2.1_hiera_tiny]
        [--sizes 512,1024] [--dtypes fp32,bf16] [--objects 1,2,4] [--objects-at 1024:1] [--frames 3]
        [--no-official]
        [--steps edgetam:256,edgetam:512] [--write]

For each (preset, size, dtype, objects), seeded random weights (the speed does not depend on them)
and the same synthetic 640x480 JPEG frames:

- masklet: a StreamTracker; the objects are clicked on frame 0 and tracked through the next frames;
  only frames whose memory bank is full (frame 7 on: the prompted frame and six recent ones, every
  family's num_maskmem = 7), what a live stream runs at, are timed, from the decoded frame to the
  masks (preprocess, image encoder, memory attention, decoder, memory encoder); median seconds per
  frame over ``--frames`` of them. Compute floor: the matmul and convolution FLOPs of one more tracked
  frame over the matmul peak measured at the start.
- official: the family's own code (EdgeTAM: edgetam-dimos, EfficientTAM: efficient-track-anything,
  SAM 2: Meta's sam2 1.1.0), run by tests/edge_oracle_runner.py in the oracle virtualenv
  (tests/setup_edge_oracles.sh) or, for SAM 2, with this Python: the same clicks, then one
  propagate_in_video whose yielded frames (the same ones) are timed the same way; bf16 as CPU autocast. Its
  init_state resizes every frame up front, so its per-frame time has no preprocessing in it.
- set_image: ImagePredictor.set_image (and the official SAM2ImagePredictor's) on the first frame,
  median of three.

``--objects-at SIZE:N/N...`` (comma-separated) gives some input sizes other object counts than
``--objects`` (a slow machine's run can keep 1024 px to one object). ``--steps PRESET:SIZE`` prints,
for one object in float32, where a tracked frame's time goes (the model's methods timed in place),
for the real-time analysis. Rows run one after another in one
process: they share the machine's load at that time. ``--write`` replaces the section between
``<!-- edge:start -->`` and ``<!-- edge:end -->`` of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from compute_floor import count_flops, matmul_peak  # noqa: E402

from masklet.checkpoints import build_model  # noqa: E402
from masklet.inference import stream as stream_module  # noqa: E402
from masklet.inference.image import ImagePredictor  # noqa: E402
from masklet.inference.stream import StreamTracker  # noqa: E402
from tests.edge_oracle import PACKAGES, family_job, oracle_root  # noqa: E402
from tests.oracle import REFERENCE_CONFIGS  # noqa: E402

POINTS = [[100, 240], [220, 240], [340, 240], [460, 240]]  # one click per object, 640x480 frames
# frames from this index on attend to a full memory bank (num_maskmem = 7 in every family); the frames
# before it are tracked untimed (they also warm up kernel selection and allocation)
FULL_BANK = 7
MODEL_STEPS = {
    "encode_image": "image encoder",
    "attend_to_memories": "memory attention",
    "decode": "decoder",
    "encode_memory": "memory encoder",
}


def write_frames(folder: Path, n: int, h: int = 480, w: int = 640) -> list[np.ndarray]:
    """n JPEG frames of a disc moving over a gradient; returns them as decoded (what both sides see)."""
    yy, xx = np.mgrid[:h, :w]
    out = []
    for i in range(n):
        img = np.stack([xx * 255 // w, yy * 255 // h, np.full_like(xx, 80)], -1).astype(np.uint8)
        img[(yy - h // 2) ** 2 + (xx - 150 - 12 * i) ** 2 < 60**2] = (230, 40, 30)
        Image.fromarray(img).save(folder / f"{i:05d}.jpg", quality=95)
        out.append(np.asarray(Image.open(folder / f"{i:05d}.jpg").convert("RGB")))
    return out


class StepClock:
    """Wall time per step of a tracked frame, from the model's methods wrapped on the instance."""

    def __init__(self, model) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.on = False
        for method, step in MODEL_STEPS.items():
            setattr(model, method, self._timed(getattr(model, method), step))
        self._preprocess = stream_module.preprocess_video_frame
        stream_module.preprocess_video_frame = self._timed(self._preprocess, "preprocess")

    def _timed(self, fn, step: str):
        def run(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                if self.on:
                    self.seconds[step] += time.perf_counter() - t

        return run

    def close(self) -> None:
        stream_module.preprocess_video_frame = self._preprocess


def ours(preset: str, size: int, dtype: str, objects: int, clip: list[np.ndarray], steps: bool = False):
    """(median s/frame of StreamTracker, median set_image s, per-step seconds per frame or None, FLOPs
    of one more tracked frame)."""
    model = build_model(preset, random_seed=0, device="cpu", dtype=dtype, image_size=size)
    clock = StepClock(model) if steps else None
    try:
        tracker = StreamTracker(model)
        tracker.track(clip[0])
        for k in range(objects):
            tracker.add_points(k + 1, points=[POINTS[k]], labels=[1])
        for f in clip[1:FULL_BANK]:  # untimed: the memory bank fills, the kernels warm up
            tracker.track(f)
        times = []
        for f in clip[FULL_BANK:]:
            if clock:
                clock.on = True
            t = time.perf_counter()
            tracker.track(f)
            times.append(time.perf_counter() - t)
    finally:
        if clock:
            clock.on = False
            clock.close()
    model.requires_grad_(False)  # the FLOP counter's module hooks trip over parameters needing grads
    flops = count_flops(lambda: tracker.track(clip[-1]))
    pred = ImagePredictor(model)
    set_times = []
    for _ in range(3):
        t = time.perf_counter()
        pred.set_image(clip[0])
        set_times.append(time.perf_counter() - t)
    # the breakdown is of the mean frame (the steps' totals over the frames), the headline a median
    per_step = {"frame": statistics.fmean(times)} if clock else None
    if clock:
        per_step |= {k: v / len(times) for k, v in clock.seconds.items()}
    return statistics.median(times), statistics.median(set_times), per_step, flops


def official(preset: str, size: int, dtype: str, objects: int, folder: Path, work: Path):
    """(median s/frame of the official propagate_in_video, median set_image s), or None without the code."""
    if preset in REFERENCE_CONFIGS:
        job = {"family": "sam2", "config": REFERENCE_CONFIGS[preset], "image_size": size}
        python, path = sys.executable, [ROOT / "tests" / "oracle_shims"]
    else:
        job = family_job(preset, size)
        python = oracle_root() / "edgetam" / "bin" / "python"
        path = [ROOT / "tests" / "oracle_shims", oracle_root() / PACKAGES[job["family"]]]
        if not python.exists() or not path[1].is_dir():
            return None
    job |= {"task": "speed", "frames": str(folder), "objects": objects, "points": POINTS, "dtype": dtype}
    spec = work / f"{preset}-{size}-{dtype}-{objects}.json"
    job["out"] = str(spec.with_suffix(".npz"))
    spec.write_text(json.dumps(job))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, path))}
    runner = ROOT / "tests" / "edge_oracle_runner.py"
    proc = subprocess.run([str(python), str(runner), str(spec)], env=env, capture_output=True, text=True)
    if proc.returncode:
        print(f"official {preset} {size} {dtype} failed: {proc.stderr[-1500:]}", file=sys.stderr)
        return None
    with np.load(job["out"]) as out:
        track, set_image = out["track"], out["set_image"]
    # the same frames as on masklet's side: those with a full memory bank
    return float(np.median(track[FULL_BANK:])), float(np.median(set_image))


def fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f}"


def object_counts(args, size: int) -> list[int]:
    per_size = dict(item.split(":") for item in filter(None, args.objects_at.split(",")))
    return [int(n) for n in per_size.get(str(size), args.objects.replace(",", "/")).split("/")]


def speed_rows(args, clip: list[np.ndarray], folder: Path, work: Path, peak: dict) -> list[str]:
    rows = [
        "| preset | input | dtype | objects | masklet s/frame | frames/s | compute floor | masklet / floor "
        "| official s/frame | speed-up | masklet set_image s | official set_image s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for preset in args.presets.split(","):
        for size in map(int, args.sizes.split(",")):
            for dtype in args.dtypes.split(","):
                for objects in object_counts(args, size):
                    s, set_s, _, flops = ours(preset, size, dtype, objects, clip)
                    floor = flops / peak[dtype]
                    ref = None if args.no_official else official(preset, size, dtype, objects, folder, work)
                    ref_s, ref_set = ref or (None, None)
                    gain = f"{ref_s / s:.2f}x" if ref_s else "—"
                    rows.append(
                        f"| {preset} | {size} | {dtype} | {objects} | {s:.3f} | {1 / s:.1f} "
                        f"| {flops / 1e9:.1f} GFLOP = {floor:.3f} s | {s / floor:.1f}x | {fmt(ref_s)} "
                        f"| {gain} | {set_s:.3f} | {fmt(ref_set)} |"
                    )
                    print(rows[-1], flush=True)
    return rows


def step_rows(args, clip: list[np.ndarray]) -> list[str]:
    names = ["preprocess", *MODEL_STEPS.values()]
    rows = [
        "| preset | input | s/frame | frames/s | " + " | ".join(names) + " | rest |",
        "| --- | --- | --- | --- | " + " | ".join("---" for _ in names) + " | --- |",
    ]
    for item in filter(None, args.steps.split(",")):
        preset, size = item.split(":")
        _, _, per_step, _ = ours(preset, int(size), "fp32", 1, clip, steps=True)
        s = per_step["frame"]
        parts = [per_step.get(n, 0.0) for n in names]
        cells = " | ".join(f"{p:.3f}" for p in parts)
        rows.append(f"| {preset} | {size} | {s:.3f} | {1 / s:.1f} | {cells} | {s - sum(parts):.3f} |")
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="edgetam,efficienttam_ti,efficienttam_s,sam2.1_hiera_tiny")
    ap.add_argument("--sizes", default="512,1024")
    ap.add_argument("--dtypes", default="fp32,bf16")
    ap.add_argument("--objects", default="1,2,4")
    ap.add_argument("--objects-at", default="", help="SIZE:N/N,... object counts for some sizes")
    ap.add_argument(
        "--frames", type=int, default=3, help=f"timed frames per row (after {FULL_BANK} untimed ones)"
    )
    ap.add_argument("--no-official", action="store_true", help="masklet rows only")
    ap.add_argument("--steps", default="edgetam:256,edgetam:512", help="PRESET:SIZE rows of the breakdown")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder, work = Path(tmp) / "frames", Path(tmp) / "jobs"
        folder.mkdir()
        work.mkdir()
        clip = write_frames(folder, FULL_BANK + args.frames)
        peak = {
            d: matmul_peak(torch.bfloat16 if d == "bf16" else torch.float32) for d in args.dtypes.split(",")
        }
        rows = speed_rows(args, clip, folder, work, peak)
        steps = step_rows(args, clip)
    cpu = platform.processor() or platform.machine()
    machine = f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    text = "\n".join(
        [
            f"Machine: {machine}. Command: `python benchmarks/bench_edge.py {' '.join(sys.argv[1:])}`. "
            f"Timed: frames {FULL_BANK}..{FULL_BANK + args.frames - 1} of each run (a full memory bank), "
            "median; the official per-frame times exclude reading and resizing frames (its init_state "
            "does that up front), masklet's include them. "
            "Compute floor: the counted matmul / convolution FLOPs of one tracked frame over the matmul "
            f"peak measured at the start ({', '.join(f'{d} {p / 1e12:.2f}' for d, p in peak.items())} "
            "TFLOP/s).",
            "",
            *rows,
            "",
            "Where a tracked frame's time goes (one object, float32, full memory bank, mean seconds per "
            "frame):",
            "",
            *steps,
        ]
    )
    if args.write:
        path = ROOT / "benchmarks" / "RESULTS.md"
        doc = path.read_text()
        start, end = "<!-- edge:start -->", "<!-- edge:end -->"
        if start in doc:
            head, rest = doc.split(start, 1)
            doc = head + start + "\n" + text + "\n" + end + rest.split(end, 1)[1]
        else:
            doc += f"\n## EdgeTAM / EfficientTAM tracking speed\n\n{start}\n{text}\n{end}\n"
        path.write_text(doc)


if __name__ == "__main__":
    main()
