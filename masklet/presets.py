"""Model configurations: the eight official SAM 2 / SAM 2.1 presets as frozen dataclasses.

Every difference between SAM 2 (July 2024) and SAM 2.1 (September 2024) lives in :data:`SAM2_0_TRAITS`
and :data:`SAM2_1_TRAITS`; the four sizes differ only in the Hiera trunk (:class:`HieraConfig`).
Nothing here builds modules or touches files: ``masklet.checkpoints`` turns a config into a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class HieraConfig:
    """Hiera image-encoder trunk (the only part that changes between tiny/small/base_plus/large)."""

    embed_dim: int
    num_heads: int
    stages: tuple[int, ...]
    global_att_blocks: tuple[int, ...]
    window_spec: tuple[int, ...] = (8, 4, 14, 7)
    window_pos_embed_bkg_spatial_size: tuple[int, int] = (14, 14)
    q_pool: int = 3
    q_stride: tuple[int, int] = (2, 2)
    dim_mul: float = 2.0
    head_mul: float = 2.0

    @property
    def stage_dims(self) -> tuple[int, ...]:
        """Channel width of each stage, stride 4 first (e.g. 96, 192, 384, 768 for tiny)."""
        return tuple(int(self.embed_dim * self.dim_mul**i) for i in range(len(self.stages)))

    @property
    def backbone_channel_list(self) -> tuple[int, ...]:
        """Stage widths lowest resolution first, the order the FPN neck's convs use."""
        return tuple(reversed(self.stage_dims))


@dataclass(frozen=True)
class VersionTraits:
    """Everything that differs between SAM 2 and SAM 2.1 checkpoints, in one place.

    - ``no_obj_embed_spatial``: 2.1 adds a learned (1, 64) embedding added to the memory features of
      frames where the object is predicted absent (checkpoint key ``no_obj_embed_spatial``).
    - ``add_tpos_enc_to_obj_ptrs``: 2.1 adds a temporal position encoding to object pointers.
    - ``proj_tpos_enc_in_obj_ptrs``: 2.1 projects that encoding with a learned linear layer
      (checkpoint key ``obj_ptr_tpos_proj``); with it off the layer is the identity and has no weights.
    - ``use_signed_tpos_enc_to_obj_ptrs``: 2.1 encodes signed frame distances (past vs future).
    """

    version: str
    no_obj_embed_spatial: bool
    add_tpos_enc_to_obj_ptrs: bool
    proj_tpos_enc_in_obj_ptrs: bool
    use_signed_tpos_enc_to_obj_ptrs: bool


SAM2_0_TRAITS = VersionTraits(
    version="2.0",
    no_obj_embed_spatial=False,
    add_tpos_enc_to_obj_ptrs=False,
    proj_tpos_enc_in_obj_ptrs=False,
    use_signed_tpos_enc_to_obj_ptrs=False,
)
SAM2_1_TRAITS = VersionTraits(
    version="2.1",
    no_obj_embed_spatial=True,
    add_tpos_enc_to_obj_ptrs=True,
    proj_tpos_enc_in_obj_ptrs=True,
    use_signed_tpos_enc_to_obj_ptrs=True,
)


@dataclass(frozen=True)
class ModelConfig:
    """A complete SAM 2 model description. Defaults are the values every official preset shares.

    ``image_size`` is the square input side in pixels (1024 officially). Smaller sizes (512, 768; a
    multiple of 32 whose stride-16 grid is divisible by the trunk's windows after padding) trade accuracy
    for speed with the same weights: position embeddings are interpolated to the new grid.
    """

    name: str
    hiera: HieraConfig
    traits: VersionTraits
    image_size: int = 1024
    d_model: int = 256  # transformer / FPN width
    mem_dim: int = 64  # memory feature width
    num_maskmem: int = 7  # memory slots: 1 prompted + 6 recent (the paper's N + M)
    max_obj_ptrs_in_encoder: int = 16
    fpn_top_down_levels: tuple[int, ...] = (2, 3)
    scalp: int = 1  # number of lowest-resolution FPN levels dropped
    memory_attention_layers: int = 4
    rope_theta: float = 10000.0
    sigmoid_scale_for_mem_enc: float = 20.0
    sigmoid_bias_for_mem_enc: float = -10.0
    # mask decoder: dynamic multimask fallback (the official builders turn this on)
    dynamic_multimask_via_stability: bool = True
    dynamic_multimask_stability_delta: float = 0.05
    dynamic_multimask_stability_thresh: float = 0.98
    # memories of clicked frames encode the thresholded mask (what the user saw) rather than the
    # sigmoid of its logits (the official video builder turns this on)
    binarize_mask_from_pts_for_mem_enc: bool = True
    # tracking behaviour shared by all official presets
    multimask_output_in_sam: bool = True
    multimask_output_for_tracking: bool = True
    multimask_min_pt_num: int = 0
    multimask_max_pt_num: int = 1
    only_obj_ptrs_in_the_past_for_eval: bool = True
    aliases: tuple[str, ...] = field(default=(), compare=False)

    @property
    def backbone_stride(self) -> int:
        return 16

    @property
    def feature_size(self) -> int:
        """Side of the stride-16 image embedding (64 at image_size 1024)."""
        return self.image_size // self.backbone_stride

    @property
    def low_res_mask_size(self) -> int:
        """Side of the decoder's mask logits (256 at image_size 1024)."""
        return self.feature_size * 4

    def multimask_for(self, *, initial: bool, num_points: int) -> bool:
        """Whether the decoder gives 3 candidates on a video frame (the best by predicted IoU is kept):
        on initial (memory-less) frames, or on every frame with ``multimask_output_for_tracking``, when
        the frame has ``multimask_min_pt_num`` .. ``multimask_max_pt_num`` points (a box counts 2;
        tracked frames without prompts count 0)."""
        return (
            self.multimask_output_in_sam
            and (initial or self.multimask_output_for_tracking)
            and self.multimask_min_pt_num <= num_points <= self.multimask_max_pt_num
        )

    def with_behaviour(self, **changes) -> ModelConfig:
        """This config with some of :data:`BEHAVIOUR_FIELDS` changed (the fields that change what the
        model computes but not its weights, so a built model can switch: ``SAM2Model.configure``).

        E.g. ``cfg.with_behaviour(dynamic_multimask_via_stability=False,
        binarize_mask_from_pts_for_mem_enc=False)`` is the official builders' ``apply_postprocessing=False``.
        """
        unknown = sorted(set(changes) - set(BEHAVIOUR_FIELDS))
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)}: not a behaviour setting of a built model; the settings are "
                f"{', '.join(BEHAVIOUR_FIELDS)} (the architecture comes from the preset)"
            )
        for name, value in changes.items():
            kind = type(getattr(self, name))
            ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                ok, value = True, float(value)
            if not ok:
                raise ValueError(f"{name} must be a {kind.__name__}, got {value!r}")
            changes[name] = value
        return replace(self, **changes)

    def with_image_size(self, image_size: int) -> ModelConfig:
        if image_size % 32 != 0 or image_size < 128:
            raise ValueError(
                "image_size must be a multiple of 32 and at least 128 (e.g. 512, 768, 1024); "
                f"got {image_size}"
            )
        return replace(self, image_size=image_size)


