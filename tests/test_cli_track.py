"""``masklet track``: end to end on a tiny synthetic video, prompt grouping, and one-line user errors.

Model runs use seeded random sam2.1_hiera_tiny weights at ``--image-size 256`` in float32 on the CPU, so
the masks are meaningless: the tests check that the outputs exist and agree with each other (PNG count =
frames tracked = JSON frames = mp4 frames, PNG pixels = RLE masks), not what they segment.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from masklet import cli
from masklet.io.masks import decode_rle
from tests.cli_support import (
    CLIP_FPS,
    CLIP_FRAMES,
    CLIP_H,
    CLIP_W,
    FAST,
    refuse_model_loading,
    run,
    synthetic_frames,
    write_clip,
)

av = pytest.importorskip("av")
pytest.importorskip("masklet.io.frames")

H, W, N_FRAMES, FPS = CLIP_H, CLIP_W, CLIP_FRAMES, CLIP_FPS


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    """A 6-frame 96x64 H.264 mp4 at 10 fps."""
    return write_clip(tmp_path_factory.mktemp("track") / "clip.mp4")


@pytest.fixture
def no_model(monkeypatch):
    refuse_model_loading(monkeypatch, "the prompts")


@pytest.fixture
def prompt_calls(monkeypatch) -> list[tuple]:
    """Records (kind, frame, obj, points, labels, box) of every prompt call (the call still runs)."""
    calls = []
    cls = pytest.importorskip("masklet.inference.video").VideoPredictor
    add_points, add_mask = cls.add_new_points_or_box, cls.add_new_mask

    def spy_points(self, state, frame_idx, obj_id, points=None, labels=None, box=None, **kw):
        calls.append(("points", frame_idx, obj_id, points, labels, box))
        return add_points(self, state, frame_idx, obj_id, points=points, labels=labels, box=box, **kw)

    def spy_mask(self, state, frame_idx, obj_id, mask, **kw):
        calls.append(("mask", frame_idx, obj_id, np.asarray(mask).sum(), None, None))
        return add_mask(self, state, frame_idx, obj_id, mask, **kw)

    monkeypatch.setattr(cls, "add_new_points_or_box", spy_points)
    monkeypatch.setattr(cls, "add_new_mask", spy_mask)
    return calls


def read_mp4(path: Path) -> tuple[float, int, tuple[int, int]]:
    """(frame rate, decoded frame count, (height, width)) of an mp4."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        n = sum(1 for _ in container.decode(video=0))
        return float(stream.average_rate), n, (stream.height, stream.width)


def check_masks(out: Path, frames: list[int], obj_ids: list[int]) -> dict:
    """PNG files and masks.json agree: the same frames, and each PNG is the RLE masks painted in id order."""
    pngs = sorted(p.name for p in (out / "masks").iterdir())
    assert pngs == [f"{f:05d}.png" for f in sorted(frames)]
    doc = json.loads((out / "masks.json").read_text())
    assert (doc["height"], doc["width"]) == (H, W)
    assert list(doc["frames"]) == [str(f) for f in sorted(frames)]
    for f in frames:
        objs = doc["frames"][str(f)]
        assert sorted(int(k) for k in objs) == sorted(obj_ids)
        expected = np.zeros((H, W), np.uint8)
        for obj, rle in objs.items():  # later objects are painted on top, as the PNG writer does
            assert rle["size"] == [H, W]
            expected[decode_rle(rle)] = int(obj)
        with Image.open(out / "masks" / f"{f:05d}.png") as png:
            assert png.mode == "P" and np.array_equal(np.asarray(png), expected)
    return doc


SUMMARY = r"clip\.mp4: {n} frame\(s\), {k} object\(s\), \d+\.\d{{3}} s/frame \[RANDOM WEIGHTS\] -> {out}\n"


# ---------------------------------------------------------------------------------------- end to end


