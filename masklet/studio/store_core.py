"""The database side of a studio project: schema, transactions, revision, settings and media.

One sqlite3 connection serves every thread; an ``RLock`` makes each call (and each ``transaction()``
block) exclusive. Transactions are explicit: the outermost ``transaction()`` is ``BEGIN IMMEDIATE`` ..
``COMMIT``, nested ones are savepoints, so a failing step inside a larger block undoes only itself and
re-raises. A committed transaction that changed anything also bumps the project's revision.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .mask_files import MaskFiles
from .store_records import MEDIA_KINDS, FrameInfo, Media, ProjectError, check_int

__all__ = ["DB_NAME", "FORMAT_NAME", "SCHEMA", "SCHEMA_VERSION", "ProjectCore", "upgrade_schema"]

DB_NAME = "project.db"
MASKS_DIR = "masks"
FORMAT_NAME = "masklet-studio-project"
SCHEMA_VERSION = 2  # 2: masks of source 'machine' (a batch run's pre-labels)

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE media (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('video', 'images')),
    source TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    num_frames INTEGER NOT NULL CHECK (num_frames > 0),
    width INTEGER NOT NULL CHECK (width > 0),
    height INTEGER NOT NULL CHECK (height > 0),
    fps REAL,
    last_track_id INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE frames (
    media_id INTEGER NOT NULL REFERENCES media(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    name TEXT NOT NULL,
    width INTEGER NOT NULL CHECK (width > 0),
    height INTEGER NOT NULL CHECK (height > 0),
    PRIMARY KEY (media_id, idx)
) WITHOUT ROWID;
CREATE TABLE labels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    color TEXT NOT NULL
);
CREATE TABLE objects (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    media_id INTEGER NOT NULL REFERENCES media(id) ON DELETE CASCADE,
    track_id INTEGER NOT NULL,
    label_id INTEGER REFERENCES labels(id),
    status TEXT NOT NULL CHECK (status IN ('pending', 'done')),
    end_frame INTEGER,
    created_frame INTEGER NOT NULL,
    UNIQUE (media_id, track_id)
);
CREATE INDEX objects_by_label ON objects(label_id);
CREATE TABLE prompts (
    object_id INTEGER NOT NULL REFERENCES objects(id) ON DELETE CASCADE,
    frame INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('point', 'box')),
    x0 REAL NOT NULL,
    y0 REAL NOT NULL,
    x1 REAL,
    y1 REAL,
    positive INTEGER NOT NULL,
    PRIMARY KEY (object_id, frame, seq)
) WITHOUT ROWID;
CREATE INDEX prompts_by_frame ON prompts(frame);
CREATE TABLE masks (
    object_id INTEGER NOT NULL REFERENCES objects(id) ON DELETE CASCADE,
    frame INTEGER NOT NULL,
    media_id INTEGER NOT NULL,
    digest TEXT NOT NULL,
    area INTEGER NOT NULL,
    bx INTEGER NOT NULL,
    by INTEGER NOT NULL,
    bw INTEGER NOT NULL,
    bh INTEGER NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('prompt', 'track', 'import', 'auto', 'machine')),
    score REAL,
    PRIMARY KEY (object_id, frame)
) WITHOUT ROWID;
CREATE INDEX masks_by_frame ON masks(media_id, frame);
"""


def upgrade_schema(conn: sqlite3.Connection, version: int) -> None:
    """Bring a project database of an older schema ``version`` to SCHEMA_VERSION, in one transaction.

    1 -> 2: the masks table takes the source 'machine' (SQLite cannot change a CHECK in place, so the
    table is rebuilt with the same rows).
    """
    if version >= SCHEMA_VERSION:
        return
    masks_ddl = SCHEMA[SCHEMA.index("CREATE TABLE masks") :]
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("ALTER TABLE masks RENAME TO masks_v1")
        conn.execute("DROP INDEX IF EXISTS masks_by_frame")
        for statement in masks_ddl.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("INSERT INTO masks SELECT * FROM masks_v1")
        conn.execute("DROP TABLE masks_v1")
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


_BUMP_REVISION = "UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'revision'"


def _media(row: sqlite3.Row) -> Media:
    return Media(
        row["id"], row["kind"], row["source"], row["name"], row["num_frames"], row["width"], row["height"],
        row["fps"],
    )  # fmt: skip


