"""Score a folder of predicted masks against a benchmark's ground truth (``masklet eval score``).

Two protocols, each the behaviour of an official scorer (per-frame metrics: :mod:`.metrics`):

``davis`` -- ``davis2017-evaluation``, semi-supervised task (default for the ``davis`` layout)
    * frames: the video's annotated frames, the first and the last skipped;
    * objects: ids 1..N with N the largest id in the first annotated frame (an id missing there still
      counts; ids that only appear later are not scored -- reported in ``warnings``);
    * the ground truth's 255 (void) counts as background, because the official code sets 255 to 0
      before its void test (which so never matches); ``exclude_void=True`` leaves those pixels out of
      J and F instead (what ``db_eval_iou`` / ``f_measure`` do when given void pixels);
    * a predicted id above N is an error (the official tool stops there too). One difference: where
      the largest predicted id is below N the official tool stops, while here the missing objects
      are scored as empty predictions.

``sav`` -- ``sav_benchmark.py`` of the SA-V dataset (default for ``sav``, ``mose`` and ``ytvos``)
    * frames: per object folder (``sav`` layout) or per video (id maps), the annotated frames with
      the first and the last skipped;
    * objects: every object folder, or every id present in an evaluated ground-truth frame (255 is
      an ordinary id there); an object is scored from the first evaluated frame where it is in the
      ground truth or the prediction; predicted ids never in the ground truth are ignored (reported);
    * an object folder empty in every evaluated ground-truth frame is an error (the official scorer
      fails there too).

Both: J&F, J and F are means over all objects of all videos. YouTube-VOS has no official offline
scorer (its server splits seen/unseen categories); its layout is scored with the ``sav`` protocol on
the annotated frames. Predictions must cover every evaluated frame; extra videos are ignored and listed
in ``extra_videos``. Masks are read a few frames at a time, so memory stays bounded on long videos.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .layouts import EvalInputError, VideoMasks, few_names, open_dataset, open_predictions
from .metrics import (
    BOUND_TH,
    PROTOCOLS,
    FrameMetrics,
    ObjectScore,
    Summary,
    frame_metrics,
    object_score,
    summarize,
)

__all__ = ["DEFAULT_PROTOCOL", "ScoreReport", "VideoScore", "format_table", "score_folder", "write_csv"]

DEFAULT_PROTOCOL = {"davis": "davis", "sav": "sav", "mose": "sav", "ytvos": "sav"}
VOID = 255
_CHUNK = 16  # frames read and scored together
_MEASURES = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")

ProgressFn = Callable[[int, int, str], None]


@dataclass(frozen=True)
class VideoScore:
    """One video's figures: ``scores`` are the means over its objects, as :class:`Summary` (videos=1)."""

    video: str
    scores: Summary


@dataclass
class ScoreReport:
    """Everything a scoring run found: per-object and per-video rows, the global summary, and the notes
    (``warnings``) about input that the protocol ignores by design."""

    layout: str
    protocol: str
    skip_first_last: bool
    exclude_void: bool
    objects: list[ObjectScore]
    videos: list[VideoScore]
    summary: Summary
    warnings: list[str] = field(default_factory=list)
    extra_videos: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def table(self, per_object: bool = False) -> str:
        return format_table(self, per_object)


