"""Official checkpoints: reading them, loading them strictly, building models, saving fine-tunes.

The official files are ``torch.save({"model": state_dict})`` and their keys are exactly the parameter
names of :class:`masklet.modeling.sam2.SAM2Model`, so no key renaming is needed. The one tolerated
difference is a wrapper prefix (``module.`` from ``DataParallel``/``DistributedDataParallel``,
``_orig_mod.`` from ``torch.compile``) on fine-tunes saved from a wrapped model: it is stripped here, and
this module is the only place where such renaming may live.

Where the official files live and how they are fetched (registry, cache directory, download, and the
``MASKLET_CACHE`` / ``MASKLET_DOWNLOAD_BASE`` variables) is :mod:`masklet.download`; its public names are
re-exported here, so ``from masklet.checkpoints import download_checkpoint`` keeps working. Reading and
writing the files themselves is :mod:`masklet.checkpoint_files`, whose public names are re-exported too.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from masklet.checkpoint_files import key_examples, load_state_dict_file, save_checkpoint
from masklet.checkpoint_layouts import efficient_family_preset, weight_layout
from masklet.download import (
    DEFAULT_DOWNLOAD_BASE,
    OFFICIAL_CHECKPOINTS,
    CheckpointError,
    CheckpointUnavailable,
    OfficialCheckpoint,
    cache_dir,
    cached_checkpoint_path,
    checkpoint_url,
    download_checkpoint,
    is_url,
    official_checkpoint,
)
from masklet.presets import ALIASES, PRESETS, ModelConfig, get_preset
from masklet.runtime import default_device, parse_dtype

if TYPE_CHECKING:
    from masklet.modeling.sam2 import SAM2Model

__all__ = [
    "DEFAULT_DOWNLOAD_BASE",
    "OFFICIAL_CHECKPOINTS",
    "CheckpointError",
    "CheckpointUnavailable",
    "OfficialCheckpoint",
    "PresetMismatch",
    "build_model",
    "cache_dir",
    "cached_checkpoint_path",
    "checkpoint_url",
    "download_checkpoint",
    "infer_preset",
    "list_models",
    "load_into",
    "load_state_dict_file",
    "official_checkpoint",
    "save_checkpoint",
]

_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_POS_EMBED_KEY = "image_encoder.trunk.pos_embed"
# Keys only SAM 2.1 files have (see VersionTraits.no_obj_embed_spatial / proj_tpos_enc_in_obj_ptrs).
_V2_1_KEYS = ("no_obj_embed_spatial", "obj_ptr_tpos_proj.weight")


class PresetMismatch(CheckpointError):
    """The file holds weights of preset ``found``; the model was built as preset ``expected``."""

    def __init__(self, found: str, expected: str):
        self.found, self.expected = found, expected
        super().__init__(
            f"this checkpoint looks like {found}, but the model is {expected}: "
            f"pass name={found!r} or name='auto'"
        )


def _strip_wrapper_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop a prefix shared by every key that a wrapper (DataParallel, torch.compile) added."""
    sd = dict(state_dict)
    stripped = True
    while stripped and sd:
        stripped = False
        for prefix in _WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in sd):
                sd = {k[len(prefix) :]: v for k, v in sd.items()}
                stripped = True
    return sd


def infer_preset(state_dict: Mapping[str, torch.Tensor], file_name: str | None = None) -> str:
    """Name of the official preset whose architecture ``state_dict`` fits.

    Version from the 2.1-only keys; size from the trunk width (``pos_embed`` channels: 96 tiny/small,
    112 base_plus, 144 large) and the number of trunk blocks (12 tiny, 16 small, 24, 48). EdgeTAM and
    EfficientTAM: see :mod:`masklet.checkpoint_layouts` (``file_name`` picks among same-layout files).
    """
    sd = _strip_wrapper_prefix(state_dict)
    family = efficient_family_preset(sd, file_name)
    if family is not None:
        return family
    pos = sd.get(_POS_EMBED_KEY)
    if pos is None or pos.ndim != 4:
        hint = ""
        if "image_encoder.patch_embed.proj.weight" in sd:
            hint = " It looks like a SAM 1 (segment-anything) checkpoint, which SAM 2 cannot use."
        raise CheckpointError(
            f"cannot tell which SAM 2 model this checkpoint is for: it has no 4-d {_POS_EMBED_KEY} "
            f"tensor ({len(sd)} keys, e.g. {key_examples(sorted(sd), 3)}).{hint} Expected an official "
            "SAM 2 / SAM 2.1, EdgeTAM or EfficientTAM checkpoint or a fine-tune of one"
        )
    width = pos.shape[1]
    blocks = len({k.split(".")[3] for k in sd if k.startswith("image_encoder.trunk.blocks.")})
    version = "2.1" if any(k in sd for k in _V2_1_KEYS) else "2.0"
    hieras = [c for c in PRESETS.values() if c.hiera is not None]
    for cfg in hieras:
        if (cfg.traits.version, cfg.hiera.embed_dim, sum(cfg.hiera.stages)) == (version, width, blocks):
            return cfg.name
    known = "; ".join(f"{c.hiera.embed_dim}/{sum(c.hiera.stages)} {c.name}" for c in hieras)
    raise CheckpointError(
        f"this SAM {version} checkpoint matches no official preset: trunk width {width} with {blocks} "
        f"blocks (known width/blocks: {known}). Pass the preset name it was trained from to see which "
        "keys differ"
    )


