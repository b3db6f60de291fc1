"""Export and import of labeled data (:class:`~masklet.studio.annotations.AnnotationSet`).

One module per format family; :func:`export` picks one by name:

================  ==================================================================================
``coco``          ``annotations.json``, COCO instances with compressed RLE masks (:mod:`.coco`)
``coco_polygon``  the same with polygon segmentations
``yolo_seg``      ``labels/<stem>.txt`` polygons + ``classes.txt`` + ``data.yaml`` (:mod:`.yolo`)
``yolo_det``      the same with boxes
``labelme``       ``<stem>.json`` per image, LabelMe / X-AnyLabeling (:mod:`.labelme`)
``mot``           ``<video>.txt`` MOTChallenge boxes + ``<video>.labels.json`` (:mod:`.mot`)
``png``           indexed palette PNG masks + ``objects.json`` (:mod:`.rendered`)
``mp4``           ``<video>.mp4`` with the masks drawn over the frames (needs ``reader``)
================  ==================================================================================

Per-image files are named by :func:`image_stems`. Every file is written to a temporary name and
renamed into place, so an interrupted export never leaves a truncated file. Annotations with an empty
mask (and no box) are left out of every format.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

from ..annotations import AnnotationSet, ImageReader
from ._common import image_stems
from .coco import export_coco, import_coco
from .labelme import export_labelme, import_labelme
from .mot import export_mot
from .rendered import export_overlay_video, export_png_masks
from .yolo import export_yolo, import_yolo

__all__ = [
    "FORMATS",
    "export",
    "export_coco",
    "export_labelme",
    "export_mot",
    "export_overlay_video",
    "export_png_masks",
    "export_yolo",
    "image_stems",
    "import_coco",
    "import_labelme",
    "import_yolo",
]

# name -> (function, fixed options, whether it takes the image reader)
_EXPORTERS: dict[str, tuple[Callable, dict, bool]] = {
    "coco": (export_coco, {"segmentation": "rle"}, False),
    "coco_polygon": (export_coco, {"segmentation": "polygon"}, False),
    "yolo_seg": (export_yolo, {"task": "segment"}, True),
    "yolo_det": (export_yolo, {"task": "detect"}, True),
    "labelme": (export_labelme, {}, True),
    "mot": (export_mot, {}, False),
    "png": (export_png_masks, {}, False),
    "mp4": (export_overlay_video, {}, True),
}
FORMATS: tuple[str, ...] = tuple(_EXPORTERS)
COCO_FILE = "annotations.json"


def export(
    aset: AnnotationSet, fmt: str, out_dir: str | Path, reader: ImageReader | None = None, **opts
) -> list[Path]:
    """Export ``aset`` in format ``fmt`` (one of :data:`FORMATS`) under ``out_dir``.

    Args:
        reader: image key -> (H, W, 3) uint8 RGB. Required for ``mp4``; for ``yolo_*`` and ``labelme``
            it also writes the images next to the labels; other formats ignore it.
        opts: the format function's own options, e.g. ``tolerance=0.5`` for polygons, ``fps=25`` for
            mp4, ``shape="rectangle"`` for labelme.

    Returns:
        The files written, in writing order.
    """
    if fmt not in _EXPORTERS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    func, fixed, takes_reader = _EXPORTERS[fmt]
    allowed = [
        p for p in inspect.signature(func).parameters if p not in ("aset", "out_dir", "out_json", "reader")
    ]
    allowed = [p for p in allowed if p not in fixed]
    unknown = sorted(set(opts) - set(allowed))
    if unknown:
        raise ValueError(
            f"format {fmt!r} has no option {', '.join(map(repr, unknown))}; "
            f"its options are: {', '.join(allowed) or 'none'}"
        )
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file; pass a folder to export into")
    if fmt == "mp4" and reader is None:
        raise ValueError("the mp4 export draws masks over the frames: pass reader=<image key -> RGB array>")
    kwargs = {**fixed, **opts}
    if takes_reader and reader is not None:
        kwargs["reader"] = reader
    if func is export_coco:
        return func(aset, out / COCO_FILE, **kwargs)
    return func(aset, out, **kwargs)
