"""Any length in bounded memory: masklet's VideoPredictor on 100 / 1000 / 3000-frame 720p H.264 videos.

    python benchmarks/bench_long_video.py [--lengths 100,1000,3000] [--window 8] [--workdir DIR] [--write]

The videos are built once in ``--workdir``: ../shared/data/videos/01_dog.mp4, 02_cups.mp4 and
04_coffee.mp4 (1280x720 H.264, 30 fps) played back to back, as often as needed, and cut at the
length, by copying their packets into one re-timed stream (no re-encoding). Where ../shared is absent
(or with ``--synthetic``) a 1280x720 clip of moving shapes is encoded with libx264 once and looped
the same way.

Each length runs in a fresh subprocess: ``VideoPredictor(build_model(preset, ckpt))`` with a seeded
random checkpoint in the official format, ``init_state(path)`` (timed), a click on the middle frame,
``propagate_in_video`` over the ``--window`` frames after it; then the process's peak RSS
(``getrusage(RUSAGE_SELF).ru_maxrss``). For contrast, the official predictor's ``init_state`` loads
every frame as a float32 (3, 1024, 1024) tensor: ``num_frames * 3 * 1024 * 1024 * 4`` bytes -- an
estimate computed from that formula, not measured.

Acceptance it demonstrates: for 3000 frames init_state < 5 s and peak RSS < 2 GB, and peak RSS flat
across lengths (it varies only within the bounded frame cache, by where the middle frame falls in
its keyframe interval). ``--write`` updates benchmarks/RESULTS.md between
``<!-- long-video:start/end -->``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from masklet.checkpoints import build_model  # noqa: E402
from masklet.inference.video import VideoPredictor  # noqa: E402
from masklet.io.frames import open_frames  # noqa: E402

VIDEOS = ROOT.parent / "shared" / "data" / "videos"
SHARED_CLIPS = [VIDEOS / name for name in ("01_dog.mp4", "02_cups.mp4", "04_coffee.mp4")]
INIT_LIMIT_S = 5.0
RSS_LIMIT_BYTES = 2 * 10**9
MIB = 2**20


# ---------------------------------------------------------------------- building the videos
def remux_concat(sources: list[Path], num_frames: int, dest: Path) -> None:
    """Write the first ``num_frames`` frames of ``sources`` played in a loop into ``dest``, without
    re-encoding: every packet of the one video stream of each input goes, shifted in time to follow
    the previous input, into one output stream.

    The inputs must share the codec parameters (extradata) and time base. The last input is cut after
    a number of packets in decoding order: every frame kept still has its references (they come
    earlier in decoding order), only some of the last displayed frames may skip a B-frame.
    """
    import av

    tmp = dest.with_name(dest.stem + ".part" + dest.suffix)
    written, offset, k = 0, 0, 0
    with av.open(str(tmp), "w") as out:
        ostream = template = None
        while written < num_frames:
            src = sources[k % len(sources)]
            k += 1
            with av.open(str(src)) as inp:
                istream = inp.streams.video[0]
                if template is None:
                    template = (istream.time_base, bytes(istream.codec_context.extradata or b""))
                    ostream = out.add_stream_from_template(istream)
                elif (istream.time_base, bytes(istream.codec_context.extradata or b"")) != template:
                    raise ValueError(f"{src} has other codec parameters than {sources[0]}: cannot remux")
                packets = [p for p in inp.demux(istream) if p.size]
                if not packets or any(p.pts is None or p.dts is None for p in packets):
                    raise ValueError(f"{src} has packets without timestamps: cannot re-time them")
                start = min(p.pts for p in packets)
                end = max(p.pts + p.duration for p in packets)
                for p in packets[: num_frames - written]:
                    p.pts += offset - start
                    p.dts += offset - start
                    p.stream = ostream
                    out.mux(p)
                written += min(len(packets), num_frames - written)
                offset += end - start
    with open_frames(tmp, cache_bytes=0) as src:
        if src.num_frames != num_frames:
            raise RuntimeError(f"{tmp} has {src.num_frames} frames, expected {num_frames}")
        src.frame(num_frames - 1)  # the cut end decodes
    tmp.rename(dest)


def encode_synthetic(dest: Path, num_frames: int = 300) -> None:
    """A 1280x720 H.264 clip of moving shapes, keyframes every 250 frames and B-frames (as the real
    clips have), 30 fps."""
    import av

    from tests.conftest import synthetic_image

    base = synthetic_image(720, 1280, seed=7)
    tmp = dest.with_name(dest.stem + ".part" + dest.suffix)
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        params = "keyint=250:min-keyint=250:scenecut=0:bframes=3"
        stream.options = {"preset": "veryfast", "crf": "23", "x264-params": params}
        for i in range(num_frames):
            frame = np.roll(base, (3 * i, 8 * i), axis=(0, 1))
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        out.mux(stream.encode())
    tmp.rename(dest)


def long_video(workdir: Path, num_frames: int, synthetic: bool) -> tuple[Path, str]:
    """The cached ``num_frames``-frame 720p video (built on first use) and a description of it."""
    if not synthetic and all(p.is_file() for p in SHARED_CLIPS):
        sources, kind = SHARED_CLIPS, "remux"
        what = "01_dog, 02_cups, 04_coffee (1280x720 H.264) looped and remuxed without re-encoding"
    else:
        base = workdir / "synthetic-base.mp4"
        if not base.exists():
            print(f"encoding {base} (synthetic 1280x720 frames, libx264)", flush=True)
            encode_synthetic(base)
        sources, kind = [base], "synthetic"
        what = "a synthetic 1280x720 H.264 clip (libx264) looped and remuxed without re-encoding"
    path = workdir / f"{kind}-{num_frames}.mp4"
    if not path.exists():
        print(f"building {path}", flush=True)
        remux_concat(sources, num_frames, path)
    return path, what


def checkpoint(workdir: Path, preset: str) -> tuple[Path, str]:
    """A seeded random checkpoint in the official format: the reference's (object-score head spread
    so objects are present) when sam2 is installed, else masklet's own random model."""
    from tests.oracle import reference_error, write_video_checkpoint

    if reference_error() is None:
        path = write_video_checkpoint(preset, workdir / f"{preset}-video.pt")
        return path, "seeded random weights (reference sam2 model, official format)"
    path = workdir / f"{preset}-masklet-random.pt"
    if not path.exists():
        from masklet.modeling.sam2 import SAM2Model
        from masklet.presets import get_preset

        torch.manual_seed(0)
        model = SAM2Model(get_preset(preset))
        with torch.no_grad():
            model.sam_mask_decoder.pred_obj_score_head.layers[2].bias += 2.0  # objects present
        torch.save({"model": model.state_dict()}, path)
    return path, "seeded random weights (masklet model; sam2 not installed), official format"


