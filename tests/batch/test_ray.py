"""The Ray runner: same bytes as the local runner, a killed worker's item redone, Ctrl-C, eval vos.

Every test here shares one local Ray instance (the ``ray_local`` fixture: 2 CPUs, 127.0.0.1 only)
and runs 2 workers of 1 thread each; the local reference runs use 1 thread as well, so both do the
same arithmetic.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from masklet import cli
from masklet.batch import BoxesJob, EverythingJob, RunOptions, run_job
from masklet.eval.synthetic import make_vos_dataset
from tests.batch.conftest import ROOT, is_loopback
from tests.batch.helpers import (
    CLI_MODEL,
    MODEL,
    CrashingTrackJob,
    PausingTrackJob,
    make_videos,
    outputs,
    statuses,
    temporaries,
)

RAY = RunOptions(ray=True, workers=2, threads_per_worker=1, progress=False)
LOCAL = RunOptions(threads_per_worker=1, progress=False)


def test_the_local_ray_instance_listens_on_127_0_0_1_only(ray_local):
    assert ray_local.get_runtime_context().gcs_address.startswith("127.0.0.1:")
    assert ray_local.new_sockets, "Ray started no server?"
    assert all(is_loopback(address) for address, _ in ray_local.new_sockets), ray_local.new_sockets
    assert ray_local.cluster_resources()["CPU"] == 2


def test_track_on_ray_writes_the_bytes_of_the_local_runner(ray_local, track_data, track_reference, tmp_path):
    from masklet.batch.track import TrackJob

    out = tmp_path / "out"
    summary = run_job(TrackJob(*map(str, track_data)), out, MODEL, RAY)
    assert summary.ok and summary.done == 3
    assert outputs(out) == outputs(track_reference)
    for status in statuses(out).values():  # what the driver got back: a few hundred bytes, no masks
        assert status["pid"] != os.getpid() and len(json.dumps(status)) < 1000
        assert all(not isinstance(v, (list, dict)) or len(json.dumps(v)) < 200 for v in status.values())
    assert temporaries(out) == []


@pytest.mark.parametrize("mode", ["boxes", "everything"])
def test_image_jobs_on_ray_write_the_bytes_of_the_local_runner(ray_local, image_data, tmp_path, mode):
    images, _, yolo = image_data
    labels = tmp_path / "labels"
    labels.mkdir()
    for txt in yolo.glob("*.txt"):
        (labels / txt.name).write_text(txt.read_text())
    (labels / "000002.txt").write_text("not a label\n")  # fails this image, on the workers too
    if mode == "boxes":
        job = BoxesJob(str(images), str(labels))
    else:
        job = EverythingJob(
            str(images), {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}
        )
    local = run_job(job, tmp_path / "local", MODEL, LOCAL)
    remote = run_job(job, tmp_path / "ray", MODEL, RAY)
    assert (remote.done, remote.failed) == (local.done, local.failed)
    assert remote.masks == local.masks > 0
    assert outputs(tmp_path / "ray") == outputs(tmp_path / "local")


def test_a_worker_killed_mid_item_is_restarted_and_the_item_redone(
    ray_local, track_data, track_reference, tmp_path
):
    out, marker = tmp_path / "out", tmp_path / "victim.pid"
    job = PausingTrackJob(*map(str, track_data), victim="clip_b", marker=str(marker))
    seen = {}

    def kill_the_victim() -> None:
        deadline = time.monotonic() + 120
        while not marker.exists():
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)
        pid = int(marker.read_text())
        staged = sorted((out / ".masklet" / "tmp").glob("clip_b@*"))
        seen.update(pid=pid, staged=[p.name for p in staged], pngs=len(list(staged[0].rglob("*.png"))))
        os.kill(pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_the_victim)
    killer.start()
    summary = run_job(job, out, MODEL, RAY)
    killer.join()
    # killed with its outputs written to the temporary folder and none renamed into place
    assert seen["staged"][0].startswith(f"clip_b@{seen['pid']}-") and seen["pngs"] == 5
    assert summary.ok and summary.done == 3
    assert statuses(out)["clip_b"]["pid"] != seen["pid"]  # redone by the restarted worker
    assert outputs(out) == outputs(track_reference) and temporaries(out) == []


def test_an_item_that_kills_every_worker_fails_alone(ray_local, track_data, track_reference, tmp_path):
    out = tmp_path / "out"
    job = CrashingTrackJob(*map(str, track_data), victim="frames_c")
    summary = run_job(job, out, MODEL, RunOptions(**{**RAY.__dict__, "max_retries": 0}))
    assert summary.done == 2 and not summary.ok
    assert summary.failed == [
        (
            "frames_c",
            "the worker running it died 1 time (killed, out of memory, or a crash in native code); "
            "see the Ray worker logs",
        )
    ]
    expected = {k: v for k, v in outputs(track_reference).items() if not k.startswith("frames_c")}
    assert outputs(out) == expected and temporaries(out) == []


def test_eval_vos_on_ray_predicts_and_scores_as_the_local_run(ray_local, tmp_path, capsys):
    data = make_vos_dataset(tmp_path / "davis", num_videos=3, num_frames=4, size=(48, 64), seed=5)
    base = ["eval", "vos", "--dataset", str(data), *CLI_MODEL]
    assert cli.main([*base, "--out", str(tmp_path / "local"), "--threads", "1"]) == 0
    local = capsys.readouterr().out
    argv = [*base, "--out", str(tmp_path / "ray"), "--workers", "2", "--threads-per-worker", "1", "--ray"]
    assert cli.main(argv) == 0
    remote = capsys.readouterr().out
    assert outputs(tmp_path / "ray" / "predictions") == outputs(tmp_path / "local" / "predictions")
    assert (tmp_path / "ray" / "scores.csv").read_text() == (tmp_path / "local" / "scores.csv").read_text()
    assert remote.splitlines()[:4] == local.splitlines()[:4]


def test_ctrl_c_stops_a_ray_run_and_a_rerun_finishes(tmp_path):
    pytest.importorskip("ray.data")
    videos, manifest = make_videos(tmp_path / "data", extra=2)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "masklet.cli", "batch", "track", str(videos), "--prompts", str(manifest)]
    cmd += ["--out", str(out), "--threads-per-worker", "1", "--workers", "2", *CLI_MODEL, "--ray"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    status_dir = out / ".masklet" / "status"
    deadline = time.monotonic() + 180
    while not (status_dir.is_dir() and any(status_dir.glob("*.json"))):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=90)
    assert proc.returncode == 130, stderr
    assert "interrupted: " in stderr
    done = [k for k, s in statuses(out).items() if s["state"] == "done"]
    assert 1 <= len(done) < 5
    from masklet.batch.track import TrackJob

    rerun = run_job(TrackJob(str(videos), str(manifest)), out, MODEL, LOCAL)
    assert rerun.ok and rerun.skipped == len(done) and rerun.done == 5 - len(done)
    assert temporaries(out) == []
