"""Official names -> masklet presets and files: config paths, Hugging Face model ids, the local caches.

Official code names a model by its Hydra config (``configs/sam2.1/sam2.1_hiera_l.yaml``) or by its
Hugging Face id (``facebook/sam2.1-hiera-large``). Both map to one of masklet's eight presets. A hub
id's checkpoint is looked up without any network access: first in the Hugging Face cache, in the
layout ``huggingface_hub`` writes (``<cache>/models--facebook--sam2.1-hiera-large/snapshots/<revision>/
sam2.1_hiera_large.pt``, found through ``HF_HUB_CACHE`` / ``HF_HOME`` as huggingface_hub does), then
in masklet's own checkpoint cache. When neither has the file the error says where to put it.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..download import CheckpointError, cached_checkpoint_path, checkpoint_url, official_checkpoint
from ..presets import PRESETS, get_preset

__all__ = ["HUB_IDS", "hf_hub_cache", "hub_checkpoint", "preset_for_config"]

# facebook/sam2.1-hiera-base-plus -> sam2.1_hiera_base_plus (the official ids are the preset names)
HUB_IDS: dict[str, str] = {f"facebook/{name.replace('_', '-')}": name for name in PRESETS}

_CONFIGS = "configs/sam2.1/sam2.1_hiera_{t,s,b+,l}.yaml or configs/sam2/sam2_hiera_{t,s,b+,l}.yaml"


def preset_for_config(config_file: str | os.PathLike) -> str:
    """The preset of an official config name or path (``configs/sam2.1/sam2.1_hiera_l.yaml``,
    ``sam2_hiera_t.yaml``, an absolute path to one of them) or of a masklet preset name."""
    name = Path(os.fspath(config_file)).name
    try:
        return get_preset(name).name
    except ValueError:
        raise ValueError(
            f"config {os.fspath(config_file)!r} is not an official SAM 2 config: masklet knows {_CONFIGS} "
            "(any folder) and its preset names such as sam2.1_hiera_large. It reads no Hydra YAML file: "
            "for other settings see hydra_overrides_extra, or build a preset with masklet.build_model"
        ) from None


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache folder, found as huggingface_hub finds it."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def _hub_snapshot_file(model_id: str, file_name: str) -> Path | None:
    """The cached ``file_name`` of ``model_id``: in the snapshot ``refs/main`` points to, else in the most
    recently written snapshot that has it."""
    repo = hf_hub_cache() / ("models--" + model_id.replace("/", "--"))
    ref = repo / "refs" / "main"
    if ref.is_file():
        path = repo / "snapshots" / ref.read_text().strip() / file_name
        if path.is_file():
            return path
    found = [p for p in (repo / "snapshots").glob(f"*/{file_name}") if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def hub_checkpoint(model_id: str) -> tuple[str, Path]:
    """(preset, checkpoint path) of an official Hugging Face id, from the local caches (no download).

    Raises ValueError for an unknown id and :class:`CheckpointError` when the file is in no cache.
    """
    preset = HUB_IDS.get(model_id) if isinstance(model_id, str) else None
    if preset is None:
        raise ValueError(f"unknown SAM 2 model id {model_id!r}; the official ids are {', '.join(HUB_IDS)}")
    file_name = official_checkpoint(preset).file_name
    path = _hub_snapshot_file(model_id, file_name)
    if path is not None:
        return preset, path
    own = cached_checkpoint_path(preset)
    if own.is_file():
        return preset, own
    repo = hf_hub_cache() / ("models--" + model_id.replace("/", "--"))
    raise CheckpointError(
        f"{model_id}: its checkpoint {file_name} is not in the Hugging Face cache "
        f"({repo}/snapshots/<revision>/{file_name}) nor in masklet's cache ({own}), and masklet does not "
        f"download from the Hugging Face Hub. Put the file at {own} (download it from "
        f"{checkpoint_url(preset)}, or run `masklet download {preset}`), or pass its path: "
        f"build_sam2(config_file, ckpt_path)"
    )
