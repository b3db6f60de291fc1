"""Training datasets: DAVIS-layout videos, SA-V style masklet json files, COCO images.

Each source is a list of :class:`Item` (a video, or an image as a one-frame video) that knows its
objects and on which annotated frames each is visible, and reads frames and masks on demand:

* :class:`DavisSource`: ``JPEGImages/<res>/<video>/*.jpg`` + ``Annotations/<res>/<video>/*.png``
  (palette PNGs: 0 background, k object k, 255 void, which counts as background);
* :class:`SavSource`: ``<video>_manual.json`` with ``masklet``: per annotated frame, a list of RLE
  masks (one per object), frames from ``<video>.mp4`` or a ``<video>/`` JPEG folder;
* :class:`CocoSource`: COCO instances json (RLE or polygon masks) and its image folder.

Opening a source checks everything that can be checked without training (missing files, frame and mask
sizes, empty masks) and raises :class:`DataError` naming the file and what to do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..io.frames import FrameError, FrameSource, open_frames
from ..io.images import load_image
from ..io.masks import MaskFileError, decode_rle, read_id_png, rle_area
from ..io.polygons import polygons_to_mask
from ..lru import LRUCache
from .config import SourceConfig

__all__ = [
    "CocoSource",
    "DataError",
    "DavisSource",
    "Item",
    "SavSource",
    "Source",
    "davis_folders",
    "davis_videos",
    "open_source",
]

VOID = 255


class DataError(ValueError):
    """Training data that cannot be used as it is; the message names the file and what to change."""


@dataclass(frozen=True)
class Item:
    """One video (or image): ``visible`` (T, K) bool tells on which of its T annotated frames each of
    its K objects ``object_ids`` has at least one pixel; ``size`` is (H, W) of frames and masks."""

    name: str
    size: tuple[int, int]
    object_ids: tuple[int, ...]
    visible: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(self.visible.shape[0])


class Source:
    """Base of the readers: ``items`` plus frame and mask access by (item, annotated frame index)."""

    def __init__(self, cfg: SourceConfig) -> None:
        self.cfg = cfg
        self.items: list[Item] = []

    def __len__(self) -> int:
        return len(self.items)

    def frame(self, item: int, t: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB of annotated frame ``t`` of ``item``."""
        raise NotImplementedError

    def masks(self, item: int, t: int, object_ids: tuple[int, ...]) -> np.ndarray:
        """(N, H, W) bool masks of ``object_ids`` on annotated frame ``t`` of ``item``."""
        raise NotImplementedError

    def _finish(self, what: str) -> None:
        if not self.items:
            raise DataError(f"{what} has no usable video or image (every one was empty or left out)")


def _jpeg_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as im:
            return im.size[1], im.size[0]
    except OSError as exc:
        raise DataError(f"{path}: not a readable image ({exc})") from None


def _empty_message(what: str) -> str:
    return f"{what}; remove it, or set skip_empty: true on this data source to leave such masks out"


