"""The official builders on masklet: config names, Hydra overrides, apply_postprocessing, mode and device,
Hugging Face ids through the local caches, ``from_pretrained``, and every error's message."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

import masklet.sam2_compat as compat
from masklet.checkpoints import CheckpointError, build_model
from masklet.compile import compile_status
from masklet.inference.automask import AutoMaskGenerator
from masklet.inference.image import ImagePredictor
from masklet.inference.tracking_step import TrackingStep
from masklet.inference.video import VideoPredictor
from masklet.modeling.sam2 import SAM2Model
from masklet.presets import PRESETS, get_preset
from masklet.sam2_compat.settings import build_settings
from tests.compat.support import CONFIG, PRESET, tracking_checkpoint


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return tracking_checkpoint(tmp_path_factory.mktemp("builders") / "tiny.pt")


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ------------------------------------------------------------------------------------------ names
@pytest.mark.parametrize("version", ["sam2", "sam2.1"])
@pytest.mark.parametrize("short, size", [("t", "tiny"), ("s", "small"), ("b+", "base_plus"), ("l", "large")])
def test_official_config_names_map_to_presets(version, short, size):
    name = f"{version}_hiera_{size}"
    for config in (
        f"configs/{version}/{version}_hiera_{short}.yaml",
        f"/abs/sam2/configs/{version}/{version}_hiera_{short}.yaml",
    ):
        assert compat.preset_for_config(config) == name
    assert compat.preset_for_config(Path(f"{version}_hiera_{short}.yaml")) == name
    assert compat.HUB_IDS[f"facebook/{version}-hiera-{size.replace('_', '-')}"] == name


def test_unknown_config_is_a_clear_error():
    with pytest.raises(
        ValueError,
        match=r"config 'configs/sam2.1_training/sam2.1_hiera_b\+_MOSE_finetune.yaml' is not an official",
    ):
        compat.build_sam2("configs/sam2.1_training/sam2.1_hiera_b+_MOSE_finetune.yaml")
    with pytest.raises(ValueError, match="It reads no Hydra YAML file"):
        compat.preset_for_config("my_model.yaml")


# ------------------------------------------------------------------------------------------ settings
def test_apply_postprocessing_as_officially():
    image_on = build_settings([], apply_postprocessing=True, video=False)
    assert image_on.model == dict(
        dynamic_multimask_via_stability=True,
        dynamic_multimask_stability_delta=0.05,
        dynamic_multimask_stability_thresh=0.98,
        binarize_mask_from_pts_for_mem_enc=False,  # the image builder never sets it
    )
    assert image_on.video == {}
    video_on = build_settings([], apply_postprocessing=True, video=True)
    assert (
        video_on.model["dynamic_multimask_via_stability"]
        and video_on.model["binarize_mask_from_pts_for_mem_enc"]
    )
    assert video_on.video["fill_hole_area"] == 8 and not video_on.video["non_overlap_masks"]
    video_off = build_settings([], apply_postprocessing=False, video=True)
    assert video_off.model == dict(
        dynamic_multimask_via_stability=False, binarize_mask_from_pts_for_mem_enc=False
    )
    assert video_off.video["fill_hole_area"] == 0


def test_overrides_map_to_masklet_settings_and_postprocessing_comes_last():
    overrides = [
        "++model.non_overlap_masks=true",
        "+model.fill_hole_area=3",
        "model.image_size=512",
        "++model.compile_image_encoder=True",
        "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.9",
        "++model.multimask_max_pt_num=2",
    ]
    off = build_settings(overrides, apply_postprocessing=False, video=True)
    assert off.video["non_overlap_masks"] and off.video["fill_hole_area"] == 3
    assert off.build == dict(compile=True, image_size=512)
    assert off.model["dynamic_multimask_stability_thresh"] == 0.9 and off.model["multimask_max_pt_num"] == 2
    on = build_settings(overrides, apply_postprocessing=True, video=True)
    assert on.video["fill_hole_area"] == 8 and on.model["dynamic_multimask_stability_thresh"] == 0.98


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "++model.non_overlap_masks_for_mem_enc=true",
            r"masklet has no equivalent of model.non_overlap_masks_for_mem_enc",
        ),
        ("++trainer.max_epochs=3", r"masklet maps overrides of the form '\+\+model.<setting>=<value>'"),
        ("++model.fill_hole_area", r"masklet maps overrides of the form"),
        ("++model.non_overlap_masks=yes", r"the value must be true or false, got 'yes'"),
        ("++model.fill_hole_area=big", r"the value must be a number \(int\), got 'big'"),
        (42, r"a Hydra override is a string"),
    ],
)
def test_unmappable_overrides_name_the_override(override, message):
    with pytest.raises(compat.OverrideError, match=message):
        build_settings([override], apply_postprocessing=False, video=True)
    assert issubclass(compat.OverrideError, ValueError)


def test_override_errors_of_the_builders():
    with pytest.raises(
        compat.OverrideError, match=r"a setting of the video predictor: pass it to build_sam2_video_predictor"
    ):
        compat.build_sam2(CONFIG, hydra_overrides_extra=["++model.fill_hole_area=0"])
    with pytest.raises(
        compat.OverrideError, match=r"must be a list of override strings.*write \['\+\+model.fill"
    ):
        compat.build_sam2_video_predictor(CONFIG, hydra_overrides_extra="++model.fill_hole_area=0")


def test_model_behaviour_settings_are_checked():
    cfg = get_preset(PRESET)
    with pytest.raises(ValueError, match="image_size: not a behaviour setting of a built model"):
        cfg.with_behaviour(image_size=512)
    with pytest.raises(ValueError, match="binarize_mask_from_pts_for_mem_enc must be a bool, got 1"):
        cfg.with_behaviour(binarize_mask_from_pts_for_mem_enc=1)
    with pytest.raises(ValueError, match="multimask_max_pt_num must be a int, got True"):
        cfg.with_behaviour(multimask_max_pt_num=True)
    assert cfg.with_behaviour(dynamic_multimask_stability_delta=1).dynamic_multimask_stability_delta == 1.0
    assert all(
        c.binarize_mask_from_pts_for_mem_enc and c.dynamic_multimask_via_stability for c in PRESETS.values()
    )


# ------------------------------------------------------------------------------------------ built objects
def test_build_sam2_loads_the_checkpoint_with_the_requested_settings(ckpt):
    model = compat.build_sam2(CONFIG, ckpt, device="cpu", apply_postprocessing=False)
    assert isinstance(model, SAM2Model) and not model.training and model.device == torch.device("cpu")
    assert same_weights(model, build_model(PRESET, ckpt, device="cpu"))
    assert (
        not model.cfg.dynamic_multimask_via_stability
        and not model.sam_mask_decoder.dynamic_multimask_via_stability
    )
    on = compat.build_sam2(CONFIG, str(ckpt), "cpu", "train", ["++model.image_size=512"])
    assert on.training and on.image_size == 512 and on.sam_mask_decoder.dynamic_multimask_via_stability
    with pytest.raises(ValueError, match="mode must be 'eval' or 'train', got 'inference'"):
        compat.build_sam2(CONFIG, ckpt, mode="inference")
    with pytest.raises(CheckpointError, match="the model is sam2.1_hiera_small"):
        compat.build_sam2("configs/sam2.1/sam2.1_hiera_s.yaml", ckpt, device="cpu")


def test_build_sam2_without_a_checkpoint_keeps_random_weights_from_the_global_generator():
    torch.manual_seed(3)
    a = compat.build_sam2("sam2_hiera_t.yaml", device="cpu", hydra_overrides_extra=["++model.image_size=128"])
    torch.manual_seed(3)
    b = compat.build_sam2("sam2_hiera_t.yaml", device="cpu", hydra_overrides_extra=["++model.image_size=128"])
    c = compat.build_sam2("sam2_hiera_t.yaml", device="cpu", hydra_overrides_extra=["++model.image_size=128"])
    assert same_weights(a, b) and not same_weights(a, c)


def test_build_sam2_video_predictor(ckpt):
    p = compat.build_sam2_video_predictor(CONFIG, ckpt, device="cpu")
    assert isinstance(p, compat.SAM2VideoPredictor) and isinstance(p, VideoPredictor)
    assert p.fill_hole_area == 8 and not p.non_overlap_masks and not p.add_all_frames_to_correct_as_cond
    assert (
        p.model.cfg.binarize_mask_from_pts_for_mem_enc
        and p.model.sam_mask_decoder.dynamic_multimask_via_stability
    )
    assert compile_status(p.model) == {"image_encoder": "not compiled", "memory_attention": "not compiled"}
    q = compat.build_sam2_video_predictor(
        config_file=CONFIG,
        ckpt_path=ckpt,
        apply_postprocessing=False,
        hydra_overrides_extra=[
            "++model.non_overlap_masks=true",
            "++model.add_all_frames_to_correct_as_cond=true",
        ],
        vos_optimized=True,
    )
    assert q.fill_hole_area == 0 and q.non_overlap_masks and q.add_all_frames_to_correct_as_cond
    assert not q.model.cfg.binarize_mask_from_pts_for_mem_enc
    assert compile_status(q.model) == {"image_encoder": "compiled", "memory_attention": "compiled"}


def test_unavailable_device_is_a_clear_error(ckpt):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match="CUDA is not available; pass device='cpu' or None"):
        compat.build_sam2_video_predictor(CONFIG, ckpt, device="cuda")


def test_configured_binarisation_decides_the_memory_of_clicked_frames(ckpt):
    """The tracking step's prompted-frame memory: the thresholded mask, or its sigmoid when off."""
    model = build_model(PRESET, ckpt, device="cpu", image_size=128)
    step = TrackingStep(model)
    feats = model.encode_image(torch.randn(1, 3, 128, 128))
    low = torch.randn(1, 1, 32, 32) * 5
    score = torch.ones(1, 1)
    high = model.upscale_masks(low, 128)
    with torch.no_grad():
        binarised = step.prompt_memory(feats, low, score)
        model.configure(binarize_mask_from_pts_for_mem_enc=False)
        soft = step.prompt_memory(feats, low, score)
        want_soft, _ = model.encode_memory(feats.image_embed, high, score, binarize=False)
        want_bin, _ = model.encode_memory(feats.image_embed, high, score, binarize=True)
    assert (
        torch.equal(soft, want_soft) and torch.equal(binarised, want_bin) and not torch.equal(soft, binarised)
    )