# ---------------------------------------------------------------------- one length, in a subprocess
def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def current_rss_bytes() -> int | None:
    """Resident memory now (VmRSS), or None where /proc is absent."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def size(nbytes: float | None) -> str:
    if nbytes is None:
        return "n/a"
    if nbytes >= 2**30:
        return f"{nbytes / 2**30:.1f} GiB"
    return f"{nbytes / MIB:.0f} MiB" if nbytes >= 100 * MIB else f"{nbytes / MIB:.1f} MiB"


def child(args) -> None:
    """Build, open, click the middle frame, track ``--window`` frames; print one JSON line."""
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    predictor = VideoPredictor(build_model(args.preset, args.ckpt, device="cpu", image_size=args.image_size))
    build_s = time.perf_counter() - t0
    rss_model = peak_rss_bytes()
    t0 = time.perf_counter()
    state = predictor.init_state(args.child)
    init_s = time.perf_counter() - t0
    decoded_by_init = state.frames.decoded_frames
    n, mid = state.num_frames, state.num_frames // 2
    w, h = state.video_width, state.video_height
    t0 = time.perf_counter()
    predictor.add_new_points_or_box(state, mid, 1, points=[[0.5 * w, 0.5 * h]], labels=[1])
    tracked = -1  # the prompted frame is yielded first
    for _ in predictor.propagate_in_video(state, start_frame_idx=mid, max_frame_num_to_track=args.window):
        tracked += 1
    track_s = time.perf_counter() - t0
    result = {
        "num_frames": n,
        "size": [w, h],
        "build_s": build_s,
        "init_s": init_s,
        "decoded_by_init": decoded_by_init,
        "prompt_frame": mid,
        "tracked": tracked,
        "track_s": track_s,
        "decoded": state.frames.decoded_frames,
        "frame_cache_bytes": state.frames.cache_nbytes,
        "frame_cache_bound": state.frames.cache_bytes,
        "stored_bytes": state.heavy_bytes(),
        "rss_after_model": rss_model,
        "peak_rss": peak_rss_bytes(),
        "rss_at_end": current_rss_bytes(),
    }
    print(json.dumps(result), flush=True)


def measure(args, video: Path, ckpt: Path) -> dict:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        str(video),
        "--ckpt",
        str(ckpt),
        "--preset",
        args.preset,
        "--window",
        str(args.window),
        "--image-size",
        str(args.image_size),
        "--threads",
        str(args.threads),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"the run on {video} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def official_estimate(num_frames: int, image_size: int) -> int:
    """Bytes of the official predictor's preloaded frames: float32 (3, S, S) each (computed)."""
    return num_frames * 3 * image_size * image_size * 4


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lengths", default="100,1000,3000", help="comma-separated frame counts")
    ap.add_argument("--window", type=int, default=8, help="frames tracked after the prompted one")
    ap.add_argument("--preset", default="sam2.1_hiera_tiny")
    ap.add_argument("--image-size", type=int, default=1024, help="model input side (1024 officially)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "masklet-long-video")
    ap.add_argument("--synthetic", action="store_true", help="use synthetic frames even if ../shared exists")
    ap.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    ap.add_argument("--child", metavar="VIDEO", help=argparse.SUPPRESS)
    ap.add_argument("--ckpt", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    try:
        lengths = [int(x) for x in args.lengths.split(",") if x.strip()]
    except ValueError:
        sys.exit(f"--lengths takes comma-separated frame counts such as 100,1000,3000; got {args.lengths!r}")
    if not lengths or min(lengths) < 2 * args.window + 2 or args.window < 1:
        sys.exit(f"every length must be at least 2 * window + 2 = {2 * args.window + 2} frames (window >= 1)")
    from bench_video import machine, write_section  # the parent only: the child stays lean

    args.workdir.mkdir(parents=True, exist_ok=True)
    ckpt, weights = checkpoint(args.workdir, args.preset)
    print(f"{machine()}; {args.threads} threads; {weights}", flush=True)
    rows = []
    for n in lengths:
        video, what = long_video(args.workdir, n, args.synthetic)
        r = measure(args, video, ckpt)
        r["file_bytes"] = video.stat().st_size
        rows.append(r)
        print(
            f"{n:6d} frames ({size(r['file_bytes'])} file): init_state {r['init_s']:.3f} s "
            f"(decoded {r['decoded_by_init']}), peak RSS {size(r['peak_rss'])} "
            f"(after model build {size(r['rss_after_model'])}, at the end {size(r['rss_at_end'])}), "
            f"frame cache {size(r['frame_cache_bytes'])}, tracked {r['tracked']} frames in "
            f"{r['track_s']:.1f} s; the official predictor's frames would take "
            f"{size(official_estimate(n, args.image_size))} (estimate)",
            flush=True,
        )
    checks = acceptance(rows)
    for line in checks:
        print(line)
    if args.write:
        write_section("long-video", report(args, what, weights, rows, checks))


def acceptance(rows: list[dict]) -> list[str]:
    longest = max(rows, key=lambda r: r["num_frames"])
    rss = [r["peak_rss"] for r in rows]
    n = longest["num_frames"]
    return [
        f"{n} frames: init_state {longest['init_s']:.2f} s < {INIT_LIMIT_S:.0f} s: "
        + ("yes" if longest["init_s"] < INIT_LIMIT_S else "NO"),
        f"{n} frames: peak RSS {longest['peak_rss'] / 1e9:.2f} GB < {RSS_LIMIT_BYTES / 1e9:.0f} GB: "
        + ("yes" if longest["peak_rss"] < RSS_LIMIT_BYTES else "NO"),
        f"peak RSS across lengths: {min(rss) / MIB:.0f}..{max(rss) / MIB:.0f} MiB (spread "
        f"{(max(rss) - min(rss)) / MIB:.0f} MiB; the frame cache alone is bounded by "
        f"{rows[0]['frame_cache_bound'] / MIB:.0f} MiB)",
    ]


def report(args, what: str, weights: str, rows: list[dict], checks: list[str]) -> str:
    from bench_video import command_line, machine

    s = args.image_size
    lines = [
        f"### Any length in bounded memory: {args.preset} at {s}x{s}, 720p H.264, click on the middle "
        f"frame, track {args.window} frames",
        "",
        f"Machine: {machine()}, {args.threads} threads. Command: `{command_line('bench_long_video.py')}`",
        "",
        f"Videos: {what}. Each length in a fresh process: build the model ({weights}), init_state "
        "(timed), click the middle frame, propagate over the next frames; peak RSS is the process's "
        "getrusage ru_maxrss (model and torch included), RSS at the end its VmRSS then. "
        "The last column is NOT measured: it is "
        f"num_frames * 3 * {s} * {s} * 4 bytes, the float32 frames the official predictor's init_state "
        "preloads.",
        "",
        "| frames | file | init_state | frames decoded by init_state | peak RSS | RSS at the end "
        "| frame cache | stored masks + memories | click + track "
        "| official preloaded frames (estimate, computed) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        n = r["num_frames"]
        lines.append(
            f"| {n} | {size(r['file_bytes'])} | {r['init_s']:.3f} s | {r['decoded_by_init']} | "
            f"{size(r['peak_rss'])} | {size(r['rss_at_end'])} | {size(r['frame_cache_bytes'])} | "
            f"{r['stored_bytes'] / MIB:.1f} MiB | {r['track_s']:.1f} s | {size(official_estimate(n, s))} |"
        )
    lines += ["", "Acceptance:", ""] + [f"- {c}" for c in checks]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