class DavisSource(Source):
    """DAVIS-layout videos; ``names`` restricts them (default: the split, else every video)."""

    def __init__(self, cfg: SourceConfig, names: list[str] | None = None) -> None:
        super().__init__(cfg)
        root = Path(cfg.root)
        self.ann_root, self.img_root = davis_folders(root, cfg.resolution)
        self.names = names if names is not None else davis_videos(cfg)
        self._cache: LRUCache[Path, np.ndarray] = LRUCache(512 * 2**20)  # id maps of annotation PNGs
        self.frames_of: list[list[Path]] = []
        for name in self.names:
            self._index(name)
        self._finish(f"davis source {root}")

    def _index(self, name: str) -> None:
        img_dir, ann_dir = self.img_root / name, self.ann_root / name
        if not img_dir.is_dir():
            raise DataError(f"video {name!r}: frames folder {img_dir} not found")
        jpgs = sorted(img_dir.glob("*.jpg"))
        if not jpgs:
            raise DataError(f"video {name!r}: no .jpg frames in {img_dir}")
        pngs = [ann_dir / f"{p.stem}.png" for p in jpgs]
        missing = [p.name for p in pngs if not p.is_file()]
        if missing:
            raise DataError(
                f"video {name!r}: {len(missing)} of {len(jpgs)} frames have no annotation file in {ann_dir} "
                f"(e.g. {', '.join(missing[:3])}); every JPEG frame needs a PNG of the same name"
            )
        size = _jpeg_size(jpgs[0])
        ids_per_frame = []
        for jpg, png in zip(jpgs, pngs):
            ids = self._read(png)
            frame_size = _jpeg_size(jpg) if jpg is not jpgs[0] else size
            if ids.shape != frame_size or frame_size != size:
                (h, w), (fh, fw) = ids.shape, frame_size
                raise DataError(
                    f"video {name!r}: annotation {png.name} is {w}x{h} but frame {jpg.name} is {fw}x{fh} "
                    f"(first frame {size[1]}x{size[0]}); every mask must have its frame's size"
                )
            ids_per_frame.append(set(np.unique(ids).tolist()) - {0, VOID})
        objects = tuple(sorted(set().union(*ids_per_frame)))
        if not objects:
            if self.cfg.skip_empty:
                return
            raise DataError(_empty_message(f"video {name!r}: every annotation in {ann_dir} is empty"))
        visible = np.array([[o in ids for o in objects] for ids in ids_per_frame], dtype=bool)
        self.items.append(Item(name, size, objects, visible))
        self.frames_of.append(jpgs)

    def _read(self, png: Path) -> np.ndarray:
        ids = self._cache.get(png)
        if ids is None:
            try:
                ids = read_id_png(png)
            except MaskFileError as exc:
                raise DataError(str(exc)) from None
            self._cache.put(png, ids)
        return ids

    def frame(self, item: int, t: int) -> np.ndarray:
        return load_image(self.frames_of[item][t])

    def masks(self, item: int, t: int, object_ids: tuple[int, ...]) -> np.ndarray:
        jpg = self.frames_of[item][t]
        ids = self._read(self.ann_root / self.items[item].name / f"{jpg.stem}.png")
        return np.stack([ids == o for o in object_ids])


def davis_folders(root: Path, resolution: str) -> tuple[Path, Path]:
    """(annotations, frames) folders of a DAVIS-layout dataset, with or without the resolution level."""
    for ann, img in (
        (root / "Annotations" / resolution, root / "JPEGImages" / resolution),
        (root / "Annotations", root / "JPEGImages"),
    ):
        if ann.is_dir():
            if not img.is_dir():
                raise DataError(f"{root} has {ann} but no frames folder {img}")
            return ann, img
    raise DataError(
        f"{root} is not a DAVIS-layout dataset: expected Annotations/{resolution}/<video>/00000.png and "
        f"JPEGImages/{resolution}/<video>/00000.jpg"
    )


def davis_videos(cfg: SourceConfig) -> list[str]:
    """The videos of a davis source: its split list, else every annotation folder (sorted)."""
    root = Path(cfg.root)
    ann, _ = davis_folders(root, cfg.resolution)
    if cfg.split is None:
        names = sorted(p.name for p in ann.iterdir() if p.is_dir() and not p.name.startswith("."))
    else:
        listing = Path(cfg.split)
        if not (listing.suffix == ".txt" and listing.is_file()):
            listing = root / "ImageSets" / "2017" / f"{cfg.split}.txt"
        if not listing.is_file():
            raise DataError(
                f"split {cfg.split!r} not found: expected {listing} or a .txt file of video names"
            )
        names = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    if not names:
        raise DataError(f"no videos in {ann}" + (f" for split {cfg.split!r}" if cfg.split else ""))
    return names


