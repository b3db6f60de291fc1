"""Crash safety of the project store: SIGKILL a writer at random moments, then check every confirmed action.

The writer is a subprocess running :func:`child_main`. Before each call it prints ``BEGIN <step> ...``
and, once the call has returned, ``OK <step>``. After the kill the parent reopens the project and
checks that everything reported OK is there, that the one call in flight is either fully there or not
at all, and that every stored mask decodes to exactly the mask that was written.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from masklet.studio.mask_files import encode_mask_file
from masklet.studio.store import Project, Prompt

pytestmark = pytest.mark.skipif(os.name == "nt", reason="SIGKILL of a child process")

ROOT = Path(__file__).resolve().parents[2]
CLIP_FRAMES, CLIP_H, CLIP_W = 30, 36, 48
BIG_H, BIG_W = 480, 640
BIG_BYTES = 100_000  # mask files above this size are written slowly in "slow" mode
LABELS = ("car", "person", "dog")


def make_mask(step: int, k: int, h: int = CLIP_H, w: int = CLIP_W, density: float = 0.3) -> np.ndarray:
    """The k-th mask of a step: the same on both sides of the pipe."""
    return np.random.default_rng([step, k]).random((h, w)) < density


def make_prompts(step: int) -> list[Prompt]:
    rng = np.random.default_rng([step, 999])
    prompts = [
        Prompt(
            "point",
            float(rng.uniform(0, CLIP_W)),
            float(rng.uniform(0, CLIP_H)),
            positive=bool(rng.random() < 0.7),
        )
        for _ in range(int(rng.integers(0, 4)))
    ]
    if rng.random() < 0.3:
        prompts.append(Prompt("box", 1.0, 2.0, float(rng.uniform(3, CLIP_W)), float(rng.uniform(3, CLIP_H))))
    return prompts


# -- the writer (runs in the child process) ---------------------------------------------------------


def _say(text: str) -> None:
    print(text, flush=True)


def _slow_writes() -> None:
    """Write big mask files in small, slow pieces, announcing the start: a window to crash in."""
    from masklet.studio import mask_files

    plain = mask_files._write_bytes

    def slow(file, data: bytes) -> None:
        if len(data) <= BIG_BYTES:
            return plain(file, data)
        _say("WRITING")
        for start in range(0, len(data), 16_384):  # about 2 s for the big mask: the parent kills at 0.3 s
            file.write(data[start : start + 16_384])
            file.flush()
            time.sleep(0.2)

    mask_files._write_bytes = slow


def child_main() -> None:
    folder, seed, step, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    rng = random.Random(seed)
    project = Project.open(folder)
    clip, big = project.media()
    if mode == "slow":
        _slow_writes()
        obj = project.new_object(big.id, 0)
        _say(f"OK {step} new {obj.id}")
        _say(f"BEGIN {step + 1} put {obj.id} 0 small")
        project.put_masks([(obj.id, 0, _big_mask(step + 1), "prompt", None)])
        _say(f"OK {step + 1}")
        _say(f"BEGIN {step + 2} put {obj.id} 0 big")
        project.put_masks([(obj.id, 0, _big_mask(step + 2), "track", 0.5)])
        _say(f"OK {step + 2}")
        time.sleep(60)  # the parent kills us long before
        return
    objects = [o.id for o in project.objects(clip.id)]
    while True:
        step += 1
        roll = rng.random()
        if not objects or roll < 0.12:
            frame = rng.randrange(CLIP_FRAMES)
            _say(f"BEGIN {step} new")
            obj = project.new_object(clip.id, frame)
            objects.append(obj.id)
            _say(f"OK {step} new {obj.id}")
            continue
        oid, frame = rng.choice(objects), rng.randrange(CLIP_FRAMES)
        if roll < 0.55:
            frames = sorted(rng.sample(range(CLIP_FRAMES), rng.randint(1, 8)))
            _say(f"BEGIN {step} put {oid} {','.join(map(str, frames))}")
            project.put_masks([(oid, t, make_mask(step, k), "track", None) for k, t in enumerate(frames)])
        elif roll < 0.75:
            _say(f"BEGIN {step} prompts {oid} {frame}")
            project.set_prompts(oid, frame, make_prompts(step))
        elif roll < 0.88:
            _say(f"BEGIN {step} both {oid} {frame}")
            with project.transaction():
                project.set_prompts(oid, frame, make_prompts(step))
                project.put_masks([(oid, frame, make_mask(step, 0), "prompt", 0.9)])
        else:
            _say(f"BEGIN {step} finish {oid} {LABELS[step % 3]}")
            project.finish_object(oid, LABELS[step % 3])
        _say(f"OK {step}")


# -- the checker (parent) ---------------------------------------------------------------------------


@dataclass
class Expected:
    """What the project must hold: values are the step (and mask index) that wrote them."""

    objects: set[int] = field(default_factory=set)
    masks: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)
    prompts: dict[tuple[int, int], int] = field(default_factory=dict)
    labels: dict[int, str] = field(default_factory=dict)
    step: int = 0

    def effects(self, step: int, words: list[str]) -> dict:
        """The state changes of one reported action (``words``: its BEGIN line after the step)."""
        kind, args = words[0], words[1:]
        if kind == "put":
            oid = int(args[0])
            return {"masks": {(oid, t): (step, k) for k, t in enumerate(map(int, args[1].split(",")))}}
        if kind == "prompts":
            return {"prompts": {(int(args[0]), int(args[1])): step}}
        if kind == "both":
            key = (int(args[0]), int(args[1]))
            return {"prompts": {key: step}, "masks": {key: (step, 0)}}
        if kind == "finish":
            return {"labels": {int(args[0]): args[1]}}
        return {}

    def apply(self, effects: dict) -> None:
        self.masks.update(effects.get("masks", {}))
        self.prompts.update(effects.get("prompts", {}))
        self.labels.update(effects.get("labels", {}))


def replay(expected: Expected, lines: list[str]) -> tuple[dict, bool]:
    """Apply every OK'd action; return the effects of the call in flight (if any) and whether it was a new."""
    pending: tuple[int, list[str]] | None = None
    for line in lines:
        words = line.split()
        if not words or words[0] not in ("BEGIN", "OK"):
            continue
        step = int(words[1])
        expected.step = max(expected.step, step)
        if words[0] == "BEGIN":
            pending = (step, words[2:])
        else:
            if len(words) > 3 and words[2] == "new":
                expected.objects.add(int(words[3]))
            elif pending is not None and pending[0] == step:
                expected.apply(expected.effects(step, pending[1]))
            pending = None
    if pending is None:
        return {}, False
    return expected.effects(*pending), pending[1][0] == "new"


