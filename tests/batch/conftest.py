"""Fixtures of the batch tests: synthetic datasets, reference outputs, and one local Ray instance.

The Ray instance is shared by every Ray test of the session (starting one costs seconds): 2 CPUs,
no dashboard, every server bound to 127.0.0.1. Its workers inherit PYTHONPATH with the repository
root, so they import masklet from this checkout and the test jobs of tests/batch/helpers.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from masklet.batch import RunOptions, run_job
from masklet.batch.track import TrackJob
from tests.batch.helpers import MODEL, make_faulty_videos, make_images, make_videos

ROOT = Path(__file__).resolve().parents[2]


def listening_sockets() -> set[tuple[str, str]]:
    """(local address hex, inode) of every listening TCP socket of this machine (/proc/net)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if parts[3] == "0A":  # LISTEN
                found.add((parts[1], parts[9]))
    return found


def is_loopback(hex_address: str) -> bool:
    host = hex_address.split(":")[0]
    if len(host) == 8:  # IPv4, little-endian: 0100007F = 127.0.0.1
        return host.endswith("7F")
    # IPv6: ::1, or ::ffff:127.x.x.x
    return host in ("00000000000000000000000001000000",) or (
        host.startswith("0000000000000000FFFF0000") and host.endswith("7F")
    )


@pytest.fixture(scope="session")
def ray_local():
    """The ``ray`` module, initialised once: a local instance bound to 127.0.0.1 with 2 CPUs."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    from masklet.batch.ray_runner import _loopback_only

    if ray.is_initialized():
        ray.shutdown()
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "RAY_ADDRESS")}
    os.environ.pop("RAY_ADDRESS", None)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), saved["PYTHONPATH"]) if p)
    before = listening_sockets()
    try:
        with _loopback_only(ray):
            ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    ray.new_sockets = listening_sockets() - before
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def track_data(tmp_path_factory) -> tuple[Path, Path]:
    return make_videos(tmp_path_factory.mktemp("track_data"))


@pytest.fixture(scope="session")
def track_reference(track_data, tmp_path_factory) -> Path:
    """The outputs of the track job run in this process, one thread (what every other run must equal)."""
    out = tmp_path_factory.mktemp("track_ref") / "out"
    summary = run_job(
        TrackJob(*map(str, track_data)), out, MODEL, RunOptions(threads_per_worker=1, progress=False)
    )
    assert summary.ok, summary.lines()
    return out


@pytest.fixture(scope="session")
def faulty_data(tmp_path_factory) -> tuple[Path, Path]:
    return make_faulty_videos(tmp_path_factory.mktemp("faulty"))


@pytest.fixture(scope="session")
def image_data(tmp_path_factory) -> tuple[Path, Path, Path]:
    return make_images(tmp_path_factory.mktemp("images"))
