"""The EdgeTAM / EfficientTAM oracles (the authors' code from PyPI) seen from masklet's tests.

They live in a virtualenv of their own (tests/setup_edge_oracles.sh): ``$MASKLET_EDGE_ORACLES``
(default ``~/.cache/masklet/edge-oracles``, under ``$XDG_CACHE_HOME`` when set) holds ``edgetam/``
(the venv: torch, timm, hydra ...) and one package directory per family, ``pkgs-edgetam``
(edgetam-dimos) and ``pkgs-eta`` (efficient-track-anything). Each job runs
tests/edge_oracle_runner.py there in a subprocess and comes back as arrays.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
PACKAGES = {"edgetam": "pkgs-edgetam", "efficienttam": "pkgs-eta"}


def oracle_root() -> Path:
    if "MASKLET_EDGE_ORACLES" in os.environ:
        return Path(os.environ["MASKLET_EDGE_ORACLES"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "masklet" / "edge-oracles"


def _python() -> Path:
    return oracle_root() / "edgetam" / "bin" / "python"


def require_oracle(family: str) -> None:
    """Skip (with the reason and the fix) when the family's oracle is not installed."""
    python, pkgs = _python(), oracle_root() / PACKAGES[family] / "sam2"
    if not python.exists() or not pkgs.is_dir():
        pytest.skip(
            f"the {family} oracle is not installed ({python} or {pkgs} missing): run "
            "tests/setup_edge_oracles.sh (or set MASKLET_EDGE_ORACLES to where it installed them)"
        )


def run_oracle(job: dict, tmp: Path) -> dict[str, np.ndarray]:
    """Run one job (see tests/edge_oracle_runner.py) and return its arrays ({} for a checkpoint)."""
    require_oracle(job["family"])
    tmp.mkdir(parents=True, exist_ok=True)
    spec = tmp / f"job-{os.getpid()}-{len(list(tmp.iterdir()))}.json"
    if job["task"] != "checkpoint":
        job = {**job, "out": str(spec.with_suffix(".npz"))}
    spec.write_text(json.dumps(job))
    # the torchvision stand-in first (timm imports it), then the family's ``sam2`` package
    path = os.pathsep.join([str(HERE / "oracle_shims"), str(oracle_root() / PACKAGES[job["family"]])])
    env = {**os.environ, "PYTHONPATH": path}
    proc = subprocess.run(
        [str(_python()), str(HERE / "edge_oracle_runner.py"), str(spec)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp,
    )
    if proc.returncode:
        raise AssertionError(f"the {job['family']} oracle failed:\n{proc.stderr[-4000:]}")
    if job["task"] == "checkpoint":
        return {}
    with np.load(job["out"]) as data:
        return dict(data)


def family_job(preset: str, image_size: int) -> dict:
    """The oracle's description of a masklet preset: family, size and attention variant."""
    if preset == "edgetam":
        return {"family": "edgetam", "image_size": image_size}
    rest = preset.removeprefix("efficienttam_").removesuffix("_512x512")
    size, _, attention = rest.partition("_")
    return {"family": "efficienttam", "size": size, "attention": attention, "image_size": image_size}


def oracle_checkpoint(preset: str, path: Path, image_size: int, seed: int = 0, **score) -> Path:
    """A seeded random checkpoint written by the oracle itself, in the official format (cached)."""
    if not path.exists():
        job = {**family_job(preset, image_size), "task": "checkpoint", "seed": seed, "path": str(path)}
        run_oracle({**job, **score}, path.parent)
    return path