def test_track_forward_groups_prompts_and_writes_all_outputs(capsys, tmp_path, video, prompt_calls):
    out = tmp_path / "out"
    rc, stdout, stderr = run(
        capsys,
        "track",
        video,
        "--point",
        "1:30,32@1",
        "--box",
        "1:10,15,50,50@1",
        "--point",
        "1:60,10,0@1",
        "--box",
        "3:40,20,80,60@2",
        "--out",
        out,
        *FAST,
    )
    assert (rc, stderr) == (0, ""), stderr
    # One call per (frame, object); points and box of frame 1 / object 1 together.
    assert [c[:3] for c in prompt_calls] == [("points", 1, 1), ("points", 3, 2)]
    _, _, _, points, labels, box = prompt_calls[0]
    assert (np.asarray(points).tolist(), list(labels), list(box)) == (
        [[30, 32], [60, 10]],
        [1, 0],
        [10, 15, 50, 50],
    )
    assert prompt_calls[1][3:] == (None, None, [40, 20, 80, 60])

    frames = list(range(1, N_FRAMES))  # forward from the first prompted frame
    doc = check_masks(out, frames, [1, 2])
    assert doc["video"] == str(video)
    assert (doc["model"], doc["weights"], doc["dtype"]) == ("sam2.1_hiera_tiny", "random", "float32")
    assert read_mp4(out / "overlay.mp4") == (FPS, len(frames), (H, W))
    assert re.fullmatch(SUMMARY.format(n=len(frames), k=2, out=re.escape(str(out))), stdout), stdout


def test_track_reverse_from_a_mask_with_max_frames(capsys, tmp_path, video, prompt_calls):
    mask = np.zeros((H, W), np.uint8)
    mask[20:44, 30:60] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    out = tmp_path / "out"
    args = ["track", video, "--mask", f"4:{tmp_path / 'm.png'}@7", "--reverse", "--max-frames", "3"]
    rc, stdout, stderr = run(capsys, *args, "--out", out, *FAST)
    assert (rc, stderr) == (0, ""), stderr
    assert prompt_calls == [("mask", 4, 7, 24 * 30, None, None)]
    check_masks(out, [2, 3, 4], [7])  # backward from the last prompted frame, 3 frames
    assert read_mp4(out / "overlay.mp4")[1:] == (3, (H, W))
    assert re.fullmatch(SUMMARY.format(n=3, k=1, out=re.escape(str(out))), stdout), stdout


def test_track_both_directions_merges_by_frame(capsys, tmp_path, video):
    pytest.importorskip("masklet.inference.video")
    out = tmp_path / "out"
    args = ["track", video, "--point", "2:36,32@3", "--point", "4:70,30@5", "--both", "--format", "mp4,png"]
    rc, stdout, stderr = run(capsys, *args, "--out", out, *FAST)
    assert (rc, stderr) == (0, ""), stderr
    assert sorted(p.name for p in out.iterdir()) == ["masks", "overlay.mp4"]
    assert sorted(p.name for p in (out / "masks").iterdir()) == [f"{f:05d}.png" for f in range(N_FRAMES)]
    assert read_mp4(out / "overlay.mp4") == (FPS, N_FRAMES, (H, W))  # every frame once, in frame order
    assert re.fullmatch(SUMMARY.format(n=N_FRAMES, k=2, out=re.escape(str(out))), stdout), stdout


def test_track_odd_sized_frame_folder_pads_the_mp4_and_defaults_to_30_fps(capsys, tmp_path):
    pytest.importorskip("masklet.inference.video")
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(synthetic_frames(3, 63, 95)):
        Image.fromarray(frame).save(folder / f"{i:05d}.png")
    out = tmp_path / "out"
    args = ["track", folder, "--box", "0:5,10,50,50@255", "--format", "rle,mp4", "--out", out, *FAST]
    rc, stdout, stderr = run(capsys, *args)
    assert (rc, stderr) == (0, ""), stderr
    assert sorted(p.name for p in out.iterdir()) == ["masks.json", "overlay.mp4"]
    doc = json.loads((out / "masks.json").read_text())
    assert (doc["video"], doc["height"], doc["width"], list(doc["frames"])) == (
        str(folder),
        63,
        95,
        ["0", "1", "2"],
    )
    assert all(list(objs) == ["255"] for objs in doc["frames"].values())
    assert read_mp4(out / "overlay.mp4") == (30, 3, (64, 96))  # padded to even, no frame rate in a folder
    assert stdout.startswith("frames: 3 frame(s), 1 object(s), ")


