"""Training configuration: frozen dataclasses (read from YAML files by :mod:`.config_file`).

A config file mirrors :class:`TrainConfig` section by section; every key is optional (the defaults
below apply) and an unknown key is an error that names it, its section and the valid keys::

    model: {preset: sam2.1_hiera_tiny, checkpoint: null, image_size: 256}
    data:
      sources:
        - {kind: davis, root: data/my_videos, split: train}
        - {kind: coco, root: data/images, annotations: data/images/annotations.json, weight: 0.5}
      val_fraction: 0.1
    train: {steps: 2000, freeze: [image_encoder]}

No class names appear in files: the structure is fixed by these dataclasses, the file only gives values.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

__all__ = [
    "AugmentConfig",
    "ConfigError",
    "DataConfig",
    "LossConfig",
    "ModelSection",
    "OptimConfig",
    "PromptConfig",
    "SourceConfig",
    "TrainConfig",
    "TrainSection",
]

SOURCE_KINDS = ("davis", "sav", "coco")


class ConfigError(ValueError):
    """A configuration that cannot be used as written; the message names the key and what to change."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


@dataclass(frozen=True)
class ModelSection:
    """Which model to fine-tune.

    preset: official preset name or alias. checkpoint: a ``.pt``/``.safetensors`` file to start from,
    or null for a seeded random initialisation (``init_seed``). image_size: model input side in pixels
    (a multiple of 32, >= 128; 1024 officially, smaller trains much faster).
    """

    preset: str = "sam2.1_hiera_tiny"
    checkpoint: str | None = None
    image_size: int = 1024
    init_seed: int = 0

    def __post_init__(self) -> None:
        _check(
            self.image_size % 32 == 0 and self.image_size >= 128,
            f"model.image_size must be a multiple of 32 and >= 128, got {self.image_size}",
        )


