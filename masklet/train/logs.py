"""Run logs: CSV files always, TensorBoard event files when the ``tensorboard`` package is installed.

``<out>/train.csv`` gets one row per logged step (loss terms, learning rate, throughput) and
``<out>/val.csv`` one per validation (J&F, J, F); the columns are fixed by the first row. When a run
resumes from step k, rows after step k left by the interrupted run are dropped first, so the files
read as one uninterrupted run.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from .config import ConfigError

__all__ = ["RunLog", "tensorboard_writer"]


def tensorboard_writer(log_dir: Path, mode: str):
    """A ``SummaryWriter`` for ``mode`` on (error without the package), auto (None without it) or off."""
    if mode == "off":
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        if mode == "on":
            raise ConfigError(
                "train.tensorboard: on needs the tensorboard package: pip install tensorboard "
                "(or set train.tensorboard to auto or off; train.csv and val.csv are always written)"
            ) from None
        print("tensorboard is not installed: logging to CSV only (pip install tensorboard)", file=sys.stderr)
        return None
    return SummaryWriter(log_dir=str(log_dir))


class RunLog:
    """CSV (+ TensorBoard) logging for one process; ``enabled=False`` (non-zero ranks) writes nothing."""

    def __init__(self, out_dir: Path, tensorboard: str = "auto", enabled: bool = True, resume_step: int = 0):
        self.out_dir = Path(out_dir)
        self.enabled = enabled
        self.writer = None
        if not enabled:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name in ("train.csv", "val.csv"):
            _truncate_after(self.out_dir / name, resume_step)
        self.writer = tensorboard_writer(self.out_dir / "tensorboard", tensorboard)

    def train(self, step: int, values: dict[str, float]) -> None:
        self._write("train", step, values)

    def val(self, step: int, values: dict[str, float]) -> None:
        self._write("val", step, values)

    def _write(self, kind: str, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        path = self.out_dir / f"{kind}.csv"
        row = {"step": step, **values}
        new = not path.exists() or path.stat().st_size == 0
        if not new:
            with path.open(newline="") as f:
                header = next(csv.reader(f), None)
            if header is not None and header != list(row):
                raise ValueError(
                    f"{path} has columns {header}, this run writes {list(row)}; use another --out"
                )
        with path.open("a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(list(row))
            w.writerow([_fmt(v) for v in row.values()])
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(f"{kind}/{key}", value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _fmt(v) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _truncate_after(path: Path, step: int) -> None:
    """Drop the rows of ``path`` whose step is greater than ``step`` (all of them for step 0)."""
    if not path.exists():
        return
    if step == 0:
        path.unlink()
        return
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= step]
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(kept)
