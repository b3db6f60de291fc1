"""Scoring speed: ``masklet eval score`` on an 80-frame 854x480 sequence with 3 objects, one run.

    python benchmarks/bench_eval.py [--frames 80] [--objects 3] [--repeats 3] [--write]

A synthetic DAVIS-layout sequence (moving ellipses, indexed PNGs) and a perturbed prediction (shifted,
eroded, a few frames lost) are written to a temporary folder. Timed, median of ``--repeats`` after one
untimed run each:

* ``score_folder``: the whole command's work, PNG decoding included;
* masklet metrics: J and F of every object and frame from in-memory masks (:func:`frame_metrics`);
* per-frame loop: the same J and F computed frame by frame the way the official scorers do it
  (boundary map with numpy slicing, dilation with OpenCV's ``cv2.dilate`` and a disk footprint;
  ``scipy.ndimage`` if OpenCV is missing). Its numbers must equal masklet's exactly, or the script
  stops with an error.

``--write`` updates benchmarks/RESULTS.md between ``<!-- eval-speed:start/end -->``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from masklet.eval.metrics import boundary_radius, disk, frame_metrics  # noqa: E402
from masklet.eval.score import score_folder  # noqa: E402

H, W = 480, 854


def sequence(frames: int, objects: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(T, H, W) uint8 ground-truth and predicted id maps."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:H, :W]
    gt = np.zeros((frames, H, W), np.uint8)
    for k in range(1, objects + 1):
        cy, cx = rng.uniform(100, H - 100), rng.uniform(150, W - 150)
        ry, rx = rng.uniform(30, 90), rng.uniform(40, 140)
        vy, vx = rng.normal(0, 1.5, 2)
        for t in range(frames):
            gt[t][((yy - cy - vy * t) / ry) ** 2 + ((xx - cx - vx * t) / rx) ** 2 < 1] = k
    pred = np.roll(gt, (3, -2), axis=(1, 2))
    pred[::7] = np.roll(gt[::7], 9, axis=2)
    pred[5:8] = 0
    noise = rng.random(pred.shape) < 0.002
    pred[noise] = rng.integers(0, objects + 1, int(noise.sum()))
    return gt, pred


def write_pngs(ids: np.ndarray, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    palette = (np.arange(768) * 91 % 256).astype(np.uint8).tobytes()
    for t, frame in enumerate(ids):
        img = Image.fromarray(frame, mode="L").convert("P")
        img.putpalette(palette)
        img.save(folder / f"{t:05d}.png")


def loop_metrics(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """J and F frame by frame, the official scorers' way (see the module doc)."""
    try:
        import cv2

        footprint = disk(boundary_radius(H, W)).astype(np.uint8)

        def dilate(m):
            return cv2.dilate(m.astype(np.uint8), footprint) > 0
    except ImportError:
        from scipy.ndimage import binary_dilation

        footprint = disk(boundary_radius(H, W))

        def dilate(m):
            return binary_dilation(m, footprint)

    def bmap(seg):
        e, s, se = np.zeros_like(seg), np.zeros_like(seg), np.zeros_like(seg)
        e[:, :-1], s[:-1], se[:-1, :-1] = seg[:, 1:], seg[1:], seg[1:, 1:]
        b = (seg ^ e) | (seg ^ s) | (seg ^ se)
        b[-1], b[:, -1] = seg[-1] ^ e[-1], seg[:, -1] ^ s[:, -1]
        b[-1, -1] = False
        return b

    js, fs = [], []
    for p, g in zip(pred, gt):
        union = (p | g).sum()
        js.append(1.0 if union == 0 else (p & g).sum() / union)
        pb, gb = bmap(p), bmap(g)
        n_p, n_g = pb.sum(), gb.sum()
        if n_p == 0 or n_g == 0:
            prec, rec = (1.0 if n_p == 0 else 0.0), (1.0 if n_g == 0 else 0.0)
        else:
            prec, rec = (pb & dilate(gb)).sum() / float(n_p), (gb & dilate(pb)).sum() / float(n_g)
        fs.append(0.0 if prec + rec == 0 else 2 * prec * rec / (prec + rec))
    return np.array(js), np.array(fs)


def timed(fn, repeats: int) -> float:
    fn()
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=80)
    ap.add_argument("--objects", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = ap.parse_args()
    gt, pred = sequence(args.frames, args.objects)
    objects = range(1, args.objects + 1)
    ours = [frame_metrics(pred == k, gt == k) for k in objects]
    theirs = [loop_metrics(pred == k, gt == k) for k in objects]
    for k, m, (j, f) in zip(objects, ours, theirs):
        if not (np.array_equal(m.j, j) and np.array_equal(m.f, f)):
            sys.exit(f"object {k}: masklet's J/F differ from the per-frame loop; not timing a wrong result")
    with tempfile.TemporaryDirectory() as tmp:
        write_pngs(gt, Path(tmp) / "gt" / "seq")
        write_pngs(pred, Path(tmp) / "pred" / "seq")
        t_score = timed(lambda: score_folder(Path(tmp) / "pred", Path(tmp) / "gt", "davis"), args.repeats)
        report = score_folder(Path(tmp) / "pred", Path(tmp) / "gt", "davis")
    t_metrics = timed(lambda: [frame_metrics(pred == k, gt == k) for k in objects], args.repeats)
    t_loop = timed(lambda: [loop_metrics(pred == k, gt == k) for k in objects], max(1, args.repeats // 3))
    what = f"{args.frames} frames of {W}x{H}, {args.objects} objects"
    print(f"{what}: J&F {100 * report.summary.jf_mean:.1f}")
    print(f"score_folder (PNG decoding included): {t_score:.3f} s")
    print(f"masklet metrics (in memory):          {t_metrics:.3f} s")
    print(f"per-frame loop (official way):        {t_loop:.3f} s  ({t_loop / t_metrics:.1f}x masklet)")
    if args.write:
        from bench_video import command_line, machine, write_section

        section = (
            f"### masklet eval score: {what} (synthetic, DAVIS layout)\n\n"
            f"Machine: {machine()}, numpy {np.__version__}. Command: "
            f"`{command_line('bench_eval.py')}`\n\nMedian of {args.repeats} runs after one untimed run. "
            "J and F equal the per-frame loop's exactly.\n\n"
            "| what | seconds |\n| --- | --- |\n"
            f"| score_folder, PNG decoding included | {t_score:.3f} |\n"
            f"| masklet metrics from in-memory masks | {t_metrics:.3f} |\n"
            f"| per-frame loop the official way (OpenCV dilate) | {t_loop:.3f} |\n"
        )
        write_section("eval-speed", section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