def _mismatch_report(expected: Mapping[str, torch.Tensor], sd: Mapping[str, torch.Tensor]) -> list[str]:
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    shapes = [k for k in expected if k in sd and expected[k].shape != sd[k].shape]
    lines = []
    if missing:
        lines.append(
            f"{len(missing)} missing key(s) (in the model, not in the file): {key_examples(missing)}"
        )
    if unexpected:
        lines.append(
            f"{len(unexpected)} unexpected key(s) (in the file, not in the model): {key_examples(unexpected)}"
        )
    if shapes:
        items = [f"{k}: expected {tuple(expected[k].shape)}, got {tuple(sd[k].shape)}" for k in shapes]
        lines.append(f"{len(shapes)} shape mismatch(es): {key_examples(items)}")
    return lines


def load_into(model: nn.Module, state_dict: Mapping[str, torch.Tensor], preset_name: str) -> nn.Module:
    """Load ``state_dict`` into ``model`` (built for preset ``preset_name``) strictly; return ``model``.

    Keys carrying a ``module.`` (DataParallel) or ``_orig_mod.`` (torch.compile) prefix on every key are
    accepted with the prefix removed. Raises :class:`CheckpointError` when the file is for another
    preset, or listing missing/unexpected keys and shape mismatches.
    """
    sd = _strip_wrapper_prefix(state_dict)
    expected_name = ALIASES.get(preset_name, preset_name)
    try:
        found = infer_preset(sd)
    except CheckpointError:
        found = None  # not an official layout: the key-by-key report below says what differs
    if (
        found is not None
        and expected_name in PRESETS
        and weight_layout(found) != weight_layout(expected_name)
    ):
        raise PresetMismatch(found, expected_name)
    problems = _mismatch_report(model.state_dict(), sd)
    if problems:
        raise CheckpointError(
            f"the checkpoint does not fit the {expected_name} model:\n  - "
            + "\n  - ".join(problems)
            + "\nWas it saved from a different or modified model?"
        )
    model.load_state_dict(sd, strict=True)
    return model


def _resolve_device(device: str | torch.device | None) -> torch.device:
    """The requested device, else cuda, mps or cpu (whichever is there first)."""
    dev = default_device() if device is None else torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available; pass device='cpu' or None"
        )
    return dev


def _resolve_weights(name: str, checkpoint: str | os.PathLike | None) -> tuple[dict[str, torch.Tensor], str]:
    """(state dict, canonical preset name) for build_model's arguments."""
    if checkpoint is None:
        if name == "auto":
            raise ValueError(
                "name='auto' infers the preset from a checkpoint file, but no checkpoint was given: pass "
                "checkpoint='path/to/file.pt', or a preset name such as 'sam2.1_hiera_large'"
            )
        path = cached_checkpoint_path(name)
        if not path.is_file():
            path = download_checkpoint(name)
    elif is_url(checkpoint):
        path = cache_dir() / Path(urllib.parse.urlparse(str(checkpoint)).path).name
        if not path.is_file():
            path = download_checkpoint(str(checkpoint))
    else:
        path = Path(checkpoint)
    if name != "auto":
        name = get_preset(name).name  # an unknown name fails before the file is read
    sd = _strip_wrapper_prefix(load_state_dict_file(path))
    return sd, infer_preset(sd, path.name) if name == "auto" else name


def _onnx_model(
    name: str,
    onnx_dir: str | os.PathLike | None,
    image_size: int | None,
    device: str | torch.device | None,
    dtype: str | torch.dtype | None,
    torch_only: bool,
) -> SAM2Model:
    """build_model's ``backend="onnx"``; ``torch_only``: a checkpoint, random seed or compile was asked."""
    from masklet.export.backend import load_onnx_model  # deferred: needs the onnx extra

    if torch_only:
        raise ValueError(
            "the ONNX backend runs the weights of its exported files: leave out checkpoint, "
            "random_seed and compile"
        )
    return load_onnx_model(onnx_dir, name, image_size=image_size, device=device, dtype=dtype)


