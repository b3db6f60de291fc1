"""The official builders (``sam2.build_sam``) on masklet: same names, arguments and defaults.

``build_sam2`` returns a :class:`~masklet.modeling.sam2.SAM2Model` (for ``SAM2ImagePredictor`` and
``SAM2AutomaticMaskGenerator``), ``build_sam2_video_predictor`` a :class:`SAM2VideoPredictor`; the
``_hf`` variants take an official Hugging Face id instead of a config and a checkpoint.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from ..checkpoints import build_model
from ..inference.video import VideoPredictor
from ..modeling.sam2 import SAM2Model
from .hub import hub_checkpoint, preset_for_config
from .settings import BuildSettings, build_settings

__all__ = [
    "SAM2VideoPredictor",
    "build_sam2",
    "build_sam2_hf",
    "build_sam2_video_predictor",
    "build_sam2_video_predictor_hf",
]

# build_sam2's keyword arguments (the image classes' from_pretrained sends them to the builder)
BUILDER_ARGS = ("device", "mode", "hydra_overrides_extra", "apply_postprocessing")


def build_sam2(
    config_file: str | os.PathLike,
    ckpt_path: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    mode: str = "eval",
    hydra_overrides_extra: Sequence[str] = (),
    apply_postprocessing: bool = True,
) -> SAM2Model:
    """The model of an official config (``configs/sam2.1/sam2.1_hiera_l.yaml``) with the weights of
    ``ckpt_path`` (an official ``.pt`` file).

    ``ckpt_path=None`` leaves random weights, drawn from the global torch generator, as officially.
    ``device``: None picks cuda, else mps, else cpu (the official default is "cuda"). ``mode``: "eval"
    or "train". ``hydra_overrides_extra``: overrides such as ``++model.image_size=512`` (see
    :mod:`.settings` for those masklet maps). ``apply_postprocessing``: the dynamic multimask fallback
    (off without it, as officially: the automatic mask generator's notebook turns it off).
    """
    settings = build_settings(hydra_overrides_extra, apply_postprocessing=apply_postprocessing, video=False)
    return _model(config_file, ckpt_path, device, mode, settings)


def build_sam2_video_predictor(
    config_file: str | os.PathLike,
    ckpt_path: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    mode: str = "eval",
    hydra_overrides_extra: Sequence[str] = (),
    apply_postprocessing: bool = True,
    vos_optimized: bool = False,
) -> SAM2VideoPredictor:
    """The video predictor of an official config and checkpoint (arguments as :func:`build_sam2`).

    ``apply_postprocessing`` adds, as officially, the dynamic multimask fallback, binarised click masks
    in memory and the filling of holes up to 8 low-res pixels in outputs; without it (the official
    tools/vos_inference.py default) all three are off. ``vos_optimized`` compiles the image encoder and
    memory attention (``masklet.compile``: the first frames pay the compile time).
    """
    settings = build_settings(
        hydra_overrides_extra, apply_postprocessing=apply_postprocessing, video=True, compile=vos_optimized
    )
    model = _model(config_file, ckpt_path, device, mode, settings)
    return SAM2VideoPredictor(model, **settings.video)


def build_sam2_hf(model_id: str, **kwargs) -> SAM2Model:
    """:func:`build_sam2` for an official Hugging Face id (``facebook/sam2.1-hiera-large``), its
    checkpoint read from the local caches (see :mod:`.hub`; nothing is downloaded)."""
    preset, path = hub_checkpoint(model_id)
    return build_sam2(preset, path, **kwargs)


def build_sam2_video_predictor_hf(model_id: str, **kwargs) -> SAM2VideoPredictor:
    """:func:`build_sam2_video_predictor` for an official Hugging Face id (see :func:`build_sam2_hf`)."""
    preset, path = hub_checkpoint(model_id)
    return build_sam2_video_predictor(preset, path, **kwargs)


def _model(config_file, ckpt_path, device, mode: str, settings: BuildSettings) -> SAM2Model:
    if mode not in ("eval", "train"):
        raise ValueError(f"mode must be 'eval' or 'train', got {mode!r}")
    preset = preset_for_config(config_file)
    if ckpt_path is None:
        # the official builder keeps the random initial weights: drawn here from the global generator
        seed = int(torch.randint(0, 2**62, ()).item())
        model = build_model(preset, device=device, random_seed=seed, **settings.build)
    else:
        model = build_model(preset, ckpt_path, device=device, **settings.build)
    model.configure(**settings.model)
    return model.train(mode == "train")


class SAM2VideoPredictor(VideoPredictor):
    """masklet's :class:`~masklet.inference.video.VideoPredictor` under the official name, with the
    official ``from_pretrained``."""

    @classmethod
    def from_pretrained(cls, model_id: str, **kwargs) -> SAM2VideoPredictor:
        """The video predictor of an official Hugging Face id; ``kwargs`` go to the builder."""
        return build_sam2_video_predictor_hf(model_id, **kwargs)
