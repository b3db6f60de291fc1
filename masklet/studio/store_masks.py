"""Masks of a studio project: one per (object, frame), stored as content-addressed files.

Writing follows one rule: the files first, durably, then one transaction with the rows that point at
them. A crash before the commit leaves the previous rows (and their files) untouched; the new files
are unreferenced and removed the next time the project is opened.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..io.masks import mask_to_box_xywh
from .mask_files import encode_mask_file
from .store_core import ProjectCore
from .store_records import MASK_SOURCES, MaskInfo, ProjectError, check_int, check_score

__all__ = ["MaskStore"]

MaskItem = tuple[int, int, np.ndarray, str, float | None]


def _info(row: sqlite3.Row) -> MaskInfo:
    bbox = (row["bx"], row["by"], row["bw"], row["bh"])
    return MaskInfo(
        row["object_id"], row["frame"], row["digest"], row["area"], bbox, row["source"], row["score"]
    )


def _prepare(index: int, item: Any) -> tuple[int, int, np.ndarray, str, float | None]:
    """Check one put_masks item's own fields; returns it with the mask as an (H, W) bool array."""
    where = f"put_masks item {index}"
    if not isinstance(item, (tuple, list)) or len(item) != 5:
        got = f"{len(item)} values" if isinstance(item, (tuple, list)) else type(item).__name__
        raise ProjectError(f"{where} must be a tuple (object_id, frame, mask, source, score), got {got}")
    object_id, frame, mask, source, score = item
    object_id, frame = check_int(object_id, f"{where}: object id"), check_int(frame, f"{where}: frame")
    if not isinstance(mask, np.ndarray) and hasattr(mask, "detach"):
        mask = mask.detach().cpu().numpy()  # a torch tensor
    if not isinstance(mask, np.ndarray) or mask.ndim != 2:
        got = f"shape {mask.shape}" if isinstance(mask, np.ndarray) else type(mask).__name__
        raise ProjectError(f"{where}: the mask must be an (H, W) numpy array, got {got}")
    if source not in MASK_SOURCES:
        raise ProjectError(f"{where}: source must be one of {', '.join(MASK_SOURCES)}, got {source!r}")
    mask = mask if mask.dtype == np.bool_ else mask != 0
    return object_id, frame, mask, source, check_score(score)


