"""Items of a batch run and how they are found: the videos of a folder, the images of a folder.

An :class:`Item` is one unit of work (a video to track, an image to label) with a unique name and a
small JSON payload: paths and prompts, never pixels, so that thousands of them travel cheaply to the
workers. Discovery runs in the driver before any work starts and raises :class:`BatchInputError` for
input that cannot be right (a missing folder, two videos with one name); a problem inside one item (a
corrupt file) is found by the worker and fails that item only (:class:`ItemError`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "BatchInputError",
    "Item",
    "ItemError",
    "find_images",
    "find_videos",
    "few",
]

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class BatchInputError(ValueError):
    """The input of a whole run is wrong; raised before any work starts. The message says what to fix."""


class ItemError(ValueError):
    """One item cannot be done as given (a prompt for a frame the video lacks, a label line that does
    not parse); the item is recorded as failed with this message and the run goes on."""


@dataclass(frozen=True)
class Item:
    """One unit of work.

    key: the item's unique name, ``/``-separated for items in sub-folders (``bear``,
        ``train/000001``); its outputs and its status record are named after it.
    data: what the job's worker needs, JSON values only (paths as strings, prompts, boxes).
    """

    key: str
    data: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"key": self.key, "data": self.data}, separators=(",", ":"))

    @staticmethod
    def from_json(text: str) -> Item:
        raw = json.loads(text)
        return Item(raw["key"], raw["data"])


def few(names, n: int = 5) -> str:
    """``a, b, c`` or ``a, b, c ... (12 in all)`` for messages about many names."""
    names = list(names)
    head = ", ".join(str(x) for x in names[:n])
    return head if len(names) <= n else f"{head} ... ({len(names)} in all)"


def _check_folder(folder: Path, what: str) -> Path:
    folder = Path(folder)
    if not folder.exists():
        raise BatchInputError(f"{what} folder {folder} not found")
    if not folder.is_dir():
        raise BatchInputError(f"{what} {folder} is a file; expected a folder")
    return folder


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _unique(named: list[tuple[str, Path]], folder: Path, what: str, after: str) -> dict[str, Path]:
    """name -> path, sorted by name; BatchInputError when two paths share a name."""
    found: dict[str, Path] = {}
    clashes = []
    for name, path in named:
        if name in found:
            clashes.append(f"{found[name].name} and {path.name}")
        found[name] = path
    if clashes:
        raise BatchInputError(
            f"two {what} in {folder} share a name ({few(clashes)}); outputs are named after {after}, so "
            "rename one of them"
        )
    return dict(sorted(found.items()))


def find_videos(folder: str | Path) -> dict[str, Path]:
    """name -> path of every video of ``folder``: video files (by suffix, name = stem) and sub-folders
    (frame folders, name = folder name), sorted by name; hidden entries are skipped.

    A sub-folder is not opened here (a folder without frames fails as its own item), so finding the
    videos of a large dataset costs one listing.
    """
    folder = _check_folder(Path(folder), "videos")
    entries = [e for e in sorted(folder.iterdir()) if _visible(e)]
    entries = [e for e in entries if e.is_dir() or e.suffix.lower() in VIDEO_SUFFIXES]
    found = _unique([(e.name if e.is_dir() else e.stem, e) for e in entries], folder, "videos", "the video")
    if not found:
        raise BatchInputError(
            f"no videos in {folder}: expected video files ({', '.join(VIDEO_SUFFIXES)}) or folders of frames"
        )
    return dict(sorted(found.items()))


def find_images(folder: str | Path) -> dict[str, Path]:
    """key -> path of every image under ``folder`` (sub-folders included, hidden entries skipped); the
    key is the path relative to ``folder`` without its suffix, ``/``-separated, sorted."""
    folder = _check_folder(Path(folder), "images")
    named = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        hidden = any(part.startswith(".") for part in rel.parts)
        if not hidden and path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            named.append((rel.with_suffix("").as_posix(), path))
    found = _unique(named, folder, "images", "the image without its suffix")
    if not found:
        raise BatchInputError(f"no images in {folder}: expected files ending in {', '.join(IMAGE_SUFFIXES)}")
    return dict(sorted(found.items()))
