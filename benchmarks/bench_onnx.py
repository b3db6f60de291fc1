"""ONNX Runtime vs PyTorch on this CPU: set_image and a tracked frame (1 and 2 objects), same weights.

    python benchmarks/bench_onnx.py [--image-size 1024] [--frames 9] [--repeats 3] [--write]

One seeded checkpoint (official format, object-score head spread so that objects stay present, as in
bench_video.py) runs as: masklet PyTorch float32; PyTorch bfloat16 (the heavy modules, ``dtype="bf16"``);
the ONNX backend in float32 (``masklet export onnx`` of the same model, run by onnxruntime); and the
same export with ``image_encoder.onnx`` replaced by onnxruntime's dynamic int8 quantization (int8
weights, activations quantized on the fly). set_image: median of ``--repeats`` calls on truck.jpg after
a warm-up. Tracked frame: bench_video's session (objects prompted on frame 0, then one propagation),
mean seconds per frame over the frames whose memory bank is full. IoU: the smallest mask IoU against
PyTorch float32 over 3 clicks and a box on the photo, and over every tracked object-frame.
``--write`` updates benchmarks/RESULTS.md between ``<!-- onnx:start -->`` and ``<!-- onnx:end -->``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_image import image_prompts, min_mask_iou, predict_masks, time_once  # noqa: E402
from bench_video import FULL_BANK, clip_folder, command_line, machine, min_iou, run_session, write_section  # noqa: E402
from compute_floor import matmul_peak  # noqa: E402

from masklet import ImagePredictor, build_model  # noqa: E402
from masklet.export.onnx_export import export_onnx  # noqa: E402
from masklet.inference.video import VideoPredictor  # noqa: E402
from tests.conftest import load_photo  # noqa: E402
from tests.oracle import write_video_checkpoint  # noqa: E402

NO_AUTOCAST = contextlib.nullcontext


def quantized_copy(src: Path, dst: Path) -> Path:
    """``src`` with its image encoder quantized to int8 (dynamic); the other files linked."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.name != "image_encoder.onnx":
            (dst / f.name).symlink_to(f.resolve())
    out = dst / "image_encoder.onnx"
    quantize_dynamic(str(src / "image_encoder.onnx"), str(out), weight_type=QuantType.QInt8)
    # the backend checks that every file comes from the export its manifest describes
    meta = {p.key: p.value for p in onnx.load(str(src / "image_encoder.onnx")).metadata_props}
    proto = onnx.load(str(out))
    onnx.helper.set_model_props(proto, meta)
    onnx.save(proto, str(out))
    return dst


def measure(label: str, model, args, image, clip: Path, reference: dict | None) -> dict:
    predictor = ImagePredictor(model)
    predictor.set_image(image)  # warm-up
    times = [time_once(lambda: predictor.set_image(image)) for _ in range(args.repeats)]
    masks = predict_masks(predictor, image_prompts(*image.shape[:2]), NO_AUTOCAST)
    runs = {n: run_session(VideoPredictor(model, fill_hole_area=0), clip, NO_AUTOCAST, n) for n in (1, 2)}
    row = {"label": label, "image": statistics.median(times), "masks": masks, "runs": runs}
    row["video"] = {n: r.per_frame() for n, r in runs.items()}
    if reference is not None:
        row["image_iou"] = min_mask_iou(masks, reference["masks"])
        row["video_iou"] = min(min_iou(runs[n], reference["runs"][n]) for n in (1, 2))
    print(
        f"{label}: set_image {row['image']:.3f} s; tracked frame {row['video'][1]:.3f} s (1 object), "
        f"{row['video'][2]:.3f} s (2 objects); min IoU vs fp32 "
        f"{row.get('image_iou', 1.0):.4f} / {row.get('video_iou', 1.0):.4f}",
        flush=True,
    )
    return row


def report(args, rows: list[dict], clip: str, export_s: float) -> str:
    base = rows[0]
    lines = [
        f"### ONNX Runtime vs PyTorch, {args.preset} at {args.image_size} px, CPU",
        "",
        f"Machine: {machine()}, {torch.get_num_threads()} torch threads (onnxruntime: its default). "
        f"Date: {time.strftime('%Y-%m-%d')}. Command: `{command_line('bench_onnx.py')}`. All rows ran in "
        f"the same process, one after the other; float32 matmul peak measured right after the run: "
        f"{matmul_peak(torch.float32) / 1e12:.2f} TFLOP/s (about 0.46 when the host is quiet).",
        "",
        f"Export of the four files: {export_s:.0f} s. set_image: median of {args.repeats} calls after a "
        f"warm-up (truck.jpg). Tracked frame: {clip}, objects prompted on frame 0, mean s/frame over "
        + (
            "the frames with a full memory bank"
            if args.frames > FULL_BANK
            else "frames 1 on (no full memory bank)"
        )
        + ". Min IoU: masks against PyTorch float32 (4 image prompts / every "
        "tracked object-frame). onnx int8: the image encoder quantized dynamically to int8, the rest "
        "float32.",
        "",
        "| backend | set_image | vs torch fp32 | frame, 1 object | frame, 2 objects | "
        "vs torch fp32 (2 obj) | min IoU image / video |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        iou = f"{r.get('image_iou', 1.0):.4f} / {r.get('video_iou', 1.0):.4f}" if r is not base else "-"
        lines.append(
            f"| {r['label']} | {r['image']:.3f} s | {base['image'] / r['image']:.2f}x | "
            f"{r['video'][1]:.3f} s | {r['video'][2]:.3f} s | "
            f"{base['video'][2] / r['video'][2]:.2f}x | {iou} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="sam2.1_hiera_tiny")
    ap.add_argument("--image-size", type=int, default=1024)
    ap.add_argument("--frames", type=int, default=9, help="clip length (>= 8 to reach a full memory bank)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ckpt = write_video_checkpoint(args.preset, Path(tempfile.gettempdir()) / f"bench-video-{args.preset}.pt")
    image = load_photo("truck.jpg")
    place = {"device": "cpu", "image_size": args.image_size}
    with tempfile.TemporaryDirectory() as tmp:
        clip = clip_folder(Path(tmp) / "clip", args.frames)
        fp32 = build_model(args.preset, ckpt, dtype="fp32", **place)
        t0 = time.perf_counter()
        export_onnx(fp32, Path(tmp) / "fp32", weights=f"checkpoint:{ckpt}")
        export_s = time.perf_counter() - t0
        quantized_copy(Path(tmp) / "fp32", Path(tmp) / "int8")
        models = [
            ("torch fp32", lambda: fp32),
            ("torch bf16", lambda: build_model(args.preset, ckpt, dtype="bf16", **place)),
            ("onnx fp32", lambda: build_model("auto", backend="onnx", onnx_dir=Path(tmp) / "fp32")),
            ("onnx int8 encoder", lambda: build_model("auto", backend="onnx", onnx_dir=Path(tmp) / "int8")),
        ]
        rows: list[dict] = []
        for label, make in models:
            rows.append(measure(label, make(), args, image, Path(tmp) / "clip", rows[0] if rows else None))
    if args.write:
        write_section("onnx", report(args, rows, clip, export_s))


if __name__ == "__main__":
    main()
