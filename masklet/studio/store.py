"""The persistent project of masklet studio.

A project is a folder::

    project.db      SQLite (WAL journal, synchronous=FULL, foreign keys on): media, labels, objects,
                    prompts, mask rows, settings, revision
    masks/          one compressed COCO RLE JSON file per distinct mask, named by its sha256
                    (``masks/<d[:2]>/<d>.json``, see ``masklet.studio.mask_files``)

Nothing a user confirmed is lost: every mutating call has committed before it returns, mask files are
durable before the rows that point at them commit, and a file is never overwritten in place, so a
crash leaves the last committed state with its good masks. Opening a project removes what a crash can
leave behind: temp files of interrupted writes and mask files no row refers to (only files older than
the open, and only while no other process has the project open).

Usage::

    with Project.open_or_create("shoot-01") as project:
        clip = project.add_media("video", "clip.mp4", "clip", num_frames=300, width=1280, height=720)
        obj = project.new_object(clip.id, frame=0)
        with project.transaction():  # prompts and their mask commit together
            project.set_prompts(obj.id, 0, [Prompt("point", 410.0, 220.0)])
            project.put_masks([(obj.id, 0, mask, "prompt", 0.93)])
        project.finish_object(obj.id, "car")

One ``Project`` may be shared by threads (a tracking thread and request handlers): each call, and each
``transaction()`` block, runs exclusively.
"""

from __future__ import annotations

import os
import sqlite3
import time
import warnings
from pathlib import Path
from types import TracebackType

from .mask_files import fsync_dir
from .store_core import DB_NAME, FORMAT_NAME, MASKS_DIR, SCHEMA, SCHEMA_VERSION, upgrade_schema
from .store_masks import MaskStore
from .store_objects import ObjectStore
from .store_records import FrameInfo, Label, MaskInfo, Media, ObjectRecord, ProjectError, Prompt

try:  # advisory folder locks; absent on Windows, where only the age rule protects cleanup
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = [
    "FrameInfo",
    "Label",
    "MaskInfo",
    "Media",
    "ObjectRecord",
    "Project",
    "ProjectError",
    "Prompt",
]