class MaskStore(ProjectCore):
    """Mask methods of :class:`masklet.studio.store.Project`.

    Masks are (H, W) bool arrays at the size of their frame. An empty mask is stored like any other
    (it records that the object is absent there) but does not count as coverage.
    """

    def put_masks(self, items: Sequence[MaskItem]) -> list[MaskInfo]:
        """Store masks, each ``(object_id, frame, mask, source, score)``, replacing earlier ones.

        ``mask``: (H, W) bool (nonzero counts as foreground) at the frame's size; ``source``: one of
        "prompt", "track", "import", "auto"; ``score``: float or None. All files are made durable
        first, then every row commits in one transaction; returns the stored infos in item order.
        """
        prepared = [_prepare(i, item) for i, item in enumerate(items)]
        with self._lock:
            self._check_targets(prepared)
        blobs: dict[str, bytes] = {}
        infos = []
        for object_id, frame, mask, source, score in prepared:
            data, digest = encode_mask_file(mask)
            blobs[digest] = data
            bbox = tuple(mask_to_box_xywh(mask))
            infos.append(MaskInfo(object_id, frame, digest, int(np.count_nonzero(mask)), bbox, source, score))
        try:
            self._files.write(blobs)
        except OSError as exc:
            raise ProjectError(
                f"could not write mask files under {self._files.root} ({exc}); nothing was changed. Check "
                "the free disk space and the folder's permissions, then try again"
            ) from exc
        with self.transaction():
            media_ids = self._check_targets(prepared)  # again: another thread may have deleted an object
            self._db.executemany(
                "INSERT OR REPLACE INTO masks (object_id, frame, media_id, digest, area, bx, by, bw, bh, "
                "source, score) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (m.object_id, m.frame, media_id, m.digest, m.area, *m.bbox, m.source, m.score)
                    for m, media_id in zip(infos, media_ids)
                ],
            )
        return infos

    def delete_masks(
        self, object_id: int, frames: Iterable[int] | None = None, from_frame: int | None = None
    ) -> None:
        """Delete an object's masks: all, those on ``frames``, or those on ``from_frame`` and later."""
        if frames is not None and from_frame is not None:
            raise ProjectError("give delete_masks either frames or from_frame, not both")
        with self.transaction():
            row = self._object_row(object_id)
            if frames is None and from_frame is None:
                self._db.execute("DELETE FROM masks WHERE object_id = ?", (row["id"],))
            elif from_frame is not None:
                start = check_int(from_frame, "from_frame", 0)
                self._db.execute("DELETE FROM masks WHERE object_id = ? AND frame >= ?", (row["id"], start))
            else:
                media = self._media_row(row["media_id"])
                chosen = [self._check_frame(media, f) for f in frames]
                self._db.executemany(
                    "DELETE FROM masks WHERE object_id = ? AND frame = ?", [(row["id"], f) for f in chosen]
                )

    def mask(self, object_id: int, frame: int) -> np.ndarray | None:
        """The object's (H, W) bool mask on ``frame``, or None if it has none there."""
        row = self._object_row(object_id)
        frame = self._check_frame(self._media_row(row["media_id"]), frame)
        found = self._one("SELECT digest FROM masks WHERE object_id = ? AND frame = ?", (row["id"], frame))
        # Mask files never change or vanish while the project is open, so read without the lock.
        return None if found is None else self._files.read(found["digest"])

    def mask_infos(self, media_id: int, frame: int) -> list[MaskInfo]:
        """Infos of every stored mask on one frame of a media, by object id."""
        media = self._media_row(media_id)
        frame = self._check_frame(media, frame)
        rows = self._all(
            "SELECT * FROM masks WHERE media_id = ? AND frame = ? ORDER BY object_id", (media["id"], frame)
        )
        return [_info(row) for row in rows]

    def masks_on(self, media_id: int, frame: int) -> dict[int, np.ndarray]:
        """Object id -> (H, W) bool mask for every stored mask on one frame of a media."""
        return {info.object_id: self._files.read(info.digest) for info in self.mask_infos(media_id, frame)}

    def coverage(self, media_id: int) -> dict[int, list[int]]:
        """Object id -> sorted frames where it has a non-empty mask, for every object of the media."""
        media = self._media_row(media_id)
        with self._lock:
            objects = self._all("SELECT id FROM objects WHERE media_id = ? ORDER BY id", (media["id"],))
            rows = self._all(
                "SELECT object_id, frame FROM masks WHERE media_id = ? AND area > 0 "
                "ORDER BY object_id, frame",
                (media["id"],),
            )
        result: dict[int, list[int]] = {row["id"]: [] for row in objects}
        for row in rows:
            result.setdefault(row["object_id"], []).append(row["frame"])
        return result

    def all_mask_infos(self, media_id: int) -> list[MaskInfo]:
        """Infos of every stored mask of a media, by object id then frame."""
        media = self._media_row(media_id)
        rows = self._all("SELECT * FROM masks WHERE media_id = ? ORDER BY object_id, frame", (media["id"],))
        return [_info(row) for row in rows]

    def _check_targets(self, prepared: list[tuple[int, int, np.ndarray, str, float | None]]) -> list[int]:
        """Check each item's object, frame and mask size; returns each item's media id."""
        objects: dict[int, sqlite3.Row] = {}
        media: dict[int, sqlite3.Row] = {}
        sizes: dict[tuple[int, int], tuple[int, int]] = {}
        media_ids = []
        for index, (object_id, frame, mask, _, _) in enumerate(prepared):
            if object_id not in objects:
                objects[object_id] = self._object_row(object_id)
            media_id = objects[object_id]["media_id"]
            if media_id not in media:
                media[media_id] = self._media_row(media_id)
            self._check_frame(media[media_id], frame)
            if (media_id, frame) not in sizes:
                info = self.frame_info(media_id, frame)
                sizes[media_id, frame] = (info.height, info.width)
            height, width = sizes[media_id, frame]
            if mask.shape != (height, width):
                raise ProjectError(
                    f"put_masks item {index}: the mask of object {object_id} on frame {frame} has shape "
                    f"{tuple(mask.shape)} but that frame is {height}x{width} (height x width); give a mask "
                    "at the frame's size"
                )
            media_ids.append(media_id)
        return media_ids
