"""``VideoFileSource``: the frames of a video file, decoded on demand with PyAV.

Opening reads the header and demuxes packets (no decoding) to index frames by presentation timestamp.
``frame(i)`` seeks to the nearest keyframe at or before ``i`` and decodes forward; the frames of that run
go into the source's byte-bounded LRU cache, so forward and reverse passes decode each keyframe interval
about once. A forward request continues the open decoder without seeking. Rotation metadata is not
applied. Open videos with :func:`masklet.io.frames.open_frames`.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .frame_source import SUPPORTED, FrameError, FrameSource, readonly_view

__all__ = ["VideoFileSource"]


def _import_av():
    try:
        import av
    except ImportError as exc:
        raise ModuleNotFoundError(
            "reading video files needs PyAV: pip install av (or pip install 'masklet[video]'), "
            "or extract the frames to a folder of JPEGs and pass the folder"
        ) from exc
    return av


class VideoFileSource(FrameSource):
    """Frames of a video file decoded on demand with PyAV, in presentation order.

    Attributes:
        path: the video file.
        decoded_frames: frames decoded so far (a diagnostic: how much work the cache saved).
        seeks: times the decoder was repositioned instead of continuing forward.
    """

    def __init__(self, path: str | os.PathLike, cache_bytes: int = 256 * 2**20) -> None:
        super().__init__(cache_bytes)
        self.path = Path(path)
        self._av = _import_av()
        container, stream = self._open()
        try:
            self.width, self.height = stream.codec_context.width, stream.codec_context.height
            rate = stream.average_rate or stream.guessed_rate
            self.fps = float(rate) if rate else None
            self._build_index(container, stream)
        except self._av.error.FFmpegError as exc:
            raise FrameError(f"{self.path} is corrupt: {exc}; re-encode it or extract its frames") from exc
        finally:
            container.close()
        if self.num_frames == 0:
            raise FrameError(f"{self.path} has a video stream but no frames in it")
        self.decoded_frames = 0
        self.seeks = 0
        self._container = None
        self._packets: Iterator | None = None  # demuxer position of the open decoder
        self._pending: deque = deque()  # decoded frames not yet handed out
        self._pos = -1  # index of the last frame the decoder produced
        self._floor = 0  # frames before this index (leading pictures after a seek) are not trusted
        self._count = 0
        self._decode_error: str | None = None
        if self.width == 0 or self.height == 0:  # some streams only know their size once decoded
            self.width, self.height = self._first_frame_size()

    def _open(self):
        av = self._av
        try:
            container = av.open(str(self.path))
        except (av.error.FFmpegError, OSError) as exc:
            raise FrameError(f"{self.path} is not a readable video: {exc}; {SUPPORTED}") from exc
        if not container.streams.video:
            container.close()
            raise FrameError(f"{self.path} is not a readable video: it has no video stream; {SUPPORTED}")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return container, stream

    def _build_index(self, container, stream) -> None:
        """Demux (no decoding) to number frames by sorted pts and find the keyframes."""
        pts, keys = [], []
        for pkt in container.demux(stream):
            if pkt.size == 0 or getattr(pkt, "is_discard", False):
                continue
            pts.append(pkt.pts)
            if pkt.is_keyframe:
                keys.append((pkt.pts, pkt.dts))
        self.num_frames = len(pts)
        if None in pts or len(set(pts)) != len(pts):
            # No usable timestamps: frames are counted from the start, so every rewind restarts there.
            self._pts_index, self._keys, self._key_ts = None, [0], {}
            return
        self._pts_index = {p: i for i, p in enumerate(sorted(pts))}
        self._key_ts = {self._pts_index[p]: (p,) if d is None or d == p else (p, d) for p, d in keys}
        self._keys = sorted({0, *self._key_ts})

    def _first_frame_size(self) -> tuple[int, int]:
        self._restart()
        got = self._next_frame()
        self._close_container()  # frame 0 was consumed: the first read starts afresh
        if got is None:
            raise FrameError(f"{self.path} has no decodable frames")
        return got[1].width, got[1].height

    def _close_container(self) -> None:
        self._packets = None
        self._pending.clear()
        if self._container is not None:
            self._container.close()
            self._container = None

    def _restart(self) -> None:
        """Reopen the file and decode from its first frame."""
        self._close_container()
        self._container, self._stream = self._open()
        self._packets = self._container.demux(self._stream)
        self._pos, self._floor, self._count, self._decode_error = -1, 0, 0, None

    def _seek_to(self, key: int) -> None:
        """Position the decoder at keyframe ``key`` (or earlier), or restart when seeking fails."""
        self.seeks += 1
        if key > 0 and self._pts_index is not None:
            # Most demuxers seek by pts; some (avi) by dts, where seeking to the pts can land past the
            # keyframe. Check where each attempt landed before trusting it.
            for ts in self._key_ts[key]:
                landed = self._try_seek(ts)
                if landed is not None and landed <= key:
                    self._pos, self._floor = landed - 1, landed
                    return
        self._restart()

    def _try_seek(self, ts: int) -> int | None:
        """Seek to timestamp ``ts``; the index of the first packet there (decoded into pending), or None."""
        self._pending.clear()
        self._decode_error = None
        try:
            self._container.seek(ts, stream=self._stream, backward=True)
            self._packets = self._container.demux(self._stream)
            for pkt in self._packets:
                if pkt.size:
                    self._pending.extend(pkt.decode())
                    return self._pts_index.get(pkt.pts)
        except self._av.error.FFmpegError:
            pass
        return None

    def _next_frame(self):
        """The next decoded frame in presentation order as (index, av.VideoFrame), or None at the end."""
        while True:
            while self._pending:
                f = self._pending.popleft()
                if self._pts_index is None:
                    idx, self._count = self._count, self._count + 1
                else:
                    idx = self._pts_index.get(f.pts, self._pos + 1) if f.pts is not None else self._pos + 1
                if idx >= self._floor and idx > self._pos:
                    return idx, f
            pkt = next(self._packets, None)
            if pkt is None:
                self._close_container()  # the decoder is drained: the next read starts afresh
                return None
            try:
                self._pending.extend(pkt.decode())
            except self._av.error.InvalidDataError as exc:
                # Skip a damaged packet and go on, as ffmpeg does; only the frames it breaks go missing.
                self._decode_error = str(exc)

    def _read(self, idx: int) -> np.ndarray:
        if self._packets is None:
            self._restart()
        key = self._keys[np.searchsorted(self._keys, idx, side="right") - 1]
        if not (self._pos < idx and key <= self._pos + 1):
            self._seek_to(key)
        # Of this run only the frames nearest ``idx`` survive in the cache; skip converting the rest.
        keep_from = min(idx, idx + 1 - self._cache.max_bytes // (self.height * self.width * 3))
        got = None
        try:
            while (got := self._next_frame()) is not None and got[0] <= idx:
                i, f = got
                self._pos = i
                self.decoded_frames += 1
                if i >= keep_from:
                    arr = self._cache.get(i)
                    if arr is None:
                        arr = readonly_view(
                            f.to_ndarray(format="rgb24", width=self.width, height=self.height)
                        )
                        self._cache.put(i, arr)
                    if i == idx:
                        return arr
        except self._av.error.FFmpegError as exc:
            self._close_container()  # decoder state unknown: start afresh next time
            self._decode_error, got = str(exc), None
        if got is not None:  # the decoder skipped past idx
            self._pos = got[0]
            self.decoded_frames += 1
        why = f" (decoder: {self._decode_error})" if self._decode_error else ""
        raise FrameError(
            f"could not decode frame {idx} of {self.path}{why}; the file may be corrupt or truncated. "
            "Re-encode it (e.g. ffmpeg -i in.mp4 out.mp4) or extract its frames to a folder"
        )

    def _release(self) -> None:
        super()._release()
        self._close_container()