def score_folder(
    pred_dir: str | Path,
    gt_dir: str | Path,
    layout: str = "davis",
    skip_first_last: bool = True,
    *,
    protocol: str | None = None,
    split: str | Path | None = None,
    exclude_void: bool = False,
    bound_th: float = BOUND_TH,
    progress: ProgressFn | None = None,
) -> ScoreReport:
    """Score the predictions in ``pred_dir`` against the ground truth in ``gt_dir``.

    layout: ``davis``, ``sav``, ``mose`` or ``ytvos`` (both folders; see :mod:`.layouts`). protocol:
    ``davis`` or ``sav`` (default: the layout's usual scorer, :data:`DEFAULT_PROTOCOL`). split: which
    videos (see :func:`.layouts.open_dataset`). skip_first_last: leave out the first and last annotated
    frames (both official protocols do). progress: called as ``progress(done, total, video)`` after
    each video. Raises :class:`.layouts.EvalInputError` for input that cannot be scored as it is.
    """
    start = time.perf_counter()
    protocol = _checked_protocol(protocol, layout, exclude_void)
    dataset = open_dataset(gt_dir, layout, split)
    preds = open_predictions(pred_dir, layout)
    videos, predicted = dataset.videos(), set(preds.videos())
    _check_videos(preds.root, videos, predicted)
    warnings: list[str] = []
    rows: list[ObjectScore] = []
    per_video: list[VideoScore] = []
    for i, video in enumerate(videos):
        gt, pred = dataset.gt(video), preds.video(video)
        if gt.per_object:
            found = _score_objects(gt, pred, protocol, skip_first_last, bound_th, warnings)
        else:
            found = _score_id_maps(gt, pred, protocol, skip_first_last, exclude_void, bound_th, warnings)
        if not found:
            raise EvalInputError(f"video {video!r} has no object in any evaluated ground-truth frame")
        rows.extend(found)
        per_video.append(VideoScore(video, summarize(found)))
        if progress is not None:
            progress(i + 1, len(videos), video)
    return ScoreReport(
        layout=layout,
        protocol=protocol,
        skip_first_last=skip_first_last,
        exclude_void=exclude_void,
        objects=rows,
        videos=per_video,
        summary=summarize(rows),
        warnings=warnings,
        extra_videos=sorted(predicted - set(videos)),
        seconds=time.perf_counter() - start,
    )


