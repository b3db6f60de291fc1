"""``FrameLoader``: model-input tensors for the frames of a :class:`~masklet.io.frames.FrameSource`,
with a bounded cache and a background thread that prefetches the frames tracking will ask for next."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable

import torch

from ..lru import LRUCache
from .frame_source import FrameSource, check_index
from .preprocess import preprocess_video_frame

__all__ = ["FrameLoader"]


class FrameLoader:
    """Preprocessed model-input tensors for frames of a source, with a bounded cache and a background
    prefetch thread.

    ``get(i)`` returns ``preprocess_video_frame(source.frame(i), image_size, device, dtype)``: a
    (1, 3, S, S) tensor, resized and ImageNet-normalized. Tensors are made under ``torch.inference_mode``
    and shared with the cache: do not modify them in place (clone first). After ``hint(order)``, a daemon
    thread keeps the next ``prefetch`` frames of ``order`` that were not yet asked for ready in the cache.
    Errors in that thread are kept and raised by ``get`` of that frame. Closing the loader stops the
    thread; it does not close the source.
    """

    def __init__(
        self,
        source: FrameSource,
        image_size: int,
        device: torch.device | str,
        dtype: torch.dtype = torch.float32,
        cache_frames: int = 4,
        prefetch: int = 2,
    ) -> None:
        if cache_frames < 1:
            raise ValueError(f"cache_frames must be >= 1, got {cache_frames}")
        if not 0 <= prefetch < cache_frames:
            raise ValueError(
                f"prefetch must be in 0..cache_frames-1 = 0..{cache_frames - 1} so prefetched frames are not "
                f"evicted before use, got prefetch={prefetch}; raise cache_frames or lower prefetch"
            )
        self.source = source
        self.image_size = image_size
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:
            # Pin the caller's current GPU: the prefetch thread's own current device may differ.
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.dtype = dtype
        self.cache_frames = cache_frames
        self.prefetch = prefetch
        self._cache: LRUCache[int, torch.Tensor] = LRUCache(max_items=cache_frames)
        self._errors: dict[int, Exception] = {}
        self._busy: set[int] = set()  # being computed by either thread
        self._plan: deque[int] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    def _compute(self, idx: int, background: bool = False) -> torch.Tensor:
        # A copy: torch warns on read-only arrays, and the copy is cheap next to the resize.
        frame = self.source.frame(idx)
        with torch.inference_mode():
            tensor = preprocess_video_frame(frame, self.image_size, self.device).to(self.dtype)
        if background and self.device.type == "cuda":
            # Finished before it is shared, so the caller may use it on any CUDA stream.
            torch.cuda.current_stream(self.device).synchronize()
        return tensor

    def get(self, idx: int) -> torch.Tensor:
        """(1, 3, S, S) normalized tensor of frame ``idx`` on ``device`` in ``dtype``.

        Raises:
            FrameError: ``idx`` is out of range or the frame cannot be read (also when the prefetch
                thread met that error first).
        """
        idx = check_index(idx, len(self.source))
        with self._cond:
            if self._closed:
                raise RuntimeError("FrameLoader is closed; create a new one")
            if idx in self._plan:
                while self._plan.popleft() != idx:
                    pass
                self._cond.notify_all()
            while idx in self._busy:
                self._cond.wait()
            if idx in self._errors:
                raise self._errors.pop(idx)
            hit = self._cache.get(idx)
            if hit is not None:
                return hit
            self._busy.add(idx)
        try:
            tensor = self._compute(idx)
        finally:
            with self._cond:
                self._busy.discard(idx)
                self._cond.notify_all()
        with self._cond:
            if not self._closed:
                self._cache.put(idx, tensor)
        return tensor

    def hint(self, indices: Iterable[int]) -> None:
        """Say which frames will be asked for next, in order (replaces the previous hint).

        Raises:
            FrameError: an index is out of range.
        """
        plan = [check_index(i, len(self.source)) for i in indices]
        with self._cond:
            if self._closed:
                raise RuntimeError("FrameLoader is closed; create a new one")
            self._plan = deque(plan)
            self._errors.clear()
            if self._thread is None and self.prefetch > 0:
                self._thread = threading.Thread(target=self._run, name="masklet-frame-prefetch", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _next_wanted(self) -> int | None:
        for k, idx in enumerate(self._plan):
            if k >= self.prefetch:
                return None
            if idx not in self._cache and idx not in self._busy and idx not in self._errors:
                return idx
        return None

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (idx := self._next_wanted()) is None:
                    self._cond.wait()
                if self._closed:
                    return
                self._busy.add(idx)
            tensor, error = None, None
            try:
                tensor = self._compute(idx, background=True)
            except Exception as exc:  # surfaced by get(idx), never raised here
                error = exc
            with self._cond:
                self._busy.discard(idx)
                if error is not None:
                    self._errors[idx] = error
                elif not self._closed:
                    self._cache.put(idx, tensor)
                self._cond.notify_all()

    def close(self) -> None:
        """Stop the prefetch thread (waiting for a frame in progress) and drop the cached tensors."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        with self._cond:
            self._cache.clear()
            self._errors.clear()
            self._plan.clear()

    def __enter__(self) -> FrameLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
