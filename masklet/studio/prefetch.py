"""Encoding ahead: while a user looks at a frame, the image encoder runs on it and the next few frames.

The first click on a frame pays for the image encoder (most of a click's time on a CPU); once a frame's
features are kept, later clicks only run the prompt decoder. The browser reports the frame it shows
(every frame request does); after the view has settled for a moment, a background thread encodes that
frame, then the ``ahead`` frames after it, one at a time, so by the time the user moves on the next frame
is ready.

It never competes with the user's own requests: it only takes the workspace lock when the lock is free
(never queueing for it), re-checks between frames whether the user moved on (then it starts over from
the new frame), and stays off while a job (tracking, segment everything) runs. A request that arrives
while a frame is being encoded waits for that frame at most. So that this rarely happens, the frames
are encoded while the user is least likely to click: right after a move (the user first looks for the
object), and otherwise once no prompt came for :data:`QUIET_S` (clicks come in bursts, and a burst on
the frame on screen is not interrupted).
"""

from __future__ import annotations

import sys
import threading
import time
import traceback

from .media import MediaError

SETTLE_S = 0.25  # a view must last this long before encoding starts (scrubbing and playback don't)
QUIET_S = 2.0  # after a prompt, frames ahead wait this long without another one
RETRY_S = 0.05  # how often a waiting prefetch looks whether the model became free


class Prefetcher:
    """Encodes the frames after the one on screen for a :class:`~.engine.Workspace` (``ws.warm``)."""

    def __init__(self, ws, ahead: int) -> None:
        self.ws = ws
        self.ahead = ahead
        self._cond = threading.Condition()
        self._target: tuple[int, int] | None = None
        self._generation = 0
        self._closed = False
        self._working = False  # a plan is being encoded
        self._last_activity = 0.0  # time.monotonic() of the last prompt
        self._thread: threading.Thread | None = None

    def viewing(self, media_id: int, frame: int) -> None:
        """The user now looks at ``frame`` of ``media_id``: encode from there (dropping older plans)."""
        if self.ahead <= 0:
            return
        with self._cond:
            if self._closed:
                return
            self._target = (media_id, frame)
            self._generation += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="studio-prefetch", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def touch(self) -> None:
        """A prompt request comes (or ends): frames ahead wait until none came for QUIET_S."""
        with self._cond:
            self._last_activity = time.monotonic()

    def idle(self, timeout: float | None = None) -> bool:
        """Wait until there is nothing left to encode (for tests and benchmarks); True when idle."""
        with self._cond:
            return self._cond.wait_for(lambda: self._target is None and not self._working, timeout)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=60)

    # ------------------------------------------------------------------ the thread
    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or self._target is not None)
                if self._closed:
                    return
                generation = self._generation
                # the view must settle: a newer frame within SETTLE_S replaces this one
                if self._cond.wait_for(lambda g=generation: self._stale(g), SETTLE_S):
                    continue
                (media_id, frame), self._target = self._target, None
                self._working = True
            try:
                self._encode_plan(media_id, frame, generation)
            except MediaError:
                pass  # an unreadable image: the user sees why when it is shown
            except Exception:  # a prefetch failure costs speed, never a request: report and go on
                traceback.print_exc(file=sys.stderr)
            finally:
                with self._cond:
                    self._working = False
                    self._cond.notify_all()

    def _encode_plan(self, media_id: int, frame: int, generation: int) -> None:
        num_frames = self.ws.media(media_id).num_frames
        for t in range(frame, min(frame + self.ahead + 1, num_frames)):
            if not self._encode_when_free(media_id, t, generation, ahead=t != frame):
                return

    def _stale(self, generation: int) -> bool:
        return self._closed or self._generation != generation

    def _encode_when_free(self, media_id: int, frame: int, generation: int, ahead: bool) -> bool:
        """Encode one frame once the lock is free (and, ``ahead`` of the one on screen, once no prompt came
        for QUIET_S); False when the plan is over (moved, closed, busy)."""
        lock = self.ws.lock
        while True:
            with self._cond:
                if self._stale(generation):
                    return False
                wait = QUIET_S - (time.monotonic() - self._last_activity) if ahead else 0.0
                if wait > 0:
                    self._cond.wait_for(lambda: self._stale(generation), wait)
                    continue
            if self.ws.busy():
                return False
            if lock.acquire(blocking=False):
                break
            with self._cond:
                self._cond.wait_for(lambda: self._stale(generation), RETRY_S)
        try:
            if self._stale(generation) or self.ws.busy():
                return False
            self.ws.warm(media_id, frame)
            return True
        finally:
            lock.release()
