"""``masklet batch``: bad input stops before any work (one line, exit 2), faults fail their item only
(exit 1), the progress bar, --limit, and what a worker keeps in memory."""

from __future__ import annotations

import io
import json
import socket
import sys
import weakref

import pytest
import torch

from masklet import cli
from masklet.batch import Item, ModelSpec, RunOptions, run_job
from masklet.batch.track import TrackJob, TrackWork
from tests.batch.helpers import CLI_MODEL, MODEL, shifted_frames, statuses, write_frame_folder
from tests.cli_support import run


@pytest.fixture
def no_model(monkeypatch):
    monkeypatch.setattr(
        ModelSpec, "build", lambda self: pytest.fail("a model was built before the input was checked")
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _track(track_data, out, *extra):
    videos, manifest = track_data
    return ["batch", "track", videos, "--prompts", manifest, "--out", out, *CLI_MODEL, *extra]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--workers", "0"], "--workers must be >= 1, got 0"),
        (
            ["--workers", "2"],
            "2 workers need Ray: add --ray (a local Ray instance, or the cluster of RAY_ADDRESS)",
        ),
        (["--gpus-per-worker", "0.5"], "GPUs per worker are reserved through Ray: add --ray"),
        (
            ["--ray=127.0.0.1:1", "--device", "cuda", "--gpus-per-worker", "1.5"],
            "GPUs per worker above 1 must be a whole number",
        ),
        (["--limit", "0"], "limit must be >= 1, got 0"),
        (["--memory-frames", "9"], "memory frames must be 1..7, got 9"),
        (["--ray", "videos"], "--ray 'videos' is not an address: give host:port, ray://host:port or auto"),
        (["--model", "sam9"], "unknown model preset 'sam9'"),
        (["--checkpoint", "/nonexistent/model.pt"], "exclude each other"),
        (["--threads", "2", "--threads-per-worker", "1"], "--threads and --threads-per-worker disagree"),
        (["--ray", "--device", "cpu", "--gpus-per-worker", "1"], "--gpus-per-worker with --device cpu"),
        (
            ["--backend", "onnx"],
            "masklet batch runs the PyTorch model in its workers: leave out --backend onnx",
        ),
    ],
)
def test_bad_options_stop_before_any_work(track_data, tmp_path, capsys, no_model, extra, message):
    rc, out, err = run(capsys, *_track(track_data, tmp_path / "out", *extra))
    assert rc == 2 and out == ""
    assert err.startswith("masklet batch: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_an_unreachable_ray_address_is_one_clear_line(track_data, tmp_path, capsys, no_model, monkeypatch):
    pytest.importorskip("ray.data")
    port = _closed_port()
    rc, _, err = run(capsys, *_track(track_data, tmp_path / "out", f"--ray=127.0.0.1:{port}"))
    assert rc == 2 and err.count("\n") == 1
    assert f"cannot reach the Ray cluster at 127.0.0.1:{port} (Connection refused)" in err
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")  # --ray alone joins RAY_ADDRESS
    rc, _, err = run(capsys, *_track(track_data, tmp_path / "out", "--ray"))
    assert rc == 2 and f"cannot reach the Ray cluster at 127.0.0.1:{port}" in err
    assert not (tmp_path / "out").exists()


def test_ray_not_installed_is_one_line_with_the_fix(track_data, tmp_path, capsys, no_model, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as if it were not installed
    rc, _, err = run(capsys, *_track(track_data, tmp_path / "out", "--ray"))
    assert rc == 2 and err.count("\n") == 1
    assert "running on Ray needs Ray Data: pip install 'masklet[ray]'" in err
    assert not (tmp_path / "out").exists()


def _bad_inputs(root):
    """(argv, message) of input mistakes found before any work."""
    videos = root / "videos"
    write_frame_folder(videos / "v1", shifted_frames(2, 0))
    images = root / "images"
    write_frame_folder(images, shifted_frames(1, 0))  # images/00000.jpg
    manifest = root / "ghost.jsonl"
    manifest.write_text('{"video": "ghost", "object": 1, "points": [[1, 1]]}\n')
    annotations = root / "annotations" / "elsewhere"
    annotations.mkdir(parents=True)
    not_json = root / "broken.json"
    not_json.write_text("{")
    coco = root / "coco.json"
    coco.write_text(json.dumps({"images": [{"id": 1, "file_name": "gone.jpg"}], "annotations": []}))
    yolo = root / "yolo"
    yolo.mkdir()
    (yolo / "lost.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    file_out = root / "file.txt"
    file_out.write_text("")
    out = root / "out"
    return [
        (
            ["track", root / "nope", "--prompts", manifest, "--out", out],
            f"videos folder {root / 'nope'} not found",
        ),
        (["track", videos, "--prompts", root / "none.json", "--out", out], "prompts"),
        (["track", videos, "--prompts", manifest, "--out", out], "not in the videos folder: ghost"),
        (
            ["track", videos, "--prompts", annotations.parent, "--out", out],
            "not in the videos folder: elsewhere",
        ),
        (["track", videos, "--prompts", not_json, "--out", out], "broken.json is not JSON"),
        (["boxes", images, "--labels", root / "none.json", "--out", out], "labels"),
        (["boxes", images, "--labels", not_json, "--out", out], "broken.json is not JSON"),
        (["boxes", images, "--labels", coco, "--out", out], "names images that are not in"),
        (["boxes", images, "--labels", yolo, "--out", out], "have no image of the same name"),
        (
            ["boxes", root / "nope", "--labels", yolo, "--out", out],
            f"images folder {root / 'nope'} not found",
        ),
        (["everything", root / "nope", "--out", out], f"images folder {root / 'nope'} not found"),
        (["everything", images, "--out", out, "--points-per-side", "0"], "--points-per-side must be"),
        (["everything", images, "--out", file_out], "is a file; expected a folder"),
    ]


def test_bad_inputs_stop_before_any_work(tmp_path, capsys, no_model):
    for argv, message in _bad_inputs(tmp_path):
        rc, out, err = run(capsys, "batch", *argv, *CLI_MODEL)
        assert (rc, out) == (2, ""), (argv, err)
        assert message in err and err.count("\n") == 1, (argv, err)
    assert not (tmp_path / "out").exists()


def test_faults_fail_their_item_only_and_exit_1(faulty_data, tmp_path, capsys):
    videos, manifest = faulty_data
    argv = ["batch", "track", videos, "--prompts", manifest, "--out", tmp_path / "out", *CLI_MODEL]
    rc, out, err = run(capsys, *argv, "--threads-per-worker", "1")
    assert rc == 1
    assert out.startswith("masklet batch track: 2 done, 0 skipped (done before), 2 failed of 4 items; ")
    assert "frames/s [RANDOM WEIGHTS: masks are meaningless]" in out
    failed = [line for line in err.splitlines() if line.startswith("failed: ")]
    assert failed[0].startswith("failed: broken: ") and "is not a readable video" in failed[0]
    assert (
        failed[1] == "failed: short: a prompt for object 1 is on frame 7, but the video has 3 frames (0..2)"
    )
    st = statuses(tmp_path / "out")
    assert {k: s["state"] for k, s in st.items()} == {
        "good_1": "done",
        "good_2": "done",
        "broken": "failed",
        "short": "failed",
    }
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")) == [
        "good_1",
        "good_1.json",
        "good_2",
        "good_2.json",
    ]


def test_limit_runs_the_first_items_in_name_order(track_data, tmp_path, capsys):
    rc, out, _ = run(
        capsys, *_track(track_data, tmp_path / "out", "--limit", "2", "--threads-per-worker", "1")
    )
    assert rc == 0 and "2 done, 0 skipped (done before), 0 failed of 2 items" in out
    assert sorted(statuses(tmp_path / "out")) == ["clip_a", "clip_b"]


def test_the_progress_bar_counts_items_frames_per_second_and_failures(faulty_data, tmp_path):
    bar = io.StringIO()
    options = RunOptions(threads_per_worker=1, progress=True)
    summary = run_job(TrackJob(*map(str, faulty_data)), tmp_path / "out", MODEL, options, progress_file=bar)
    drawn = bar.getvalue()
    assert "track: 100%" in drawn and "4/4" in drawn and "frames/s, 2 failed" in drawn
    lines = summary.lines()
    assert [line.split(":")[1].strip() for line in lines[1:]] == ["broken", "short"]


def test_the_help_documents_the_manifest_and_resume(capsys):
    with pytest.raises(SystemExit):
        cli.main(["batch", "track", "--help"])
    text = capsys.readouterr().out
    assert '{"video": "bear", "frame": 0, "object": 2, "box": [100, 80, 300, 260]}' in text
    assert "--retry-failed" in text and "OUT/.masklet/status" in text


def test_a_worker_keeps_neither_masks_nor_more_frames_than_its_cache(tmp_path, monkeypatch, request):
    """Masks go to the writers frame by frame and are dropped; decoded frames stay within the cache."""
    from masklet.io import exporters, frames

    n, cache = 12, 40_000  # a 64 x 96 RGB frame is 18 KB: the cache holds two
    folder = write_frame_folder(tmp_path / "long", shifted_frames(n, 0))
    alive, peak, reads = [], [0], []
    real_write, real_open = exporters.PalettePngWriter.write, frames.open_frames

    def write(self, frame_idx, obj_ids, masks):
        alive.append(weakref.ref(masks))
        assert sum(r() is not None for r in alive) <= 2, "masks of earlier frames are still held"
        return real_write(self, frame_idx, obj_ids, masks)

    def open_frames(video, cache_bytes=256 * 2**20):
        source = real_open(video, cache_bytes)
        read = source.frame

        def frame(idx):
            reads.append(idx)
            out = read(idx)
            peak[0] = max(peak[0], source.cache_nbytes)
            return out

        source.frame = frame
        return source

    monkeypatch.setattr(exporters.PalettePngWriter, "write", write)
    monkeypatch.setattr(frames, "open_frames", open_frames)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a worker of one thread (faster on a busy machine)
    request.addfinalizer(lambda: torch.set_num_threads(threads))
    work = TrackWork(MODEL.build(), {}, None, frame_cache_bytes=cache)
    item = Item(
        "long",
        {
            "video": str(folder),
            "prompts": [{"frame": 3, "object": 1, "points": [[30.0, 30.0]], "labels": [1]}],
        },
    )
    (tmp_path / "stage").mkdir()
    result = work(item, tmp_path / "stage")
    assert result.frames == n and len(alive) == n
    assert 0 < peak[0] <= cache and sorted(set(reads)) == list(range(n))


class _FakeRay:
    """A stand-in with the one call the resource check makes."""

    def __init__(self, cpus: float, gpus: float) -> None:
        self.total = {"CPU": cpus, "GPU": gpus}

    def cluster_resources(self) -> dict:
        return self.total


def test_workers_that_cannot_fit_stop_a_local_run_and_are_noted_on_a_cluster(capsys):
    from masklet.batch import BatchInputError
    from masklet.batch.ray_runner import _check_resources

    options = RunOptions(ray=True, workers=4, threads_per_worker=1, gpus_per_worker=0.5)
    with pytest.raises(BatchInputError, match=r"this machine has 8 CPUs and 1 GPUs: room for 2 of 4 workers"):
        _check_resources(_FakeRay(8, 1), options, local=True)
    _check_resources(_FakeRay(8, 1), options, local=False)
    assert (
        "note: the Ray cluster has 8 CPUs and 1 GPUs now, room for 2 of 4 workers" in capsys.readouterr().err
    )
    _check_resources(_FakeRay(8, 2), options, local=True)  # room for all: nothing to say
    assert capsys.readouterr().err == ""
