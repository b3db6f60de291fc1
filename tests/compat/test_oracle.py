"""The same client code on the official sam2 (the oracle, sam2==1.1.0) and on ``masklet.sam2_compat``:
the VOS client in every mode and the notebooks' predictor calls give the same outputs within float32
rounding (the parity tests' tolerances).

The official side is its own modules under the same names; the only changes are the ones CPU needs
(``device="cpu"`` where the client leaves the official default "cuda", the memory cast of
:func:`tests.oracle.cast_memory_on_cpu`, and scipy's connected components for hole filling, which the
official code runs on CUDA only), and for the automatic generator at input size 256 its image
predictor's feature sizes, which are written for 1024.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import masklet.sam2_compat as compat
from tests.compat import notebook_client, vos_client
from tests.compat.support import CONFIG, blob_checkpoint, read_ids, tracking_checkpoint, vos_data
from tests.compat.test_notebooks import clip_folder
from tests.compat.test_vos_inference import SIZE, annotations_of, frames_of, sav_data, subset_masks
from tests.conftest import load_photo, synthetic_image
from tests.inference.test_automask_parity import assert_same_records
from tests.oracle import cast_memory_on_cpu, require_reference, scipy_cc_like_reference

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def official():
    """The official modules under the names the clients use."""
    require_reference()
    from sam2 import build_sam
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    def build_sam2_video_predictor(*args, **kwargs):
        kwargs.setdefault("device", "cpu")
        return cast_memory_on_cpu(build_sam.build_sam2_video_predictor(*args, **kwargs))

    class AnySizeGenerator(SAM2AutomaticMaskGenerator):
        """The official generator at any input size: its image predictor has the feature sizes of a
        1024 input written in (set here from the model's)."""

        def __init__(self, model, **kwargs):
            super().__init__(model, **kwargs)
            s = model.image_size
            self.predictor._bb_feat_sizes = [(s // 4, s // 4), (s // 8, s // 8), (s // 16, s // 16)]

    return SimpleNamespace(
        build_sam2=build_sam.build_sam2,
        build_sam2_video_predictor=build_sam2_video_predictor,
        SAM2ImagePredictor=SAM2ImagePredictor,
        SAM2AutomaticMaskGenerator=AnySizeGenerator,
    )


@pytest.fixture
def cpu_hole_filling(monkeypatch):
    """The official hole filling with scipy's components; its silent CPU fallback made an error."""
    import sam2.utils.misc as misc

    monkeypatch.setattr(misc, "get_connected_components", scipy_cc_like_reference)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*Skipping the post-processing")
        yield


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return tracking_checkpoint(tmp_path_factory.mktemp("oracle") / "tiny.pt")


def mismatch(got: np.ndarray, want: np.ndarray) -> float:
    """The fraction of pixels where two masks (or id maps) differ."""
    assert got.shape == want.shape, f"shape {got.shape} vs {want.shape}"
    return float((got != want).mean())


def assert_close(got, want, where: str = "output") -> None:
    """Masks (bool, or float 0/1) differ on at most 0.1% of pixels; other numbers within 1e-3 of the
    reference's spread; everything else (ids, shapes, keys, dtypes, containers) equal."""
    if isinstance(want, torch.Tensor):
        assert isinstance(got, torch.Tensor), f"{where}: {type(got).__name__} vs a tensor"
        got, want = got.float().numpy(), want.float().numpy()
    if isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray), f"{where}: {type(got)}"
        assert got.dtype == want.dtype, f"{where}: {got.dtype} vs {want.dtype}"
        assert got.shape == want.shape, f"{where}: shape {got.shape} vs {want.shape}"
        if want.dtype == bool or np.isin(want, (0.0, 1.0)).all():
            assert mismatch(got, want) <= 1e-3, f"{where}: masks differ on {mismatch(got, want):.2%}"
        else:
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 + 2e-3 * want.std(), err_msg=where)
    elif isinstance(want, dict):
        assert list(got) == list(want), f"{where}: keys {list(got)} vs {list(want)}"
        for k in want:
            assert_close(got[k], want[k], f"{where}[{k!r}]")
    elif isinstance(want, (list, tuple)) and not all(isinstance(x, int) for x in want):
        assert len(got) == len(want), f"{where}: {len(got)} items vs {len(want)}"
        for i, (a, b) in enumerate(zip(got, want)):
            assert_close(a, b, f"{where}[{i}]")
    else:
        same = list(got) == list(want) if isinstance(want, (list, tuple)) else got == want
        assert same, f"{where}: {got!r} vs {want!r}"


# ------------------------------------------------------------------------------------------ vos_inference
MODES = {
    "first-frame": (False, ()),
    "all-masks": (False, ("--use_all_masks",)),
    "per-object-pngs": (False, ("--per_obj_png_file",)),
    "later": (True, ("--track_object_appearing_later_in_video",)),
    "later-all-masks": (True, ("--track_object_appearing_later_in_video", "--use_all_masks")),
    "later-per-object-pngs": (True, ("--track_object_appearing_later_in_video", "--per_obj_png_file")),
}


def png_files(root: Path) -> dict[str, np.ndarray]:
    return {str(p.relative_to(root)): read_ids(p) for p in sorted(root.rglob("*.png"))}


@pytest.mark.parametrize("mode", list(MODES))
def test_vos_client_matches_the_official_predictor(mode, ckpt, official, tmp_path):
    late, flags = MODES[mode]
    data = vos_data(tmp_path / "data", late=late)
    videos, masks = frames_of(data), annotations_of(data)
    if "--per_obj_png_file" in flags:
        sav = sav_data(data, tmp_path / "sav")
        videos, masks = sav / "JPEGImages_24fps", sav / "Annotations_6fps"
    elif "--use_all_masks" in flags:
        masks = subset_masks(masks, tmp_path / "some", ["00000", "00002", "00004"])
    outputs = {}
    for name, api in (("ours", compat), ("official", official)):
        argv = ["--sam2_cfg", CONFIG, "--sam2_checkpoint", str(ckpt), "--base_video_dir", str(videos)]
        argv += ["--input_mask_dir", str(masks), "--output_mask_dir", str(tmp_path / name), *flags]
        opts = vos_client.parse(argv)
        predictor = vos_client.build(api, opts, extra_overrides=(f"++model.image_size={SIZE}",))
        vos_client.run_videos(predictor, opts)
        outputs[name] = png_files(tmp_path / name)
    ours, ref = outputs["ours"], outputs["official"]
    assert list(ours) == list(ref) and len(ref) >= 5
    worst = max(mismatch(ours[k], ref[k]) for k in ref)
    assert worst <= 1e-3, f"{mode}: PNGs differ on up to {worst:.3%} of pixels"
    tracked = [v for k, v in ref.items() if not k.endswith("00000.png")]
    assert sum(v.any() for v in tracked) >= len(tracked) // 2, "mostly empty outputs: a thin comparison"


# ------------------------------------------------------------------------------------------ notebooks
def test_image_notebook_matches_the_official_predictor(ckpt, official):
    truck, groceries = load_photo("truck.jpg"), load_photo("groceries.jpg")
    ours = notebook_client.image_notebook(compat, CONFIG, str(ckpt), "cpu", truck, groceries)
    ref = notebook_client.image_notebook(official, CONFIG, str(ckpt), "cpu", truck, groceries)
    assert_close(ours, ref)


def test_video_notebook_matches_the_official_predictor(ckpt, official, tmp_path, cpu_hole_filling):
    """The notebook's build (apply_postprocessing on: hole filling and binarised click memories) at
    input size 256."""
    clip = clip_folder(tmp_path)
    overrides = [f"++model.image_size={SIZE}"]
    ours = notebook_client.video_notebook(compat, CONFIG, str(ckpt), "cpu", clip, overrides)
    ref = notebook_client.video_notebook(official, CONFIG, str(ckpt), "cpu", clip, overrides)
    assert_close(ours, ref)
    assert any(m.any() for seg in ref[-1].values() for m in seg.values())


def test_automask_notebook_matches_the_official_generator(official, tmp_path, cpu_hole_filling):
    """apply_postprocessing=False and the tuned generator's m2m pass (thresholds at 0, 8 points a side,
    input size 256 to stay quick)."""
    image = synthetic_image(120, 160, seed=3)
    ckpt = blob_checkpoint(tmp_path / "blobs.pt")
    run = dict(overrides=[f"++model.image_size={SIZE}"], default=dict(points_per_side=8))
    tuned = dict(points_per_side=8, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    ours = notebook_client.automask_notebook(compat, CONFIG, str(ckpt), "cpu", image, **run, **tuned)
    ref = notebook_client.automask_notebook(official, CONFIG, str(ckpt), "cpu", image, **run, **tuned)
    for o, r in zip(ours, ref):
        assert_same_records(o, r)
    assert len(ref[1]) >= 10, f"only {len(ref[1])} masks: the comparison would be thin"