def _instantiate(cfg: ModelConfig, sd: dict[str, torch.Tensor] | None, random_seed: int | None) -> SAM2Model:
    """A :class:`SAM2Model` of ``cfg`` holding ``sd`` strictly, or, when ``sd`` is None, weights drawn
    from ``random_seed`` without touching the global torch generator."""
    from masklet.modeling.sam2 import SAM2Model  # deferred: reading the registry needs no model code

    if sd is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(random_seed)
            return SAM2Model(cfg)
    model = SAM2Model(cfg)
    load_into(model, sd, cfg.name)
    return model


def build_model(
    name: str,
    checkpoint: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    image_size: int | None = None,
    compile: bool = False,
    encoder_dtype: str | torch.dtype | None = None,
    random_seed: int | None = None,
    backend: str = "torch",
    onnx_dir: str | os.PathLike | None = None,
) -> SAM2Model:
    """A :class:`SAM2Model` in eval mode with the weights loaded strictly (or drawn at random).

    name: a preset (``sam2.1_hiera_large``) or alias (``sam2.1_hiera_l``), or ``"auto"`` to infer it from
        ``checkpoint`` (only with a checkpoint).
    checkpoint: a ``.pt``/``.safetensors`` path, or an http(s) URL (downloaded once into the cache under
        its file name, which is reused afterwards); ``None`` uses the official file from the cache
        directory, downloading it the first time.
    device: ``None`` picks cuda, then mps, then cpu.
    dtype: ``None``/``"float32"``/``"fp32"`` (default), ``"bfloat16"``/``"bf16"``, a torch dtype of those
        two, or ``"auto"`` (bfloat16 where the device runs it fast; see ``masklet.runtime``). It is the
        compute dtype of the heavy modules; the prompt encoder and mask decoder stay float32 (see
        ``SAM2Model.set_compute_dtype``).
    image_size: input side in pixels (default 1024; see ``ModelConfig.with_image_size``).
    compile: ``torch.compile`` the image encoder and memory attention (see ``masklet.compile``: opt-in,
        the first calls pay the compile time, and a failure falls back to eager execution).
    encoder_dtype: the image encoder's dtype when it should differ from ``dtype`` (same spellings;
        ``None``: ``dtype``). ``dtype="bf16", encoder_dtype="fp32"`` tracks video with masks closest to
        float32 ones at most of bf16's speed with several objects (memory attention dominates).
    random_seed: instead of loading weights, draw them at random from this seed (the same model for the
        same seed and preset; the global torch generator is left as it was). Masks are meaningless: this
        is for testing pipelines and for training from scratch. Needs a preset name and no checkpoint.
    backend: ``"torch"`` (default) or ``"onnx"``: the image encoder, decoder, memory attention and memory
        encoder run in onnxruntime over the files ``masklet export onnx`` wrote to ``onnx_dir`` (float32,
        CPU; ``name`` may be ``"auto"`` to take the export's preset; the weights are those files').
    """
    if backend == "onnx":
        torch_only = checkpoint is not None or random_seed is not None or compile
        return _onnx_model(name, onnx_dir, image_size, device, dtype, torch_only)
    if backend != "torch":
        raise ValueError(f"unknown backend {backend!r}: use 'torch' or 'onnx'")
    torch_device = _resolve_device(device)
    torch_dtype = parse_dtype(dtype, torch_device)
    enc_dtype = None if encoder_dtype is None else parse_dtype(encoder_dtype, torch_device)
    if random_seed is not None and checkpoint is not None:
        raise ValueError("random_seed draws random weights instead of loading a checkpoint: pass only one")
    # with random weights an unknown name (or 'auto') fails in get_preset
    sd, preset = _resolve_weights(name, checkpoint) if random_seed is None else (None, get_preset(name).name)
    model = _instantiate(get_preset(preset, image_size), sd, random_seed)
    model = model.to(device=torch_device).set_compute_dtype(torch_dtype, enc_dtype).eval()
    if compile:
        from masklet.compile import compile_model

        compile_model(model)
    return model


def list_models() -> list[dict]:
    """One row per official preset, for ``masklet models``: name, aliases, version, params, file_name,
    url, approx_mb, cached (bool), cached_path, cached_size (bytes, or None when not cached)."""
    rows = []
    for name, cfg in PRESETS.items():
        entry, path = OFFICIAL_CHECKPOINTS[name], cached_checkpoint_path(name)
        cached = path.is_file()
        rows.append(
            {
                "name": name,
                "aliases": list(cfg.aliases),
                "version": cfg.traits.version,
                "params": entry.params,
                "file_name": entry.file_name,
                "url": checkpoint_url(name),
                "approx_mb": entry.approx_mb,
                "cached": cached,
                "cached_path": str(path),
                "cached_size": path.stat().st_size if cached else None,
            }
        )
    return rows
