"""``batch track``: prompts on some frames of each video, masks on every frame.

Per video ``<name>`` the outputs are:

* ``OUT/<name>/NNNNN.png``: one palette PNG per frame (``NNNNN`` = frame index, pixel = object id,
  0 = background; where objects overlap the higher id wins), the DAVIS layout, so
  ``masklet eval score OUT GT`` scores a run directly;
* ``OUT/<name>.json``: SA-V style masklets, COCO RLE per frame and object::

      {"video_id": name, "video_frame_count": N, "video_height": H, "video_width": W,
       "video_fps": fps or null, "masklet_id": [1, 2, ...], "masklet_num": K,
       "masklet": [[rle of masklet_id[0], rle of masklet_id[1], ...] for frame 0, 1, ..., N - 1],
       "masklet_first_appeared_frame": [...], "masklet_frame_count": [...], "masklet_type": "auto",
       "prompts": [{"frame", "object", "kind"}], "start_frame": s, "model": {...}}

  (``rle``: ``{"size": [H, W], "counts": str}``, ``pycocotools.mask.decode`` reads it as is;
  first appearance -1 and frame count 0 for an object never seen).

Tracking starts at the earliest prompted frame ``s`` and runs forward to the last frame, then, when
``s > 0``, backward from ``s`` to frame 0, so every frame gets masks. Frames are decoded lazily and
the predictor's state is bounded, whatever the length; only the masks' RLE strings are kept until the
JSON is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .items import BatchInputError, Item, ItemError, few, find_videos
from .manifest import read_prompts
from .worker import ItemResult

__all__ = ["TrackJob"]


@dataclass(frozen=True)
class TrackJob:
    """Track the prompted objects of every video of a folder (see the module docstring).

    videos: folder of video files and/or frame folders; prompts: a JSON/JSONL manifest or a folder of
    annotation PNGs (:mod:`.manifest`); memory_frames: recent frames each frame attends to (1..7;
    None: the model's 7); frame_cache_bytes: bound on the decoded frames a worker keeps per video.
    """

    videos: str
    prompts: str
    memory_frames: int | None = None
    frame_cache_bytes: int = 256 * 2**20
    mode = "track"

    def discover(self) -> tuple[list[Item], list[str]]:
        if self.memory_frames is not None and not 1 <= self.memory_frames <= 7:
            raise BatchInputError(f"memory frames must be 1..7, got {self.memory_frames}")
        videos = find_videos(self.videos)
        prompts = read_prompts(self.prompts, videos)
        items = [
            Item(name, {"video": str(path.resolve()), **prompts[name]})
            for name, path in videos.items()
            if name in prompts
        ]
        if not items:
            raise BatchInputError(
                f"none of the {len(videos)} videos in {self.videos} has prompts in {self.prompts}"
            )
        unprompted = [name for name in videos if name not in prompts]
        notes = [f"note: {len(unprompted)} video(s) without prompts are left out: {few(unprompted)}"]
        return items, notes if unprompted else []

    def settings(self) -> dict:
        return {
            "videos": str(Path(self.videos).resolve()),
            "prompts": str(Path(self.prompts).resolve()),
            "memory_frames": self.memory_frames,
        }

    def setup(self, model, meta: dict):
        return TrackWork(model, meta, self.memory_frames, self.frame_cache_bytes)

    def finish(self, out: Path, done: list[Item]) -> list[str]:
        return []


@dataclass
class _Prompt:
    frame: int
    obj: int
    kind: str
    points: list | None = None
    labels: list | None = None
    box: list | None = None
    mask: np.ndarray | None = None


class TrackWork:
    """One worker's tracker: a VideoPredictor over the worker's model, run once per video."""

    def __init__(self, model, meta: dict, memory_frames: int | None, frame_cache_bytes: int) -> None:
        from ..inference.memory_bank import MemoryBank
        from ..inference.video import VideoPredictor

        bank = None if memory_frames is None else MemoryBank.official(model.cfg, num_maskmem=memory_frames)
        self.predictor = VideoPredictor(model, memory_bank=bank)
        self.meta = meta
        self.frame_cache_bytes = frame_cache_bytes

    def __call__(self, item: Item, folder: Path) -> ItemResult:
        from ..io.frames import open_frames

        source = open_frames(item.data["video"], cache_bytes=self.frame_cache_bytes)
        try:
            prompts = _resolve(item.data, source)
            state = self.predictor.init_state(source)
            try:
                for p in sorted(prompts, key=lambda p: (p.obj, p.frame)):
                    if p.mask is not None:
                        self.predictor.add_new_mask(state, p.frame, p.obj, p.mask)
                    else:
                        self.predictor.add_new_points_or_box(
                            state, p.frame, p.obj, points=p.points, labels=p.labels, box=p.box
                        )
                return self._track(item.key, state, source, prompts, folder)
            finally:
                state.close()
        finally:
            source.close()

    def _track(self, name: str, state, source, prompts: list[_Prompt], folder: Path) -> ItemResult:
        from ..io.exporters import PalettePngWriter, RleFrames

        n, h, w = source.num_frames, source.height, source.width
        start = min(p.frame for p in prompts)
        pngs = PalettePngWriter(folder / name)
        store = RleFrames(h, w)
        seen: dict[int, list[int]] = {}  # object -> frames where its mask is not empty
        ids: list[int] = []
        for reverse in (False, True) if start > 0 else (False,):
            for idx, obj_ids, logits in self.predictor.propagate_in_video(
                state, start_frame_idx=start, reverse=reverse
            ):
                if reverse and idx == start:
                    continue  # the forward pass wrote the start frame
                masks = logits > 0
                masks = (masks[:, 0] if masks.ndim == 4 else masks).cpu().numpy()
                ids = [int(i) for i in obj_ids]
                pngs.write(int(idx), ids, masks)
                store.add(int(idx), ids, masks)
                for obj, m in zip(ids, masks):
                    if m.any():
                        seen.setdefault(obj, []).append(int(idx))
        frames = store.to_dict()
        doc = {
            "video_id": name,
            "video_frame_count": n,
            "video_height": h,
            "video_width": w,
            "video_fps": getattr(source, "fps", None),
            "masklet_id": ids,
            "masklet_num": len(ids),
            "masklet": [[frames[str(f)][str(obj)] for obj in ids] for f in range(n)],
            "masklet_first_appeared_frame": [min(seen[o]) if o in seen else -1 for o in ids],
            "masklet_frame_count": [len(seen.get(o, [])) for o in ids],
            "masklet_type": "auto",
            "prompts": [{"frame": p.frame, "object": p.obj, "kind": p.kind} for p in prompts],
            "start_frame": start,
            "model": self.meta,
        }
        (folder / f"{name}.json").write_text(json.dumps(doc, separators=(",", ":")))
        masks = sum(len(v) for v in seen.values())
        return ItemResult([name, f"{name}.json"], frames=len(frames), masks=masks)


def _resolve(data: dict, source) -> list[_Prompt]:
    """The item's prompts, checked against the video (ItemError for a frame it lacks, a wrong mask)."""
    n, hw = source.num_frames, (source.height, source.width)
    if "annotations" in data:
        prompts = _first_appearances(Path(data["annotations"]), source)
        if not prompts:
            raise ItemError(f"the annotation PNGs in {data['annotations']} hold no object (all 0 or 255)")
        return prompts
    out = []
    for rec in data["prompts"]:
        f, obj = rec["frame"], rec["object"]
        if f >= n:
            raise ItemError(
                f"a prompt for object {obj} is on frame {f}, but the video has {n} frames (0..{n - 1})"
            )
        if "mask" in rec:
            mask = _read_mask(Path(rec["mask"])) != 0
            if mask.shape != hw:
                raise ItemError(
                    f"mask {Path(rec['mask']).name} is {mask.shape[1]}x{mask.shape[0]} but the video is "
                    f"{hw[1]}x{hw[0]}; masks must have the frame's size"
                )
            out.append(_Prompt(f, obj, "mask", mask=mask))
            continue
        kind = "+".join(k for k in ("points", "box") if k in rec)
        out.append(_Prompt(f, obj, kind, rec.get("points"), rec.get("labels"), rec.get("box")))
    return out


def _read_mask(path: Path) -> np.ndarray:
    from ..io.masks import read_id_png

    return read_id_png(path)


def _first_appearances(folder: Path, source) -> list[_Prompt]:
    """A mask prompt for each object on the first annotation PNG (in frame order) it appears in."""
    pngs = sorted(p for p in folder.glob("*.png") if not p.name.startswith("."))
    paths = getattr(source, "paths", None)
    index = {Path(p).stem: i for i, p in enumerate(paths)} if paths is not None else None
    located = []
    for png in pngs:
        if index is not None:
            frame = index.get(png.stem)
        else:
            frame = int(png.stem) if png.stem.isdigit() else None
        if frame is None or frame >= source.num_frames:
            what = "no frame of that name" if index is not None else "no frame of that index"
            raise ItemError(f"annotation {png.name} has {what} in the video ({source.num_frames} frames)")
        located.append((frame, png))
    found: dict[int, _Prompt] = {}
    for frame, png in sorted(located):
        ids = _read_mask(png)
        if ids.shape != (source.height, source.width):
            raise ItemError(
                f"annotation {png.name} is {ids.shape[1]}x{ids.shape[0]} but the video is "
                f"{source.width}x{source.height}"
            )
        for obj in np.unique(ids).tolist():
            if obj not in (0, 255) and obj not in found:
                found[obj] = _Prompt(frame, int(obj), "mask", mask=ids == obj)
    return list(found.values())
