"""masklet against an earlier masklet: the same measurements at two git revisions, alternated in one run.

    python benchmarks/bench_revisions.py --base REV [--rounds 3] [--frames 9] [--objects 1]
        [--precision fp32,bf16] [--write]

For "no slower than before" on a machine whose speed drifts: a run against the reference measures a
ratio that moves with the load, while the same code at two revisions, run alternately (base, this
checkout, this checkout, base, ...) in fresh processes, shares the load. REV is checked out into a
temporary git worktree. Each process builds sam2.1_hiera_tiny from one seeded checkpoint (official
format, written once, object-score head spread as in bench_video.py) through the public API both
revisions share (build_model, ImagePredictor, VideoPredictor) and measures, per precision:

- set_image: median of 3 calls on the truck photo (synthetic where ../shared is absent) after a warm-up;
- video: bench_video.py's clip and session with ``--objects`` objects, the mean seconds per frame over
  the frames whose memory bank is full (index >= 7).

Reported: the median over rounds per revision and this checkout's time over the base's.
``--write`` updates benchmarks/RESULTS.md between ``<!-- revisions:start -->`` and ``<!-- revisions:end -->``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(args) -> None:
    """One measurement in this process, with ``masklet`` imported from PYTHONPATH's revision."""
    import numpy as np
    import torch

    import masklet
    from masklet.checkpoints import build_model
    from masklet.inference.image import ImagePredictor
    from masklet.inference.video import VideoPredictor

    image = np.load(args.image)
    model = build_model("sam2.1_hiera_tiny", args.checkpoint, device="cpu", dtype=args.dtype)
    pred = ImagePredictor(model)
    pred.set_image(image)
    times = []
    for _ in range(3):
        t = time.perf_counter()
        pred.set_image(image)
        times.append(time.perf_counter() - t)
    video = VideoPredictor(model, fill_hole_area=0)
    with torch.inference_mode():
        state = video.init_state(args.clip)
        h, w = state.video_height, state.video_width
        for k in range(args.objects):
            x = w * (0.3 + 0.4 * k / max(1, args.objects - 1))
            video.add_new_points_or_box(state, 0, k + 1, points=[[x, 0.55 * h]], labels=[1])
        frame_times, t = [], time.perf_counter()
        for frame, _, _ in video.propagate_in_video(state):
            now = time.perf_counter()
            if frame >= 7:
                frame_times.append(now - t)
            t = now
    out = {"set_image": statistics.median(times), "video": statistics.fmean(frame_times)}
    print(json.dumps({**out, "module": masklet.__file__}))


def measure(root: Path, args, dtype: str, files: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": str(root)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--dtype", dtype]
    cmd += ["--objects", str(args.objects), *(f"--{k}={v}" for k, v in files.items())]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=root)
    if proc.returncode:
        raise SystemExit(f"the run at {root} failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if not Path(out.pop("module")).resolve().is_relative_to(root.resolve()):
        raise SystemExit(f"the run meant for {root} imported another masklet: check PYTHONPATH / installs")
    return out


def prepare(tmp: Path, frames: int) -> dict:
    sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
    import numpy as np
    from bench_video import clip_folder

    from tests.conftest import load_photo
    from tests.oracle import write_video_checkpoint

    np.save(tmp / "image.npy", load_photo("truck.jpg"))
    clip = tmp / "clip"
    described = clip_folder(clip, frames)
    ckpt = write_video_checkpoint("sam2.1_hiera_tiny", tmp / "tiny.pt")
    return {"image": tmp / "image.npy", "clip": clip, "checkpoint": ckpt, "described": described}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", help="the earlier revision (any git revision name)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--frames", type=int, default=9)
    ap.add_argument("--objects", type=int, default=1)
    ap.add_argument("--precision", default="fp32,bf16")
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for name in ("dtype", "image", "clip", "checkpoint"):
        ap.add_argument(f"--{name}", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    if not args.base:
        ap.error("--base REV is required (e.g. --base HEAD~10)")

    def git(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True)

    base = git("rev-parse", "--short", args.base)
    if base.returncode:
        ap.error(f"--base {args.base!r} is not a revision of this repository: {base.stderr.strip()}")
    head = git("rev-parse", "--short", "HEAD")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tree = tmp / "base"
        if git("worktree", "add", "-q", "--detach", str(tree), args.base).returncode:
            raise SystemExit(f"could not check out {args.base} into {tree}")
        try:
            files = prepare(tmp, args.frames)
            described = files.pop("described")
            runs = {(rev, d): [] for rev in ("base", "head") for d in args.precision.split(",")}
            for r in range(args.rounds):
                order = [("base", tree), ("head", ROOT)]
                for rev, root in order if r % 2 == 0 else order[::-1]:
                    for d in args.precision.split(","):
                        runs[rev, d].append(measure(root, args, d, files))
                        print(rev, d, runs[rev, d][-1], flush=True)
        finally:
            git("worktree", "remove", "--force", str(tree))
    lines = [
        f"Base {base.stdout.strip()} ({args.base}) vs {head.stdout.strip()} (this checkout); "
        f"{args.rounds} rounds, alternated; video: {described}, {args.objects} object(s). "
        f"Command: `python benchmarks/bench_revisions.py {' '.join(sys.argv[1:])}`",
        "",
        "| precision | measure | base (median) | this checkout (median) | this / base |",
        "| --- | --- | --- | --- | --- |",
    ]
    for d in args.precision.split(","):
        for key, label in (("set_image", "set_image s"), ("video", "s per tracked frame")):
            b = statistics.median(x[key] for x in runs["base", d])
            h = statistics.median(x[key] for x in runs["head", d])
            lines.append(f"| {d} | {label} | {b:.3f} | {h:.3f} | {h / b:.2f} |")
    print("\n".join(lines))
    if args.write:
        from bench_video import write_section

        write_section("revisions", "### masklet against an earlier revision\n\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