BEHAVIOUR_FIELDS: tuple[str, ...] = (
    "dynamic_multimask_via_stability",
    "dynamic_multimask_stability_delta",
    "dynamic_multimask_stability_thresh",
    "binarize_mask_from_pts_for_mem_enc",
    "multimask_output_in_sam",
    "multimask_output_for_tracking",
    "multimask_min_pt_num",
    "multimask_max_pt_num",
    "sigmoid_scale_for_mem_enc",
    "sigmoid_bias_for_mem_enc",
)
"""ModelConfig fields that a built model can change (:meth:`ModelConfig.with_behaviour`): they decide
what the model computes from its weights, never the weights' shapes."""

_TINY = HieraConfig(
    embed_dim=96,
    num_heads=1,
    stages=(1, 2, 7, 2),
    global_att_blocks=(5, 7, 9),
    window_pos_embed_bkg_spatial_size=(7, 7),
)
_SMALL = HieraConfig(
    embed_dim=96,
    num_heads=1,
    stages=(1, 2, 11, 2),
    global_att_blocks=(7, 10, 13),
    window_pos_embed_bkg_spatial_size=(7, 7),
)
_BASE_PLUS = HieraConfig(
    embed_dim=112,
    num_heads=2,
    stages=(2, 3, 16, 3),
    global_att_blocks=(12, 16, 20),
)
_LARGE = HieraConfig(
    embed_dim=144,
    num_heads=2,
    stages=(2, 6, 36, 4),
    global_att_blocks=(23, 33, 43),
    window_spec=(8, 4, 16, 8),
    window_pos_embed_bkg_spatial_size=(7, 7),
)

_SIZES = {
    "tiny": (_TINY, "t"),
    "small": (_SMALL, "s"),
    "base_plus": (_BASE_PLUS, "b+"),
    "large": (_LARGE, "l"),
}


def _make_presets() -> dict[str, ModelConfig]:
    out: dict[str, ModelConfig] = {}
    for prefix, traits in (("sam2", SAM2_0_TRAITS), ("sam2.1", SAM2_1_TRAITS)):
        for size, (hiera, short) in _SIZES.items():
            name = f"{prefix}_hiera_{size}"
            out[name] = ModelConfig(
                name=name, hiera=hiera, traits=traits, aliases=(f"{prefix}_hiera_{short}",)
            )
    return out


PRESETS: dict[str, ModelConfig] = _make_presets()
ALIASES: dict[str, str] = {alias: name for name, cfg in PRESETS.items() for alias in cfg.aliases}


def get_preset(name: str, image_size: int | None = None) -> ModelConfig:
    """Return the preset called ``name`` (a full name such as ``sam2.1_hiera_tiny`` or an alias such as
    ``sam2.1_hiera_t``; a trailing ``.pt``/``.yaml`` is ignored), optionally at another ``image_size``."""
    key = name.strip()
    for suffix in (".pt", ".yaml", ".safetensors"):
        if key.endswith(suffix):
            key = key[: -len(suffix)]
    key = ALIASES.get(key, key)
    if key not in PRESETS:
        known = ", ".join(sorted(PRESETS) + sorted(ALIASES))
        raise ValueError(f"unknown model preset {name!r}; known presets: {known}")
    cfg = PRESETS[key]
    return cfg.with_image_size(image_size) if image_size is not None else cfg
