"""Content-addressed mask files of a studio project: ``masks/<d[:2]>/<d>.json``.

Each file holds one mask as compressed COCO RLE JSON (``masklet.io.masks.encode_rle``); ``d`` is the
sha256 of the file's bytes, so a file never changes once written and equal masks share one file.

A file is made durable before anything refers to it: the bytes go to a temp file in the same folder,
are flushed and fsynced, the temp file is renamed over the final name (atomic), and the folder is
fsynced so the rename survives a power cut. A crash at any point leaves either no file or the whole
file, plus at most a stray ``.<...>.tmp`` that :meth:`MaskFiles.collect_garbage` removes later.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..io.masks import decode_rle, encode_rle
from .store_records import ProjectError

__all__ = ["MaskFiles", "encode_mask_file", "fsync_dir"]

_HEX = frozenset("0123456789abcdef")
_TEMP_SUFFIX = ".tmp"


def encode_mask_file(mask: np.ndarray) -> tuple[bytes, str]:
    """The file content of an (H, W) bool mask and its sha256 hex digest."""
    data = json.dumps(encode_rle(mask), separators=(",", ":"), sort_keys=True).encode("ascii")
    return data, hashlib.sha256(data).hexdigest()


def _is_digest(name: str) -> bool:
    return len(name) == 64 and _HEX.issuperset(name)


def _is_shard(name: str) -> bool:
    return len(name) == 2 and _HEX.issuperset(name)


def _write_bytes(file: BinaryIO, data: bytes) -> None:
    """Write all of ``data``; a separate function so tests can slow it down to crash mid-write."""
    file.write(data)


def fsync_dir(folder: Path) -> None:
    """Make renames and new entries in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open a folder; NTFS journals the rename itself
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class MaskFiles:
    """The ``masks/`` folder of a project: durable writes, verified reads, garbage collection."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, digest: str) -> Path:
        """Where the file with this digest lives."""
        return self.root / digest[:2] / f"{digest}.json"

    def write(self, blobs: dict[str, bytes]) -> None:
        """Make every ``digest -> bytes`` durable on disk; returns only once all of them are.

        Files already present with the right size are kept (their content is fixed by their name).
        """
        touched: set[Path] = set()
        created_shard = False
        for digest, data in blobs.items():
            path = self.path(digest)
            try:
                if path.stat().st_size == len(data):
                    continue
            except FileNotFoundError:
                pass
            if not path.parent.is_dir():
                path.parent.mkdir(parents=True, exist_ok=True)
                created_shard = True
            self._write_one(path, data)
            touched.add(path.parent)
        if created_shard:
            fsync_dir(self.root)
        for folder in touched:
            fsync_dir(folder)

    @staticmethod
    def _write_one(path: Path, data: bytes) -> None:
        temp = path.parent / f".{path.stem[:16]}.{secrets.token_hex(6)}{_TEMP_SUFFIX}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        try:
            with os.fdopen(fd, "wb") as file:
                _write_bytes(file, data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, path)
        except BaseException:
            try:
                os.unlink(temp)
            except OSError:
                pass
            raise

    def read(self, digest: str) -> np.ndarray:
        """The (H, W) bool mask stored under ``digest``; ProjectError if the file is missing or damaged."""
        path = self.path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ProjectError(
                f"the mask file {path} is missing, so the project is damaged; restore the project's masks/ "
                "folder from a backup, or delete and redo the object's mask on that frame"
            ) from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise ProjectError(
                f"the mask file {path} does not match its checksum (the disk copy is damaged); restore "
                "it from a backup, or delete and redo the object's mask on that frame"
            )
        return decode_rle(json.loads(data))

    def collect_garbage(self, referenced: set[str] | None, before: float) -> tuple[int, int]:
        """Delete stray temp files and, when ``referenced`` is given, mask files not in it.

        Only files last modified before ``before`` (a ``time.time()`` value) are touched, so files
        written since then by anyone are safe. Returns (temp files removed, mask files removed).
        """
        temps = orphans = 0
        if not self.root.is_dir():
            return temps, orphans
        for shard in os.scandir(self.root):
            if not (shard.is_dir(follow_symlinks=False) and _is_shard(shard.name)):
                continue
            for entry in os.scandir(shard.path):
                name = entry.name
                if name.startswith(".") and name.endswith(_TEMP_SUFFIX):
                    stray = True
                elif name.endswith(".json") and _is_digest(name[:-5]):
                    stray = referenced is not None and name[:-5] not in referenced
                else:
                    continue  # not ours: leave it alone
                if not stray or not entry.is_file(follow_symlinks=False):
                    continue
                try:
                    if entry.stat(follow_symlinks=False).st_mtime >= before:
                        continue
                    os.unlink(entry.path)
                except FileNotFoundError:
                    continue
                if name.endswith(_TEMP_SUFFIX):
                    temps += 1
                else:
                    orphans += 1
        return temps, orphans

    def stray_candidates(self, referenced: set[str]) -> bool:
        """Whether any mask file on disk is not in ``referenced`` (a cheap check before a full GC)."""
        if not self.root.is_dir():
            return False
        for shard in os.scandir(self.root):
            if shard.is_dir(follow_symlinks=False) and _is_shard(shard.name):
                for entry in os.scandir(shard.path):
                    name = entry.name
                    if name.endswith(".json") and _is_digest(name[:-5]) and name[:-5] not in referenced:
                        return True
        return False
