"""Any length in bounded memory, at small scale: a 60- and a 600-frame video cost the same.

A small-input model (128 px, seeded random weights, object-score head shifted so masks are present)
is prompted near the end of synthetic 64x48 H.264 videos of 60 and 600 frames and tracks a few frames
there. Opening decodes nothing; afterwards the session holds the same bytes (decoded frames in the
frame cache, stored masks and memories) and has decoded the same frames for both lengths; and the
peak RSS of a fresh process doing the same differs by less than a few tens of MB.
benchmarks/bench_long_video.py measures the same at 720p, 1024 px and up to 3000 frames.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from masklet.inference.video import VideoPredictor
from masklet.modeling.sam2 import SAM2Model
from masklet.presets import get_preset

av = pytest.importorskip("av")

ROOT = Path(__file__).resolve().parents[2]
H, W = 48, 64
GOP = 12  # 600 - 60 is a multiple: the window sits at the same place in its keyframe interval
SHORT, LONG = 60, 600
FROM_END = 10  # the prompted frame is num_frames - FROM_END
WINDOW = 6  # frames tracked after it
RSS_TOLERANCE = 60 * 2**20


def write_video(path: Path, n: int) -> Path:
    """``n`` frames of a gradient with a moving square, H.264 with a keyframe every GOP frames."""
    yy, xx = np.mgrid[0:H, 0:W]
    base = np.stack([xx * 4, yy * 5, (xx + yy) * 2], -1).astype(np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        params = f"keyint={GOP}:min-keyint={GOP}:scenecut=0:bframes=2"
        stream.options = {"preset": "veryfast", "crf": "18", "x264-params": params}
        for i in range(n):
            frame = base.copy()
            x = i % (W - 16)
            frame[16:32, x : x + 16] = (250, 250, 40)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    return path


def make_model() -> SAM2Model:
    torch.manual_seed(0)
    model = SAM2Model(get_preset("sam2.1_hiera_tiny", image_size=128)).eval()
    with torch.no_grad():
        model.sam_mask_decoder.pred_obj_score_head.layers[2].bias += 2.0  # objects present
    return model


def track_near_end(model: SAM2Model, path: str | Path):
    """Open ``path``, click and box two objects FROM_END frames before its end, track WINDOW frames.

    Returns (session, frames decoded by init_state, number of tracked object-frames with a mask).
    """
    predictor = VideoPredictor(model)
    state = predictor.init_state(str(path))
    decoded_at_open = state.frames.decoded_frames
    start = state.num_frames - FROM_END
    predictor.add_new_points_or_box(state, start, 1, points=[[40, 24]], labels=[1])
    predictor.add_new_points_or_box(state, start, 2, box=[4, 4, 30, 40])
    present = 0
    for _, _, logits in predictor.propagate_in_video(
        state, start_frame_idx=start, max_frame_num_to_track=WINDOW
    ):
        present += int((logits > 0).flatten(1).any(1).sum())
    return state, decoded_at_open, present


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[int, Path]:
    d = tmp_path_factory.mktemp("long_video")
    return {n: write_video(d / f"v{n}.mp4", n) for n in (SHORT, LONG)}


@pytest.fixture(scope="module")
def sessions(videos):
    model = make_model()
    out = {n: track_near_end(model, path) for n, path in videos.items()}
    yield out
    for state, _, _ in out.values():
        state.close()


def test_opening_decodes_at_most_a_couple_of_frames(sessions):
    for n, (state, decoded_at_open, _) in sessions.items():
        assert state.num_frames == n
        assert decoded_at_open <= 2, f"init_state decoded {decoded_at_open} of {n} frames"


def test_session_holds_the_same_bytes_for_10x_the_length(sessions):
    short, _, present_short = sessions[SHORT]
    long, _, present_long = sessions[LONG]
    assert present_short > 0 and present_long > 0, "no object was present: the setup tracks nothing"
    # Masks and memories of the tracked frames (2 objects x WINDOW frames), nothing per video frame.
    assert short.heavy_bytes() > 0
    assert long.heavy_bytes() == short.heavy_bytes()
    assert sum(len(o.non_cond) for o in long.objects) == 2 * WINDOW
    # Decoded frames: only those near the window, within the cache's bound.
    assert 0 < short.frames.cache_nbytes <= short.frames.cache_bytes
    assert long.frames.cache_nbytes == short.frames.cache_nbytes
    assert long.frames.cache_nbytes < SHORT * H * W * 3
    # Decoding work: one keyframe interval plus the window, not the video's length.
    assert long.frames.decoded_frames == short.frames.decoded_frames
    assert long.frames.decoded_frames <= GOP + FROM_END + 2


CHILD = """
import resource, sys, torch
torch.set_num_threads(2)
from tests.inference.test_long_video_memory import make_model, track_near_end
state, _, _ = track_near_end(make_model(), sys.argv[1])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)  # ru_maxrss is in KiB on Linux
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss is in KiB on Linux only")
def test_peak_rss_does_not_grow_with_the_length(videos):
    peak = {}
    for n, path in videos.items():
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(path)], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        peak[n] = int(proc.stdout.split()[-1])
    print(
        f"peak RSS: {SHORT} frames {peak[SHORT] / 2**20:.0f} MiB, {LONG} frames {peak[LONG] / 2**20:.0f} MiB"
    )
    assert abs(peak[LONG] - peak[SHORT]) < RSS_TOLERANCE, peak
