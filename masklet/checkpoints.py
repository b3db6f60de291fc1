"""Official checkpoints: reading them, loading them strictly, building models, saving fine-tunes.

The official files are ``torch.save({"model": state_dict})`` and their keys are exactly the parameter
names of :class:`masklet.modeling.sam2.SAM2Model`, so no key renaming is needed. The one tolerated
difference is a wrapper prefix (``module.`` from ``DataParallel``/``DistributedDataParallel``,
``_orig_mod.`` from ``torch.compile``) on fine-tunes saved from a wrapped model: it is stripped here, and
this module is the only place where such renaming may live.

Where the official files live and how they are fetched (registry, cache directory, download, and the
``MASKLET_CACHE`` / ``MASKLET_DOWNLOAD_BASE`` variables) is :mod:`masklet.download`; its public names are
re-exported here, so ``from masklet.checkpoints import download_checkpoint`` keeps working.
"""

from __future__ import annotations

import os
import pickle
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from masklet.checkpoint_layouts import efficient_family_preset, weight_layout
from masklet.download import (
    DEFAULT_DOWNLOAD_BASE,
    OFFICIAL_CHECKPOINTS,
    CheckpointError,
    CheckpointUnavailable,
    OfficialCheckpoint,
    atomic_file,
    cache_dir,
    cached_checkpoint_path,
    checkpoint_url,
    download_checkpoint,
    is_url,
    official_checkpoint,
)
from masklet.presets import ALIASES, PRESETS, get_preset
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


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a checkpoint into a ``{name: tensor}`` dict on the CPU.

    Accepts the official ``.pt`` format (``{"model": state_dict}``, extra entries such as optimizer
    state are ignored), a bare state dict saved with ``torch.save``, and safetensors files (recognised
    by the ``.safetensors`` extension or by their header). Pickles are read with ``weights_only=True``,
    so opening a file never runs code from it.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a directory; expected a .pt or .safetensors file")
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint file {path} does not exist; expected a .pt or .safetensors file. Check the path, "
            "or pass checkpoint=None to use the official file (downloaded once into the cache)"
        )
    with path.open("rb") as f:
        head = f.read(16)
    size = path.stat().st_size
    if path.suffix == ".safetensors" or _looks_like_safetensors(head, size):
        obj = _read_safetensors(path)
    elif head.startswith(b"PK\x03\x04") or head.startswith(b"\x80"):  # zip (torch >= 1.6) or legacy pickle
        obj = _read_torch(path)
    elif size == 0:
        raise CheckpointError(_corrupt_message(path, "PyTorch checkpoint", "the file is empty"))
    else:
        raise CheckpointError(
            f"{path} is not a PyTorch checkpoint or a safetensors file (it starts with {head[:12]!r}; an "
            "error page saved instead of the file?). Expected an official SAM 2 .pt file or .safetensors; "
            "if it was downloaded, delete it and download it again"
        )
    return _extract_state_dict(obj, path)


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    # safetensors: an 8-byte little-endian header length, then a JSON header.
    return len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < size


def _corrupt_message(path: Path, kind: str, detail: object) -> str:
    return (
        f"{path} is not a valid {kind} (truncated or corrupt?): {detail}. If it was downloaded, "
        "re-download it: delete it and run again"
    )


