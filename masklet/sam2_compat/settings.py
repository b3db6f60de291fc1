"""What the official builders configure, in masklet's terms: Hydra overrides and ``apply_postprocessing``.

The official builders compose a Hydra config and apply override strings such as
``++model.non_overlap_masks=true``. masklet has no Hydra config: each override it understands names a
setting of masklet's model (``SAM2Model.configure``), of the video predictor, or of the build
(``build_model``); any other override is an error that names it. Later overrides win, and the
post-processing overrides of ``apply_postprocessing=True`` come last, as officially.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..presets import BEHAVIOUR_FIELDS, PRESETS

__all__ = ["BuildSettings", "OverrideError", "build_settings"]


class OverrideError(ValueError):
    """A Hydra override masklet cannot map (its message names the override and what is supported)."""


@dataclass(frozen=True)
class _Target:
    kind: str  # "model" (SAM2Model.configure), "video" (VideoPredictor argument) or "build" (build_model)
    name: str  # masklet's name for it
    type: type


_ANY_PRESET = next(iter(PRESETS.values()))


def _official_key(field: str) -> str:
    """The official config spells the decoder's settings under ``sam_mask_decoder_extra_args``."""
    return f"sam_mask_decoder_extra_args.{field}" if field.startswith("dynamic_multimask") else field


# official override key (after "model.") -> what it sets in masklet
TARGETS: dict[str, _Target] = {
    **{_official_key(k): _Target("model", k, type(getattr(_ANY_PRESET, k))) for k in BEHAVIOUR_FIELDS},
    "fill_hole_area": _Target("video", "fill_hole_area", int),
    "non_overlap_masks": _Target("video", "non_overlap_masks", bool),
    "clear_non_cond_mem_around_input": _Target("video", "clear_non_cond_mem_around_input", bool),
    "add_all_frames_to_correct_as_cond": _Target("video", "add_all_frames_to_correct_as_cond", bool),
    "image_size": _Target("build", "image_size", int),
    "compile_image_encoder": _Target("build", "compile", bool),
}

# What the official builders leave when nothing is overridden (SAM2Base / SAM2VideoPredictor defaults).
_DEFAULTS = {
    "model": {"dynamic_multimask_via_stability": False, "binarize_mask_from_pts_for_mem_enc": False},
    "video": {
        "fill_hole_area": 0,
        "non_overlap_masks": False,
        "clear_non_cond_mem_around_input": False,
        "add_all_frames_to_correct_as_cond": False,
    },
    "build": {"compile": False},
}

# apply_postprocessing=True: the dynamic multimask fallback (both builders), and for video the
# binarised click masks in memory and hole filling of the outputs.
_POSTPROCESSING = [
    ("sam_mask_decoder_extra_args.dynamic_multimask_via_stability", True),
    ("sam_mask_decoder_extra_args.dynamic_multimask_stability_delta", 0.05),
    ("sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh", 0.98),
]
_VIDEO_POSTPROCESSING = [("binarize_mask_from_pts_for_mem_enc", True), ("fill_hole_area", 8)]


@dataclass(frozen=True)
class BuildSettings:
    """masklet's settings for one official build call.

    - ``model``: ``SAM2Model.configure`` keyword arguments
    - ``video``: ``VideoPredictor`` keyword arguments (empty for the image builder)
    - ``build``: ``build_model`` keyword arguments (``image_size``, ``compile``)
    """

    model: dict
    video: dict
    build: dict


def build_settings(
    overrides: Iterable[str], *, apply_postprocessing: bool, video: bool, compile: bool = False
) -> BuildSettings:
    """The settings of ``build_sam2`` (``video=False``) or ``build_sam2_video_predictor`` for the user's
    Hydra ``overrides``; ``compile``: the video builder's ``vos_optimized``."""
    if isinstance(overrides, str):
        raise OverrideError(
            f"hydra_overrides_extra must be a list of override strings, got the string {overrides!r}: "
            f"write [{overrides!r}]"
        )
    out = {kind: dict(values) for kind, values in _DEFAULTS.items()}
    if not video:
        out["video"] = {}
    out["build"]["compile"] = compile
    steps = [_parse(o) for o in overrides]
    if apply_postprocessing:
        steps += _POSTPROCESSING + (_VIDEO_POSTPROCESSING if video else [])
    for key, value in steps:
        target = TARGETS[key]
        if target.kind == "video" and not video:
            raise OverrideError(
                f"++model.{key} is a setting of the video predictor: pass it to build_sam2_video_predictor "
                "(build_sam2 builds the model for images)"
            )
        out[target.kind][target.name] = value
    return BuildSettings(out["model"], out["video"], out["build"])


def _parse(override: str) -> tuple[str, object]:
    """``++model.key=value`` (or ``+model.`` / ``model.``) -> (key, typed value)."""
    if not isinstance(override, str):
        raise OverrideError(
            f"a Hydra override is a string such as '++model.fill_hole_area=0', got {override!r}"
        )
    body = override.lstrip("+")
    path, sep, raw = body.partition("=")
    path = path.strip()
    if not sep or not path.startswith("model."):
        raise OverrideError(
            f"Hydra override {override!r}: masklet maps overrides of the form '++model.<setting>=<value>'; "
            f"the settings it knows are {_known()}"
        )
    key = path[len("model.") :]
    if key not in TARGETS:
        raise OverrideError(
            f"Hydra override {override!r}: masklet has no equivalent of model.{key} (it reads no Hydra "
            f"config). The settings it maps are {_known()}; for anything else build the model with "
            "masklet.build_model and the predictors' arguments"
        )
    return key, _value(override, raw.strip(), TARGETS[key].type)


def _value(override: str, raw: str, kind: type) -> object:
    low = raw.lower()
    try:
        if kind is bool:
            if low not in ("true", "false"):
                raise ValueError
            return low == "true"
        if kind is int:
            return int(raw)
        return float(raw)
    except ValueError:
        expected = "true or false" if kind is bool else f"a number ({kind.__name__})"
        raise OverrideError(
            f"Hydra override {override!r}: the value must be {expected}, got {raw!r}"
        ) from None


def _known() -> str:
    return ", ".join(f"model.{k}" for k in TARGETS)
