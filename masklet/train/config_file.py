"""Reading and writing training configs: YAML files that hold values only.

The file's structure is :class:`~masklet.train.config.TrainConfig`'s: sections and keys are the
dataclass fields, values are checked against their types, and an unknown key is an error naming it,
its section and the valid keys (with a "did you mean" for near misses).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any

from .config import ConfigError, SourceConfig, TrainConfig

__all__ = ["config_from_dict", "config_to_dict", "load_config"]


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a YAML config file (values only) into a :class:`TrainConfig`.

    Relative data paths are resolved against the file's folder. ``overrides`` maps dotted keys to values
    (``{"train.steps": 10}``) applied on top of the file. Raises :class:`ConfigError`.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path} must hold a mapping of sections (model, data, ...), got {type(raw).__name__}"
        )
    for key, value in (overrides or {}).items():
        _set_dotted(raw, key, value)
    return _resolve_paths(config_from_dict(raw), path.parent)


def config_from_dict(raw: dict[str, Any]) -> TrainConfig:
    """Build a :class:`TrainConfig` from nested dicts/lists; ConfigError on unknown keys or bad types."""
    return _build(TrainConfig, raw, "")


def config_to_dict(cfg: Any) -> Any:
    """Plain dicts, lists and scalars (YAML- and ``torch.load(weights_only=True)``-safe) of a config."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: config_to_dict(getattr(cfg, f.name)) for f in fields(cfg)}
    if isinstance(cfg, (tuple, list)):
        return [config_to_dict(v) for v in cfg]
    return cfg


def _set_dotted(raw: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {key}: {part} is not a section")
    node[parts[-1]] = value


def _resolve_paths(cfg: TrainConfig, base: Path) -> TrainConfig:
    def fix(p: str | None) -> str | None:
        if p is None or Path(p).expanduser().is_absolute():
            return p
        return str((base / p).resolve())

    def fix_source(s: SourceConfig | None) -> SourceConfig | None:
        if s is None:
            return None
        split = s.split
        if split is not None and split.endswith(".txt"):
            split = fix(split)
        return dataclasses.replace(s, root=fix(s.root), annotations=fix(s.annotations), split=split)

    data = dataclasses.replace(
        cfg.data, sources=tuple(fix_source(s) for s in cfg.data.sources), val=fix_source(cfg.data.val)
    )
    model = dataclasses.replace(cfg.model, checkpoint=fix(cfg.model.checkpoint))
    return dataclasses.replace(cfg, data=data, model=model)


def _build(cls: type, raw: Any, where: str) -> Any:
    name = where or "the config"
    if not isinstance(raw, dict):
        raise ConfigError(f"{name} must be a mapping of keys to values, got {type(raw).__name__} {raw!r}")
    hints = typing.get_type_hints(cls)
    valid = [f.name for f in fields(cls)]
    kwargs = {}
    for key, value in raw.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in valid:
            close = difflib.get_close_matches(str(key), valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown config key {path!r}{hint}; valid keys in {name}: {', '.join(valid)}")
        kwargs[key] = _convert(hints[key], value, path)
    missing = [
        f.name
        for f in fields(cls)
        if f.name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{name} needs the key(s) {', '.join(missing)}")
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: {exc}") from None


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, path)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{path} must be a list of {len(args)} values, got {value!r}")
        return tuple(_convert(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    return _scalar(tp, value, path)


def _scalar(tp: Any, value: Any, path: str) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{path} must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML reads 1e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{path} must be a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{path} must be a string, got {value!r}")
    return value
