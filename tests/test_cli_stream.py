"""``masklet track --stream``: a local mp4 read as a live stream, prompts applied as frames arrive,
outputs streamed, --max-frames and Ctrl-C stops, and one-line errors for sources that do not open.

Model runs use seeded random sam2.1_hiera_tiny weights at ``--image-size 256`` in float32 on the CPU
(masks are meaningless): the tests check the outputs agree with each other and with ``track``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from masklet import cli
from masklet.cli.live_source import LiveSource, resolve_source
from masklet.io.exporters import read_palette_png
from tests.cli_support import (
    CLIP_FPS,
    CLIP_FRAMES,
    CLIP_H,
    CLIP_W,
    FAST,
    refuse_model_loading,
    run,
    write_clip,
)

av = pytest.importorskip("av")

H, W, N_FRAMES, FPS = CLIP_H, CLIP_W, CLIP_FRAMES, CLIP_FPS
SUMMARY = r"{src}: {n} frame\(s\), {k} object\(s\), \d+\.\d fps{why} \[RANDOM WEIGHTS\] -> {out}\n"


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    """A 6-frame 96x64 H.264 mp4 at 10 fps."""
    return write_clip(tmp_path_factory.mktemp("stream") / "clip.mp4")


@pytest.fixture
def no_model(monkeypatch):
    refuse_model_loading(monkeypatch, "the source and prompts")


def outputs(out: Path) -> tuple[list[int], dict, int]:
    """(PNG frame indices, masks.json, overlay.mp4 frame count)."""
    pngs = sorted(int(p.stem) for p in (out / "masks").iterdir())
    doc = json.loads((out / "masks.json").read_text())
    with av.open(str(out / "overlay.mp4")) as container:
        n_mp4 = sum(1 for _ in container.decode(video=0))
    return pngs, doc, n_mp4


def summary(src, n: int, k: int, out: Path, why: str = "") -> str:
    return SUMMARY.format(src=re.escape(str(src)), n=n, k=k, why=re.escape(why), out=re.escape(str(out)))


# ---------------------------------------------------------------------------------------- end to end
def test_stream_a_file_with_prompts_applied_as_frames_arrive(capsys, tmp_path, video):
    out = tmp_path / "out"
    prompts = ["--point", "0:30,32@1", "--point", "0:60,10,0@1", "--box", "3:40,20,80,60@2"]
    rc, stdout, stderr = run(capsys, "track", "--stream", video, *prompts, "--out", out, *FAST)
    assert (rc, stderr) == (0, ""), stderr
    assert re.fullmatch(summary(video, N_FRAMES, 2, out), stdout), stdout
    pngs, doc, n_mp4 = outputs(out)
    assert pngs == list(range(N_FRAMES)) and n_mp4 == N_FRAMES
    assert (doc["video"], doc["height"], doc["width"]) == (str(video), H, W)
    # object 2 exists from the frame its box arrives on
    assert [sorted(doc["frames"][str(f)]) for f in range(N_FRAMES)] == [["1"]] * 3 + [["1", "2"]] * 3
    with av.open(str(out / "overlay.mp4")) as container:
        assert float(container.streams.video[0].average_rate) == FPS


def test_stream_frame_0_matches_track(capsys, tmp_path, video):
    """Same decoder, preprocessing and prompt: the first frame's masks are identical to ``track``'s."""
    prompts = ["--box", "0:10,15,50,50@1", "--max-frames", "1", "--format", "png"]
    rc_s, _, _ = run(capsys, "track", "--stream", video, *prompts, "--out", tmp_path / "s", *FAST)
    rc_t, _, _ = run(capsys, "track", video, *prompts, "--out", tmp_path / "t", *FAST)
    assert rc_s == rc_t == 0
    streamed = read_palette_png(tmp_path / "s" / "masks" / "00000.png")
    tracked = read_palette_png(tmp_path / "t" / "masks" / "00000.png")
    assert streamed.keys() == tracked.keys() and all(np.array_equal(streamed[k], tracked[k]) for k in tracked)


def test_max_frames_stops_the_stream(capsys, tmp_path, video):
    out = tmp_path / "out"
    args = ["track", "--stream", video, "--point", "1:30,32@4", "--max-frames", "3", "--out", out]
    rc, stdout, stderr = run(capsys, *args, *FAST)
    assert (rc, stderr) == (0, ""), stderr
    pngs, doc, n_mp4 = outputs(out)
    assert pngs == [0, 1, 2] and n_mp4 == 3 and list(doc["frames"]) == ["0", "1", "2"]
    assert (doc["video"], doc["weights"], doc["dtype"]) == (str(video), "random", "float32")
    assert doc["frames"]["0"] == {}  # nothing prompted yet on frame 0
    with Image.open(out / "masks" / "00000.png") as png:
        assert not np.asarray(png).any()
    assert re.fullmatch(summary(video, 3, 1, out), stdout), stdout


def test_ctrl_c_stops_cleanly_and_keeps_what_was_written(capsys, tmp_path, video, monkeypatch):
    from masklet.inference.stream import StreamTracker

    track = StreamTracker.track

    def interrupted_at_frame_3(self, frame):
        if self.frame_idx == 2:
            raise KeyboardInterrupt
        return track(self, frame)

    monkeypatch.setattr(StreamTracker, "track", interrupted_at_frame_3)
    out = tmp_path / "out"
    rc, stdout, stderr = run(capsys, "track", "--stream", video, "--point", "0:30,32@1", "--out", out, *FAST)
    assert (rc, stderr) == (0, ""), stderr
    pngs, doc, n_mp4 = outputs(out)  # the JSON and the mp4 were finished on the way out
    assert pngs == [0, 1, 2] and n_mp4 == 3 and list(doc["frames"]) == ["0", "1", "2"]
    assert (doc["video"], doc["weights"], doc["dtype"]) == (str(video), "random", "float32")
    assert re.fullmatch(summary(video, 3, 1, out, ", stopped by Ctrl-C"), stdout), stdout


def test_prompts_the_stream_never_reached_are_reported(capsys, tmp_path, video):
    out = tmp_path / "out"
    args = ["--point", "0:30,32@1", "--point", "9:30,32@2", "--format", "rle", "--out", out]
    rc, stdout, stderr = run(capsys, "track", "--stream", video, *args, *FAST)
    assert rc == 0
    assert stderr == (
        f"note: the prompts on frame(s) 9 were never applied: the stream stopped after {N_FRAMES} frame(s)\n"
    )
    assert re.fullmatch(summary(video, N_FRAMES, 1, out), stdout), stdout


# -------------------------------------------------------------------------------------------- errors
STREAM_ERRORS = {
    "no such camera": (["--stream", "57"], r"--stream 57: no camera /dev/video57 \(.*\); give another"),
    "unreachable URL": (["--stream", "rtsp://127.0.0.1:9/x"], r"--stream rtsp://127\.0\.0\.1:9/x: could not"),
    "missing file": (["--stream", "{tmp}/gone.mp4"], r"--stream .*gone\.mp4: no such file; SOURCE is a"),
    "not a video": (["--stream", "{tmp}/notes.txt"], r"--stream .*notes\.txt: could not open it"),
    "video and stream": (
        ["{video}", "--stream", "{video}"],
        r"give either VIDEO \(.*clip\.mp4\) or --stream",
    ),
    "reverse": (["--stream", "{video}", "--reverse"], "--reverse cannot be used with --stream"),
    "start": (["--stream", "{video}", "--start", "2"], "--start cannot be used with --stream"),
    "max frames 0": (["--stream", "{video}", "--max-frames", "0"], "--max-frames must be >= 1, got 0"),
    "beyond max frames": (
        ["--stream", "{video}", "--max-frames", "3", "--box", "3:1,1,9,9@2"],
        r"--box '3:1,1,9,9@2': frame 3 is out of range; --max-frames 3 stops after frame 2",
    ),
    "point outside": (["--stream", "{video}", "--point", "0:500,5@2"], r"--point '0:500,5@2': .*outside"),
    "mask size": (
        ["--stream", "{video}", "--mask", "0:{tmp}/small.png@2"],
        r"--mask .*small\.png@2': the mask is 32x16 but the video is 96x64",
    ),
    "no video": ([], r"give the VIDEO to track \(a video file or a folder of frames\), or --stream SOURCE"),
}


@pytest.mark.parametrize("case", STREAM_ERRORS)
def test_stream_errors_are_one_line_exit_2_before_the_model_loads(case, capsys, tmp_path, video, no_model):
    if case == "no such camera" and not Path("/dev").is_dir():
        pytest.skip("camera indices name /dev/videoN on Linux")
    (tmp_path / "notes.txt").write_text("not a video")
    Image.fromarray(np.full((16, 32), 255, np.uint8)).save(tmp_path / "small.png")
    template, message = STREAM_ERRORS[case]
    args = [a.format(tmp=tmp_path, video=video) for a in template]
    if case != "no video" and not any(a.startswith(("--point", "--box", "--mask")) for a in args):
        args += ["--point", "0:5,5@1"]
    rc, stdout, stderr = run(capsys, "track", *args, "--out", tmp_path / "out", *FAST)
    assert (rc, stdout) == (2, "")
    assert stderr.count("\n") == 1 and re.match(rf"masklet track: error: {message}", stderr), stderr
    assert not (tmp_path / "out").exists()


def test_stream_without_prompts(capsys, tmp_path, video, no_model):
    rc, _, stderr = run(capsys, "track", "--stream", video, "--out", tmp_path / "out", *FAST)
    assert rc == 2 and stderr == (
        "masklet track: error: give at least one prompt: --point FRAME:X,Y[,LABEL]@OBJ, --box or --mask\n"
    )


# ----------------------------------------------------------------------------------- source opening
def test_camera_indices_per_platform(tmp_path):
    assert resolve_source("0", "darwin") == ("0", "avfoundation", {"framerate": "30"})
    assert resolve_source("video=Integrated Camera", "win32") == ("video=Integrated Camera", "dshow", {})
    with pytest.raises(cli.CLIError, match=r"--stream 0: DirectShow cameras have names.*video=NAME"):
        resolve_source("0", "win32")
    with pytest.raises(cli.CLIError, match="camera indices work on Linux and macOS"):
        resolve_source("1", "freebsd")
    assert resolve_source("rtsp://cam.local/live", "linux") == ("rtsp://cam.local/live", None, {})
    with pytest.raises(cli.CLIError, match="--stream needs a SOURCE"):
        resolve_source(" ", "linux")


def test_live_source_reads_each_frame_once_in_order(video):
    with LiveSource(str(video)) as source:
        assert (source.width, source.height, source.fps) == (W, H, FPS)
        frames = list(source)
    assert len(frames) == N_FRAMES and all(f.shape == (H, W, 3) and f.dtype == np.uint8 for f in frames)
    red = [int(np.argmax((f[H // 2, :, 0] > 180) & (f[H // 2, :, 1] < 100))) for f in frames]
    assert red == sorted(red) and red[-1] > red[0]  # the disc moves right: frames are in order


def test_live_source_over_http(video):
    """A URL goes through the network demuxer (with its timeouts): served here by a local HTTP server."""
    import functools
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(video.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{video.name}"
        with LiveSource(url) as source:
            assert sum(1 for _ in source) == N_FRAMES and source.error is None
        with pytest.raises(cli.CLIError, match=r"--stream .*/nothing\.mp4: could not open it \(.*404"):
            LiveSource(url.replace(video.name, "nothing.mp4"))
    finally:
        server.shutdown()
        server.server_close()
