"""``masklet eval vos`` and ``masklet eval image``: run the model on a benchmark, then score it.

masklet eval vos --dataset DAVIS --layout davis --prompt mask --model sam2.1_hiera_tiny --out runs/davis
masklet eval image --annotations instances.json --images val2017/ --clicks 1,5 --out runs/coco.csv
"""

from __future__ import annotations

import sys
from pathlib import Path

from .batch import add_worker_args
from .common import CLIError, add_model_args, load_model


def add_vos_parser(sub) -> None:
    from ..eval.layouts import LAYOUTS
    from ..eval.metrics import PROTOCOLS
    from ..eval.vos_runner import PROMPTS

    p = sub.add_parser(
        "vos",
        help="semi-supervised video object segmentation: prompt, track, score (J&F)",
        description="Prompt every object once on its first annotated frame (ground-truth mask, box, or "
        "1/3/5 simulated clicks), track all objects, write the predictions in the dataset's layout "
        "(OUT/predictions) and score them (OUT/scores.csv, OUT/objects.csv).",
    )
    p.add_argument("--dataset", type=Path, required=True, help="the dataset folder (with Annotations...)")
    p.add_argument("--layout", choices=LAYOUTS, default="davis", help="dataset layout (default: davis)")
    p.add_argument("--prompt", choices=PROMPTS, default="mask", help="how objects are given (default: mask)")
    p.add_argument("--protocol", choices=PROTOCOLS, default=None, help="scorer (default: the layout's own)")
    p.add_argument("--split", default=None, help="split name or .txt list of videos (default: DAVIS val)")
    p.add_argument("--videos", default=None, help="comma-separated video names (default: the whole split)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    add_worker_args(p, resume=False)
    add_model_args(p)


def add_image_parser(sub) -> None:
    p = sub.add_parser(
        "image",
        help="interactive-click mIoU on images (COCO annotations)",
        description="Simulate clicks on every object (first at the object's center, then at the center "
        "of the largest error) and report the mean IoU after the given numbers of clicks.",
    )
    p.add_argument("--annotations", type=Path, required=True, help="COCO instances JSON (RLE or polygons)")
    p.add_argument("--images", type=Path, required=True, help="folder of the images it names")
    p.add_argument("--clicks", default="1,5", help="click counts to report (default: 1,5)")
    p.add_argument("--max-images", type=int, default=None, help="only the first N annotated images")
    p.add_argument("--min-area", type=int, default=1, help="skip objects smaller than this (pixels)")
    p.add_argument("--out", type=Path, default=None, help="per-object CSV of IoU after each click")
    add_model_args(p)


def _bar(desc: str, unit: str):
    from tqdm import tqdm

    return tqdm(desc=desc, unit=unit, file=sys.stderr, disable=None, leave=False)


def cmd_vos(args) -> int:
    from ..eval.layouts import open_dataset
    from ..eval.score import DEFAULT_PROTOCOL, score_folder, write_csv
    from ..eval.vos_runner import run_vos
    from ..inference.video import VideoPredictor

    if args.out.exists() and not args.out.is_dir():
        raise CLIError(f"--out {args.out} is a file; expected a folder")
    dataset = open_dataset(args.dataset, args.layout, args.split)  # input errors before the model loads
    videos = None if args.videos is None else [v.strip() for v in args.videos.split(",") if v.strip()]
    if videos is not None:
        unknown = [v for v in videos if v not in dataset.videos()]
        if unknown or not videos:
            raise CLIError(
                f"--videos: {unknown or args.videos!r} not in the dataset ({len(dataset.videos())} videos)"
            )
    for v in videos or dataset.videos():
        dataset.image_paths(v)
    pred_dir = args.out / "predictions"
    protocol = args.protocol or DEFAULT_PROTOCOL.get(args.layout, "davis")
    # DAVIS 2017 scores only the objects of the first frame; SA-V / MOSE prompt late ones too
    late = protocol != "davis"
    if args.ray is not False or args.workers > 1:
        model_name, weights = _run_distributed(args, videos, pred_dir, late)
    else:
        model, weights = load_model(args)
        model_name = model.cfg.name
        with _bar("tracking", "video") as bar:

            def progress(done: int, total: int, video: str) -> None:
                bar.total = total
                bar.set_postfix_str(video, refresh=False)
                bar.update(1)

            run_vos(
                VideoPredictor(model), dataset, pred_dir, args.prompt, videos, progress, late_objects=late
            )
    split = args.split
    if videos is not None:
        split = args.out / "videos.txt"
        split.write_text("\n".join(videos) + "\n")
    report = score_folder(pred_dir, args.dataset, args.layout, protocol=protocol, split=split)
    for note in report.warnings:
        print(f"note: {note}", file=sys.stderr)
    label = " [RANDOM WEIGHTS]" if weights == "random" else ""
    print(f"model {model_name}{label}, prompt {args.prompt}, {len(report.videos)} videos")
    print(report.table())
    print(f"predictions: {pred_dir}")
    print(f"per-video results: {write_csv(report, args.out / 'scores.csv', 'video')}")
    print(f"per-object results: {write_csv(report, args.out / 'objects.csv', 'object')}")
    return 0


def _run_distributed(args, videos, pred_dir: Path, late: bool) -> tuple[str, str]:
    """Run the videos over the batch runner (Ray workers); returns (model name, weights label)."""
    from ..batch import VosEvalJob
    from ..presets import get_preset
    from .batch import model_spec, run_batch, run_options

    spec = model_spec(args)
    job = VosEvalJob(
        str(args.dataset),
        args.layout,
        args.split,
        args.prompt,
        late,
        None if videos is None else tuple(videos),
    )
    summary = run_batch(job, pred_dir, spec, run_options(args, resume=False))
    if not summary.ok:
        failed = summary.failed + summary.failed_earlier
        raise CLIError(f"{len(failed)} video(s) failed, e.g. {failed[0][0]}: {failed[0][1]}")
    name = get_preset(spec.name).name if spec.name != "auto" else Path(spec.checkpoint or "").name
    return name, spec.weights()


def cmd_image(args) -> int:
    from ..eval.click_runner import run_image_clicks
    from ..inference.image import ImagePredictor

    try:
        clicks = tuple(int(k) for k in args.clicks.split(","))
    except ValueError:
        raise CLIError(f"--clicks must be comma-separated numbers such as 1,5; got {args.clicks!r}") from None
    if not clicks or min(clicks) < 1:
        raise CLIError(f"--clicks must be positive numbers such as 1,5; got {args.clicks!r}")
    if not args.annotations.is_file():
        raise CLIError(f"--annotations {args.annotations} is not a file")
    if not args.images.is_dir():
        raise CLIError(f"--images {args.images} is not a folder")
    if args.out is not None and args.out.is_dir():
        raise CLIError(f"--out {args.out} is a folder; expected a .csv file path")
    model, weights = load_model(args)
    with _bar("clicking", "image") as bar:

        def progress(done: int, total: int, name: str) -> None:
            bar.total = total
            bar.update(1)

        report = run_image_clicks(
            ImagePredictor(model),
            args.annotations,
            args.images,
            clicks,
            args.min_area,
            args.max_images,
            progress,
        )
    if not report.rows:
        raise CLIError(f"no object of {args.annotations} was evaluated (all crowd or below --min-area)")
    label = " [RANDOM WEIGHTS]" if weights == "random" else ""
    print(f"model {model.cfg.name}{label}")
    print(report.table())
    if args.out is not None:
        print(f"per-object results: {report.write_csv(args.out)}")
    return 0
