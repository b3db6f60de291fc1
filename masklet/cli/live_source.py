"""Frames of a live source -- a camera, an rtsp:// / http:// URL or a file -- decoded one at a time with PyAV.

Unlike :class:`masklet.io.frames.VideoFileSource` there is no index and no seeking: frames are read in
order, once, as the source delivers them, and nothing is kept but the frame being handed out.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .common import CLIError, one_line

URL_TIMEOUT_S = (10.0, 30.0)  # (open, read) seconds before a silent network source counts as gone


def resolve_source(spec: str, platform: str = sys.platform) -> tuple[str, str | None, dict[str, str]]:
    """``--stream SOURCE`` -> (what PyAV opens, its input format or None, demuxer options).

    A whole number is a camera index: ``/dev/videoN`` (v4l2) on Linux, AVFoundation device N on macOS.
    On Windows DirectShow names cameras, so give ``video=NAME``. Anything with ``://`` is a URL; anything
    else must be an existing file.
    """
    text = spec.strip()
    if not text:
        raise CLIError("--stream needs a SOURCE: a camera index (0), a URL (rtsp://...) or a video file")
    if text.isdigit():
        if platform.startswith("linux"):
            device = f"/dev/video{int(text)}"
            if not Path(device).exists():
                found = sorted(str(p) for p in Path("/dev").glob("video[0-9]*"))
                have = f"cameras here: {', '.join(found)}" if found else "no camera was found on this machine"
                raise CLIError(
                    f"--stream {spec}: no camera {device} ({have}); "
                    "give another camera index, a URL or a file"
                )
            return device, "v4l2", {}
        if platform == "darwin":
            # Most Mac cameras refuse ffmpeg's default 29.97 fps; 30 is what they offer.
            return text, "avfoundation", {"framerate": "30"}
        if platform == "win32":
            raise CLIError(
                f"--stream {spec}: DirectShow cameras have names, not numbers; give --stream 'video=NAME' "
                "(list them with: ffmpeg -list_devices true -f dshow -i dummy)"
            )
        raise CLIError(
            f"--stream {spec}: camera indices work on Linux and macOS; give a URL or a file instead"
        )
    if text.startswith("video=") and platform == "win32":
        return text, "dshow", {}
    if "://" in text:
        return text, None, {}
    if not Path(text).is_file():
        raise CLIError(
            f"--stream {spec}: no such file; SOURCE is a camera index (0, 1, ...), a URL "
            "(rtsp://, http://, ...) or a video file"
        )
    return text, None, {}


class LiveSource:
    """Iterate (H, W, 3) uint8 RGB frames of ``spec`` (see :func:`resolve_source`).

    Opening fails with a one-line :class:`CLIError` (no such camera, unreachable URL, not a video). The
    first frame is decoded on opening, so ``width``/``height`` are known before any model loads; every
    frame is converted to that size (a source that changes resolution mid-stream keeps one size).
    ``fps`` is the source's frame rate or None. Damaged packets are skipped, as ffmpeg does.
    """

    def __init__(self, spec: str) -> None:
        try:
            import av
        except ImportError:
            raise CLIError("reading streams needs PyAV: pip install av") from None
        self._av = av
        self.spec = spec
        self.skipped_packets = 0
        self.error: str | None = None  # why the source stopped early, if it did
        url, fmt, options = resolve_source(spec)
        timeout = URL_TIMEOUT_S if "://" in url else None
        try:
            self._container = av.open(url, format=fmt, options=options, timeout=timeout)
        except (av.error.FFmpegError, OSError) as exc:
            raise CLIError(f"--stream {spec}: could not open it ({one_line(exc)})") from None
        try:
            if not self._container.streams.video:
                raise CLIError(f"--stream {spec}: the source has no video stream")
            self._stream = self._container.streams.video[0]
            rate = self._stream.average_rate or self._stream.guessed_rate
            self.fps = float(rate) if rate else None
            self._frames = self._decode()
            first = next(self._frames, None)
            if first is None:
                why = f" ({self.error})" if self.error else ""
                raise CLIError(f"--stream {spec}: the source delivered no frames{why}")
            self.width, self.height = first.width, first.height
            self._first = first
        except BaseException:
            self.close()
            raise

    def _decode(self) -> Iterator:
        av = self._av
        try:
            for packet in self._container.demux(self._stream):
                try:
                    yield from packet.decode()
                except av.error.InvalidDataError:
                    self.skipped_packets += 1
        except av.error.FFmpegError as exc:  # a dropped connection, a camera unplugged
            self.error = one_line(exc)

    def __iter__(self) -> Iterator[np.ndarray]:
        """Frames in arrival order; ends with the source (``error`` says why, if it broke)."""
        first, self._first = self._first, None
        if first is not None:
            yield self._rgb(first)
        for frame in self._frames:
            yield self._rgb(frame)

    def _rgb(self, frame) -> np.ndarray:
        return frame.to_ndarray(format="rgb24", width=self.width, height=self.height)

    def close(self) -> None:
        container, self._container = getattr(self, "_container", None), None
        if container is not None:
            container.close()

    def __enter__(self) -> LiveSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
