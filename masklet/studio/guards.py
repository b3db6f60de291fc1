"""Checks the studio applies to what a request asks for, shared by the server's route modules and media.

* :func:`read_json`: the request body must be a JSON object;
* :func:`is_inside`: a path, symlinks resolved, must lie inside the folders it may come from (the app's
  static files, the opened media folders, the project, its exports).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import StudioError

if TYPE_CHECKING:
    from fastapi import Request

__all__ = ["is_inside", "read_json"]


def is_inside(path: Path, roots: Iterable[Path]) -> bool:
    """True when ``path`` is one of ``roots`` or lies below one, both with symlinks resolved.

    A path that cannot be resolved (a symlink loop, an unreadable folder) is not inside anything.
    """
    try:
        real = path.resolve()
        return any(real == r.resolve() or r.resolve() in real.parents for r in roots)
    except (OSError, RuntimeError):
        return False


async def read_json(request: Request) -> dict:
    """The request's JSON body, which must be an object; StudioError (400) saying so otherwise."""
    try:
        data = await request.json()
    except Exception:
        raise StudioError("the request body must be JSON (Content-Type: application/json)") from None
    if not isinstance(data, dict):
        raise StudioError("the request body must be a JSON object")
    return data
