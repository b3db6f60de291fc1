"""Resume: outputs appear whole, status records last, reruns skip done items, Ctrl-C stops cleanly."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from masklet.batch import BatchInputError, BatchInterrupted, ModelSpec, RunOptions, run_job, worker
from masklet.batch.track import TrackJob
from tests.batch.conftest import ROOT
from tests.batch.helpers import CLI_MODEL, MODEL, make_videos, outputs, statuses, temporaries

LOCAL = RunOptions(threads_per_worker=1, progress=False)


def _run(data, out, **kw):
    return run_job(
        TrackJob(*map(str, data)), out, MODEL, RunOptions(threads_per_worker=1, progress=False, **kw)
    )


@pytest.fixture
def finished(track_data, track_reference, tmp_path) -> Path:
    """A copy of the reference run's output folder, bookkeeping included."""
    out = tmp_path / "out"
    shutil.copytree(track_reference, out)
    return out


def test_a_rerun_skips_done_items_without_building_a_model(track_data, finished, monkeypatch):
    before = outputs(finished)
    monkeypatch.setattr(ModelSpec, "build", lambda self: pytest.fail("a model was built for nothing"))
    summary = _run(track_data, finished)
    assert (summary.done, summary.skipped, summary.failed, summary.ok) == (0, 3, [], True)
    assert outputs(finished) == before


def test_an_item_whose_outputs_went_missing_runs_again(track_data, track_reference, finished):
    shutil.rmtree(finished / "clip_b")
    summary = _run(track_data, finished)
    assert (summary.done, summary.skipped) == (1, 2)
    assert outputs(finished) == outputs(track_reference)


def test_failed_items_stay_failed_unless_retried(faulty_data, tmp_path, monkeypatch):
    out = tmp_path / "out"
    first = _run(faulty_data, out)
    assert first.done == 2 and sorted(k for k, _ in first.failed) == ["broken", "short"]
    again = _run(faulty_data, out)
    assert (again.done, again.skipped, again.failed) == (0, 2, [])
    assert dict(again.failed_earlier) == dict(first.failed) and not again.ok
    assert any("--retry-failed" in line for line in again.lines())
    calls = []
    real = worker.ItemWorker.run
    monkeypatch.setattr(
        worker.ItemWorker, "run", lambda self, item: calls.append(item.key) or real(self, item)
    )
    retried = _run(faulty_data, out, retry_failed=True)
    assert sorted(calls) == ["broken", "short"]
    assert retried.skipped == 2 and sorted(k for k, _ in retried.failed) == ["broken", "short"]


def test_the_status_record_is_written_last(track_data, track_reference, tmp_path, monkeypatch):
    """A stop between the rename of the outputs and the record: the item counts as not done."""
    out = tmp_path / "out"
    real = worker.write_status

    def stop_at_clip_b(out_dir, key, status):
        if key == "clip_b":
            assert (out_dir / "clip_b.json").is_file() and (out_dir / "clip_b").is_dir()  # outputs first
            raise KeyboardInterrupt
        real(out_dir, key, status)

    monkeypatch.setattr(worker, "write_status", stop_at_clip_b)
    with pytest.raises(BatchInterrupted) as info:
        _run(track_data, out)
    summary = info.value.summary
    assert summary.interrupted and summary.done == 1 and summary.not_run == 2
    assert sorted(statuses(out)) == ["clip_a"]
    monkeypatch.setattr(worker, "write_status", real)
    rerun = _run(track_data, out)
    assert (rerun.done, rerun.skipped) == (2, 1)
    assert outputs(out) == outputs(track_reference) and temporaries(out) == []


def test_an_interrupted_item_leaves_no_half_written_file(track_data, tmp_path, monkeypatch):
    out = tmp_path / "out"
    from masklet.io import exporters

    real, written = exporters.PalettePngWriter.write, []

    def write_three(self, frame_idx, obj_ids, masks):
        if len(written) == 3:
            raise KeyboardInterrupt  # Ctrl-C in the middle of clip_a
        written.append(real(self, frame_idx, obj_ids, masks))
        return written[-1]

    monkeypatch.setattr(exporters.PalettePngWriter, "write", write_three)
    with pytest.raises(BatchInterrupted):
        _run(track_data, out)
    assert all(".masklet/tmp/" in str(p) for p in written)  # they went to the temporary folder ...
    assert not any(p.exists() for p in written)  # ... which is gone
    assert outputs(out) == {} and statuses(out) == {} and temporaries(out) == []


def test_temporaries_of_a_killed_run_are_removed(track_data, track_reference, finished):
    stale = finished / ".masklet" / "tmp" / "clip_a@999999-0badc0de" / "clip_a"
    stale.mkdir(parents=True)
    (stale / "00000.png").write_bytes(b"half a png")
    (finished / ".masklet" / "status" / "clip_a.json").unlink()
    summary = _run(track_data, finished)
    assert summary.done == 1 and temporaries(finished) == []
    assert outputs(finished) == outputs(track_reference)


def test_a_folder_of_another_job_is_not_mixed_into(track_data, finished):
    with pytest.raises(BatchInputError, match=r"holds the results of another job \(model.image_size was 128"):
        run_job(TrackJob(*map(str, track_data)), finished, ModelSpec(**{**MODEL.__dict__, "image_size": 256}))


def test_one_run_at_a_time_per_output_folder(track_data, finished):
    lock = finished / ".masklet" / "lock"
    lock.write_text(json.dumps({"host": os.uname().nodename, "pid": os.getpid()}))
    with pytest.raises(BatchInputError, match=f"another run \\(process {os.getpid()} on this machine\\)"):
        _run(track_data, finished)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(json.dumps({"host": os.uname().nodename, "pid": dead.pid}))
    assert _run(track_data, finished).skipped == 3  # a lock of a process that is gone is taken over
    assert not lock.exists()


def test_ctrl_c_stops_cleanly_and_a_rerun_finishes(tmp_path):
    videos, manifest = make_videos(tmp_path / "data", extra=3)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "masklet.cli", "batch", "track", str(videos), "--prompts", str(manifest)]
    cmd += ["--out", str(out), "--threads-per-worker", "1", *CLI_MODEL]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    status_dir = out / ".masklet" / "status"
    deadline = time.monotonic() + 120
    while not (status_dir.is_dir() and any(status_dir.glob("*.json"))):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted: " in stderr and "rerun the same command to resume" in stderr
    done = {k for k, s in statuses(out).items() if s["state"] == "done"}
    assert 1 <= len(done) < 6 and temporaries(out) == []
    assert set(outputs(out)) == {f"{k}.json" for k in done} | {
        p.relative_to(out).as_posix() for k in done for p in (out / k).glob("*.png")
    }
    rerun = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{6 - len(done)} done, {len(done)} skipped" in rerun.stdout
    assert len(statuses(out)) == 6 and temporaries(out) == []
