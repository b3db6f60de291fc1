"""Seeded synthetic video-object-segmentation data in the DAVIS, SA-V and COCO layouts.

Textured shapes (ellipses, star polygons, rounded rectangles; stripes, checker, noise and gradient
textures in distinct hues) move along smooth trajectories, turn and change scale over a textured,
slowly panning background with unlabelled clutter. Every video (of 6 frames or more) has an object
that leaves the frame and comes back and passes over or under another object; some objects enter after
the first frame (see :mod:`masklet.eval.synthetic_scene`). The same seed always gives the same bytes
with the same numpy and Pillow: frames and PNGs are rendered with numpy from a seeded Generator and
written with Pillow (JPEG bytes may differ between libjpeg builds, the decoded frames barely).

Layouts written:

* :func:`make_vos_dataset` (DAVIS 2017)::

      root/JPEGImages/480p/<video>/00000.jpg ...
      root/Annotations/480p/<video>/00000.png ...   palette PNG: 0 background, k object k, 255 void
      root/ImageSets/2017/val.txt                   (and train.txt when asked for)

* :func:`to_sav_layout` (SA-V, one folder per object)::

      out/JPEGImages_24fps/<video>/00000.jpg ...
      out/Annotations_6fps/<video>/<obj:03d>/00000.png ...   palette PNG: 0 background, 1 object
      out/sav_val.txt

* :func:`make_image_dataset` (COCO instances): ``root/images/000000.jpg ...`` and
  ``root/annotations.json`` with compressed-RLE masks.

Video ``i`` of a seed does not depend on how many videos are made, and :func:`generate_video` renders
one in memory (frames, labels and amodal masks) for training or tests without touching the disk.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..io.masks import encode_rle, mask_to_box_xywh
from .synthetic_scene import plan_scene

__all__ = [
    "SyntheticVideo",
    "davis_palette",
    "generate_video",
    "make_image_dataset",
    "make_vos_dataset",
    "to_sav_layout",
]

VOID = 255  # the DAVIS "don't care" label
_VIDEO_STREAM, _IMAGE_STREAM = 0, 1  # keep video and image scenes of one seed independent


@dataclass(frozen=True)
class SyntheticVideo:
    """One rendered synthetic video.

    frames: (T, H, W, 3) uint8 RGB. labels: (T, H, W) uint8, visible object id per pixel (0 background,
    1..N objects, no void). amodal: (T, N, H, W) bool, object k+1's full extent in the frame including
    the parts hidden behind other objects. roles: per object id 1..N, "sweep" (leaves the frame and
    returns), "late" (enters after frame 0) or "wander".
    """

    name: str
    frames: np.ndarray
    labels: np.ndarray
    amodal: np.ndarray
    roles: tuple[str, ...]

    @property
    def num_objects(self) -> int:
        return len(self.roles)


def davis_palette() -> np.ndarray:
    """(256, 3) uint8 DAVIS / PASCAL VOC palette: 1 = (128, 0, 0), 2 = (0, 128, 0), 255 = (224, 224, 192)."""
    idx = np.arange(256)
    palette = np.zeros((256, 3), dtype=np.int64)
    for bit in range(8):
        for channel in range(3):
            palette[:, channel] |= ((idx >> (3 * bit + channel)) & 1) << (7 - bit)
    return palette.astype(np.uint8)


def _check_args(num_frames: int, size, objects) -> tuple[tuple[int, int], tuple[int, int]]:
    if int(num_frames) < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    h, w = (int(v) for v in size)
    if h < 32 or w < 32:
        raise ValueError(f"size must be (H, W) with both sides >= 32 pixels, got {tuple(size)}")
    lo, hi = (int(v) for v in objects)
    if not 1 <= lo <= hi <= 254:
        raise ValueError(f"objects must be (min, max) with 1 <= min <= max <= 254, got {tuple(objects)}")
    return (h, w), (lo, hi)


def generate_video(
    index: int = 0,
    seed: int = 0,
    num_frames: int = 24,
    size: tuple[int, int] = (240, 320),
    objects: tuple[int, int] = (1, 3),
    late_objects: float = 0.3,
) -> SyntheticVideo:
    """Render video ``index`` of ``seed`` in memory (see :class:`SyntheticVideo`).

    num_frames >= 1; size (H, W) >= 32 each; objects (min, max) count per video, drawn uniformly;
    late_objects: probability in [0, 1] that each object after the first enters after frame 0.
    """
    (h, w), (lo, hi) = _check_args(num_frames, size, objects)
    if not 0.0 <= late_objects <= 1.0:
        raise ValueError(f"late_objects is a probability in [0, 1], got {late_objects}")
    rng = np.random.default_rng([int(seed), _VIDEO_STREAM, int(index)])
    count = int(rng.integers(lo, hi + 1))
    scene = plan_scene(rng, (h, w), count, int(num_frames), float(late_objects))
    frames = np.empty((num_frames, h, w, 3), dtype=np.uint8)
    labels = np.empty((num_frames, h, w), dtype=np.uint8)
    amodal = np.empty((num_frames, count, h, w), dtype=bool)
    for t in range(num_frames):
        frames[t], labels[t], amodal[t] = scene.render(t)
    roles = tuple(obj.role for obj in scene.objects)
    return SyntheticVideo(f"synth_{int(index):03d}", frames, labels, amodal, roles)


def _void_band(labels: np.ndarray, width: int) -> np.ndarray:
    """Pixels within ``width - 1`` pixels (chessboard) of a boundary between two different labels."""
    edge = np.zeros(labels.shape, dtype=bool)
    dy = labels[1:] != labels[:-1]
    dx = labels[:, 1:] != labels[:, :-1]
    edge[1:] |= dy
    edge[:-1] |= dy
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    for _ in range(width - 1):
        grown = edge.copy()
        grown[1:] |= edge[:-1]
        grown[:-1] |= edge[1:]
        grown[:, 1:] |= grown[:, :-1].copy()
        grown[:, :-1] |= grown[:, 1:].copy()
        edge = grown
    return edge


def _save_palette_png(array: np.ndarray, path: Path, palette: list[int]) -> None:
    image = Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8))
    image.putpalette(palette)
    image.save(path, format="PNG")


def make_vos_dataset(
    root,
    num_videos: int = 4,
    num_frames: int = 24,
    size: tuple[int, int] = (240, 320),
    objects: tuple[int, int] = (1, 3),
    seed: int = 0,
    *,
    late_objects: float = 0.3,
    void_width: int = 0,
    train_videos: int = 0,
    jpeg_quality: int = 90,
    resolution: str = "480p",
) -> Path:
    """Write a synthetic DAVIS-2017-style dataset under ``root`` and return ``root`` as a Path.

    num_videos videos named ``synth_000``...; num_frames frames each of ``size`` (H, W) pixels;
    objects (min, max) objects per video; seed: same seed, same bytes. late_objects: probability that
    an object after the first enters after frame 0. void_width: 0 (default) for clean annotations, or
    the width in pixels of a band of 255 (void) painted along every object border. train_videos: the
    first ``train_videos`` videos go to ``train.txt``, the rest to ``val.txt``. resolution: the
    DAVIS resolution folder name (the frames keep ``size`` whatever it says). Existing files of the
    same names are overwritten.
    """
    if int(num_videos) < 1:
        raise ValueError(f"num_videos must be >= 1, got {num_videos}")
    if not 0 <= int(train_videos) <= int(num_videos):
        raise ValueError(f"train_videos must be in [0, num_videos={num_videos}], got {train_videos}")
    if int(void_width) < 0:
        raise ValueError(f"void_width must be >= 0 (0 turns the void band off), got {void_width}")
    if not 1 <= int(jpeg_quality) <= 100:
        raise ValueError(f"jpeg_quality must be in 1..100, got {jpeg_quality}")
    root = Path(root)
    palette = davis_palette().ravel().tolist()
    names = []
    for index in range(int(num_videos)):
        video = generate_video(index, seed, num_frames, size, objects, late_objects)
        names.append(video.name)
        jpg_dir = root / "JPEGImages" / resolution / video.name
        png_dir = root / "Annotations" / resolution / video.name
        jpg_dir.mkdir(parents=True, exist_ok=True)
        png_dir.mkdir(parents=True, exist_ok=True)
        for t in range(video.frames.shape[0]):
            Image.fromarray(video.frames[t]).save(jpg_dir / f"{t:05d}.jpg", quality=int(jpeg_quality))
            ann = video.labels[t]
            if void_width > 0:
                ann = ann.copy()
                ann[_void_band(ann, int(void_width))] = VOID
            _save_palette_png(ann, png_dir / f"{t:05d}.png", palette)
    sets = root / "ImageSets" / "2017"
    sets.mkdir(parents=True, exist_ok=True)
    split = int(train_videos)
    (sets / "val.txt").write_text("".join(f"{n}\n" for n in names[split:]))
    if split:
        (sets / "train.txt").write_text("".join(f"{n}\n" for n in names[:split]))
    return root


def to_sav_layout(davis_root, out, resolution: str = "480p", split: str = "val") -> Path:
    """Copy a DAVIS-layout dataset into the SA-V layout (one PNG folder per object); returns ``out``.

    Reads the videos of ``ImageSets/2017/<split>.txt`` (every video folder when the list is missing),
    copies their JPEGs byte for byte, and writes for every object id seen anywhere in a video a
    ``<id:03d>`` folder with one 0/1 palette PNG per frame (void 255 pixels count as background), plus
    ``sav_<split>.txt``. SAM 2's ``vos_inference.py --per_obj_png_file`` reads this layout.
    """
    davis_root, out = Path(davis_root), Path(out)
    jpg_root = davis_root / "JPEGImages" / resolution
    ann_root = davis_root / "Annotations" / resolution
    if not jpg_root.is_dir() or not ann_root.is_dir():
        raise ValueError(
            f"{davis_root} is not a DAVIS-layout dataset: expected JPEGImages/{resolution} and "
            f"Annotations/{resolution} in it (make one with make_vos_dataset)"
        )
    listing = davis_root / "ImageSets" / "2017" / f"{split}.txt"
    if listing.is_file():
        names = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    else:
        names = sorted(p.name for p in ann_root.iterdir() if p.is_dir())
    palette = davis_palette().ravel().tolist()
    for name in names:
        pngs = sorted((ann_root / name).glob("*.png"))
        if not pngs:
            raise ValueError(f"video {name!r} has no annotation PNG in {ann_root / name}")
        jpg_out = out / "JPEGImages_24fps" / name
        jpg_out.mkdir(parents=True, exist_ok=True)
        for jpg in sorted((jpg_root / name).glob("*.jpg")):
            shutil.copyfile(jpg, jpg_out / jpg.name)
        labels = [np.asarray(Image.open(p)) for p in pngs]
        ids = sorted(set(np.unique(np.stack(labels)).tolist()) - {0, VOID})
        for obj_id in ids:
            obj_dir = out / "Annotations_6fps" / name / f"{obj_id:03d}"
            obj_dir.mkdir(parents=True, exist_ok=True)
            for path, label in zip(pngs, labels):
                _save_palette_png((label == obj_id).astype(np.uint8), obj_dir / path.name, palette)
    (out / f"sav_{split}.txt").write_text("".join(f"{n}\n" for n in names))
    return out


def make_image_dataset(
    root,
    num_images: int = 8,
    seed: int = 0,
    size: tuple[int, int] = (240, 320),
    objects: tuple[int, int] = (1, 4),
    *,
    min_area: int = 16,
    jpeg_quality: int = 90,
) -> tuple[Path, Path]:
    """Write synthetic images with COCO instance masks; returns ``(images_dir, annotations_json)``.

    Images ``root/images/000000.jpg``...; ``root/annotations.json`` is COCO instances JSON: one
    category ("object"), one annotation per visible object with at least ``min_area`` pixels, masks as
    compressed RLE of the visible part (``pycocotools.mask.decode`` reads them), ``bbox`` [x, y, w, h]
    and ``area`` in pixels. Same seed, same bytes.
    """
    if int(num_images) < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    (h, w), (lo, hi) = _check_args(1, size, objects)
    root = Path(root)
    images_dir = root / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for index in range(int(num_images)):
        rng = np.random.default_rng([int(seed), _IMAGE_STREAM, index])
        scene = plan_scene(rng, (h, w), int(rng.integers(lo, hi + 1)), 1, 0.0)
        frame, labels, _ = scene.render(0)
        file_name = f"{index:06d}.jpg"
        Image.fromarray(frame).save(images_dir / file_name, quality=int(jpeg_quality))
        images.append({"id": index + 1, "file_name": file_name, "height": h, "width": w})
        for obj in scene.objects:
            mask = labels == obj.obj_id
            area = int(mask.sum())
            if area < min_area:
                continue
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": index + 1,
                    "category_id": 1,
                    "segmentation": encode_rle(mask),
                    "area": area,
                    "bbox": [float(v) for v in mask_to_box_xywh(mask)],
                    "iscrowd": 0,
                }
            )
    coco = {
        "info": {"description": f"masklet synthetic images, seed {int(seed)}"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "object", "supercategory": "shape"}],
    }
    json_path = root / "annotations.json"
    json_path.write_text(json.dumps(coco))
    return images_dir, json_path