class SavSource(Source):
    """SA-V style masklets: one json per video with RLE masks per annotated frame and object."""

    def __init__(self, cfg: SourceConfig, names: list[str] | None = None) -> None:
        super().__init__(cfg)
        self.root = Path(cfg.root)
        ann = Path(cfg.annotations) if cfg.annotations else self.root
        if not ann.is_dir():
            raise DataError(f"sav source: annotation folder {ann} not found")
        files = sorted(ann.glob(f"*{cfg.json_suffix}"))
        if names is not None:
            files = [f for f in files if f.name[: -len(cfg.json_suffix)] in set(names)]
        if not files:
            raise DataError(f"sav source: no *{cfg.json_suffix} annotation files in {ann}")
        self.rles: list[list[list[dict]]] = []
        self.videos: list[Path] = []
        # the last few videos read stay open: a clip reads several frames of one video
        self._open: LRUCache[int, FrameSource] = LRUCache(
            max_items=4, size=lambda _: 0, on_evict=lambda _, src: src.close()
        )
        for path in files:
            self._index(path, path.name[: -len(cfg.json_suffix)])
        self._finish(f"sav source {ann}")

    def _video_path(self, name: str) -> Path:
        for cand in (self.root / f"{name}.mp4", self.root / name):
            if cand.exists():
                return cand
        raise DataError(
            f"sav video {name!r}: no frames: expected {self.root / name}.mp4 or a folder {self.root / name}/"
        )

    def _index(self, path: Path, name: str) -> None:
        try:
            masklet = json.loads(path.read_text())["masklet"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path}: not an SA-V annotation json with a 'masklet' list ({exc!r})") from None
        if not isinstance(masklet, list) or not masklet or not all(isinstance(f, list) for f in masklet):
            raise DataError(f"{path}: 'masklet' must be a non-empty list (frames) of lists (objects) of RLEs")
        counts = {len(f) for f in masklet}
        if len(counts) != 1:
            raise DataError(f"{path}: annotated frames list different object counts {sorted(counts)}")
        video = self._video_path(name)
        try:
            src = open_frames(video, cache_bytes=0)
        except FrameError as exc:
            raise DataError(f"sav video {name!r}: {exc}") from None
        size, n_video = (src.height, src.width), src.num_frames
        src.close()
        stride = self.cfg.frame_stride
        if (len(masklet) - 1) * stride >= n_video:
            raise DataError(
                f"{path}: {len(masklet)} annotated frames every {stride} frames need "
                f"{(len(masklet) - 1) * stride + 1} frames but {video} has {n_video}; check frame_stride "
                "(4 for 24 fps videos with 6 fps masks, 1 for frames extracted at the annotation rate)"
            )
        try:
            area = np.array([[rle_area(r) for r in frame] for frame in masklet])
        except ValueError as exc:
            raise DataError(f"{path}: a mask is not a valid RLE ({exc})") from None
        sizes = {tuple(int(v) for v in r["size"]) for frame in masklet for r in frame}
        if sizes and sizes != {size}:
            raise DataError(
                f"{path}: masks are {sorted(sizes)} (height, width) but the frames of {video} are {size}"
            )
        keep = [k for k in range(area.shape[1]) if area[:, k].any()]
        if len(keep) < area.shape[1] and not self.cfg.skip_empty:
            empty = sorted(set(range(area.shape[1])) - set(keep))
            raise DataError(_empty_message(f"{path}: masklet(s) {empty} are empty on every frame"))
        if not keep:
            return
        self.items.append(Item(name, size, tuple(k + 1 for k in keep), area[:, keep] > 0))
        self.rles.append(masklet)
        self.videos.append(video)

    def _frames(self, item: int) -> FrameSource:
        src = self._open.get(item)
        if src is None:
            src = open_frames(self.videos[item], cache_bytes=64 * 2**20)
            self._open.put(item, src)
        return src

    def frame(self, item: int, t: int) -> np.ndarray:
        return np.array(self._frames(item).frame(t * self.cfg.frame_stride))

    def masks(self, item: int, t: int, object_ids: tuple[int, ...]) -> np.ndarray:
        return np.stack([decode_rle(self.rles[item][t][o - 1]) for o in object_ids])


