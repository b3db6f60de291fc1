"""Fine-tuning SAM 2 on your own videos and images with the SAM 2 training recipe.

Clips of a few frames (images are one-frame clips) are prompted the way an annotator would (a mask,
a click or a box on up to two frames, then corrective clicks), rolled out with the memory bank exactly
as inference uses it, and supervised with focal + dice, IoU and object-score losses. See
:mod:`.config` for every setting and ``masklet train CONFIG.yaml`` for the command line.

Modules: :mod:`.config` (settings), :mod:`.data` / :mod:`.clips` / :mod:`.augment` (datasets and
clips), :mod:`.prompts` (prompt simulation), :mod:`.clip_forward` (the rollout), :mod:`.losses`,
:mod:`.optim`, :mod:`.features` (encoder and feature cache), :mod:`.trainer` (the loop),
:mod:`.state` (checkpoints), :mod:`.validate` (held-out J&F).
"""

from __future__ import annotations

from .config import ConfigError, TrainConfig
from .config_file import config_from_dict, config_to_dict, load_config
from .data import DataError
from .trainer import StepReport, Trainer, TrainResult

__all__ = [
    "ConfigError",
    "DataError",
    "StepReport",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "config_from_dict",
    "config_to_dict",
    "load_config",
]
