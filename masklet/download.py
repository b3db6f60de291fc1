"""The official checkpoint files: registry, cache directory and download.

Environment:

- ``MASKLET_CACHE``: cache directory (else ``$XDG_CACHE_HOME/masklet``, else ``~/.cache/masklet``).
- ``MASKLET_DOWNLOAD_BASE``: replaces ``https://dl.fbaipublicfiles.com/segment_anything_2`` (a mirror
  keeping the official ``072824/`` and ``092824/`` sub-folders).

Reading and loading the files is :mod:`masklet.checkpoints`, which re-exports everything public here.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from masklet.presets import get_preset

DEFAULT_DOWNLOAD_BASE = "https://dl.fbaipublicfiles.com/segment_anything_2"
_TIMEOUT_S = 30.0  # per socket operation, not for the whole file
_CHUNK = 1 << 20
_BAR = {"unit": "B", "unit_scale": True, "unit_divisor": 1024}


class CheckpointError(RuntimeError):
    """A checkpoint could not be found, downloaded, read, or does not fit the model. The message says
    what to do."""


class CheckpointUnavailable(CheckpointError):
    """A checkpoint could not be downloaded (offline, blocked host, server error, cut-off transfer).

    ``problem``: what went wrong; ``url``: the file's address; ``path``: where to save it by hand. The
    message ends by naming the Python argument that takes a file kept elsewhere; front ends (the
    command line) say the same in their own terms with :meth:`advice`.
    """

    def __init__(self, problem: str, url: str, path: Path):
        self.problem, self.url, self.path = problem, url, path
        super().__init__(self.advice("pass the file's path as checkpoint=..."))

    def advice(self, own_file: str) -> str:
        """The full message, ending with ``own_file``: how to use a file kept anywhere else."""
        return (
            f"{self.problem}. If you are offline or the host is blocked, download {self.url} another way "
            f"and save it as {self.path} (masklet looks there first), or {own_file}"
        )


@dataclass(frozen=True)
class OfficialCheckpoint:
    """One official file. ``params`` and ``approx_mb`` were measured from the reference models (float32
    parameter count; state-dict bytes / 1e6) and are documentation figures, never checked."""

    preset: str
    release: str  # folder on the download server: the release date, MMDDYY
    params: int
    approx_mb: int

    @property
    def file_name(self) -> str:
        return f"{self.preset}.pt"

    @property
    def url_path(self) -> str:
        return f"{self.release}/{self.file_name}"


OFFICIAL_CHECKPOINTS: dict[str, OfficialCheckpoint] = {
    c.preset: c
    for c in (
        OfficialCheckpoint("sam2_hiera_tiny", "072824", 38_945_986, 156),
        OfficialCheckpoint("sam2_hiera_small", "072824", 46_043_842, 184),
        OfficialCheckpoint("sam2_hiera_base_plus", "072824", 80_833_666, 323),
        OfficialCheckpoint("sam2_hiera_large", "072824", 224_430_130, 898),
        OfficialCheckpoint("sam2.1_hiera_tiny", "092824", 38_962_498, 156),
        OfficialCheckpoint("sam2.1_hiera_small", "092824", 46_060_354, 184),
        OfficialCheckpoint("sam2.1_hiera_base_plus", "092824", 80_850_178, 323),
        OfficialCheckpoint("sam2.1_hiera_large", "092824", 224_446_642, 898),
    )
}


def cache_dir() -> Path:
    """The checkpoint cache directory (not created here): ``$MASKLET_CACHE``, else
    ``$XDG_CACHE_HOME/masklet``, else ``~/.cache/masklet``. Empty variables count as unset."""
    if os.environ.get("MASKLET_CACHE"):
        return Path(os.environ["MASKLET_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "masklet"
    return Path.home() / ".cache" / "masklet"


def official_checkpoint(name: str) -> OfficialCheckpoint:
    """Registry entry for a preset name or alias (``sam2.1_hiera_t``); ValueError if unknown."""
    return OFFICIAL_CHECKPOINTS[get_preset(name).name]


def cached_checkpoint_path(name: str) -> Path:
    """Where the official file for preset ``name`` is (or would be) cached."""
    return cache_dir() / official_checkpoint(name).file_name


def checkpoint_url(name: str) -> str:
    """Download URL of the official file for preset ``name`` (honours ``$MASKLET_DOWNLOAD_BASE``)."""
    base = os.environ.get("MASKLET_DOWNLOAD_BASE") or DEFAULT_DOWNLOAD_BASE
    return f"{base.rstrip('/')}/{official_checkpoint(name).url_path}"


def is_url(value: str | os.PathLike) -> bool:
    """True for an ``http://`` or ``https://`` string (a checkpoint to download, not a local path)."""
    return isinstance(value, str) and value.startswith(("http://", "https://"))


def download_checkpoint(
    name_or_url: str, dest: str | os.PathLike | None = None, progress: bool = True
) -> Path:
    """Download an official checkpoint (preset name or alias) or any URL, and return its path.

    ``dest``: target file, or an existing directory to put it in; default: the cache directory (for a
    URL, under the URL's file name). Always downloads, replacing an existing file only once the new one
    is complete: data goes to a temporary file next to the target that is renamed at the end, and
    removed on any failure or interruption, so no partial file is ever left under the target name.
    Raises :class:`CheckpointError` naming the URL and where to put the file by hand.
    """
    if is_url(name_or_url):
        url = name_or_url
        default = cache_dir() / (Path(urllib.parse.urlparse(url).path).name or "checkpoint.pt")
    else:
        url, default = checkpoint_url(name_or_url), cached_checkpoint_path(name_or_url)
    target = Path(dest).expanduser() if dest is not None else default
    if target.is_dir():
        target = target / default.name
    with atomic_file(target) as tmp, open(tmp, "wb") as out:
        _fetch(url, out, target, progress)
    return target


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[str]:
    """Yield a temporary file name next to ``path`` that becomes ``path`` only when the block completes;
    on any error or Ctrl-C it is removed, so a partial file never appears under the real name. Used for
    downloads here and for :func:`masklet.checkpoints.save_checkpoint`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fetch(url: str, out: BinaryIO, target: Path, progress: bool) -> None:
    """Stream ``url`` into ``out``; every failure becomes one CheckpointUnavailable."""
    done, total = 0, None
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with tqdm(total=total, desc=target.name, disable=not progress, **_BAR) as bar:
                while chunk := resp.read(_CHUNK):
                    out.write(chunk)
                    done += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as exc:
        problem = (
            f"could not download {url}: the server answered HTTP {exc.code} {exc.reason}. Check the preset "
            "name and $MASKLET_DOWNLOAD_BASE if you set it"
        )
        raise CheckpointUnavailable(problem, url, target) from exc
    except (OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise CheckpointUnavailable(f"could not download {url} ({reason})", url, target) from exc
    # A server that closes early ends the stream without an exception: compare with what it announced.
    if total is not None and done != total:
        problem = (
            f"the download of {url} was cut off after {done} of {total} bytes; nothing was saved. "
            "Run again to retry"
        )
        raise CheckpointUnavailable(problem, url, target)
