"""Batch runner throughput: the local runner vs Ray with 1 worker and with 2 workers, in one run.

    python benchmarks/bench_batch.py [--clips-per-video 2] [--frames 8] [--image-size 512] [--rounds 2]
                                     [--write]
    python benchmarks/bench_batch.py --flops [--write]

Items: ``--clips-per-video`` clips of ``--frames`` frames from each of ../shared/data/videos (bedroom
960x540 JPEGs; 01_dog, 02_cups, 04_coffee 1280x720 H.264, decoded once into JPEG frame folders), or
synthetic 960x540 clips where ../shared is absent; two objects per clip prompted on frame 0 (a click
and a box), the same ``masklet batch track`` job (palette PNGs + SA-V JSON written per clip) with
seeded random ``--preset`` weights (the same arithmetic as real weights).

Runs, alternated for ``--rounds`` rounds on this machine: the local runner with ``--threads`` torch
threads, Ray with 1 worker of ``--threads`` threads, Ray with 2 workers of 1 thread, and (when
``--threads`` > 1) the local runner and Ray with 1 thread, which leaves a core to Ray's own processes
(the driver's executor, the raylet, Ray Data's helper actors). Ray runs on a local instance with a
CPU per core (at least 2), started once (with a 1-item warm-up run) before the measured runs and reported
apart. The machine is shared: each row has the load average after it, and the ratios use each
runner's best round. From
the status records (each worker's own start and end of every item): start-up = from the call to the
first item's start (the model built; for Ray also the actors started), steady state = first item
start to last item end, item time = the mean of the items' own durations. Ray's overhead per item
(1 worker): the time the worker waits between two items, as a share of the item time; the item time
ratio Ray / local shows whether work inside an actor runs slower.

``--flops``: the compute estimate behind docs/scaling.md: masklet's counted FLOPs of one propagated
frame with a full memory bank for ``--flops-preset`` (default sam2.1_hiera_base_plus) at 1024 with 1
and with 2 objects (matmuls and convolutions, benchmarks/compute_floor.py), and the seconds per frame
of the same frames on this CPU. ``--write`` puts each into benchmarks/RESULTS.md (sections ``batch``
and ``batch-flops``).
"""

from __future__ import annotations

import argparse
import json
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

from masklet.batch import ModelSpec, RunOptions, TrackJob, run_job  # noqa: E402
from masklet.io.frames import open_frames  # noqa: E402

VIDEOS = ROOT.parent / "shared" / "data" / "videos"
SOURCES = ["bedroom", "01_dog.mp4", "02_cups.mp4", "04_coffee.mp4"]
FULL_BANK = 7


def make_dataset(dest: Path, per_video: int, frames: int) -> tuple[Path, Path, str]:
    """Frame-folder clips and their JSONL manifest; returns (videos, manifest, description)."""
    videos = dest / "videos"
    records = []
    found = [VIDEOS / s for s in SOURCES if (VIDEOS / s).exists()]
    for src in found or [None]:
        source = open_frames(str(src)) if src is not None else None
        n = source.num_frames if source is not None else 10 * frames
        for k in range(per_video):
            start = k * (n - frames) // max(per_video - 1, 1)
            name = f"{src.stem if src is not None else 'synthetic'}_{k}"
            folder = videos / name
            folder.mkdir(parents=True)
            for t in range(frames):
                rgb = source.frame(start + t) if source is not None else _frame(start + t)
                Image.fromarray(rgb).save(folder / f"{t:05d}.jpg", quality=92)
            h, w = rgb.shape[:2]
            records.append({"video": name, "object": 1, "points": [[0.45 * w, 0.6 * h]]})
            records.append({"video": name, "object": 2, "box": [0.07 * w, 0.2 * h, 0.37 * w, 0.6 * h]})
        if source is not None:
            source.close()
    manifest = dest / "prompts.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records))
    what = (
        f"{per_video} clips of {frames} frames from each of {', '.join(p.name for p in found)}"
        if found
        else f"{per_video} synthetic 960x540 clips of {frames} frames (../shared is absent)"
    )
    return videos, manifest, what


