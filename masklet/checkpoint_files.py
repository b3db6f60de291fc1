"""Checkpoint files: reading one into a ``{name: tensor}`` dict and writing one in the official format.

Reading never runs code from the file (pickles load with ``weights_only=True``) and turns every way a
file can be wrong (missing, empty, truncated, an error page, a full training state) into a
:class:`~masklet.download.CheckpointError` that says what to do. Which model the tensors fit, and loading
them into it, is :mod:`masklet.checkpoints`.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from masklet.download import CheckpointError, atomic_file

__all__ = ["key_examples", "load_state_dict_file", "save_checkpoint"]


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
    found = f"top-level keys {key_examples([str(k) for k in obj])}" if isinstance(obj, Mapping) else type(obj)
    raise CheckpointError(
        f"{path} has no 'model' entry and does not look like a state dict (found {found}). Expected the "
        "official format {'model': {name: tensor}} or a bare {name: tensor} dict, as save_checkpoint writes"
    )


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


def key_examples(keys: list[str], n: int = 5) -> str:
    """The first ``n`` of ``keys`` joined by commas, with how many more there are, for error messages."""
    more = f", ... ({len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more
