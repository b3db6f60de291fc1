"""Atomic outputs: an item writes into its own temporary folder, then each output is renamed into place.

Layout of the bookkeeping inside the output folder ``OUT``::

    OUT/.masklet/tmp/<key>@<pid>-<token>/   one item's outputs while it runs (relative paths as final)
    OUT/.masklet/tmp/<key>.attempts         attempts at the item in this run whose process died
    OUT/.masklet/status/<key>.json          the item's status record (see :mod:`.records`)

``<key>`` is the item key with every character but letters, digits and ``_.-~`` percent-encoded, so
``@`` never occurs in it: a temporary folder names the item and the process writing it (a process id
of the machine whose worker runs the item). Renames stay on one file system, so each output appears
whole or not at all; a crash leaves only temporary folders, which the next run removes.

Each attempt counts itself in ``<key>.attempts`` and removes the count when it ends, done or not; a
count left behind means processes died running the item (Ray runs it again in a new one), which is
how an item that kills every worker it runs on is recognised and failed instead of retried forever.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from urllib.parse import quote

__all__ = ["BOOKKEEPING", "Staging", "item_file_name", "remove_temporaries"]

BOOKKEEPING = ".masklet"
TMP = "tmp"


def item_file_name(key: str) -> str:
    """The item key as one file name (``train/a b`` -> ``train%2Fa%20b``); never contains ``@``."""
    return quote(key, safe="")


def remove_temporaries(out: Path, key: str | None = None) -> int:
    """Delete the temporary folders of ``key`` (all items' when None) left by runs that stopped;
    returns how many. Only call this when no other process writes ``key`` into ``out``."""
    root = Path(out) / BOOKKEEPING / TMP
    if not root.is_dir():
        return 0
    prefix = None if key is None else item_file_name(key) + "@"
    removed = 0
    for entry in root.iterdir():
        if prefix is None or entry.name.startswith(prefix):
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed


def _replace(src: Path, dst: Path, trash: Path) -> None:
    """Move ``src`` (file or folder) to ``dst``, replacing what is there."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_dir() and not dst.is_symlink():
        # a folder cannot be renamed over a non-empty one: move the old one aside first
        os.replace(dst, trash)
    os.replace(src, dst)
    if trash.exists():
        shutil.rmtree(trash, ignore_errors=True)


class Staging:
    """The temporary folder of one attempt at one item.

    ``dir`` receives the item's outputs under their final relative paths; :meth:`commit` renames
    them into ``out``; :meth:`discard` deletes them. Opening one removes the temporary folders of
    earlier attempts at the same item (a worker that was killed, a run that was stopped).
    """

    def __init__(self, out: str | os.PathLike, key: str) -> None:
        self.out = Path(out)
        self.key = key
        remove_temporaries(self.out, key)
        root = self.out / BOOKKEEPING / TMP
        root.mkdir(parents=True, exist_ok=True)
        self._attempts = root / f"{item_file_name(key)}.attempts"
        self.attempt = self._count_attempt()
        self.dir = root / f"{item_file_name(key)}@{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.dir.mkdir()

    def _count_attempt(self) -> int:
        """This attempt's number: 1 + the attempts whose process died before finishing."""
        try:
            n = int(self._attempts.read_text()) + 1
        except (OSError, ValueError):
            n = 1
        tmp = self._attempts.with_name(f".{self._attempts.name}.{os.getpid()}")
        tmp.write_text(str(n))
        os.replace(tmp, self._attempts)
        return n

    def commit(self, outputs: list[str]) -> None:
        """Rename each output (a path relative to ``dir`` and ``out``) into ``out``, then delete ``dir``."""
        missing = [rel for rel in outputs if not (self.dir / rel).exists()]
        if missing:
            raise RuntimeError(f"item {self.key!r} did not write its outputs {missing}")
        for i, rel in enumerate(outputs):
            _replace(self.dir / rel, self.out / rel, self.dir / f".old-{i}")
        self.discard()

    def discard(self) -> None:
        """Delete the temporary folder and the attempt count (the attempt ended in this process)."""
        shutil.rmtree(self.dir, ignore_errors=True)
        self._attempts.unlink(missing_ok=True)