class Project(MaskStore, ObjectStore):
    """A labeling project on disk. Build one with :meth:`create`, :meth:`open` or :meth:`open_or_create`.

    Methods come in groups (see the base classes for details): settings, revision and media
    (``ProjectCore``), labels (``LabelStore``), objects and prompts (``ObjectStore``), masks
    (``MaskStore``). Unknown ids, out-of-range frames and bad values raise :class:`ProjectError` and
    leave the project unchanged.
    """

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        super().__init__(path, connection)
        self._folder_lock: int | None = None

    @classmethod
    def create(cls, folder: str | os.PathLike) -> Project:
        """Make a new project in ``folder`` (created if missing); refuses a folder that holds one."""
        folder = Path(folder).expanduser().absolute()
        if folder.exists() and not folder.is_dir():
            raise ProjectError(f"{folder} is a file; give a folder path for the project")
        db_path = folder / DB_NAME
        if db_path.exists():
            raise ProjectError(
                f"{folder} already holds a masklet studio project; open it (Project.open) or pick "
                "another folder"
            )
        folder.mkdir(parents=True, exist_ok=True)
        (folder / MASKS_DIR).mkdir(exist_ok=True)
        # Build the database under a temp name and move it in whole: a crash never leaves a half-made one.
        staging = folder / f".{DB_NAME}.creating"
        for stale in (staging, staging.with_name(staging.name + "-journal")):
            stale.unlink(missing_ok=True)
        conn = sqlite3.connect(staging, isolation_level=None)
        try:
            conn.executescript(
                f"BEGIN; {SCHEMA}"
                f"INSERT INTO meta VALUES ('format', '{FORMAT_NAME}'), "
                f"('schema_version', '{SCHEMA_VERSION}'), ('revision', '0'); COMMIT;"
            )
        finally:
            conn.close()
        with open(staging, "rb+") as file:
            os.fsync(file.fileno())
        try:
            os.link(staging, db_path)  # unlike a rename, fails if another process created one meanwhile
            staging.unlink()
        except FileExistsError:
            staging.unlink()
            raise ProjectError(f"{folder} already holds a masklet studio project; open it instead") from None
        except OSError:  # file systems without hard links
            os.replace(staging, db_path)
        fsync_dir(folder)
        return cls.open(folder)

    @classmethod
    def open(cls, folder: str | os.PathLike) -> Project:
        """Open the project in ``folder``, cleaning up after any crash; ProjectError if there is none."""
        opened_at = time.time()
        folder = Path(folder).expanduser().absolute()
        if not folder.is_dir():
            raise ProjectError(
                f"{folder} does not exist or is not a folder; create a project there with Project.create()"
            )
        db_path = folder / DB_NAME
        if not db_path.is_file():
            raise ProjectError(
                f"{folder} is not a masklet studio project (it has no {DB_NAME}); pick the project folder, "
                "or create a project there with Project.create()"
            )
        project = cls(folder, _connect(db_path))
        try:
            project._recover(opened_at)
        except BaseException:
            project.close()
            raise
        return project

    @classmethod
    def open_or_create(cls, folder: str | os.PathLike) -> Project:
        """Open the project in ``folder``, or create one there if it has none."""
        if (Path(folder).expanduser() / DB_NAME).exists():
            return cls.open(folder)
        return cls.create(folder)

    def close(self) -> None:
        """Close the database (everything is already committed). Calling it again does nothing."""
        with self._lock:
            if self._conn is None:
                return
            if self._depth:
                raise ProjectError(
                    "close() was called inside a transaction block; close after the block ends"
                )
            self._conn.close()
            self._conn = None
            if self._folder_lock is not None:
                os.close(self._folder_lock)  # releases the advisory lock
                self._folder_lock = None

    def __enter__(self) -> Project:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else f"revision {self.revision()}"
        return f"Project({str(self.path)!r}, {state})"

    # -- crash recovery -----------------------------------------------------------------------------

    def _recover(self, opened_at: float) -> None:
        """Remove temp files and unreferenced mask files older than ``opened_at``.

        Runs only while this process alone has the project open (another one may be writing files
        whose rows are not committed yet), and keeps unreferenced mask files if the database fails
        its integrity check (their rows might be what is damaged).
        """
        self._files.root.mkdir(exist_ok=True)
        if not self._lock_folder():
            return
        try:
            with self._lock:
                # The first read has replayed the WAL: this is the committed state.
                referenced = {row[0] for row in self._db.execute("SELECT DISTINCT digest FROM masks")}
                if self._files.stray_candidates(referenced) and not self._intact():
                    warnings.warn(
                        f"{self.path / DB_NAME} failed its integrity check; unreferenced mask files "
                        "are kept. Back up the project folder before editing it further.",
                        stacklevel=3,
                    )
                    referenced = None
            try:
                self._files.collect_garbage(referenced, before=opened_at)
            except OSError as exc:  # cleanup is a nicety: never a reason to refuse the project
                warnings.warn(f"could not clean up {self._files.root}: {exc}", stacklevel=3)
        finally:
            if fcntl is not None and self._folder_lock is not None:
                fcntl.flock(self._folder_lock, fcntl.LOCK_SH)

    def _lock_folder(self) -> bool:
        """Hold a shared lock on masks/ while open; True if this open could take it exclusively."""
        if fcntl is None:
            return True
        try:
            self._folder_lock = os.open(self._files.root, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(self._folder_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            try:  # someone else has it open; wait only for a cleanup that may be running there
                fcntl.flock(self._folder_lock, fcntl.LOCK_SH)
            except OSError:
                pass
            return False

    def _intact(self) -> bool:
        rows = self._db.execute("PRAGMA quick_check").fetchall()
        return len(rows) == 1 and rows[0][0] == "ok"


def _connect(db_path: Path) -> sqlite3.Connection:
    """A connection to a verified project database, set up for durability."""
    try:
        conn = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None, timeout=30.0)
    except sqlite3.Error as exc:
        raise ProjectError(f"cannot open {db_path}: {exc}; check the file's permissions") from None
    try:
        conn.row_factory = sqlite3.Row
        _check_schema(conn, db_path)
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise ProjectError(
                f"{db_path} cannot use SQLite's WAL journal here (got {mode!r}); keep the project on a "
                "local disk"
            )
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
    except BaseException:
        conn.close()
        raise
    return conn


def _check_schema(conn: sqlite3.Connection, db_path: Path) -> None:
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.DatabaseError:
        meta = {}
    if meta.get("format") != FORMAT_NAME:
        raise ProjectError(
            f"{db_path} is not a masklet studio project database; pick a project folder, or create a new "
            "project in another folder"
        )
    version = meta.get("schema_version", "")
    if not str(version).isdigit() or int(version) < 1:
        raise ProjectError(
            f"{db_path} has an unknown project schema version {version!r}; it cannot be opened"
        )
    if int(version) > SCHEMA_VERSION:
        raise ProjectError(
            f"{db_path} was written by a newer masklet (project schema {version}; this masklet reads up to "
            f"{SCHEMA_VERSION}); upgrade masklet to open it"
        )
    upgrade_schema(conn, int(version))