def _big_mask(step: int) -> np.ndarray:
    """The masks of the slow round: sparse (small file) on odd steps, dense (big file) on even ones."""
    return make_mask(step, 0, BIG_H, BIG_W, 0.0005 if step % 2 else 0.5)


def _written_mask(written: tuple[int, int] | None, big: bool) -> np.ndarray | None:
    """The mask a (step, index) wrote; None for "no mask"."""
    if written is None:
        return None
    return _big_mask(written[0]) if big else make_mask(*written)


def _same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))


def check(project: Project, expected: Expected, in_flight: dict, maybe_new: bool, big_id: int) -> None:
    """Every confirmed action is there; the call in flight is all there or not at all; masks exact.

    Afterwards ``expected`` also holds the call in flight if it made it.
    """
    objects = {o.id: o for o in project.objects()}
    assert expected.objects <= set(objects), "a confirmed new object is missing"
    assert len(set(objects) - expected.objects) <= int(maybe_new)
    assert not list((project.path / "masks").glob("*/.*.tmp")), "temp files survived the open"
    possible = {True, False}  # whether the call in flight committed, as far as the state tells

    def judge(what: str, key, is_confirmed: bool, is_flight: bool, flying: bool) -> None:
        assert is_confirmed or is_flight, f"{what} {key} is neither the confirmed value nor the one in flight"
        if flying:
            possible.intersection_update({s for s, ok in ((True, is_flight), (False, is_confirmed)) if ok})

    flight_masks = in_flight.get("masks", {})
    stored = {(i.object_id, i.frame): i for m in project.media() for i in project.all_mask_infos(m.id)}
    assert set(stored) <= set(expected.masks) | set(flight_masks), "a mask nobody confirmed is stored"
    for key in set(expected.masks) | set(flight_masks):
        actual = project.mask(*key)  # reads the file and checks its checksum
        if actual is not None:
            assert stored[key].digest == encode_mask_file(actual)[1]
        big = project.get_object(key[0]).media_id == big_id
        confirmed, flight = expected.masks.get(key), flight_masks.get(key)
        is_confirmed = _same(actual, _written_mask(confirmed, big))
        is_flight = flight is not None and _same(actual, _written_mask(flight, big))
        judge("mask", key, is_confirmed, is_flight, flight is not None)
    flight_prompts = in_flight.get("prompts", {})
    for key in set(expected.prompts) | set(flight_prompts):
        actual = project.prompts(key[0]).get(key[1], [])
        confirmed = make_prompts(expected.prompts[key]) if key in expected.prompts else []
        flight = make_prompts(flight_prompts[key]) if key in flight_prompts else None
        judge("prompts", key, actual == confirmed, actual == flight, flight is not None)
    flight_labels = in_flight.get("labels", {})
    for oid in set(expected.labels) | set(flight_labels):
        obj = objects[oid]
        actual = None if obj.label_id is None else project.label(obj.label_id).name
        assert actual is None or obj.status == "done"
        flight = flight_labels.get(oid)
        judge("label of", oid, actual == expected.labels.get(oid), actual == flight, flight is not None)
    assert possible, "the call in flight was stored only in part"
    if True in possible:
        expected.apply(in_flight)
    if maybe_new:
        expected.objects |= set(objects) - expected.objects