# ------------------------------------------------------------------------------------------ Hugging Face ids
@pytest.fixture
def caches(tmp_path, monkeypatch):
    """Empty Hugging Face and masklet caches."""
    hf, own = tmp_path / "hf", tmp_path / "masklet"
    monkeypatch.setenv("HF_HUB_CACHE", str(hf))
    monkeypatch.setenv("MASKLET_CACHE", str(own))
    return hf, own


def put_in_hf_cache(hf: Path, ckpt: Path, revision: str = "a1b2c3") -> Path:
    repo = hf / "models--facebook--sam2.1-hiera-tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    blob = repo / "blobs" / "0123abcd"
    blob.parent.mkdir()
    shutil.copyfile(ckpt, blob)
    snap = repo / "snapshots" / revision / "sam2.1_hiera_tiny.pt"
    snap.parent.mkdir(parents=True)
    snap.symlink_to(blob)
    return snap


def test_hub_id_is_read_from_the_hugging_face_cache(ckpt, caches):
    hf, _ = caches
    path = put_in_hf_cache(hf, ckpt)
    assert compat.hub_checkpoint("facebook/sam2.1-hiera-tiny") == (PRESET, path)
    model = compat.build_sam2_hf("facebook/sam2.1-hiera-tiny", device="cpu")
    assert same_weights(model, build_model(PRESET, ckpt, device="cpu"))
    image = compat.SAM2ImagePredictor.from_pretrained(
        "facebook/sam2.1-hiera-tiny", device="cpu", mask_threshold=1.5
    )
    assert (
        isinstance(image, ImagePredictor) and image.mask_threshold == 1.5 and same_weights(image.model, model)
    )
    video = compat.SAM2VideoPredictor.from_pretrained(
        "facebook/sam2.1-hiera-tiny", device="cpu", apply_postprocessing=False
    )
    assert isinstance(video, compat.SAM2VideoPredictor) and video.fill_hole_area == 0
    gen = compat.SAM2AutomaticMaskGenerator.from_pretrained(
        "facebook/sam2.1-hiera-tiny", apply_postprocessing=False, points_per_side=4
    )
    assert isinstance(gen, AutoMaskGenerator) and gen.config.points_per_side == 4
    assert not gen.model.sam_mask_decoder.dynamic_multimask_via_stability
    assert isinstance(
        compat.build_sam2_video_predictor_hf("facebook/sam2.1-hiera-tiny", device="cpu"), VideoPredictor
    )


