"""Drop-in names for code written against Meta's official ``sam2`` package.

Official scripts and notebooks run on masklet with only their import lines changed::

    from masklet.sam2_compat import build_sam2, build_sam2_video_predictor   # was: from sam2.build_sam ...
    from masklet.sam2_compat import SAM2ImagePredictor, SAM2AutomaticMaskGenerator, SAM2VideoPredictor

    predictor = build_sam2_video_predictor("configs/sam2.1/sam2.1_hiera_l.yaml", "sam2.1_hiera_large.pt")
    state = predictor.init_state(video_path="videos/bedroom")

Official config names and paths and Hugging Face ids map to masklet's presets (:mod:`.hub`), Hydra
overrides and ``apply_postprocessing`` to masklet settings (:mod:`.settings`). The objects returned
are masklet's own (``SAM2Model``, ``VideoPredictor`` ...), so masklet's API is there as well.
"""

from __future__ import annotations

from ..inference.automask import AutoMaskGenerator
from ..inference.image import ImagePredictor
from .build import (
    BUILDER_ARGS,
    SAM2VideoPredictor,
    build_sam2,
    build_sam2_hf,
    build_sam2_video_predictor,
    build_sam2_video_predictor_hf,
)
from .hub import HUB_IDS, hub_checkpoint, preset_for_config
from .settings import OverrideError

__all__ = [
    "HUB_IDS",
    "OverrideError",
    "SAM2AutomaticMaskGenerator",
    "SAM2ImagePredictor",
    "SAM2VideoPredictor",
    "build_sam2",
    "build_sam2_hf",
    "build_sam2_video_predictor",
    "build_sam2_video_predictor_hf",
    "hub_checkpoint",
    "preset_for_config",
]


def _split(kwargs: dict) -> tuple[dict, dict]:
    """from_pretrained's keyword arguments -> (the builder's, the predictor's)."""
    builder = {k: v for k, v in kwargs.items() if k in BUILDER_ARGS}
    return builder, {k: v for k, v in kwargs.items() if k not in BUILDER_ARGS}


class SAM2ImagePredictor(ImagePredictor):
    """masklet's :class:`~masklet.inference.image.ImagePredictor` under the official name."""

    def __init__(
        self,
        sam_model,
        mask_threshold: float = 0.0,
        max_hole_area: float = 0.0,
        max_sprinkle_area: float = 0.0,
    ) -> None:
        super().__init__(sam_model, mask_threshold, max_hole_area, max_sprinkle_area)

    @classmethod
    def from_pretrained(cls, model_id: str, **kwargs) -> SAM2ImagePredictor:
        """The predictor of an official Hugging Face id (``facebook/sam2.1-hiera-large``): builder
        arguments (device, mode, ...) go to :func:`build_sam2_hf`, the others to the predictor."""
        builder, own = _split(kwargs)
        return cls(build_sam2_hf(model_id, **builder), **own)


class SAM2AutomaticMaskGenerator(AutoMaskGenerator):
    """masklet's :class:`~masklet.inference.automask.AutoMaskGenerator` under the official name."""

    @classmethod
    def from_pretrained(cls, model_id: str, **kwargs) -> SAM2AutomaticMaskGenerator:
        """The generator of an official Hugging Face id: builder arguments (device, mode,
        apply_postprocessing, ...) go to :func:`build_sam2_hf`, the others to the generator."""
        builder, own = _split(kwargs)
        return cls(build_sam2_hf(model_id, **builder), **own)
