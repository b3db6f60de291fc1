"""Progress of a run: a live bar (items, frames per second, failures) and the summary at the end."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

__all__ = ["BatchSummary", "ProgressBar"]


@dataclass
class BatchSummary:
    """Counts of a run.

    done: items finished by this run; skipped: items an earlier run finished; failed: (item, reason)
    of items that failed in this run; failed_earlier: (item, reason) recorded by an earlier run and not
    retried; not_run: items left when the run was interrupted; frames, masks: produced by this run;
    seconds: wall time of the work (workers starting included); notes: lines from the job's finish step.
    """

    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    failed_earlier: list[tuple[str, str]] = field(default_factory=list)
    not_run: int = 0
    frames: int = 0
    masks: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every item is done (now or earlier) and the run was not interrupted."""
        return not (self.failed or self.failed_earlier or self.interrupted or self.not_run)

    def add(self, status: dict) -> None:
        if status["state"] == "done":
            self.done += 1
            self.frames += int(status.get("frames", 0))
            self.masks += int(status.get("masks", 0))
        else:
            self.failed.append((status["item"], status.get("error") or "failed"))

    def lines(self, max_failed: int = 20) -> list[str]:
        """The summary as printed at the end of a run."""
        rate = ""
        if self.seconds > 0 and self.done:
            rate = f", {self.done / self.seconds:.3g} items/s, {self.frames / self.seconds:.3g} frames/s"
        head = (
            f"{self.done} done, {self.skipped} skipped (done before), {len(self.failed)} failed"
            + (f", {len(self.failed_earlier)} failed before (not retried)" if self.failed_earlier else "")
            + (f", {self.not_run} not run" if self.not_run else "")
            + f" of {self.total} items; {self.frames} frames, {self.masks} masks"
            + f" in {self.seconds:.1f} s{rate}"
        )
        out = [("interrupted: " if self.interrupted else "") + head]
        for key, why in self.failed[:max_failed]:
            out.append(f"failed: {key}: {why}")
        if len(self.failed) > max_failed:
            out.append(f"... and {len(self.failed) - max_failed} more failed items (see the status records)")
        for key, why in self.failed_earlier[:max_failed]:
            out.append(f"failed before: {key}: {why}")
        if self.failed_earlier:
            out.append(
                "rerun with --retry-failed (retry_failed=True) to try the items that failed before again"
            )
        if self.interrupted:
            out.append("rerun the same command to resume: finished items are kept and skipped")
        return out + list(self.notes)


class ProgressBar:
    """A tqdm bar over the items of a run with frames/s and the failure count; silent when disabled.

    file: where to draw (stderr by default); enabled=None lets tqdm decide (off when not a terminal).
    """

    def __init__(self, total: int, enabled: bool | None = None, file=None, desc: str = "items") -> None:
        from tqdm import tqdm

        self.bar = tqdm(
            total=total,
            desc=desc,
            unit="item",
            file=file if file is not None else sys.stderr,
            disable=(None if enabled is None else not enabled),
            dynamic_ncols=True,
        )
        self.t0 = time.perf_counter()
        self.frames = 0
        self.failed = 0

    def update(self, status: dict) -> None:
        self.frames += int(status.get("frames", 0))
        self.failed += status["state"] != "done"
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        self.bar.set_postfix_str(f"{self.frames / elapsed:.2f} frames/s, {self.failed} failed", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
