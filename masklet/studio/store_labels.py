"""Labels of a studio project: unique names, colours, rename, recolour, merge, delete."""

from __future__ import annotations

import sqlite3

from .store_core import ProjectCore
from .store_records import LABEL_PALETTE, Label, ProjectError, check_color, check_int, check_label_name

__all__ = ["LabelStore"]


def _label(row: sqlite3.Row) -> Label:
    return Label(row["id"], row["name"], row["color"])


class LabelStore(ProjectCore):
    """Label methods of :class:`masklet.studio.store.Project`.

    Names are stripped, non-empty, at most 100 characters and unique (case-sensitive: "Car" and "car"
    are two labels). Colours are ``"#rrggbb"``.
    """

    def labels(self) -> list[Label]:
        """All labels, oldest first."""
        return [_label(row) for row in self._all("SELECT * FROM labels ORDER BY id")]

    def label(self, label_id: int) -> Label:
        """The label with this id; ProjectError if there is none."""
        return _label(self._label_row(label_id))

    def label_by_name(self, name: str) -> Label | None:
        """The label called ``name`` (surrounding spaces ignored), or None."""
        if not isinstance(name, str):
            raise ProjectError(f"a label name must be a string, got {type(name).__name__}")
        row = self._one("SELECT * FROM labels WHERE name = ?", (name.strip(),))
        return None if row is None else _label(row)

    def add_label(self, name: str, color: str | None = None) -> Label:
        """Create a label; without ``color`` it gets the first palette colour no label uses yet."""
        name = check_label_name(name)
        color = None if color is None else check_color(color)
        with self.transaction():
            if self._one("SELECT id FROM labels WHERE name = ?", (name,)) is not None:
                raise ProjectError(f"a label named {name!r} already exists; use it, or pick another name")
            cur = self._db.execute(
                "INSERT INTO labels (name, color) VALUES (?, ?)", (name, color or self._free_color())
            )
            return self.label(cur.lastrowid)

    def rename_label(self, label_id: int, name: str) -> Label:
        """Give a label a new name; renaming onto another label's name is refused (merge instead)."""
        name = check_label_name(name)
        with self.transaction():
            label = self._label_row(label_id)
            other = self._one("SELECT id FROM labels WHERE name = ?", (name,))
            if other is not None and other["id"] != label["id"]:
                raise ProjectError(
                    f"a label named {name!r} already exists; to combine the two, merge label "
                    f"{label['name']!r} into {name!r} instead of renaming it"
                )
            self._db.execute("UPDATE labels SET name = ? WHERE id = ?", (name, label["id"]))
            return self.label(label["id"])

    def recolor_label(self, label_id: int, color: str) -> Label:
        """Change a label's colour (``"#rrggbb"``)."""
        color = check_color(color)
        with self.transaction():
            label = self._label_row(label_id)
            self._db.execute("UPDATE labels SET color = ? WHERE id = ?", (color, label["id"]))
            return self.label(label["id"])

    def merge_labels(self, src_id: int, dst_id: int) -> Label:
        """Move every object labeled ``src_id`` to ``dst_id`` and remove ``src_id``; returns the target."""
        with self.transaction():
            src, dst = self._label_row(src_id), self._label_row(dst_id)
            if src["id"] == dst["id"]:
                raise ProjectError(
                    f"cannot merge label {src['name']!r} into itself; pick another target label"
                )
            self._db.execute("UPDATE objects SET label_id = ? WHERE label_id = ?", (dst["id"], src["id"]))
            self._db.execute("DELETE FROM labels WHERE id = ?", (src["id"],))
            return self.label(dst["id"])

    def delete_label(self, label_id: int) -> None:
        """Remove a label no object uses; ProjectError (saying what to do) otherwise."""
        with self.transaction():
            label = self._label_row(label_id)
            used = self._one("SELECT COUNT(*) AS n FROM objects WHERE label_id = ?", (label["id"],))["n"]
            if used:
                raise ProjectError(
                    f"label {label['name']!r} is used by {used} object(s); merge it into another label, or "
                    "relabel or delete those objects first"
                )
            self._db.execute("DELETE FROM labels WHERE id = ?", (label["id"],))

    def label_counts(self) -> dict[int, int]:
        """Objects per label id, for every label (0 for unused ones)."""
        rows = self._all(
            "SELECT l.id AS id, COUNT(o.id) AS n FROM labels l LEFT JOIN objects o ON o.label_id = l.id "
            "GROUP BY l.id ORDER BY l.id"
        )
        return {row["id"]: row["n"] for row in rows}

    # -- helpers ------------------------------------------------------------------------------------

    def _label_row(self, label_id: int) -> sqlite3.Row:
        label_id = check_int(label_id, "label id")
        row = self._one("SELECT * FROM labels WHERE id = ?", (label_id,))
        if row is None:
            raise ProjectError(
                f"there is no label {label_id} in this project (it may have been merged or deleted); "
                "reload the label list"
            )
        return row

    def _ensure_label(self, name: str) -> int:
        """Id of the label called ``name``, created (with a palette colour) if missing."""
        name = check_label_name(name)
        with self.transaction():
            row = self._one("SELECT id FROM labels WHERE name = ?", (name,))
            return row["id"] if row is not None else self.add_label(name).id

    def _free_color(self) -> str:
        used = {row["color"] for row in self._all("SELECT color FROM labels")}
        for color in LABEL_PALETTE:
            if color not in used:
                return color
        count = self._one("SELECT COUNT(*) AS n FROM labels")["n"]
        return LABEL_PALETTE[count % len(LABEL_PALETTE)]