def io_costs(hw: tuple[int, int]) -> tuple[str, float]:
    """(what decoding a frame costs, seconds to write one frame's PNG + RLEs) on one thread."""
    from masklet.io.exporters import PalettePngWriter
    from masklet.io.masks import encode_rle

    torch.set_num_threads(1)
    clip = VIDEOS / "01_dog.mp4"
    decode = "n/a (../shared is absent)"
    if clip.exists():
        with open_frames(str(clip)) as source:
            source.frame(0)
            t = time.perf_counter()
            for i in range(1, 61):
                source.frame(i)
            ms = 1000 * (time.perf_counter() - t) / 60
        decode = f"{ms:.1f} ms per {source.width}x{source.height} H.264 frame (sequential)"
    h, w = hw
    yy, xx = np.mgrid[:h, :w]
    masks = np.stack([(yy - h / 2) ** 2 + (xx - w / 3) ** 2 < (h / 4) ** 2, abs(xx - 2 * w / 3) < w / 8])
    with tempfile.TemporaryDirectory() as tmp:
        writer = PalettePngWriter(tmp)
        t = time.perf_counter()
        for i in range(20):
            writer.write(i, [1, 2], masks)
            [encode_rle(m) for m in masks]
        write = (time.perf_counter() - t) / 20
    return decode, write


def _frame(t: int) -> np.ndarray:
    """Frame ``t`` of a synthetic 960x540 clip (a smooth image panning right)."""
    from tests.conftest import synthetic_image

    return np.roll(synthetic_image(540, 960, seed=3), 8 * t, axis=1)


def measure(label: str, job, out: Path, spec: ModelSpec, options: RunOptions, round_: int) -> dict:
    t0 = time.time()
    summary = run_job(job, out, spec, options)
    wall = time.time() - t0
    if not summary.ok:
        raise SystemExit(f"{label}: items failed: {summary.failed}")
    records = [json.loads(p.read_text()) for p in (out / ".masklet" / "status").glob("*.json")]
    first = min(r["started"] for r in records)
    last = max(r["finished"] for r in records)
    row = {
        "label": label,
        "round": round_,
        "workers": options.workers,
        "threads": options.threads_per_worker,
        "items": len(records),
        "frames": sum(r["frames"] for r in records),
        "wall": wall,
        "startup": first - t0,
        "span": last - first,
        "item": statistics.mean(r["seconds"] for r in records),
        "busy": sum(r["seconds"] for r in records),
        "load": _load(),
    }
    # idle worker time per item (1 worker: the wait between consecutive items)
    row["gap"] = (row["workers"] * row["span"] - row["busy"]) / max(row["items"] - row["workers"], 1)
    print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
    return row


def configs(threads: int) -> list[tuple[str, int, int]]:
    """(runner, workers, threads per worker) of one round: every core to one worker, local and on Ray;
    two Ray workers of one thread; and one worker of one thread, local and on Ray (a core left free)."""
    rows = [("local runner", 1, threads), ("Ray", 1, threads), ("Ray", 2, 1)]
    return rows + ([("local runner", 1, 1), ("Ray", 1, 1)] if threads > 1 else [])