def _checked_protocol(protocol: str | None, layout: str, exclude_void: bool) -> str:
    """The protocol to score ``layout`` with (``None``: the layout's default), checked against the options."""
    protocol = protocol or DEFAULT_PROTOCOL.get(layout, "davis")
    if protocol not in PROTOCOLS:
        raise EvalInputError(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
    if exclude_void and (protocol != "davis" or layout == "sav"):
        raise EvalInputError("exclude_void applies to the davis protocol on id-map layouts (void = 255)")
    return protocol


def _check_videos(pred_root: Path, videos: list[str], predicted: set[str]) -> None:
    """Every video to score has predictions."""
    missing = [v for v in videos if v not in predicted]
    if missing:
        raise EvalInputError(
            f"{pred_root} lacks predictions for {len(missing)} of {len(videos)} videos: "
            f"{few_names(missing)}; every video of the ground truth (or of --split) needs a folder of masks"
        )


def _joined(parts: list[FrameMetrics]) -> FrameMetrics:
    """One object's per-frame metrics, gathered chunk by chunk, as one record."""
    return FrameMetrics(*(np.concatenate([getattr(m, k) for m in parts]) for k in ("j", "f", "present")))


def _davis_object_count(gt: VideoMasks, first_frame) -> int:
    """The davis protocol's objects: ids 1..max of the first annotated frame (EvalInputError if none)."""
    first = gt.ids(first_frame)
    n = int(np.where(first == VOID, 0, first).max())
    if n == 0:
        raise EvalInputError(
            f"video {gt.name!r}: the first annotated frame {first_frame} has no object, and the davis "
            "protocol takes the objects from it (ids 1..max); score objects that appear later with the "
            "sav protocol (--protocol sav, protocol='sav')"
        )
    return n


def _score_id_maps(
    gt: VideoMasks,
    pred: VideoMasks,
    protocol: str,
    skip: bool,
    exclude_void: bool,
    bound_th: float,
    warnings: list[str],
) -> list[ObjectScore]:
    video, all_frames = gt.name, gt.frames()
    frames = _evaluated(all_frames, skip, f"video {video!r}")
    _check_frames(pred, frames, video)
    n = _davis_object_count(gt, all_frames[0]) if protocol == "davis" else 0
    tracks: dict[int, list[FrameMetrics]] = {}
    gt_ids: set[int] = set()
    pred_ids: set[int] = set()
    for chunk in _chunks(frames):
        g, p = gt.ids_stack(chunk), pred.ids_stack(chunk)
        _check_size(g, p, video, pred.path(chunk[0]))
        void = None
        if protocol == "davis":
            is_void = g == VOID
            void = is_void if exclude_void else None
            g = np.where(is_void, 0, g)
            _check_davis_ids(p, n, pred, chunk, video)
            gt_ids.update(np.unique(g).tolist())
            ids = range(1, n + 1)
        else:
            gt_ids.update(np.unique(g).tolist())
            pred_ids.update(np.unique(p).tolist())
            ids = sorted((gt_ids | pred_ids) - {0})
        for k in ids:
            tracks.setdefault(k, []).append(frame_metrics(p == k, g == k, void, bound_th))
    gt_ids.discard(0)
    if protocol == "davis":
        later = sorted(gt_ids - set(range(1, n + 1)))
        if later:
            warnings.append(
                f"video {video!r}: ground-truth ids {later} are not in its first frame and are not scored "
                "(the davis protocol takes the objects of the first annotated frame)"
            )
        return [object_score(video, k, _joined(tracks[k]), "davis") for k in range(1, n + 1)]
    _warn_sav_ids(video, gt_ids, pred_ids, warnings)
    return [object_score(video, k, _joined(tracks[k]), "sav") for k in sorted(gt_ids)]


def _check_davis_ids(p: np.ndarray, n: int, pred: VideoMasks, chunk: list[str], video: str) -> None:
    """The davis protocol's predicted id maps ``p`` (T, H, W) of frames ``chunk`` hold ids 0..n only."""
    if p.max() > n:
        t = int(np.argmax(p.reshape(len(p), -1).max(axis=1) > n))
        raise EvalInputError(
            f"{pred.path(chunk[t])} holds id {int(p[t].max())} but video {video!r} has {n} "
            f"object(s) (ids 1..{n} in its first annotated frame); predicted ids must be 1..{n}, "
            "0 = background: the davis protocol scores only the objects of the first annotated "
            "frame. If objects appear after it, score with the sav protocol (--protocol sav, "
            "protocol='sav')"
        )


def _warn_sav_ids(video: str, gt_ids: set[int], pred_ids: set[int], warnings: list[str]) -> None:
    """Notes on ids the sav protocol scores although they look special (255), or ignores."""
    if VOID in gt_ids:
        warnings.append(
            f"video {video!r}: ground-truth id 255 is scored as an object (the sav protocol has no void)"
        )
    ignored = sorted(pred_ids - gt_ids - {0})
    if ignored:
        warnings.append(
            f"video {video!r}: predicted ids {ignored} never appear in the evaluated ground truth and are "
            "ignored (as the official scorer does); check that prediction ids match the annotation ids"
        )


def _score_objects(
    gt: VideoMasks, pred: VideoMasks, protocol: str, skip: bool, bound_th: float, warnings: list[str]
) -> list[ObjectScore]:
    video, objects = gt.name, gt.object_ids()
    if not objects:
        raise EvalInputError(f"video {video!r} has no object folders in {gt.folder}")
    predicted = set(pred.object_ids())
    lost = [f"{o:03d}" for o in objects if o not in predicted]
    if lost:
        raise EvalInputError(
            f"predictions for video {video!r} lack the object folder(s) {few_names(lost)} in {pred.folder}"
        )
    extra = sorted(predicted - set(objects))
    if extra:
        warnings.append(
            f"video {video!r}: predicted objects {extra} are not in the ground truth and are ignored"
        )
    rows = []
    for obj in objects:
        frames = _evaluated(gt.object_frames(obj), skip, f"object {obj:03d} of video {video!r}")
        _check_frames(pred, frames, video, obj)
        track: list[FrameMetrics] = []
        seen = False
        for chunk in _chunks(frames):
            g, p = gt.object_masks(obj, chunk), pred.object_masks(obj, chunk)
            _check_size(g, p, video, pred.path(chunk[0], obj))
            track.append(frame_metrics(p, g, None, bound_th))
            seen = seen or bool(g.any())
        if protocol == "sav" and not seen:
            raise EvalInputError(
                f"object {obj:03d} of video {video!r} is empty in every evaluated ground-truth frame, so the "
                "sav protocol cannot score it (the official scorer stops there too); use the davis protocol "
                "(--protocol davis, protocol='davis')"
            )
        rows.append(object_score(video, obj, _joined(track), protocol))
    return rows


def _evaluated(frames: list[str], skip: bool, what: str) -> list[str]:
    if not frames:
        raise EvalInputError(f"{what} has no annotated frames")
    kept = frames[1:-1] if skip else frames
    if not kept:
        raise EvalInputError(
            f"{what} has {len(frames)} annotated frame(s): none is left once the first and last are "
            "skipped; score with all frames (--all-frames, skip_first_last=False)"
        )
    return kept


def _check_frames(pred: VideoMasks, frames: list[str], video: str, obj: int | None = None) -> None:
    lost = pred.missing(frames, obj)
    if lost:
        whose = f"video {video!r}" + ("" if obj is None else f", object {obj:03d},")
        raise EvalInputError(
            f"predictions for {whose} lack {len(lost)} of the {len(frames)} evaluated frames: "
            f"{few_names(lost)} (expected e.g. {pred.path(lost[0], obj)})"
        )


def _check_size(g: np.ndarray, p: np.ndarray, video: str, where: Path) -> None:
    if g.shape[1:] != p.shape[1:]:
        raise EvalInputError(
            f"{where} is {p.shape[2]}x{p.shape[1]} but the ground truth of video {video!r} is "
            f"{g.shape[2]}x{g.shape[1]}; predictions must have the annotation size (resize them with "
            "nearest-neighbour interpolation)"
        )


def _chunks(frames: list[str]):
    for i in range(0, len(frames), _CHUNK):
        yield frames[i : i + _CHUNK]


# ------------------------------------------------------------------ output
def _values(row) -> list[float]:
    return [row.jf_mean, row.j_mean, row.j_recall, row.j_decay, row.f_mean, row.f_recall, row.f_decay]


def _object_values(o: ObjectScore) -> list[float]:
    return [o.jf, o.j.mean, o.j.recall, o.j.decay, o.f.mean, o.f.recall, o.f.decay]


def write_csv(report: ScoreReport, path: str | Path, level: str = "video") -> Path:
    """Write the rows as CSV (fractions in [0, 1], 6 decimals).

    level "video": ``video, objects, J&F-Mean, J-Mean, J-Recall, J-Decay, F-Mean, F-Recall, F-Decay``, one
    row per video and a last ``GLOBAL`` row with the summary. level "object": ``video, object, frames,``
    and the same measures, one row per object.
    """
    if level not in ("video", "object"):
        raise ValueError(f"level must be 'video' or 'object', got {level!r}")
    path = Path(path)
    if path.parent != Path("."):
        path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        if level == "video":
            out.writerow(["video", "objects", *_MEASURES])
            for v in report.videos:
                out.writerow([v.video, v.scores.objects, *_fmt(_values(v.scores))])
            out.writerow(["GLOBAL", report.summary.objects, *_fmt(_values(report.summary))])
        else:
            out.writerow(["video", "object", "frames", *_MEASURES])
            for o in report.objects:
                out.writerow([o.video, _object_name(report, o.obj_id), o.frames, *_fmt(_object_values(o))])
    return path


def _object_name(report: ScoreReport, obj_id: int) -> str:
    """Objects as the official scorers name them: SA-V's folder name (000), else the id (1)."""
    return f"{obj_id:03d}" if report.layout == "sav" else str(obj_id)


def _fmt(values: list[float]) -> list[str]:
    return [f"{v:.6f}" for v in values]


def format_table(report: ScoreReport, per_object: bool = False) -> str:
    """The summary and per-video (or per-object) rows as a text table, values in percent."""
    s = report.summary
    frames = "first and last frames skipped" if report.skip_first_last else "all frames"
    lines = [
        f"protocol {report.protocol}, layout {report.layout}, {frames}"
        + (", void excluded" if report.exclude_void else "")
        + f": {s.videos} videos, {s.objects} objects (values in %)",
        "  ".join(f"{m:>8}" for m in _MEASURES),
        "  ".join(f"{100 * v:8.1f}" for v in _values(s)),
        "",
    ]
    if per_object:
        names = [f"{o.video}_{_object_name(report, o.obj_id)}" for o in report.objects]
        width = max([len(n) for n in names] + [6])
        lines.append(f"{'object':<{width}}  {'frames':>6}  {'J&F':>6}  {'J':>6}  {'F':>6}")
        for name, o in zip(names, report.objects):
            cells = "  ".join(f"{100 * x:6.1f}" for x in (o.jf, o.j.mean, o.f.mean))
            lines.append(f"{name:<{width}}  {o.frames:>6}  {cells}")
    else:
        width = max([len(v.video) for v in report.videos] + [5])
        lines.append(f"{'video':<{width}}  {'objects':>7}  {'J&F':>6}  {'J':>6}  {'F':>6}")
        for v in report.videos:
            cells = "  ".join(f"{100 * x:6.1f}" for x in (v.scores.jf_mean, v.scores.j_mean, v.scores.f_mean))
            lines.append(f"{v.video:<{width}}  {v.scores.objects:>7}  {cells}")
    return "\n".join(lines)
