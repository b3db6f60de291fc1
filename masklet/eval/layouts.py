"""Readers for the video object segmentation benchmarks' folder layouts, ground truth and predictions.

Layouts (``root`` may be the dataset folder or its annotation folder itself)::

    davis   Annotations/480p/<video>/00000.png    indexed PNG per frame: 0 background, k object k,
            JPEGImages/480p/<video>/00000.jpg     255 void; ImageSets/2017/<split>.txt lists a split
    sav     Annotations_6fps/<video>/<obj>/00000.png   one binary PNG per object and annotated frame
            JPEGImages_24fps/<video>/00000.jpg          (obj folders 000, 001, ...; frames every 4th,
            sav_val.txt / sav_test.txt                   objects may overlap)
    mose    Annotations/<video>/00000.png          indexed PNG per frame, as DAVIS (no resolution level)
            JPEGImages/<video>/00000.jpg
    ytvos   Annotations/<video>/00000.png          indexed PNG per annotated frame (every 5th frame),
            JPEGImages/<video>/00000.jpg           meta.json: objects and their frames
            meta.json

Predictions use the same per-video layout with one folder per video: indexed PNGs per frame
(``<pred>/<video>/<frame>.png``) or, for ``sav``, one binary PNG per object and frame
(``<pred>/<video>/<obj>/<frame>.png``). Frames are named by file stem, sorted as strings.

Reading rules (bad input raises :class:`EvalInputError` saying what to fix, never a guess):

* PNGs are read by :func:`masklet.io.masks.read_id_png`: palette (mode P) PNGs give their palette
  indices, gray (L, 1, I, I;16) their values; RGB/RGBA PNGs are accepted only when every pixel is gray
  (R == G == B, alpha opaque), since coloured masks would need a colour-to-id guess;
* a per-object (``sav``) PNG may hold at most two distinct values (the official scorer's rule) and is
  foreground where nonzero;
* every frame of a video must have the same size; a missing video, object or frame is reported by name.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from ..io.masks import MaskFileError, read_id_png

__all__ = [
    "LAYOUTS",
    "Dataset",
    "EvalInputError",
    "MaskFolder",
    "VideoMasks",
    "open_dataset",
    "few_names",
    "open_predictions",
]

LAYOUTS = ("davis", "sav", "mose", "ytvos")
_ANNOTATIONS = {
    "davis": "Annotations",
    "sav": "Annotations_6fps",
    "mose": "Annotations",
    "ytvos": "Annotations",
}
_IMAGES = {"davis": "JPEGImages", "sav": "JPEGImages_24fps", "mose": "JPEGImages", "ytvos": "JPEGImages"}


class EvalInputError(ValueError):
    """Ground truth or predictions that cannot be scored as they are; the message says what to change."""


def _read_ids(path: Path) -> np.ndarray:
    try:
        return read_id_png(path)
    except MaskFileError as exc:
        raise EvalInputError(str(exc)) from None


def _png_stems(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.png") if not p.name.startswith("."))


def _subfolders(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _same_size(arrays: list[np.ndarray], where: list[Path]) -> np.ndarray:
    first = arrays[0].shape
    for arr, path in zip(arrays, where):
        if arr.shape != first:
            raise EvalInputError(
                f"{path} is {arr.shape[1]}x{arr.shape[0]} but {where[0].name} of the same video is "
                f"{first[1]}x{first[0]}; every mask of a video must have the frame size"
            )
    return np.stack(arrays)


class VideoMasks(Mapping[str, dict[int, np.ndarray]]):
    """The masks of one video, read lazily: ``masks[frame] -> {obj_id: (H, W) bool}``.

    ``per_object`` is True for the ``sav`` layout (a folder per object, objects may overlap) and False for
    id-map layouts (one PNG per frame holding every object).
    """

    def __init__(self, name: str, folder: Path, layout: str) -> None:
        self.name, self.folder, self.layout = name, Path(folder), layout
        self.per_object = layout == "sav"
        if not self.folder.is_dir():
            raise EvalInputError(f"video folder {self.folder} not found")
        subdirs, pngs = _subfolders(self.folder), _png_stems(self.folder)
        if self.per_object:
            if pngs and not subdirs:
                raise EvalInputError(
                    f"{self.folder} holds PNGs, not per-object folders: that is an id-map layout; "
                    "use layout davis, mose or ytvos (or put each object's masks in <video>/<obj>/)"
                )
            bad = [s for s in subdirs if not s.isdigit()]
            if bad:
                raise EvalInputError(
                    f"{self.folder}: object folders must be numbers like 000, 001, got {bad[:3]}"
                )
            self._objects = {int(s): self.folder / s for s in subdirs}
            self._frames = {obj: _png_stems(path) for obj, path in self._objects.items()}
        else:
            if subdirs and not pngs:
                raise EvalInputError(
                    f"{self.folder} holds folders, not frame PNGs: that looks like the SA-V per-object "
                    "layout; use layout sav (or write one indexed PNG per frame)"
                )
            self._all_frames = pngs

    # ---------------------------------------------------------------- frames and objects
    def frames(self) -> list[str]:
        """Names of the frames with masks (all objects together), sorted."""
        if self.per_object:
            return sorted(set().union(*self._frames.values()))
        return list(self._all_frames)

    def object_ids(self) -> list[int]:
        """Object ids: the object folders (``sav``), else every nonzero id of every frame (reads them all)."""
        if self.per_object:
            return sorted(self._objects)
        ids: set[int] = set()
        for frame in self._all_frames:
            ids.update(np.unique(self.ids(frame)).tolist())
        return sorted(ids - {0})

    def object_frames(self, obj_id: int) -> list[str]:
        """Frames that have a mask of this object: its own files (``sav``), else every frame."""
        if not self.per_object:
            return list(self._all_frames)
        if obj_id not in self._objects:
            raise EvalInputError(f"{self.folder}: no folder for object {obj_id:03d}")
        return list(self._frames[obj_id])

    def path(self, frame: str, obj_id: int | None = None) -> Path:
        """The PNG of a frame (``sav``: of one object's mask in that frame)."""
        if self.per_object:
            if obj_id is None:
                raise EvalInputError("the sav layout stores one PNG per object: pass the object id")
            return self._objects.get(obj_id, self.folder / f"{obj_id:03d}") / f"{frame}.png"
        return self.folder / f"{frame}.png"

    def missing(self, frames: list[str], obj_id: int | None = None) -> list[str]:
        """Those of ``frames`` that have no PNG here."""
        return [f for f in frames if not self.path(f, obj_id).is_file()]

    # ---------------------------------------------------------------- reading
    def ids(self, frame: str) -> np.ndarray:
        """(H, W) id map of one frame (id-map layouts only): 0 background, k object k (255 void in DAVIS)."""
        if self.per_object:
            raise EvalInputError("the sav layout has no id maps (objects may overlap); use object_masks()")
        return _read_ids(self.path(frame))

    def ids_stack(self, frames: list[str]) -> np.ndarray:
        """(T, H, W) id maps of ``frames``; EvalInputError if their sizes differ."""
        return _same_size([self.ids(f) for f in frames], [self.path(f) for f in frames])

    def object_masks(self, obj_id: int, frames: list[str]) -> np.ndarray:
        """(T, H, W) bool masks of one object over ``frames``."""
        if not self.per_object:
            return self.ids_stack(frames) == obj_id
        paths = [self.path(f, obj_id) for f in frames]
        arrays = []
        for path in paths:
            arr = _read_ids(path)
            values = np.unique(arr)
            if len(values) > 2:
                raise EvalInputError(
                    f"{path} holds {len(values)} different values {values[:6].tolist()}: a sav mask PNG "
                    "holds one object (0 = background, any one nonzero value = the object)"
                )
            arrays.append(arr != 0)
        return _same_size(arrays, paths)

    def __getitem__(self, frame: str) -> dict[int, np.ndarray]:
        if self.per_object:
            objs = [o for o in self._objects if frame in self._frames[o]]
            if not objs:
                raise KeyError(frame)
            return {o: self.object_masks(o, [frame])[0] for o in objs}
        if frame not in self._all_frames:
            raise KeyError(frame)
        ids = self.ids(frame)
        return {int(k): ids == k for k in np.unique(ids) if k != 0}

    def __iter__(self) -> Iterator[str]:
        return iter(self.frames())

    def __len__(self) -> int:
        return len(self.frames())

    def __repr__(self) -> str:
        return f"VideoMasks({self.name!r}, layout={self.layout!r}, frames={len(self)})"


class MaskFolder:
    """A folder of per-video mask folders in one layout: ground-truth annotations or predictions."""

    def __init__(self, root: str | Path, layout: str, what: str = "predictions") -> None:
        self.root, self.layout, self.what = Path(root), _check_layout(layout), what
        if not self.root.is_dir():
            raise EvalInputError(f"{what} folder {self.root} not found")

    def videos(self) -> list[str]:
        """Names of the video folders, sorted."""
        return _subfolders(self.root)

    def video(self, name: str) -> VideoMasks:
        """The masks of one video; EvalInputError naming the folder if it is missing."""
        folder = self.root / name
        if not folder.is_dir():
            raise EvalInputError(f"{self.what} for video {name!r} not found: expected the folder {folder}")
        return VideoMasks(name, folder, self.layout)


class Dataset:
    """A benchmark's ground truth: its videos (a split's list, else every annotation folder), their
    annotated frames and masks (:meth:`gt`) and their JPEG frames (:meth:`image_paths`)."""

    def __init__(self, root: Path, layout: str, annotations: Path, images: Path | None, names: list[str]):
        self.root, self.layout, self.images = root, layout, images
        self.annotations = MaskFolder(annotations, layout, what="ground truth")
        self._videos = names

    def videos(self) -> list[str]:
        return list(self._videos)

    def gt(self, video: str) -> VideoMasks:
        return self.annotations.video(video)

    def frames(self, video: str) -> list[str]:
        """Annotated frame names of a video, sorted."""
        return self.gt(video).frames()

    def image_paths(self, video: str) -> list[Path]:
        """The video's JPEG frames, sorted by name; EvalInputError if the dataset has no image folder."""
        folder = None if self.images is None else self.images / video
        if folder is None or not folder.is_dir():
            raise EvalInputError(f"no JPEG frames for video {video!r} under {self.root}")
        return sorted(folder.glob("*.jpg"))

    def meta(self) -> dict:
        """YouTube-VOS ``meta.json`` as a dict (``{"videos": {video: {"objects": {id: {"frames":
        [...]}}}}}``), or {} when there is none."""
        path = self.root / "meta.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def __repr__(self) -> str:
        return f"Dataset({str(self.root)!r}, layout={self.layout!r}, videos={len(self._videos)})"


def open_dataset(
    root: str | Path, layout: str = "davis", split: str | Path | None = None, resolution: str = "480p"
) -> Dataset:
    """Ground truth of a benchmark in ``layout`` (one of :data:`LAYOUTS`).

    root: the dataset folder (with ``Annotations...``) or the annotation folder itself. split: a split
    name (DAVIS ``ImageSets/2017/<split>.txt``, SA-V ``sav_<split>.txt``) or a path to a text file of
    video names; default: DAVIS ``val`` when its list exists, otherwise every annotated video.
    """
    layout, root = _check_layout(layout), Path(root)
    if not root.is_dir():
        raise EvalInputError(f"ground-truth folder {root} not found")
    annotations, images = root, None
    top = root / _ANNOTATIONS[layout]
    if layout == "davis" and (top / resolution).is_dir():
        annotations, images = top / resolution, root / _IMAGES[layout] / resolution
    elif top.is_dir():
        annotations, images = top, root / _IMAGES[layout]
    elif (root / _IMAGES[layout]).is_dir() or (root / "ImageSets").is_dir():
        raise EvalInputError(f"{root} has frames but no {_ANNOTATIONS[layout]} folder: {_expected(layout)}")
    names = _split_videos(root, layout, split)
    present = set(_subfolders(annotations))
    if names is None:
        names = sorted(present)
    lost = [v for v in names if v not in present]
    if lost:
        raise EvalInputError(
            f"the split lists {len(lost)} video(s) without annotations in {annotations}: {few_names(lost)}"
        )
    if not names:
        raise EvalInputError(f"no annotated videos in {annotations} (layout {layout}): {_expected(layout)}")
    return Dataset(root, layout, annotations, images if images and images.is_dir() else None, names)


def open_predictions(pred_dir: str | Path, layout: str = "davis") -> MaskFolder:
    """A folder of per-video prediction folders in ``layout``."""
    return MaskFolder(pred_dir, layout, what="predictions")


def _split_videos(root: Path, layout: str, split: str | Path | None) -> list[str] | None:
    if split is not None and Path(split).suffix == ".txt" and Path(split).is_file():
        path: Path | None = Path(split)
    elif split is None:
        default = root / "ImageSets" / "2017" / "val.txt"
        path = default if layout == "davis" and default.is_file() else None
    else:
        tries = {
            "davis": [root / "ImageSets" / y / f"{split}.txt" for y in ("2017", "2016", "2019")],
            "sav": [root / f"sav_{split}.txt", root / f"{split}.txt"],
        }.get(layout, [root / f"{split}.txt"])
        path = next((p for p in tries if p.is_file()), None)
        if path is None:
            raise EvalInputError(f"split {split!r} not found: looked for {', '.join(map(str, tries))}")
    if path is None:
        return None
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _check_layout(layout: str) -> str:
    if layout not in LAYOUTS:
        raise EvalInputError(f"unknown layout {layout!r}; use one of {', '.join(LAYOUTS)}")
    return layout


def _expected(layout: str) -> str:
    return {
        "davis": "expected Annotations/480p/<video>/00000.png or <video>/00000.png",
        "sav": "expected Annotations_6fps/<video>/000/00000.png or <video>/000/00000.png",
        "mose": "expected Annotations/<video>/00000.png or <video>/00000.png",
        "ytvos": "expected Annotations/<video>/00000.png or <video>/00000.png",
    }[layout]


def few_names(names: list[str], n: int = 5) -> str:
    """The first ``n`` names joined by commas, then "and N more": a readable list for error messages."""
    shown = ", ".join(names[:n])
    return shown + (f" and {len(names) - n} more" if len(names) > n else "")