def run_throughput(args) -> None:
    import ray

    from masklet.batch.ray_runner import _loopback_only

    spec = ModelSpec(
        args.preset, dtype=args.dtype, device="cpu", image_size=args.image_size, random_weights=True
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        videos, manifest, what = make_dataset(tmp / "data", args.clips_per_video, args.frames)
        job = TrackJob(str(videos), str(manifest))
        t0 = time.time()
        with _loopback_only(ray):
            cpus = max(os.cpu_count() or 1, args.threads, 2)  # room for every configuration's workers
            ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        # Ray Data starts its own helper actors with the first dataset of a session: not in the rows
        run_job(job, tmp / "warm-up", spec, RunOptions(ray=True, limit=1, threads_per_worker=1))
        ray_start = time.time() - t0
        rows = []
        try:
            for r in range(args.rounds):
                for i, (label, workers, threads) in enumerate(configs(args.threads)):
                    options = RunOptions(ray=label == "Ray", workers=workers, threads_per_worker=threads)
                    rows.append(measure(label, job, tmp / f"run{r}-{i}", spec, options, r + 1))
        finally:
            ray.shutdown()
        same = _same_outputs(tmp / "run0-0", tmp / "run0-1")
    section = report(args, what, rows, ray_start, same)
    print(section)
    if args.write:
        from bench_video import write_section

        write_section("batch", section)


def _same_outputs(a: Path, b: Path) -> bool:
    def files(root: Path) -> dict:
        return {
            p.relative_to(root): p.read_bytes()
            for p in root.rglob("*")
            if p.is_file() and ".masklet" not in p.relative_to(root).parts
        }

    return files(a) == files(b)


def _dtype_name(value: str) -> str:
    """``bf16`` / ``fp32``, and what ``auto`` chose on this CPU."""
    from masklet.runtime import parse_dtype

    name = {torch.float32: "fp32", torch.bfloat16: "bf16"}[parse_dtype(value, "cpu")]
    return f"{name} (auto)" if value == "auto" else name


def _load() -> str:
    """The 1-minute load average (other processes share this machine's cores)."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def report(args, what: str, rows: list[dict], ray_start: float, same: bool) -> str:
    from bench_video import command_line, machine

    def best(label: str, workers: int, threads: int) -> dict | None:
        """That runner's round with the shortest steady state (the least disturbed by other jobs)."""
        runs = [r for r in rows if (r["label"], r["workers"], r["threads"]) == (label, workers, threads)]
        return min(runs, key=lambda r: r["span"]) if runs else None

    lines = [
        f"### masklet batch track: local runner vs Ray, {args.preset} at {args.image_size}, "
        f"{_dtype_name(args.dtype)}",
        "",
        f"Machine: {machine()}. Date: {time.strftime('%Y-%m-%d')}. "
        f"Command: `{command_line('bench_batch.py')}`",
        "",
        f"Items: {what}; two objects per clip (a click and a box on frame 0), tracked and written as "
        "palette PNGs + SA-V JSON; seeded random weights. The runners alternate, "
        f"{args.rounds} round(s), one run per row in this order. Start-up: from the call to the first "
        "item's start (model built; Ray: actors started too). Steady state: first item start to last "
        "item end; items/s and frames/s over it. Item time: mean of the items' own durations. Worker "
        "idle: worker time not spent in items, per item (1 worker: the wait between two items). Ray "
        f"instance and Ray Data's first dataset (a 1-item warm-up): {ray_start:.1f} s, not in the rows. "
        f"Load: the 1-minute load average after the run, on {os.cpu_count()} cores shared with other jobs.",
        "",
        "| round | runner | workers x threads | wall | start-up | steady state | items/s | frames/s | "
        "item time | worker idle | load |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['round']} | {r['label']} | {r['workers']} x {r['threads']} | {r['wall']:.1f} s | "
            f"{r['startup']:.1f} s | {r['span']:.1f} s | {r['items'] / r['span']:.3f} | "
            f"{r['frames'] / r['span']:.2f} | {r['item']:.2f} s | {max(r['gap'], 0.0) * 1000:.0f} ms | "
            f"{r['load']} |"
        )
    gaps = [r["gap"] / r["item"] for r in rows if r["label"] == "Ray" and r["workers"] == 1]
    lines += [
        "",
        f"- Ray's scheduling overhead per item (1 worker, the wait between two items; largest run): "
        f"{100 * max(gaps):.2f}% of the item time (target < 5%: {'met' if max(gaps) < 0.05 else 'NOT met'})",
    ]
    for threads in sorted({args.threads, 1}, reverse=True):
        local, ray1 = best("local runner", 1, threads), best("Ray", 1, threads)
        if local and ray1:
            lines.append(
                f"- {threads} thread(s), best rounds: steady state per item, Ray 1 worker / local "
                f"{ray1['span'] / local['span']:.3f} (item time inside the actor / in this process "
                f"{ray1['item'] / local['item']:.3f})"
            )
    local, ray2 = best("local runner", 1, args.threads), best("Ray", 2, 1)
    lines += [
        f"- throughput, Ray 2 workers x 1 thread / local runner x {args.threads} threads (best rounds): "
        f"{local['span'] / ray2['span']:.3f}",
        f"- local and Ray outputs byte-identical: {'yes' if same else 'NO'}",
    ]
    return "\n".join(lines)


def run_flops(args) -> None:
    """FLOPs and CPU seconds of one propagated frame (full memory bank) with 1 and 2 objects."""
    from bench_video import command_line, machine, prompt_objects
    from compute_floor import count_flops

    from masklet.inference.video import VideoPredictor

    spec = ModelSpec(args.flops_preset, dtype=args.dtype, device="cpu", image_size=1024, random_weights=True)
    model = spec.build()
    torch.set_num_threads(args.threads)
    frames = [_frame(t) for t in range(FULL_BANK + 5)]
    rows, load = [], [_load()]
    for objects in (1, 2):
        predictor = VideoPredictor(model)
        with torch.inference_mode():
            state = predictor.init_state(frames)
            prompt_objects(predictor, state, objects)
            it = predictor.propagate_in_video(state)
            seconds = []
            for _ in range(len(frames) - 1):
                t = time.perf_counter()
                next(it)
                seconds.append(time.perf_counter() - t)
            flops = count_flops(lambda it=it: next(it))  # the last frame, memory bank full
            state.close()
        rows.append((objects, flops, statistics.mean(seconds[FULL_BANK:])))
        print(objects, flops, rows[-1][2], flush=True)
    (_, f1, s1), (_, f2, s2) = rows
    decode, write = io_costs(tuple(frames[0].shape[:2]))
    load.append(_load())
    section = "\n".join(
        [
            f"### Compute per tracked frame: {args.flops_preset} at 1024, {_dtype_name(args.dtype)} "
            "(for docs/scaling.md)",
            "",
            f"Machine: {machine()}, {args.threads} threads. Date: {time.strftime('%Y-%m-%d')}. "
            f"Command: `{command_line('bench_batch.py')}`",
            "",
            "FLOPs: masklet's matmuls and convolutions of one propagated frame with a full memory bank, "
            f"counted (benchmarks/compute_floor.py). CPU s/frame: mean over frames {FULL_BANK}.."
            f"{len(frames) - 2} of the same session (memory bank full; 960x540 synthetic frames, seeded "
            f"random weights). 1-minute load average before / after: {load[0]} / {load[1]} on "
            f"{os.cpu_count()} cores.",
            "",
            "| objects | GFLOP per frame | CPU s/frame |",
            "| --- | --- | --- |",
            f"| 1 | {f1 / 1e9:.0f} | {s1:.2f} s |",
            f"| 2 | {f2 / 1e9:.0f} | {s2:.2f} s |",
            "",
            f"- per frame: {(2 * f1 - f2) / 1e9:.0f} GFLOP for the frame (image encoder) + "
            f"{(f2 - f1) / 1e9:.0f} GFLOP per object (memory attention, decoder, memory encoder)",
            f"- the CPU side of a frame, one thread: decoding {decode}; writing a 2-object palette PNG "
            f"and its two RLEs for a {frames[0].shape[1]}x{frames[0].shape[0]} frame {1000 * write:.1f} ms",
        ]
    )
    print(section)
    if args.write:
        from bench_video import write_section

        write_section("batch-flops", section)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips-per-video", type=int, default=2)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--preset", default="sam2.1_hiera_tiny")
    p.add_argument("--image-size", type=int, default=512)
    p.add_argument("--dtype", default="auto", help="fp32, bf16 or auto (bf16 where this CPU runs it fast)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads (default: all)")
    p.add_argument("--rounds", type=int, default=2, help="rounds of the three runners, alternated")
    p.add_argument("--flops", action="store_true", help="count the per-frame FLOPs for docs/scaling.md")
    p.add_argument("--flops-preset", default="sam2.1_hiera_base_plus")
    p.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = p.parse_args()
    if args.flops:
        run_flops(args)
    else:
        run_throughput(args)


if __name__ == "__main__":
    main()