def _read_torch(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc) or "Unsupported class" in str(exc):
            raise CheckpointError(
                f"{path} holds Python objects besides tensors (a full training state?), which masklet "
                "refuses to unpickle because that could run code. If you trust the file, extract the "
                "weights with torch.load(path, weights_only=False)['model'] and pass them to "
                "masklet.checkpoints.load_into, or re-save them with save_checkpoint"
            ) from exc
        raise CheckpointError(_corrupt_message(path, "PyTorch checkpoint", _first_line(exc))) from exc
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
        raise CheckpointError(_corrupt_message(path, "PyTorch checkpoint", _first_line(exc))) from exc


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # the Rust SafetensorError is not importable in a stable place
        raise CheckpointError(_corrupt_message(path, "safetensors file", _first_line(exc))) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _is_state_dict(obj: object) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _extract_state_dict(obj: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping) and "model" in obj:
        if not _is_state_dict(obj["model"]):
            raise CheckpointError(
                f"{path}: its 'model' entry is a {type(obj['model']).__name__}, not a dict of tensors. "
                "Expected the official format {'model': {name: tensor}}"
            )
        return dict(obj["model"])
    if _is_state_dict(obj):
        return dict(obj)
    found = f"top-level keys {_examples([str(k) for k in obj])}" if isinstance(obj, Mapping) else type(obj)
    raise CheckpointError(
        f"{path} has no 'model' entry and does not look like a state dict (found {found}). Expected the "
        "official format {'model': {name: tensor}} or a bare {name: tensor} dict, as save_checkpoint writes"
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


def _examples(keys: list[str], n: int = 5) -> str:
    more = f", ... ({len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


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
            f"tensor ({len(sd)} keys, e.g. {_examples(sorted(sd), 3)}).{hint} Expected an official "
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
        lines.append(f"{len(missing)} missing key(s) (in the model, not in the file): {_examples(missing)}")
    if unexpected:
        lines.append(
            f"{len(unexpected)} unexpected key(s) (in the file, not in the model): {_examples(unexpected)}"
        )
    if shapes:
        items = [f"{k}: expected {tuple(expected[k].shape)}, got {tuple(sd[k].shape)}" for k in shapes]
        lines.append(f"{len(shapes)} shape mismatch(es): {_examples(items)}")
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
        from masklet.export.backend import load_onnx_model  # deferred: needs the onnx extra

        if checkpoint is not None or random_seed is not None or compile:
            raise ValueError(
                "the ONNX backend runs the weights of its exported files: leave out checkpoint, "
                "random_seed and compile"
            )
        return load_onnx_model(onnx_dir, name, image_size=image_size, device=device, dtype=dtype)
    if backend != "torch":
        raise ValueError(f"unknown backend {backend!r}: use 'torch' or 'onnx'")
    torch_device = _resolve_device(device)
    torch_dtype = parse_dtype(dtype, torch_device)
    enc_dtype = None if encoder_dtype is None else parse_dtype(encoder_dtype, torch_device)
    if random_seed is not None and checkpoint is not None:
        raise ValueError("random_seed draws random weights instead of loading a checkpoint: pass only one")
    # with random weights an unknown name (or 'auto') fails in get_preset
    sd, preset = _resolve_weights(name, checkpoint) if random_seed is None else (None, get_preset(name).name)
    cfg = get_preset(preset, image_size)
    from masklet.modeling.sam2 import SAM2Model  # deferred: reading the registry needs no model code

    if sd is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(random_seed)
            model = SAM2Model(cfg)
    else:
        model = SAM2Model(cfg)
        load_into(model, sd, cfg.name)
    model = model.to(device=torch_device).set_compute_dtype(torch_dtype, enc_dtype).eval()
    if compile:
        from masklet.compile import compile_model

        compile_model(model)
    return model


def save_checkpoint(model: nn.Module | Mapping[str, torch.Tensor], path: str | os.PathLike) -> Path:
    """Write ``model``'s weights (or a state dict) in the official format ``{"model": state_dict}``, or as
    safetensors when ``path`` ends in ``.safetensors``. Tensors are saved on the CPU in their current
    dtype; the file appears only once complete."""
    state = model.state_dict() if isinstance(model, nn.Module) else model
    tensors, seen = {}, set()
    for key, value in state.items():
        t = value.detach().cpu().contiguous()
        # safetensors refuses tensors sharing memory; a copy costs little and keeps every key.
        ptr = t.untyped_storage().data_ptr()
        tensors[key] = t.clone() if ptr in seen else t
        seen.add(ptr)
    path = Path(path).expanduser()
    with atomic_file(path) as tmp:
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file(tensors, tmp, metadata={"format": "pt"})
        else:
            torch.save({"model": tensors}, tmp)
    return path


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
