"""The per-item code: one worker builds its model once, then runs items one at a time.

The same :class:`ItemWorker` runs the items in this process (the local runner) and inside every Ray
actor (:class:`RayItemWorker`, the callable class Ray Data's actor pool instantiates), so both write
the same bytes. For each item it:

1. opens a fresh temporary folder (removing those of earlier attempts at the item),
2. runs the job's work, which writes the outputs there under their final names,
3. renames the outputs into the output folder,
4. writes the item's status record, last: done, or failed with a one-line reason,

and returns the status record: a small dict (counts, times, the reason), never masks.

A job is any object with ``mode`` (str), ``discover() -> list[Item]``, ``settings() -> dict``,
``setup(model, meta) -> work`` where ``work(item, folder) -> ItemResult`` runs one item, and
``finish(out, done_items) -> list[str]`` (run once by the driver at the end; the notes it returns are
printed). See :mod:`.track`, :mod:`.boxes`, :mod:`.everything`, :mod:`.eval_vos`.
"""

from __future__ import annotations

import json
import os
import socket
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from .items import Item, ItemError
from .records import write_status
from .spec import ModelSpec
from .staging import Staging

__all__ = ["ItemResult", "ItemWorker", "RayItemWorker", "reason"]


@dataclass(frozen=True)
class ItemResult:
    """What one item produced: its outputs (paths relative to the output folder), frames, masks."""

    outputs: list[str] = field(default_factory=list)
    frames: int = 0
    masks: int = 0


def reason(exc: BaseException) -> str:
    """One line saying why an item failed: the message of an input error, type and message otherwise."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = " ".join(lines) if lines else type(exc).__name__
    if isinstance(exc, (ValueError, OSError)):
        return text
    return f"{type(exc).__name__}: {text}"


class ItemWorker:
    """Builds the model of ``model`` once and runs items of ``job`` into ``out``.

    threads: torch's CPU threads in this process (None: leave torch's setting). max_retries: an item
    whose earlier attempts' processes died this many times is failed instead of run again.
    """

    def __init__(
        self,
        job,
        model: ModelSpec,
        out: str | os.PathLike,
        threads: int | None = None,
        max_retries: int = 2,
    ) -> None:
        if threads is not None:
            import torch

            torch.set_num_threads(int(threads))
        from ..runtime import precision_meta

        built = model.build()
        self.meta = {
            "model": built.cfg.name,
            "weights": model.weights(),
            **precision_meta(built),
            "image_size": built.image_size,
        }
        self.work = job.setup(built, self.meta)
        self.out = Path(out)
        self.max_retries = max_retries

    def run(self, item: Item) -> dict:
        """Run one item; returns its status record (also written to the output folder, last)."""
        started = time.time()
        t0 = time.perf_counter()
        stage = Staging(self.out, item.key)
        status = {"item": item.key}
        try:
            if stage.attempt > self.max_retries + 1:
                deaths = stage.attempt - 1
                raise ItemError(
                    f"the worker running it died {deaths} time{'s' if deaths > 1 else ''} (killed, out of "
                    "memory, or a crash in native code); see the Ray worker logs"
                )
            result = self.work(item, stage.dir)
            stage.commit(result.outputs)
            status.update(state="done", error=None, frames=result.frames, masks=result.masks)
            status["outputs"] = list(result.outputs)
        except Exception as exc:  # the item fails; the worker and the run go on
            stage.discard()
            status.update(state="failed", error=reason(exc), frames=0, masks=0, outputs=[])
            if not isinstance(exc, (ValueError, OSError)):
                status["traceback"] = traceback.format_exc(limit=8)
        except BaseException:  # Ctrl-C, exit: no record, no outputs; the item runs again next time
            stage.discard()
            raise
        status.update(
            seconds=round(time.perf_counter() - t0, 4),
            started=started,
            finished=time.time(),
            host=socket.gethostname(),
            pid=os.getpid(),
        )
        write_status(self.out, item.key, status)
        return status


class RayItemWorker(ItemWorker):
    """The callable class of Ray Data's actor pool: one batch = one item's JSON, back its status JSON."""

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        statuses = [json.dumps(self.run(Item.from_json(str(text)))) for text in batch["item"]]
        return {"status": np.array(statuses, dtype=object)}