# -------------------------------------------------------------------------------------------- errors

# (arguments after the video, with {tmp} for the temporary folder; message regex after "error: ")
TRACK_ERRORS = {
    "no prompt": ("", r"give at least one prompt: --point FRAME:X,Y\[,LABEL\]@OBJ, --box or --mask"),
    "point without frame": ("--point 10,10@1", r"--point '10,10@1': missing FRAME:; expected FRAME:X,Y"),
    "point without object": (
        "--point 0:10,10",
        r"--point '0:10,10': missing @OBJ; expected FRAME:X,Y\[,LABEL\]@OBJ",
    ),
    "point not numbers": (
        "--point 0:1;2@1",
        r"--point '0:1;2@1': X,Y\[,LABEL\] must be comma-separated numbers",
    ),
    "point label": (
        "--point 0:1,2,5@1",
        r"--point '0:1,2,5@1': LABEL must be 1 \(object\) or 0 \(background\), got 5",
    ),
    "box needs 4 numbers": (
        "--box 0:1,2,3@1",
        r"--box '0:1,2,3@1': X0,Y0,X1,Y1 needs 4 numbers, got '1,2,3'",
    ),
    "frame not a number": ("--point x:1,2@1", r"--point 'x:1,2@1': FRAME and OBJ must be whole numbers"),
    "frame out of range": (
        "--point 6:10,10@1",
        r"--point '6:10,10@1': frame 6 is out of range; the video has 6 frames \(0\.\.5\)",
    ),
    "negative frame": ("--box=-1:1,1,5,5@1", r"--box '-1:1,1,5,5@1': FRAME must be >= 0"),
    "point outside": (
        "--point 0:200,10@1",
        r"--point '0:200,10@1': point \[200\.0, 10\.0\] lies outside the image "
        r"\(x in \[0, 96\], y in \[0, 64\]\)",
    ),
    "negative frame, no equals sign": ("--point -1:1,1@1", r"--point '-1:1,1@1': FRAME must be >= 0"),
    "negative point": (
        "--point 0:-5,10@1",
        r"--point '0:-5,10@1': point \[-5\.0, 10\.0\] lies outside the image "
        r"\(x in \[0, 96\], y in \[0, 64\]\)",
    ),
    "box outside": (
        "--box 0:100,70,120,90@1",
        r"box \[100\.0, 70\.0, 120\.0, 90\.0\] reaches outside the image \(x in \[0, 96\], y in \[0, 64\]\)",
    ),
    "box partly outside": (
        "--box 0:10,10,97,40@1",
        r"--box '0:10,10,97,40@1': box \[10\.0, 10\.0, 97\.0, 40\.0\] reaches outside the image",
    ),
    "flipped box": ("--box 0:50,50,10,10@1", r"box \[50\.0, 50\.0, 10\.0, 10\.0\] has x1 < x0 or y1 < y0"),
    "object id 0": (
        "--point 0:10,10@0",
        r"--point '0:10,10@0': object id must be 1\.\.255 \(0 is the background in the mask PNGs\), got 0",
    ),
    "object id 300": ("--box 0:1,1,9,9@300", r"object id must be 1\.\.255 .*, got 300"),
    "two boxes": (
        "--box 0:1,1,9,9@1 --box 0:2,2,8,8@1",
        r"--box '0:2,2,8,8@1': object 1 already has a box on frame 0",
    ),
    "missing mask file": (
        "--mask 0:{tmp}/none.png@1",
        r"--mask '0:.*none\.png@1': no such mask file: .*none\.png",
    ),
    "mask not an image": ("--mask 0:{tmp}/notes.png@1", r"could not read .*notes\.png as an image"),
    "mask of the wrong size": (
        "--mask 0:{tmp}/small.png@1",
        r"the mask is 32x16 but the video is 96x64 \(width x height\); the mask must have the video's size",
    ),
    "empty mask": ("--mask 0:{tmp}/empty.png@1", r"the mask .*empty\.png is empty \(all zero\)"),
    "mask and points": (
        "--mask 0:{tmp}/full.png@2 --point 0:5,5@2",
        r"object 2 on frame 0 has a --mask and other prompts \(--point '0:5,5@2', --mask",
    ),
    "start out of range": (
        "--point 0:5,5@1 --start 9",
        r"--start 9 is out of range; the video has 6 frames \(0\.\.5\)",
    ),
    "max frames": ("--point 0:5,5@1 --max-frames 0", r"--max-frames must be >= 1, got 0"),
    "memory frames": ("--point 0:5,5@1 --memory-frames 8", r"--memory-frames must be 1\.\.7, got 8"),
    "unknown format": (
        "--point 0:5,5@1 --format png,gif",
        r"--format 'png,gif': unknown output format 'gif'; choose from png, rle, mp4",
    ),
    "missing video": (
        "--point 0:5,5@1 --video-missing",
        r"no such video file or frame folder: .*missing\.mp4",
    ),
    "out is a file": (
        "--point 0:5,5@1 --out {tmp}/notes.png",
        r"--out .*notes\.png is a file; expected a folder",
    ),
}


