"""First-click latency in masklet studio, without and with encoding ahead, in one run.

    python benchmarks/bench_studio.py [--frames 5] [--rhythm 3,1.5 --rhythm 8,2] [--rounds 2] [--write]

A labeler's rhythm, through the studio's HTTP routes (in-process, the calls the browser makes): look at
a frame (GET its FrameState, which the app does on every frame), take DWELL seconds to find the object,
click it (the first click on that frame: timed), take PAUSE seconds, click again (a later click: timed),
take PAUSE seconds, move to the next frame (``--rhythm DWELL,PAUSE``, several allowed: encoding ahead
can only keep up when a frame takes the user longer than the image encoder takes for one frame). The
same model and frames run with ``prefetch 0`` (the studio
before encoding ahead: a first click runs the image encoder) and ``--prefetch N`` (the default of
``masklet studio``), each pass in a fresh project and feature cache, passes alternated, ``--rounds``
of each. Once on a video (the first frames of bedroom, 960x540) and once on an image set (the three
photos and bedroom frames, as separate images).

Reported: the median first click on the frames after the first (the first frame of a pass has nothing
before it to be encoded during), the median later click, their ratio, and the first frame's first
click. Equivalence in the same run: every click's mask must be the same with and without encoding
ahead. ``--write`` updates benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import shutil
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
from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402

from masklet import build_model  # noqa: E402
from masklet.studio.engine import Workspace  # noqa: E402
from masklet.studio.media import inspect_path  # noqa: E402
from masklet.studio.server import create_app  # noqa: E402
from masklet.studio.store import Project  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
BEDROOM = DATA / "videos" / "bedroom"
PHOTOS = [DATA / "images" / name for name in ("truck.jpg", "groceries.jpg", "cars.jpg")]


def make_media(tmp: Path, frames: int) -> tuple[Path, Path, str]:
    """(video frame folder, image folder, description); synthetic pictures when the samples are absent."""
    video, images = tmp / "bedroom", tmp / "photos"
    video.mkdir()
    images.mkdir()
    real = sorted(BEDROOM.glob("*.jpg")) if BEDROOM.is_dir() else []
    if len(real) >= frames and all(p.is_file() for p in PHOTOS):
        for i, src in enumerate(real[:frames]):
            shutil.copy(src, video / f"{i:05d}.jpg")
            shutil.copy(src, images / f"bedroom_{i:02d}.jpg")
        for src in PHOTOS:
            shutil.copy(src, images / src.name)
        return video, images, f"bedroom frames 0..{frames - 1} (960x540); image set: 3 photos + those frames"
    rng = np.random.default_rng(0)
    for i in range(frames):
        pixels = rng.integers(0, 256, (540, 960, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(video / f"{i:05d}.jpg")
        Image.fromarray(pixels).save(images / f"img_{i:02d}.jpg")
    return video, images, f"synthetic noise frames (960x540), {frames} (the sample data was not found)"


def one_pass(model, folder: Path, prefetch: int, frames: int, rhythm: tuple[float, float], tmp: Path):
    """[(frame, first click s, later click s, first mask, later mask)] of one pass through the frames."""
    project_dir = Path(tempfile.mkdtemp(dir=tmp))
    project = Project.create(project_dir)
    spec = inspect_path(folder)
    project.add_media(
        spec.kind, str(spec.source), spec.name, spec.num_frames, spec.width, spec.height, spec.fps,
        list(spec.frames) if spec.frames else None,
    )  # fmt: skip
    ws = Workspace(project, model, prefetch=prefetch)
    dwell, pause = rhythm
    rows = []
    try:
        with TestClient(create_app(ws)) as client:
            for t in range(min(frames, spec.num_frames)):
                state = client.get(f"/api/media/1/frames/{t}").json()
                w, h = state["width"], state["height"]
                time.sleep(dwell)
                times, masks = [], []
                for k, (x, y) in enumerate([(w * 0.5, h * 0.5), (w * 0.55, h * 0.45)]):
                    if k:
                        time.sleep(pause)
                    body = {"object_id": None, "prompt": {"kind": "point", "x": x, "y": y, "positive": True}}
                    t0 = time.perf_counter()
                    r = client.post(f"/api/media/1/frames/{t}/prompts", json=body)
                    times.append(time.perf_counter() - t0)
                    if r.status_code != 200:
                        raise RuntimeError(f"click failed: {r.text}")
                    masks.append(ws.project.mask(r.json()["object_id"], t))
                if spec.kind == "images":  # a new object per image: finish this one
                    client.post(f"/api/objects/{r.json()['object_id']}/finish", json={"label": "thing"})
                rows.append((t, times[0], times[1], masks[0], masks[1]))
                time.sleep(pause)
    finally:
        ws.close()
        project.close()
    return rows


def summarise(passes: list[list[tuple]]) -> dict:
    following = [r[1] for rows in passes for r in rows[1:]]
    later = [r[2] for rows in passes for r in rows]
    cold = [rows[0][1] for rows in passes]
    return {
        "first": statistics.median(following),
        "later": statistics.median(later),
        "cold": statistics.median(cold),
        "n": len(following),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="sam2.1_hiera_tiny")
    ap.add_argument("--dtype", default="auto", help="as masklet studio: auto (bf16 where fast), fp32, bf16")
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument(
        "--rhythm",
        action="append",
        help="DWELL,PAUSE seconds: from showing a frame to the first click, between clicks (default: "
        "3,1.5 and 8,2)",
    )
    ap.add_argument("--prefetch", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    rhythms = [tuple(float(v) for v in r.split(",")) for r in (args.rhythm or ["3,1.5", "8,2"])]
    from masklet.runtime import parse_dtype

    dtype = parse_dtype(args.dtype, "cpu")
    model = build_model(args.preset, random_seed=0, device="cpu", dtype=dtype)
    results, failures = {}, []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        video, images, what = make_media(tmp, args.frames)
        for rhythm in rhythms:
            for kind, folder in (("video", video), ("image set", images)):
                passes = {0: [], args.prefetch: []}
                for r in range(args.rounds):
                    for prefetch in (0, args.prefetch):
                        rows = one_pass(model, folder, prefetch, args.frames, rhythm, tmp)
                        passes[prefetch].append(rows)
                        print(
                            f"{rhythm} {kind:9} round {r} prefetch {prefetch}: first clicks "
                            + " ".join(f"{row[1]:.2f}" for row in rows)
                            + " | later "
                            + " ".join(f"{row[2]:.2f}" for row in rows),
                            flush=True,
                        )
                for a, b in zip(passes[0], passes[args.prefetch]):
                    for ra, rb in zip(a, b):
                        if not (np.array_equal(ra[3], rb[3]) and np.array_equal(ra[4], rb[4])):
                            failures.append(f"{kind} frame {ra[0]}: masks differ with encoding ahead")
                results[rhythm, kind] = {p: summarise(v) for p, v in passes.items()}
    if failures:
        sys.exit("; ".join(failures[:3]) + ": the timings compare different results, not written")
    for (rhythm, kind), by_mode in results.items():
        for p, s in by_mode.items():
            print(
                f"{rhythm} {kind:9} prefetch {p}: first click {s['first']:.3f} s, later click "
                f"{s['later']:.3f} s, ratio {s['first'] / s['later']:.2f}, first frame {s['cold']:.3f} s",
                flush=True,
            )
    if args.write:
        _write(args, dtype, what, results)


def _write(args, dtype, what: str, results: dict) -> None:
    name = "bfloat16" if dtype == torch.bfloat16 else "float32"
    lines = [
        f"### masklet studio: first-click latency, {args.preset} ({name}) at 1024x1024, encoding ahead "
        f"off vs {args.prefetch} frames",
        "",
        f"Machine: {machine()}, {torch.get_num_threads()} threads, shared with other work while it ran. "
        f"Date: {time.strftime('%Y-%m-%d')}. Command: `{command_line('bench_studio.py')}`",
        "",
        f"Media: {what}. A labeler's rhythm through the studio's routes (in-process): show a frame, DWELL "
        "s later click (first click), PAUSE s later click again (later click), PAUSE s later the next "
        f"frame; {args.frames} frames per pass, a fresh project and feature cache per pass, passes "
        f"alternated (off, on), {args.rounds} of each. Medians: first clicks on the frames after the first "
        "of a pass; later clicks on every frame; the first frame's first click apart (nothing was shown "
        "before it). Every click's mask is the same in both modes (checked in the run). Seeded random "
        "weights.",
        "",
        "| DWELL, PAUSE | media | encoding ahead | first click (median) | later click (median) | first / "
        "later | first frame's first click |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for (rhythm, kind), by_mode in results.items():
        for p, s in by_mode.items():
            mode = "off" if p == 0 else f"{p} frames"
            lines.append(
                f"| {rhythm[0]:g} s, {rhythm[1]:g} s | {kind} | {mode} | {s['first']:.3f} s | "
                f"{s['later']:.3f} s | {s['first'] / s['later']:.2f}x | {s['cold']:.3f} s |"
            )
    lines.append("")
    for (rhythm, kind), by_mode in results.items():
        off, on = by_mode[0], by_mode[args.prefetch]
        lines.append(
            f"- {rhythm[0]:g} s, {rhythm[1]:g} s, {kind}: first click {off['first']:.3f} s -> "
            f"{on['first']:.3f} s ({off['first'] / on['first']:.1f}x faster); later clicks "
            f"{off['later']:.3f} s -> {on['later']:.3f} s"
        )
    write_section("bench_studio", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
