"""masklet: SAM 2 / SAM 2.1 (Segment Anything Model 2) from scratch in PyTorch.

Public API::

    import masklet
    model = masklet.build_model("sam2.1_hiera_tiny")          # official checkpoint (cache or download)
    predictor = masklet.ImagePredictor(model)
"""

from .checkpoints import CheckpointError, build_model, download_checkpoint, list_models
from .inference.image import ImagePredictor
from .modeling.sam2 import SAM2Model
from .presets import PRESETS, ModelConfig, get_preset

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "CheckpointError",
    "ImagePredictor",
    "ModelConfig",
    "SAM2Model",
    "build_model",
    "download_checkpoint",
    "get_preset",
    "list_models",
]