def test_hub_id_without_refs_uses_the_newest_snapshot_then_masklets_cache(ckpt, caches):
    hf, own = caches
    snap = put_in_hf_cache(hf, ckpt)
    (hf / "models--facebook--sam2.1-hiera-tiny" / "refs" / "main").unlink()
    assert compat.hub_checkpoint("facebook/sam2.1-hiera-tiny")[1] == snap
    shutil.rmtree(hf)
    own.mkdir()
    shutil.copyfile(ckpt, own / "sam2.1_hiera_tiny.pt")
    assert compat.hub_checkpoint("facebook/sam2.1-hiera-tiny") == (PRESET, own / "sam2.1_hiera_tiny.pt")


def test_hf_home_locates_the_hub_cache(ckpt, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    snap = put_in_hf_cache(tmp_path / "home" / "hub", ckpt)
    assert compat.hub_checkpoint("facebook/sam2.1-hiera-tiny")[1] == snap


def test_hub_id_in_no_cache_says_what_to_put_where(caches):
    hf, own = caches
    with pytest.raises(CheckpointError) as err:
        compat.SAM2VideoPredictor.from_pretrained("facebook/sam2.1-hiera-large")
    text = str(err.value)
    assert f"{hf}/models--facebook--sam2.1-hiera-large/snapshots/<revision>/sam2.1_hiera_large.pt" in text
    assert f"Put the file at {own / 'sam2.1_hiera_large.pt'}" in text
    assert "masklet does not download from the Hugging Face Hub" in text
    assert "`masklet download sam2.1_hiera_large`" in text and "sam2.1_hiera_large.pt" in text


def test_unknown_hub_id_lists_the_official_ones():
    with pytest.raises(
        ValueError,
        match=r"unknown SAM 2 model id 'facebook/sam-vit-h'; the official ids are facebook/sam2-hiera-tiny",
    ):
        compat.build_sam2_hf("facebook/sam-vit-h")
