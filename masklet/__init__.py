"""masklet: SAM 2 / SAM 2.1 (Segment Anything Model 2) from scratch in PyTorch.

Public API::

    import masklet
    model = masklet.build_model("sam2.1_hiera_tiny")          # official checkpoint (cache or download)
    predictor = masklet.ImagePredictor(model)
    video = masklet.VideoPredictor(model)                       # state = video.init_state("clip.mp4")
    stream = masklet.StreamTracker(model)                       # live frames, one at a time
    everything = masklet.AutoMaskGenerator(model)               # records = everything.generate(image)
"""

from .checkpoints import CheckpointError, build_model, download_checkpoint, list_models
from .inference.automask import AutoMaskGenerator
from .inference.image import ImagePredictor
from .inference.memory_bank import MemoryBank
from .inference.stream import StreamResult, StreamTracker
from .inference.video import TrackingError, VideoPredictor
from .io.frames import FrameError, open_frames
from .modeling.sam2 import SAM2Model
from .presets import PRESETS, ModelConfig, get_preset

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "AutoMaskGenerator",
    "CheckpointError",
    "FrameError",
    "ImagePredictor",
    "MemoryBank",
    "ModelConfig",
    "SAM2Model",
    "StreamResult",
    "StreamTracker",
    "TrackingError",
    "VideoPredictor",
    "build_model",
    "download_checkpoint",
    "get_preset",
    "list_models",
    "open_frames",
]