class CocoSource(Source):
    """COCO instances: every image with at least one (non-crowd) mask is a one-frame item."""

    def __init__(self, cfg: SourceConfig, names: list[str] | None = None) -> None:
        super().__init__(cfg)
        self.root = Path(cfg.root)
        path = Path(cfg.annotations or "")
        if not path.is_file():
            raise DataError(f"coco source: annotation file {path} not found")
        try:
            coco = json.loads(path.read_text())
            images = {im["id"]: im for im in coco["images"]}
            anns = coco["annotations"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(
                f"{path}: not a COCO instances json with 'images' and 'annotations' ({exc!r})"
            ) from None
        per_image: dict[int, list[dict]] = {}
        for a in anns:
            if not a.get("iscrowd", 0):
                per_image.setdefault(a["image_id"], []).append(a)
        self.paths: list[Path] = []
        self.segs: list[list] = []
        wanted = None if names is None else set(names)
        for image_id, group in sorted(per_image.items()):
            if image_id not in images:
                raise DataError(
                    f"{path}: annotation {group[0].get('id')} refers to unknown image_id {image_id}"
                )
            im = images[image_id]
            if wanted is None or im["file_name"] in wanted:
                self._index(path, im, group)
        self._finish(f"coco source {path}")

    def _index(self, json_path: Path, im: dict, group: list[dict]) -> None:
        file = self.root / im["file_name"]
        if not file.is_file():
            raise DataError(f"{json_path}: image {file} listed as {im['file_name']!r} not found")
        size = _jpeg_size(file)
        if (im.get("height"), im.get("width")) not in ((None, None), size):
            raise DataError(
                f"{json_path}: image {im['file_name']} is {size[1]}x{size[0]} but the json says "
                f"{im.get('width')}x{im.get('height')}"
            )
        segs = []
        for a in group:
            seg = a.get("segmentation")
            if isinstance(seg, dict):
                rle_size = tuple(int(v) for v in seg.get("size", ()))
                if rle_size != size:
                    raise DataError(
                        f"{json_path}: annotation {a.get('id')} has an RLE of size {rle_size} "
                        f"(height, width) but image {im['file_name']} is {size}"
                    )
                empty = rle_area(seg) == 0
            elif isinstance(seg, list):
                empty = not polygons_to_mask(seg, *size).any()
            else:
                raise DataError(f"{json_path}: annotation {a.get('id')} has no RLE or polygon segmentation")
            if empty and not self.cfg.skip_empty:
                raise DataError(_empty_message(f"{json_path}: annotation {a.get('id')} has an empty mask"))
            if not empty:
                segs.append(seg)
        if segs:
            ids = tuple(range(1, len(segs) + 1))
            self.items.append(Item(im["file_name"], size, ids, np.ones((1, len(segs)), dtype=bool)))
            self.paths.append(file)
            self.segs.append(segs)

    def frame(self, item: int, t: int) -> np.ndarray:
        return load_image(self.paths[item])

    def masks(self, item: int, t: int, object_ids: tuple[int, ...]) -> np.ndarray:
        h, w = self.items[item].size
        out = []
        for o in object_ids:
            seg = self.segs[item][o - 1]
            out.append(decode_rle(seg) if isinstance(seg, dict) else polygons_to_mask(seg, h, w))
        return np.stack(out)


def open_source(cfg: SourceConfig, names: list[str] | None = None) -> Source:
    """The reader for ``cfg.kind``; ``names`` keeps only those videos (davis, sav) or image files (coco)."""
    kinds = {"davis": DavisSource, "sav": SavSource, "coco": CocoSource}
    return kinds[cfg.kind](cfg, names)
