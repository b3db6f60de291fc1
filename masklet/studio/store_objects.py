"""Objects (tracks) of a studio project and the prompts placed on them, frame by frame."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from .store_labels import LabelStore
from .store_records import OBJECT_STATUSES, ObjectRecord, ProjectError, Prompt

__all__ = ["ObjectStore"]


def _object(row: sqlite3.Row) -> ObjectRecord:
    return ObjectRecord(
        row["id"], row["media_id"], row["track_id"], row["label_id"], row["status"], row["end_frame"],
        row["created_frame"],
    )  # fmt: skip


def _prompt(row: sqlite3.Row) -> Prompt:
    return Prompt(row["kind"], row["x0"], row["y0"], row["x1"], row["y1"], bool(row["positive"]))


class ObjectStore(LabelStore):
    """Object and prompt methods of :class:`masklet.studio.store.Project`.

    An object starts ``"pending"`` (being prompted, no label) and becomes ``"done"`` when finished with
    a label. Its ``track_id`` numbers it within its media and is never handed out twice there, even
    after the object is deleted, so exported track ids stay stable.
    """

    def new_object(self, media_id: int, frame: int) -> ObjectRecord:
        """A new pending object of ``media_id``, first prompted on ``frame``."""
        with self.transaction():
            media = self._media_row(media_id)
            frame = self._check_frame(media, frame)
            track_id = media["last_track_id"] + 1
            self._db.execute("UPDATE media SET last_track_id = ? WHERE id = ?", (track_id, media["id"]))
            cur = self._db.execute(
                "INSERT INTO objects (media_id, track_id, status, created_frame) VALUES (?, ?, 'pending', ?)",
                (media["id"], track_id, frame),
            )
            return self.get_object(cur.lastrowid)

    def objects(self, media_id: int | None = None, status: str | None = None) -> list[ObjectRecord]:
        """Objects (oldest first), optionally only those of one media and/or with one status."""
        where, args = [], []
        if media_id is not None:
            where.append("media_id = ?")
            args.append(self._media_row(media_id)["id"])
        if status is not None:
            if status not in OBJECT_STATUSES:
                raise ProjectError(f"object status must be 'pending' or 'done', got {status!r}")
            where.append("status = ?")
            args.append(status)
        sql = "SELECT * FROM objects" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        return [_object(row) for row in self._all(sql, args)]

    def get_object(self, object_id: int) -> ObjectRecord:
        """The object with this id; ProjectError if there is none."""
        return _object(self._object_row(object_id))

    def pending_object(self, media_id: int) -> ObjectRecord | None:
        """The media's pending object (the newest if there are several), or None."""
        media = self._media_row(media_id)
        row = self._one(
            "SELECT * FROM objects WHERE media_id = ? AND status = 'pending' ORDER BY id DESC LIMIT 1",
            (media["id"],),
        )
        return None if row is None else _object(row)

    def finish_object(self, object_id: int, label_name: str) -> ObjectRecord:
        """Mark the object done with the label ``label_name`` (created if new); keeps its track id."""
        with self.transaction():
            row = self._object_row(object_id)
            label_id = self._ensure_label(label_name)
            self._db.execute(
                "UPDATE objects SET status = 'done', label_id = ? WHERE id = ?", (label_id, row["id"])
            )
            return self.get_object(row["id"])

    def set_object_label(self, object_id: int, label_name: str) -> ObjectRecord:
        """Relabel an object (the label is created if new); its status is unchanged."""
        with self.transaction():
            row = self._object_row(object_id)
            label_id = self._ensure_label(label_name)
            self._db.execute("UPDATE objects SET label_id = ? WHERE id = ?", (label_id, row["id"]))
            return self.get_object(row["id"])

    def delete_object(self, object_id: int) -> None:
        """Remove an object with all its prompts and masks (its track id is not reused)."""
        with self.transaction():
            row = self._object_row(object_id)
            self._db.execute("DELETE FROM objects WHERE id = ?", (row["id"],))

    def end_object_at(self, object_id: int, frame: int) -> ObjectRecord:
        """End the track before ``frame``: drop its masks and prompts on ``frame`` and later ones."""
        with self.transaction():
            row = self._object_row(object_id)
            frame = self._check_frame(self._media_row(row["media_id"]), frame)
            self._db.execute("DELETE FROM masks WHERE object_id = ? AND frame >= ?", (row["id"], frame))
            self._db.execute("DELETE FROM prompts WHERE object_id = ? AND frame >= ?", (row["id"], frame))
            self._db.execute("UPDATE objects SET end_frame = ? WHERE id = ?", (frame, row["id"]))
            return self.get_object(row["id"])

    # -- prompts ------------------------------------------------------------------------------------

    def set_prompts(self, object_id: int, frame: int, prompts: Sequence[Prompt]) -> None:
        """Replace the object's prompts on ``frame`` with ``prompts`` (in order); ``[]`` removes them."""
        if isinstance(prompts, (str, bytes)) or not isinstance(prompts, Sequence):
            raise ProjectError(f"prompts must be a list of Prompt, got {type(prompts).__name__}")
        for i, prompt in enumerate(prompts):
            if not isinstance(prompt, Prompt):
                raise ProjectError(
                    f"prompts[{i}] must be a Prompt (e.g. Prompt('point', x, y)), got {type(prompt).__name__}"
                )
        with self.transaction():
            row = self._object_row(object_id)
            frame = self._check_frame(self._media_row(row["media_id"]), frame)
            self._db.execute("DELETE FROM prompts WHERE object_id = ? AND frame = ?", (row["id"], frame))
            self._db.executemany(
                "INSERT INTO prompts (object_id, frame, seq, kind, x0, y0, x1, y1, positive) "
                "VALUES (?,?,?,?,?,?,?,?,?)",
                [
                    (row["id"], frame, seq, p.kind, p.x0, p.y0, p.x1, p.y1, int(p.positive))
                    for seq, p in enumerate(prompts)
                ],
            )

    def prompts(self, object_id: int) -> dict[int, list[Prompt]]:
        """The object's prompts: frame -> prompts in the order they were given (frames ascending)."""
        row = self._object_row(object_id)
        result: dict[int, list[Prompt]] = {}
        for p in self._all("SELECT * FROM prompts WHERE object_id = ? ORDER BY frame, seq", (row["id"],)):
            result.setdefault(p["frame"], []).append(_prompt(p))
        return result

    def prompts_on(self, media_id: int, frame: int) -> dict[int, list[Prompt]]:
        """Prompts on one frame of a media: object id -> prompts (objects ascending)."""
        media = self._media_row(media_id)
        frame = self._check_frame(media, frame)
        rows = self._all(
            "SELECT p.* FROM prompts p JOIN objects o ON o.id = p.object_id "
            "WHERE o.media_id = ? AND p.frame = ? ORDER BY p.object_id, p.seq",
            (media["id"], frame),
        )
        result: dict[int, list[Prompt]] = {}
        for p in rows:
            result.setdefault(p["object_id"], []).append(_prompt(p))
        return result
