"""What a run remembers in its output folder: per-item status records, the job's settings, a run lock.

Files (all under ``OUT/.masklet/``, written to a temporary name and renamed)::

    status/<key>.json   {"item": key, "state": "done" | "failed", "error": one line or null,
                         "frames": int, "masks": int, "seconds": float, "outputs": [paths in OUT],
                         "started": epoch s, "finished": epoch s, "host": str, "pid": int}
    job.json            {"mode": ..., "model": {...}, "settings": {...}}: a resumed run must match it
    lock                {"host": str, "pid": int} of the run writing into OUT now

A status record is written after the item's outputs are in place, so "done" always means complete
outputs; an item without a record (or whose outputs went missing) is simply run again.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from .items import BatchInputError
from .staging import BOOKKEEPING, item_file_name

__all__ = ["RunLock", "check_job", "read_status", "write_json_atomic", "write_status"]

STATUS = "status"


def write_json_atomic(path: Path, doc) -> None:
    """Write ``doc`` as JSON to ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(doc, separators=(",", ":")))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def status_path(out: Path, key: str) -> Path:
    return Path(out) / BOOKKEEPING / STATUS / f"{item_file_name(key)}.json"


def write_status(out: Path, key: str, status: dict) -> None:
    write_json_atomic(status_path(out, key), status)


def read_status(out: Path, key: str) -> dict | None:
    """The item's status record, or None when there is none (or it cannot be read: run it again)."""
    try:
        doc = json.loads(status_path(out, key).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("state") in ("done", "failed") else None


def is_done(out: Path, status: dict | None) -> bool:
    """True when the record says done and every output it lists is still there."""
    if status is None or status.get("state") != "done":
        return False
    return all((Path(out) / rel).exists() for rel in status.get("outputs", []))


def check_job(out: Path, job: dict) -> None:
    """Record the job's settings in a new output folder, or check that they match the recorded ones."""
    path = Path(out) / BOOKKEEPING / "job.json"
    try:
        recorded = json.loads(path.read_text())
    except FileNotFoundError:
        write_json_atomic(path, job)
        return
    except (OSError, ValueError):
        recorded = None
    if recorded == json.loads(json.dumps(job)):
        return
    if not isinstance(recorded, dict):
        raise BatchInputError(f"{path} is unreadable; delete it to resume the run in {out}")
    diffs = _differences(recorded, json.loads(json.dumps(job)))
    raise BatchInputError(
        f"{out} holds the results of another job ({'; '.join(diffs[:3])}); use another output folder, "
        f"or delete {Path(out) / BOOKKEEPING} to start over there"
    )


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key} was {a!r}, now {b!r}")
    return out


class RunLock:
    """``OUT/.masklet/lock``: one run writes into an output folder at a time.

    A lock left by a process of this machine that is gone is taken over; one from another machine
    cannot be checked and stops the run with instructions.
    """

    def __init__(self, out: Path) -> None:
        self.path = Path(out) / BOOKKEEPING / "lock"
        self.held = False

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {"host": socket.gethostname(), "pid": os.getpid()}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._check_holder(me)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return
        raise BatchInputError(f"could not take the lock {self.path}; delete it if no run is writing there")

    def _check_holder(self, me: dict) -> None:
        try:
            holder = json.loads(self.path.read_text())
            host, pid = holder["host"], int(holder["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            self.path.unlink(missing_ok=True)  # a lock half written by a run that died at once
            return
        if host == me["host"] and not _alive(pid):
            self.path.unlink(missing_ok=True)
            return
        where = "this machine" if host == me["host"] else f"host {host}"
        raise BatchInputError(
            f"another run (process {pid} on {where}) is writing into {self.path.parents[1]}; wait for it "
            f"or stop it (if none is running, delete {self.path})"
        )

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
