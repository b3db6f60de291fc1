"""``batch everything``: segment everything in each image, one SA-1B style JSON per image.

``OUT/<image path without suffix>.json``::

    {"image": {"image_id": n, "file_name": "a/b.jpg", "height": H, "width": W},
     "annotations": [{"id": k, "segmentation": {"size": [H, W], "counts": str}, "bbox": [x, y, w, h],
                      "area": pixels, "predicted_iou": float, "stability_score": float,
                      "point_coords": [[x, y]], "crop_box": [x, y, w, h]}, ...],
     "model": {...}, "settings": {...}}

as SA-1B's files (``image_id`` numbers the images from 1 in name order; scores that are undefined,
e.g. the stability of an empty mask, are null). The generator settings are the official
SAM2AutomaticMaskGenerator's names and defaults (:class:`masklet.AutoMaskGenerator`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path

from .items import BatchInputError, Item, find_images
from .worker import ItemResult

__all__ = ["EverythingJob"]


def _defaults() -> dict:
    """The generator settings a run may change, with the official defaults (AutoMaskConfig's)."""
    from ..inference.automask_config import AutoMaskConfig

    skip = ("point_grids", "output_mode")  # the outputs are RLEs; grids are arrays, not JSON settings
    return {f.name: f.default for f in fields(AutoMaskConfig) if f.name not in skip}


@dataclass(frozen=True)
class EverythingJob:
    """Every mask of every image of a folder (see the module docstring).

    generator: AutoMaskGenerator settings by their official names (all but ``point_grids`` and
        ``output_mode``; the rest keep the official defaults).
    """

    images: str
    generator: dict = field(default_factory=dict)
    mode = "everything"

    def discover(self) -> tuple[list[Item], list[str]]:
        known = _defaults()
        unknown = sorted(set(self.generator) - set(known))
        if unknown:
            raise BatchInputError(f"unknown generator setting(s) {unknown}; known: {', '.join(known)}")
        self._check_settings()
        found = find_images(self.images)
        root = Path(self.images)
        items = [
            Item(
                key,
                {"image": str(path.resolve()), "file_name": path.relative_to(root).as_posix(), "id": i + 1},
            )
            for i, (key, path) in enumerate(found.items())
        ]
        return items, []

    def _check_settings(self) -> None:
        from ..inference.automask_config import AutoMaskConfig

        try:
            AutoMaskConfig(**self.settings()).layer_grids()
        except (TypeError, ValueError) as exc:
            raise BatchInputError(str(exc)) from None

    def settings(self) -> dict:
        return {**_defaults(), **self.generator}

    def setup(self, model, meta: dict):
        return EverythingWork(model, meta, self.settings())

    def finish(self, out: Path, done: list[Item]) -> list[str]:
        return []


class EverythingWork:
    """One worker's generator: an AutoMaskGenerator over the worker's model."""

    def __init__(self, model, meta: dict, settings: dict) -> None:
        from ..inference.automask import AutoMaskGenerator

        self.generator = AutoMaskGenerator(model, output_mode="coco_rle", **settings)
        self.meta = meta
        self.settings = settings

    def __call__(self, item: Item, folder: Path) -> ItemResult:
        from ..io.images import load_image

        image = load_image(item.data["image"])
        records = self.generator.generate(image)
        h, w = image.shape[:2]
        doc = {
            "image": {
                "image_id": item.data["id"],
                "file_name": item.data["file_name"],
                "height": h,
                "width": w,
            },
            "annotations": [
                {
                    "id": i + 1,
                    "segmentation": r["segmentation"],
                    "bbox": r["bbox"],
                    "area": r["area"],
                    "predicted_iou": _finite(r["predicted_iou"]),
                    "stability_score": _finite(r["stability_score"]),
                    "point_coords": r["point_coords"],
                    "crop_box": r["crop_box"],
                }
                for i, r in enumerate(records)
            ],
            "model": self.meta,
            "settings": self.settings,
        }
        name = f"{item.key}.json"
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(json.dumps(doc, separators=(",", ":"), allow_nan=False))
        return ItemResult([name], frames=1, masks=len(records))


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