class ProjectCore:
    """Connection, locking, transactions, revision, settings and media of a project folder."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = connection
        self._lock = threading.RLock()
        self._depth = 0
        self._changes_at_begin = 0
        self._files = MaskFiles(self.path / MASKS_DIR)

    # -- plumbing -----------------------------------------------------------------------------------

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ProjectError(f"the project {self.path} is closed; open it again with Project.open()")
        return self._conn

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _one(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Row | None:
        with self._lock:
            return self._db.execute(sql, args).fetchone()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything done inside the block commits together, or not at all if it raises.

        Re-entrant: an inner block is a savepoint (its failure undoes only its own changes). Other
        threads wait until the outermost block ends. Every mutating method runs in one of these.
        """
        with self._lock:
            db = self._db
            level = self._depth
            try:
                db.execute("BEGIN IMMEDIATE" if level == 0 else f"SAVEPOINT nested_{level}")
            except sqlite3.OperationalError as exc:
                raise ProjectError(
                    f"the project database is busy or read-only ({exc}); another program may be writing "
                    f"to {self.path}: close it, check the folder's permissions, and try again"
                ) from exc
            if level == 0:
                self._changes_at_begin = db.total_changes
            self._depth += 1
            try:
                yield
                if level == 0 and db.total_changes != self._changes_at_begin:
                    db.execute(_BUMP_REVISION)
                db.execute("COMMIT" if level == 0 else f"RELEASE nested_{level}")
            except BaseException as exc:
                self._undo(level)
                if level == 0 and isinstance(exc, sqlite3.OperationalError):
                    raise ProjectError(
                        f"the change could not be saved ({exc}), so none of it was kept; check the free "
                        f"disk space and the permissions of {self.path}"
                    ) from exc
                raise
            finally:
                self._depth = level

    def _undo(self, level: int) -> None:
        """Roll back the transaction (level 0) or savepoint being left by an exception."""
        db = self._db
        try:
            if level == 0:
                if db.in_transaction:
                    db.execute("ROLLBACK")
            else:
                db.execute(f"ROLLBACK TO nested_{level}")
                db.execute(f"RELEASE nested_{level}")
        except sqlite3.Error:  # the connection is failing already; the original error says more
            pass

    def revision(self) -> int:
        """A number that grows with every committed change (persisted; use it to refresh caches)."""
        row = self._one("SELECT value FROM meta WHERE key = 'revision'")
        return int(row["value"]) if row is not None else 0

    # -- settings -----------------------------------------------------------------------------------

    def get_setting(self, key: str, default: Any = None) -> Any:
        """The JSON value stored under ``key``, or ``default`` when unset."""
        row = self._one("SELECT value FROM settings WHERE key = ?", (_setting_key(key),))
        return default if row is None else json.loads(row["value"])

    def set_setting(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable value under ``key`` (replacing any earlier value)."""
        key = _setting_key(key)
        try:
            text = json.dumps(value, allow_nan=False, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise ProjectError(
                f"the setting {key!r} must be JSON data (numbers, strings, lists, dicts), got {value!r}: "
                f"{exc}"
            ) from None
        with self.transaction():
            self._db.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, text))

    # -- media --------------------------------------------------------------------------------------

    def add_media(
        self,
        kind: str,
        source: str | os.PathLike,
        name: str,
        num_frames: int,
        width: int,
        height: int,
        fps: float | None = None,
        frames: Sequence[tuple[str, int, int]] | None = None,
    ) -> Media:
        """Add a video (``kind="video"``) or an image set (``kind="images"``); returns its record.

        ``source`` is made absolute; adding the same source again returns the existing media unchanged.
        ``frames`` gives (name, width, height) per image, in order (one per frame); without it every
        frame is named ``f"{index:06d}"`` and has the media's size.
        """
        if kind not in MEDIA_KINDS:
            raise ProjectError(f"media kind must be 'video' or 'images', got {kind!r}")
        if not isinstance(source, (str, os.PathLike)) or not os.fspath(source):
            raise ProjectError(f"a media source must be a file or folder path, got {source!r}")
        source = os.path.abspath(os.fspath(source))
        if not isinstance(name, str) or not name.strip():
            raise ProjectError(f"a media name must be a non-empty string, got {name!r}")
        num_frames = check_int(num_frames, "num_frames", 1)
        width, height = check_int(width, "media width", 1), check_int(height, "media height", 1)
        if fps is not None:
            if (
                isinstance(fps, bool)
                or not isinstance(fps, numbers.Real)
                or not math.isfinite(fps)
                or fps <= 0
            ):
                raise ProjectError(f"fps must be a positive number or None when unknown, got {fps!r}")
            fps = float(fps)
        rows = None if frames is None else _frame_rows(frames, num_frames)
        with self.transaction():
            existing = self._one("SELECT * FROM media WHERE source = ?", (source,))
            if existing is not None:
                return _media(existing)
            cur = self._db.execute(
                "INSERT INTO media (kind, source, name, num_frames, width, height, fps) "
                "VALUES (?,?,?,?,?,?,?)",
                (kind, source, name.strip(), num_frames, width, height, fps),
            )
            media_id = cur.lastrowid
            if rows is not None:
                self._db.executemany(
                    "INSERT INTO frames (media_id, idx, name, width, height) VALUES (?,?,?,?,?)",
                    [(media_id, i, *row) for i, row in enumerate(rows)],
                )
        return self.get_media(media_id)

    def media(self) -> list[Media]:
        """All media, in the order they were added."""
        return [_media(row) for row in self._all("SELECT * FROM media ORDER BY id")]

    def get_media(self, media_id: int) -> Media:
        """The media with this id; ProjectError if there is none."""
        return _media(self._media_row(media_id))

    def frame_info(self, media_id: int, index: int) -> FrameInfo:
        """Name and size of one frame (videos: ``f"{index:06d}"`` and the media size)."""
        media = self._media_row(media_id)
        index = self._check_frame(media, index)
        row = self._one("SELECT * FROM frames WHERE media_id = ? AND idx = ?", (media["id"], index))
        if row is None:
            return FrameInfo(media["id"], index, f"{index:06d}", media["width"], media["height"])
        return FrameInfo(media["id"], index, row["name"], row["width"], row["height"])

    # -- lookups shared by the other parts of the store ---------------------------------------------

    def _media_row(self, media_id: int) -> sqlite3.Row:
        media_id = check_int(media_id, "media id")
        row = self._one("SELECT * FROM media WHERE id = ?", (media_id,))
        if row is None:
            known = [r["id"] for r in self._all("SELECT id FROM media ORDER BY id")]
            raise ProjectError(
                f"there is no media {media_id} in this project (media ids: {known or 'none yet'}); "
                "add the video or images first"
            )
        return row

    @staticmethod
    def _check_frame(media: sqlite3.Row, frame: int) -> int:
        frame = check_int(frame, "frame index")
        if not 0 <= frame < media["num_frames"]:
            raise ProjectError(
                f"frame {frame} is out of range for media {media['id']} ({media['name']!r} has "
                f"{media['num_frames']} frames): use 0..{media['num_frames'] - 1}"
            )
        return frame

    def _object_row(self, object_id: int) -> sqlite3.Row:
        object_id = check_int(object_id, "object id")
        row = self._one("SELECT * FROM objects WHERE id = ?", (object_id,))
        if row is None:
            raise ProjectError(
                f"there is no object {object_id} in this project (it may have been deleted); "
                "reload the frame to see the current objects"
            )
        return row


def _setting_key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise ProjectError(f"a setting key must be a non-empty string, got {key!r}")
    return key


def _frame_rows(frames: Sequence[tuple[str, int, int]], num_frames: int) -> list[tuple[str, int, int]]:
    if len(frames) != num_frames:
        raise ProjectError(
            f"frames lists {len(frames)} images but num_frames is {num_frames}; give one (name, width, "
            "height) per image"
        )
    rows = []
    for i, item in enumerate(frames):
        if not isinstance(item, (tuple, list)) or len(item) != 3 or not isinstance(item[0], str):
            raise ProjectError(f"frames[{i}] must be (name, width, height), got {item!r}")
        rows.append(
            (
                item[0],
                check_int(item[1], f"frames[{i}] width", 1),
                check_int(item[2], f"frames[{i}] height", 1),
            )
        )
    return rows
