"""``batch track`` outputs: DAVIS-layout palette PNGs, SA-V style JSON, both directions, eval score.

Seeded random tiny weights at 128 px: the masks are meaningless, so the tests check that the outputs
agree with each other and with the inputs, not what they segment.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from masklet import cli
from masklet.batch import RunOptions, run_job, track_videos
from masklet.batch.track import TrackJob
from masklet.eval.synthetic import make_vos_dataset
from masklet.io.masks import decode_rle
from tests.batch.helpers import MODEL, outputs

FRAMES = {"clip_a": 6, "clip_b": 5, "frames_c": 4}


def test_every_frame_has_a_palette_png_that_matches_the_json(track_reference):
    for video, n in FRAMES.items():
        pngs = sorted((track_reference / video).glob("*.png"))
        assert [p.name for p in pngs] == [f"{i:05d}.png" for i in range(n)]
        doc = json.loads((track_reference / f"{video}.json").read_text())
        assert doc["video_id"] == video and doc["video_frame_count"] == n
        assert len(doc["masklet"]) == n and doc["masklet_num"] == len(doc["masklet_id"])
        assert doc["masklet_type"] == "auto" and doc["model"]["weights"] == "random"
        for f, png in enumerate(pngs):
            with Image.open(png) as im:
                assert im.mode == "P"
                label = np.asarray(im)
            rebuilt = np.zeros_like(label)
            for obj, rle in zip(doc["masklet_id"], doc["masklet"][f]):
                assert rle["size"] == list(label.shape)
                rebuilt[decode_rle(rle)] = obj  # higher ids are written later: they win overlaps
            np.testing.assert_array_equal(label, rebuilt)
        for k in range(len(doc["masklet_id"])):
            present = [f for f in range(n) if decode_rle(doc["masklet"][f][k]).any()]
            assert doc["masklet_frame_count"][k] == len(present)
            assert doc["masklet_first_appeared_frame"][k] == (present[0] if present else -1)


def test_prompts_not_on_the_first_frame_are_tracked_both_ways(track_reference):
    b = json.loads((track_reference / "clip_b.json").read_text())
    assert b["start_frame"] == 1 and b["masklet_id"] == [3]
    assert b["prompts"] == [{"frame": 1, "object": 3, "kind": "mask"}]
    assert (track_reference / "clip_b" / "00000.png").is_file()  # reached by the backward pass only
    a = json.loads((track_reference / "clip_a.json").read_text())
    assert a["start_frame"] == 0 and a["masklet_id"] == [1, 2]
    kinds = {(p["object"], p["kind"]) for p in a["prompts"]}
    assert kinds == {(1, "points"), (2, "box")}


def test_the_python_api_writes_what_run_job_writes(track_data, track_reference, tmp_path):
    summary = track_videos(*track_data, tmp_path / "out", model=MODEL, threads_per_worker=1, progress=False)
    assert summary.ok and summary.done == 3 and summary.frames == sum(FRAMES.values())
    assert outputs(tmp_path / "out") == outputs(track_reference)


def test_annotation_folder_prompts_and_eval_score_reads_the_outputs(tmp_path, capsys):
    data = make_vos_dataset(tmp_path / "davis", num_videos=2, num_frames=4, size=(48, 64), seed=3)
    frames, annotations = data / "JPEGImages" / "480p", data / "Annotations" / "480p"
    out = tmp_path / "out"
    job = TrackJob(str(frames), str(annotations))
    summary = run_job(job, out, MODEL, RunOptions(threads_per_worker=1, progress=False))
    assert summary.ok and summary.done == 2
    for video in ("synth_000", "synth_001"):
        doc = json.loads((out / f"{video}.json").read_text())
        first = {}
        for t in range(4):
            ids = np.asarray(Image.open(annotations / video / f"{t:05d}.png"))
            for obj in set(np.unique(ids).tolist()) - {0, 255}:
                first.setdefault(obj, t)
        assert {(p["object"], p["frame"]) for p in doc["prompts"]} == set(first.items())
        assert all(p["kind"] == "mask" for p in doc["prompts"])
    # objects that enter late are prompted too: the SA-V protocol scores them (DAVIS 2017 does not)
    rc = cli.main(["eval", "score", str(out), str(data), "--all-frames", "--protocol", "sav"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "2 videos" in captured.out and "synth_000" in captured.out and "synth_001" in captured.out


@pytest.mark.parametrize(
    "records, message",
    [
        (
            [{"video": "clip_a", "frame": 0, "object": 1, "points": [[1, 1]], "mask": "m.png"}],
            "a mask goes alone",
        ),
        ([{"video": "clip_a", "object": 0, "points": [[1, 1]]}], "'object' must be a whole number 1..255"),
        ([{"video": "clip_a", "object": 1}], "give 'points' (with 'labels'), a 'box' or a 'mask'"),
        ([{"video": "clip_a", "object": 1, "box": [5, 5, 1, 1]}], "has x1 < x0 or y1 < y0"),
        ([{"video": "clip_a", "object": 1, "points": [[1, 1]], "labels": [2]}], "'labels' must list 1"),
        ([{"video": "clip_a", "object": 1, "mask": "nope.png"}], "mask 'nope.png' is not a file"),
        ([{"video": "clip_a", "object": 1, "points": [[1, 1]], "colour": 3}], "unknown key(s) ['colour']"),
        (
            [
                {"video": "clip_a", "object": 1, "box": [0, 0, 9, 9]},
                {"video": "clip_a", "object": 1, "box": [1, 1, 9, 9]},
            ],
            "is prompted again (first at prompts.json record 0)",
        ),
    ],
)
def test_manifest_mistakes_are_named_with_their_record(track_data, tmp_path, records, message):
    from masklet.batch import BatchInputError

    manifest = tmp_path / "prompts.json"
    manifest.write_text(json.dumps(records))
    with pytest.raises(BatchInputError, match=None) as info:
        TrackJob(str(track_data[0]), str(manifest)).discover()
    assert message in str(info.value) and "record" in str(info.value)


def test_a_jsonl_line_that_is_not_json_is_named(track_data, tmp_path):
    from masklet.batch import BatchInputError

    manifest = tmp_path / "prompts.jsonl"
    manifest.write_text('{"video": "clip_a", "object": 1, "points": [[1, 1]]}\n{"video": oops}\n')
    with pytest.raises(BatchInputError, match="prompts.jsonl line 2 is not JSON"):
        TrackJob(str(track_data[0]), str(manifest)).discover()


def test_videos_without_prompts_are_left_out_with_a_note(track_data, tmp_path):
    manifest = tmp_path / "prompts.jsonl"
    manifest.write_text('{"video": "clip_a", "object": 1, "points": [[1, 1]]}\n')
    items, notes = TrackJob(str(track_data[0]), str(manifest)).discover()
    assert [it.key for it in items] == ["clip_a"]
    assert notes == ["note: 2 video(s) without prompts are left out: clip_b, frames_c"]