@dataclass(frozen=True)
class SourceConfig:
    """One dataset.

    kind ``davis``: root holds ``JPEGImages/<resolution>/<video>/*.jpg`` and ``Annotations/<resolution>/
    <video>/*.png`` (palette PNGs: 0 background, k object k, 255 void); split: a split name
    (``ImageSets/2017/<split>.txt``) or a .txt file of video names; null takes every video.

    kind ``sav``: SA-V style masklets: ``<video>_manual.json`` files in ``annotations`` (default: root),
    each with ``masklet``: one list of RLE masks per annotated frame, and the frames in ``root`` as
    ``<video>.mp4`` or a ``<video>/`` folder of JPEGs; annotated frame k is video frame
    ``k * frame_stride`` (4 for SA-V's 6 fps annotations of 24 fps videos; 1 for pre-extracted frames).

    kind ``coco``: images in root, instances in the ``annotations`` json (RLE or polygon masks); every
    image is a one-frame clip.

    weight: relative sampling weight of this source. skip_empty: drop empty masks (and items left
    without any) instead of stopping with an error.
    """

    kind: str
    root: str
    annotations: str | None = None
    split: str | None = None
    resolution: str = "480p"
    frame_stride: int = 4
    json_suffix: str = "_manual.json"
    weight: float = 1.0
    skip_empty: bool = False

    def __post_init__(self) -> None:
        _check(
            self.kind in SOURCE_KINDS, f"data source kind must be one of {SOURCE_KINDS}, got {self.kind!r}"
        )
        _check(self.weight > 0, f"data source weight must be > 0, got {self.weight}")
        _check(self.frame_stride >= 1, f"data source frame_stride must be >= 1, got {self.frame_stride}")
        _check(
            self.kind != "coco" or self.annotations is not None,
            "a coco data source needs 'annotations': the path of its instances json",
        )


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentations drawn once per clip and applied identically to all its frames and masks.

    hflip: probability of a horizontal flip. scale: zoom range (> 1 zooms in, i.e. crops). translate:
    shift range as a fraction of the side. rotate, shear: ranges in degrees. brightness, contrast,
    saturation: factor ranges 1 +- value; hue: shift range in turns (0.5 = opposite colour).
    """

    enabled: bool = True
    hflip: float = 0.5
    scale: tuple[float, float] = (0.9, 1.2)
    translate: float = 0.05
    rotate: float = 10.0
    shear: float = 5.0
    brightness: float = 0.1
    contrast: float = 0.1
    saturation: float = 0.1
    hue: float = 0.02

    def __post_init__(self) -> None:
        _check(0 <= self.hflip <= 1, f"data.augment.hflip is a probability in [0, 1], got {self.hflip}")
        lo, hi = self.scale
        _check(0 < lo <= hi, f"data.augment.scale must be [min, max] with 0 < min <= max, got {self.scale}")
        for name in ("translate", "rotate", "shear", "brightness", "contrast", "saturation", "hue"):
            _check(getattr(self, name) >= 0, f"data.augment.{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class DataConfig:
    """Training data, clip shape and the held-out split.

    clip_frames: frames per video clip (images are one-frame clips). max_objects: objects tracked
    together in a clip (drawn among those visible on its first frame). val: a held-out dataset (kind
    davis) for J&F validation; or val_fraction: hold out that fraction of the first davis source's
    videos (drawn with split_seed). max_val_videos: validate on at most this many of them. val_protocol:
    ``davis`` (DAVIS 2017: the objects of the first annotated frame) or ``sav`` (every object, prompted
    on its first appearance).
    """

    sources: tuple[SourceConfig, ...] = ()
    clip_frames: int = 8
    max_objects: int = 3
    val: SourceConfig | None = None
    val_fraction: float = 0.0
    split_seed: int = 0
    max_val_videos: int | None = None
    val_protocol: str = "davis"
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        _check(self.clip_frames >= 1, f"data.clip_frames must be >= 1, got {self.clip_frames}")
        _check(self.max_objects >= 1, f"data.max_objects must be >= 1, got {self.max_objects}")
        _check(0 <= self.val_fraction < 1, f"data.val_fraction must be in [0, 1), got {self.val_fraction}")
        _check(
            self.val_protocol in ("davis", "sav"),
            f"data.val_protocol must be davis or sav, got {self.val_protocol!r}",
        )
        _check(
            self.val is None or self.val.kind == "davis",
            f"data.val must be a davis-layout dataset (J&F validation runs on videos), got {self.val}",
        )
        _check(
            self.val is None or self.val_fraction == 0,
            "give either data.val (a held-out dataset) or data.val_fraction, not both",
        )


@dataclass(frozen=True)
class PromptConfig:
    """Interactive prompting simulated on each clip.

    The first prompt of a clip is its ground-truth mask, one positive click drawn uniformly in the mask,
    or a box (jittered by up to ``box_noise`` of its size, at most ``box_noise_max`` of the image side
    per coordinate), with probabilities prob_mask / prob_click / prob_box. 1..max_prompted_frames
    frames get it (the first frame always); click and box prompts are then refined by
    ``correction_iters`` corrective clicks, each drawn in the error region of the latest prediction
    (``uniform``ly, or at its ``center`` as the evaluation protocol clicks).
    """

    prob_mask: float = 0.5
    prob_click: float = 0.25
    prob_box: float = 0.25
    max_prompted_frames: int = 2
    correction_iters: int = 7
    correction_sampling: str = "uniform"
    box_noise: float = 0.1
    box_noise_max: float = 0.02

    def __post_init__(self) -> None:
        probs = (self.prob_mask, self.prob_click, self.prob_box)
        _check(min(probs) >= 0, f"prompts.prob_* must be >= 0, got {probs}")
        _check(
            abs(sum(probs) - 1.0) < 1e-6,
            f"prompts.prob_mask + prob_click + prob_box must sum to 1, got {sum(probs):.6g}",
        )
        _check(self.max_prompted_frames >= 1, "prompts.max_prompted_frames must be >= 1")
        _check(self.correction_iters >= 0, "prompts.correction_iters must be >= 0")
        _check(
            self.correction_sampling in ("uniform", "center"),
            f"prompts.correction_sampling must be 'uniform' or 'center', got {self.correction_sampling!r}",
        )
        _check(self.box_noise >= 0 and self.box_noise_max >= 0, "prompts.box_noise* must be >= 0")


@dataclass(frozen=True)
class LossConfig:
    """Loss weights (focal : dice = 20 : 1 as SAM 2) and the focal loss's alpha and gamma."""

    focal: float = 20.0
    dice: float = 1.0
    iou: float = 1.0
    object_score: float = 1.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name != "focal_alpha":
                _check(getattr(self, f.name) >= 0, f"loss.{f.name} must be >= 0, got {getattr(self, f.name)}")
        _check(
            0 <= self.focal_alpha <= 1 or self.focal_alpha == -1,
            "loss.focal_alpha must be in [0, 1] (or -1: no class weighting)",
        )


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with a linear warm-up and a cosine decay to ``min_lr_ratio * lr``.

    lr: everything but the image encoder. encoder_lr: the image encoder's top layer (the neck); its
    trunk blocks get ``encoder_lr * layer_decay ** depth_from_top``. grad_clip: max global L2 norm
    (0 disables clipping).
    """

    lr: float = 5e-4
    encoder_lr: float = 5e-5
    layer_decay: float = 0.9
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 50
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        _check(self.lr > 0 and self.encoder_lr >= 0, "optim.lr must be > 0 and optim.encoder_lr >= 0")
        _check(0 < self.layer_decay <= 1, f"optim.layer_decay must be in (0, 1], got {self.layer_decay}")
        _check(self.weight_decay >= 0, "optim.weight_decay must be >= 0")
        _check(all(0 <= b < 1 for b in self.betas), f"optim.betas must be in [0, 1), got {self.betas}")
        _check(self.warmup_steps >= 0, "optim.warmup_steps must be >= 0")
        _check(0 <= self.min_lr_ratio <= 1, "optim.min_lr_ratio must be in [0, 1]")
        _check(self.grad_clip >= 0, "optim.grad_clip must be >= 0 (0 disables clipping)")


@dataclass(frozen=True)
class TrainSection:
    """The loop.

    steps: optimizer steps; clips_per_step: clips whose gradients are summed per step (per process).
    device: auto (cuda if available), cpu, cuda, cuda:N. amp: auto (bf16 autocast on CUDA, off on CPU),
    bf16 or off. freeze: parameter-name prefixes to keep fixed (``image_encoder`` by default, right for
    small datasets). cache_features: with a frozen image encoder, keep each frame's features in
    memory (``cache_mb``) for ``cache_variants`` fixed augmentations per video (variant 0 unaugmented)
    instead of encoding every clip anew. time_limit_min: stop early after this many minutes.
    val_every / ckpt_every: steps between validations / checkpoints (0: at the end only).
    """

    steps: int = 1000
    clips_per_step: int = 1
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    threads: int | None = None
    freeze: tuple[str, ...] = ("image_encoder",)
    cache_features: bool = True
    cache_variants: int = 4
    cache_mb: int = 2048
    activation_checkpointing: bool = False
    log_every: int = 10
    val_every: int = 0
    ckpt_every: int = 0
    keep_checkpoints: int = 2
    time_limit_min: float | None = None
    tensorboard: str = "auto"

    def __post_init__(self) -> None:
        _check(self.steps >= 1, f"train.steps must be >= 1, got {self.steps}")
        _check(self.clips_per_step >= 1, "train.clips_per_step must be >= 1")
        _check(self.amp in ("auto", "bf16", "off"), f"train.amp must be auto, bf16 or off, got {self.amp!r}")
        _check(self.cache_variants >= 1, "train.cache_variants must be >= 1")
        _check(self.cache_mb >= 0, "train.cache_mb must be >= 0")
        for name in ("log_every", "val_every", "ckpt_every"):
            _check(getattr(self, name) >= 0, f"train.{name} must be >= 0")
        _check(self.log_every >= 1, "train.log_every must be >= 1")
        _check(self.keep_checkpoints >= 1, "train.keep_checkpoints must be >= 1")
        _check(
            self.tensorboard in ("auto", "on", "off"),
            f"train.tensorboard must be auto, on or off, got {self.tensorboard!r}",
        )
        _check(self.threads is None or self.threads >= 1, "train.threads must be >= 1 or null")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs (see the module docstring for the file format)."""

    model: ModelSection = field(default_factory=ModelSection)
    data: DataConfig = field(default_factory=DataConfig)
    prompts: PromptConfig = field(default_factory=PromptConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainSection = field(default_factory=TrainSection)

    def __post_init__(self) -> None:
        _check(
            not self.train.cache_features or any(p == "image_encoder" for p in self.train.freeze),
            "train.cache_features needs a frozen image encoder: add image_encoder to train.freeze, or set "
            "cache_features: false to train the encoder",
        )