def _error_inputs(tmp: Path) -> None:
    (tmp / "notes.png").write_text("just text")
    Image.fromarray(np.full((16, 32), 255, np.uint8)).save(tmp / "small.png")
    Image.fromarray(np.zeros((H, W), np.uint8)).save(tmp / "empty.png")
    Image.fromarray(np.full((H, W, 3), 9, np.uint8)).save(tmp / "full.png")


@pytest.mark.parametrize("case", TRACK_ERRORS)
def test_track_errors_are_one_line_before_the_model_loads(case, capsys, tmp_path, video, no_model):
    _error_inputs(tmp_path)
    template, message = TRACK_ERRORS[case]
    args = template.format(tmp=tmp_path).split()
    target = tmp_path / "missing.mp4" if "--video-missing" in args else video
    args = [a for a in args if a != "--video-missing"]
    if "--out" not in args:
        args += ["--out", tmp_path / "out"]
    rc, stdout, stderr = run(capsys, "track", target, *args, *FAST)
    assert (rc, stdout) == (2, "")
    assert stderr.endswith("\n") and stderr.count("\n") == 1, stderr
    assert re.match(rf"masklet track: error: .*{message}", stderr), stderr
    assert not (tmp_path / "out").exists()


def test_reverse_and_both_exclude_each_other(capsys, tmp_path, video):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["track", str(video), "--point", "0:5,5@1", "--reverse", "--both", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "masklet track: error: argument --both: not allowed with argument --reverse"
    )


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--point", "2:5,5@1", "--point", "4:5,5@1"], [(2, False, 4)]),
        (["--point", "2:5,5@1", "--point", "4:5,5@1", "--reverse"], [(4, True, 5)]),
        (["--point", "2:5,5@1", "--point", "4:5,5@1", "--both"], [(2, False, 4), (2, True, 3)]),
        (["--point", "2:5,5@1", "--start", "1", "--max-frames", "2"], [(1, False, 2)]),
        (["--point", "2:5,5@1", "--both", "--max-frames", "10"], [(2, False, 4), (2, True, 3)]),
        (["--point", "5:5,5@1", "--max-frames", "3"], [(5, False, 1)]),
        (["--point", "0:5,5@1", "--reverse"], [(0, False, 1)]),  # backward from 0: frame 0 alone
        (["--point", "0:5,5@1", "--point", "3:5,5@2", "--both"], [(0, False, 6)]),
    ],
)
def test_track_passes_start_direction_and_length(argv, expected):
    args = cli.build_parser().parse_args(["track", "v.mp4", *argv, "--out", "o"])
    frames = sorted({int(t.split(":")[0]) for t in args.point})
    assert cli.track_passes(args, frames, N_FRAMES) == expected
