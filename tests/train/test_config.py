"""Training configs: YAML values only, unknown keys and bad values stopped with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from masklet.train import ConfigError, TrainConfig, config_from_dict, config_to_dict, load_config
from masklet.train.config import PromptConfig

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_synthetic.yaml"


def test_defaults_and_round_trip():
    cfg = config_from_dict({})
    assert cfg == TrainConfig()
    assert cfg.prompts == PromptConfig(prob_mask=0.5, prob_click=0.25, prob_box=0.25)
    assert cfg.loss.focal / cfg.loss.dice == 20
    assert cfg.train.freeze == ("image_encoder",)
    full = config_to_dict(cfg)
    assert config_from_dict(yaml.safe_load(yaml.safe_dump(full))) == cfg


def test_values_are_converted_to_the_field_types():
    cfg = config_from_dict(
        {
            "optim": {"lr": "3e-4", "betas": [0.9, 0.95]},
            "data": {"sources": [{"kind": "coco", "root": "imgs", "annotations": "a.json"}]},
            "train": {"freeze": ["image_encoder", "sam_prompt_encoder"]},
        }
    )
    assert cfg.optim.lr == 3e-4 and cfg.optim.betas == (0.9, 0.95)
    assert cfg.data.sources[0].kind == "coco" and cfg.train.freeze == ("image_encoder", "sam_prompt_encoder")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {"trian": {}},
            r"unknown config key 'trian' \(did you mean 'train'\?\); valid keys in the config: model",
        ),
        ({"train": {"stpes": 3}}, r"'train.stpes' \(did you mean 'steps'\?\); valid keys in train: steps, "),
        (
            {"data": {"sources": [{"kind": "davis", "root": "x", "splitt": "a"}]}},
            r"'data.sources\[0\].splitt'.*valid keys in data.sources\[0\]: kind, root, annotations, split",
        ),
        ({"train": {"steps": "ten"}}, r"train.steps must be an integer, got 'ten'"),
        ({"train": {"cache_features": "yes"}}, r"train.cache_features must be true or false"),
        ({"data": {"sources": [{"root": "x"}]}}, r"data.sources\[0\] needs the key\(s\) kind"),
        ({"data": {"sources": [{"kind": "kitti", "root": "x"}]}}, r"kind must be one of"),
        ({"prompts": {"prob_mask": 0.9}}, r"must sum to 1"),
        ({"model": {"image_size": 100}}, r"multiple of 32"),
        ({"train": {"freeze": []}}, r"cache_features needs a frozen image encoder"),
        ({"model": []}, r"model must be a mapping"),
    ],
)
def test_bad_configs_name_the_problem(raw, expected):
    with pytest.raises(ConfigError, match=expected):
        config_from_dict(raw)


def test_load_config_resolves_paths_and_overrides(tmp_path):
    path = tmp_path / "sub" / "cfg.yaml"
    path.parent.mkdir()
    path.write_text(
        "# comments are fine\n"
        "data:\n  sources:\n    - {kind: davis, root: ../videos, split: lists/train.txt}\n"
        "train: {steps: 5}\n"
    )
    cfg = load_config(path, {"train.steps": 7, "optim.lr": 0.01})
    assert cfg.data.sources[0].root == str((tmp_path / "videos").resolve())
    assert cfg.data.sources[0].split == str((tmp_path / "sub" / "lists" / "train.txt").resolve())
    assert cfg.train.steps == 7 and cfg.optim.lr == 0.01


def test_load_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {steps: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping of sections"):
        load_config(bad)
    bad.write_text("model: {presett: sam2.1_hiera_tiny}\n")
    with pytest.raises(ConfigError, match="'model.presett'.*did you mean 'preset'"):
        load_config(bad)


def test_example_config_loads():
    cfg = load_config(EXAMPLE)
    assert cfg.model.image_size == 128 and cfg.data.sources[0].kind == "davis"
    text = EXAMPLE.read_text()
    assert "!!" not in text and "masklet.train" not in text.split("#")[0]  # values only, no class names
