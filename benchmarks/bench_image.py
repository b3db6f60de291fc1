"""set_image speed: masklet vs the reference SAM2ImagePredictor, in one run, same weights, same image.

    python benchmarks/bench_image.py [--preset sam2.1_hiera_tiny] [--repeats 5] [--write]

float32: both models in float32. bf16: masklet's model in bfloat16 weights; the reference in float32
weights under ``torch.autocast("cpu", dtype=torch.bfloat16)`` (its README's recipe). Reports the median
and best of ``--repeats`` runs after one warm-up each; ``--write`` updates benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from masklet import ImagePredictor, build_model  # noqa: E402
from tests.conftest import load_photo  # noqa: E402
from tests.oracle import build_reference, reference_error, write_reference_checkpoint  # noqa: E402


def _time(fn, repeats: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="sam2.1_hiera_tiny")
    ap.add_argument("--image", default="truck.jpg")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    err = reference_error()
    if err:
        sys.exit(err)
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    image = load_photo(args.image)
    ckpt = write_reference_checkpoint(args.preset, Path(tempfile.gettempdir()) / f"bench-{args.preset}.pt")
    ref = SAM2ImagePredictor(build_reference(args.preset, ckpt))
    rows = []
    for label, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        ours = ImagePredictor(build_model(args.preset, ckpt, device="cpu", dtype=dtype))
        autocast = (
            torch.autocast("cpu", dtype=torch.bfloat16)
            if dtype == torch.bfloat16
            else contextlib.nullcontext()
        )

        def run_ref(autocast=autocast):
            with torch.inference_mode(), autocast:
                ref.set_image(image)

        t_ref = _time(run_ref, args.repeats)
        t_ours = _time(lambda ours=ours: ours.set_image(image), args.repeats)
        rows.append((label, statistics.median(t_ref), min(t_ref), statistics.median(t_ours), min(t_ours)))
        print(
            f"{label:9} reference {statistics.median(t_ref):.3f} s  "
            f"masklet {statistics.median(t_ours):.3f} s  "
            f"speed-up {statistics.median(t_ref) / statistics.median(t_ours):.2f}x",
            flush=True,
        )

    if args.write:
        _write(args, image.shape, rows)


def _write(args, shape, rows) -> None:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    lines = [
        f"### set_image, {args.preset}, {shape[1]}x{shape[0]} photo ({args.image}) -> 1024x1024",
        "",
        f"Machine: {cpu}, {args.threads} threads, torch {torch.__version__}. "
        "Command: `python benchmarks/bench_image.py "
        f"--preset {args.preset} --repeats {args.repeats} --write`",
        "",
        "| precision | reference median (best) | masklet median (best) | speed-up (median) |",
        "| --- | --- | --- | --- |",
    ]
    for label, rm, rb, om, ob in rows:
        lines.append(f"| {label} | {rm:.3f} s ({rb:.3f}) | {om:.3f} s ({ob:.3f}) | {rm / om:.2f}x |")
    section = "\n".join(lines) + "\n"
    path = ROOT / "benchmarks" / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Benchmark results\n\n"
    marker_start, marker_end = "<!-- bench_image:start -->", "<!-- bench_image:end -->"
    block = f"{marker_start}\n{section}{marker_end}"
    if marker_start in text:
        pre, rest = text.split(marker_start, 1)
        text = pre + block + rest.split(marker_end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