def _run_child(folder: Path, seed: int, step: int, mode: str) -> subprocess.Popen:
    code = "from tests.studio.test_store_crash import child_main; child_main()"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen(
        [sys.executable, "-c", code, str(folder), str(seed), str(step), mode],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env,
    )  # fmt: skip


def _kill_after(proc: subprocess.Popen, stop, delay: float) -> list[str]:
    """Read lines until ``stop(line, lines)``; SIGKILL after ``delay`` s; return every line printed."""
    lines: list[str] = []
    while True:
        line = proc.stdout.readline()
        if not line:
            proc.wait(timeout=30)
            raise AssertionError(f"the writer exited early ({proc.returncode}):\n{proc.stderr.read()}")
        lines.append(line.strip())
        if stop(lines[-1], lines):
            break
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    lines += [line.strip() for line in proc.stdout.read().splitlines()]
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, "the writer was not killed mid-run"
    return lines


def _new_project(folder: Path) -> int:
    with Project.create(folder) as p:
        p.add_media("video", folder.parent / "clip.mp4", "clip", CLIP_FRAMES, CLIP_W, CLIP_H, 30.0)
        return p.add_media(
            "images", folder.parent / "big", "big", 1, BIG_W, BIG_H, None, [("b.png", BIG_W, BIG_H)]
        ).id


def test_sigkill_never_loses_a_confirmed_action(tmp_path):
    seed = 1234
    rng = random.Random(seed)
    folder = tmp_path / "proj"
    big_id = _new_project(folder)
    expected = Expected()
    for round_ in range(5):
        target = rng.randint(2, 30)
        proc = _run_child(folder, seed + round_, expected.step, "random")

        def enough(line: str, lines: list[str], target=target) -> bool:
            return sum(x.startswith("OK") for x in lines) >= target

        lines = _kill_after(proc, enough, rng.uniform(0.0, 0.03))
        in_flight, maybe_new = replay(expected, lines)
        with Project.open(folder) as project:
            check(project, expected, in_flight, maybe_new, big_id)
    assert len(expected.objects) >= 2 and len(expected.masks) >= 10  # the rounds did real work


def test_sigkill_while_a_big_mask_file_is_written(tmp_path):
    folder = tmp_path / "proj"
    big_id = _new_project(folder)
    expected = Expected()
    proc = _run_child(folder, 7, 100, "slow")
    lines = _kill_after(proc, lambda line, lines: line == "WRITING", 0.3)
    assert not any(line.startswith("OK 102") for line in lines)
    temps = list((folder / "masks").glob("*/.*.tmp"))
    assert len(temps) == 1 and 0 < temps[0].stat().st_size < len(encode_mask_file(_big_mask(102))[0])
    in_flight, maybe_new = replay(expected, lines)
    with Project.open(folder) as project:
        check(project, expected, in_flight, maybe_new, big_id)
        (oid,) = expected.objects
        assert np.array_equal(project.mask(oid, 0), _big_mask(101))  # the last good mask
    assert not temps[0].exists()


def test_truncated_temp_file_is_removed_and_never_referenced(tmp_path):
    folder = tmp_path / "proj"
    good = make_mask(1, 0)
    with Project.create(folder) as p:
        clip = p.add_media("video", tmp_path / "clip.mp4", "clip", CLIP_FRAMES, CLIP_W, CLIP_H)
        obj = p.new_object(clip.id, 0)
        (info,) = p.put_masks([(obj.id, 0, good, "prompt", None)])
    data, digest = encode_mask_file(make_mask(2, 0))
    shard = folder / "masks" / digest[:2]
    shard.mkdir(exist_ok=True)
    stale = shard / f".{digest[:16]}.0123456789ab.tmp"
    stale.write_bytes(data[: len(data) // 2])  # what a crash mid-write leaves
    fresh = shard / f".{digest[:16]}.ba9876543210.tmp"
    fresh.write_bytes(data[:10])
    later = time.time() + 3600
    os.utime(fresh, (later, later))  # "written after the open" (by another writer): left alone
    with Project.open(folder) as p:
        assert not stale.exists() and fresh.exists()
        assert [i.digest for i in p.all_mask_infos(clip.id)] == [info.digest]
        assert np.array_equal(p.mask(obj.id, 0), good)
        assert not (shard / f"{digest}.json").exists()
