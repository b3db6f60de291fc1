"""Seconds per tracked frame of the small families against sam2.1_hiera_tiny, end to end in StreamTracker.

    python benchmarks/bench_edge.py [--presets edgetam,efficienttam_ti,sam2.1_hiera_tiny]
        [--sizes 512,1024] [--dtypes fp32,bf16] [--objects 1,2,4] [--frames 6] [--write]

For each (preset, size, dtype, objects): seeded random weights (the speed does not depend on them),
a StreamTracker shown synthetic 640x480 RGB frames; the objects are clicked on frame 0, then every
further frame is timed from the decoded frame to the masks (preprocess, image encoder, memory
attention, decoder, memory encoder), the first tracked frame excluded as warm-up. Reported: the
median seconds per frame and frames per second. Rows run one after another in one process, so they
share the machine's load at that time. ``--write`` replaces the section between
``<!-- edge:start -->`` and ``<!-- edge:end -->`` of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from masklet.checkpoints import build_model  # noqa: E402
from masklet.inference.stream import StreamTracker  # noqa: E402


def frames(n: int, h: int = 480, w: int = 640) -> list[np.ndarray]:
    """n frames of a disc moving over a gradient."""
    yy, xx = np.mgrid[:h, :w]
    out = []
    for i in range(n):
        img = np.stack([xx * 255 // w, yy * 255 // h, np.full_like(xx, 80)], -1).astype(np.uint8)
        img[(yy - h // 2) ** 2 + (xx - 150 - 12 * i) ** 2 < 60**2] = (230, 40, 30)
        out.append(img)
    return out


def seconds_per_frame(preset: str, size: int, dtype: str, objects: int, n: int) -> float:
    model = build_model(preset, random_seed=0, device="cpu", dtype=dtype, image_size=size)
    tracker = StreamTracker(model)
    clip = frames(n + 2)
    tracker.track(clip[0])
    for k in range(objects):
        tracker.add_points(k + 1, points=[[100 + 120 * k, 240]], labels=[1])
    tracker.track(clip[1])  # warm-up
    times = []
    for f in clip[2:]:
        t = time.perf_counter()
        tracker.track(f)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="edgetam,efficienttam_ti,efficienttam_s,sam2.1_hiera_tiny")
    ap.add_argument("--sizes", default="512,1024")
    ap.add_argument("--dtypes", default="fp32,bf16")
    ap.add_argument("--objects", default="1,2,4")
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    rows = [
        "| preset | input | dtype | objects | s/frame | frames/s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for preset in args.presets.split(","):
        for size in map(int, args.sizes.split(",")):
            for dtype in args.dtypes.split(","):
                for objects in map(int, args.objects.split(",")):
                    s = seconds_per_frame(preset, size, dtype, objects, args.frames)
                    rows.append(f"| {preset} | {size} | {dtype} | {objects} | {s:.3f} | {1 / s:.1f} |")
                    print(rows[-1], flush=True)
    cpu = platform.processor() or platform.machine()
    machine = f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    text = "\n".join(
        [
            f"Machine: {machine}. Command: `python benchmarks/bench_edge.py {' '.join(sys.argv[1:])}`",
            "",
            *rows,
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
