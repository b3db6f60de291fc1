"""What the command line says when it cannot go on, and that it says what the Python API says.

Every test runs with an empty cache and a download base on a closed local port: the official checkpoint
can never be had, as on a machine without network.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from masklet import cli
from masklet.checkpoints import build_model
from masklet.cli.common import run_meta
from masklet.inference.image import ImagePredictor
from masklet.inference.prompts import PromptError
from masklet.runtime import dtype_name
from tests.cli_support import CLIP_H, CLIP_W, FAST, refuse_model_loading, run, synthetic_frames, write_clip
from tests.test_cli import offline  # noqa: F401  (autouse: empty cache, unreachable download base)

OFFLINE_FAST = [a for a in FAST if a != "--random-weights"]  # the official file is wanted, and missing


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A 6-frame 96x64 mp4."""
    return write_clip(tmp_path_factory.mktemp("errors") / "clip.mp4")


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    """A 96x64 image: the clip's size, so the image and video messages name the same ranges."""
    path = tmp_path_factory.mktemp("errors") / "photo.png"
    Image.fromarray(synthetic_frames(1)[0]).save(path)
    return path


@pytest.fixture(scope="module")
def image_predictor(photo) -> ImagePredictor:
    """The Python API on the same image, to compare its messages with the command line's."""
    model = build_model("sam2.1_hiera_tiny", device="cpu", dtype="fp32", image_size=256, random_seed=0)
    predictor = ImagePredictor(model)
    predictor.set_image(Image.open(photo))
    return predictor


# ------------------------------------------------------------------------ offline: the CLI's own terms
def _offline_argv(command: str, tmp: Path, photo: Path, clip: Path) -> list:
    """A command that loads a model, with input that passes every check before the model loads."""
    from masklet.eval.synthetic import make_vos_dataset

    (tmp / "instances.json").write_text("{}")
    if command == "eval vos":
        make_vos_dataset(tmp / "vos", 1, 3, size=(32, 48), objects=(1, 1), seed=0)
    return {
        "segment": ["segment", photo, "--point", "10,10", "--out", tmp / "out"],
        "everything": ["everything", photo, "--out", tmp / "out"],
        "track": ["track", clip, "--point", "0:10,10@1", "--out", tmp / "out"],
        "track --stream": ["track", "--stream", clip, "--point", "0:10,10@1", "--out", tmp / "out"],
        "studio": ["studio", clip, "--project", tmp / "project", "--port", "0"],
        "eval vos": ["eval", "vos", "--dataset", tmp / "vos", "--out", tmp / "out"],
        "eval image": ["eval", "image", "--annotations", tmp / "instances.json", "--images", tmp],
    }[command]


@pytest.mark.parametrize(
    "command", ["segment", "everything", "track", "track --stream", "studio", "eval vos", "eval image"]
)
def test_offline_errors_name_the_cli_flags(command, capsys, tmp_path, offline, photo, clip):  # noqa: F811
    argv = _offline_argv(command, tmp_path, photo, clip)
    rc, _, stderr = run(capsys, *argv, *OFFLINE_FAST)
    url = f"{offline}/092824/sam2.1_hiera_tiny.pt"
    cached = tmp_path / "cache" / "sam2.1_hiera_tiny.pt"
    assert rc == 2 and stderr.count("\n") == 1, stderr
    assert re.fullmatch(
        rf"masklet {command.split()[0]}: error: could not download {re.escape(url)} \(.*\)\. If you are "
        rf"offline or the host is blocked, download {re.escape(url)} another way and save it as "
        rf"{re.escape(str(cached))} \(masklet looks there first\), or pass --checkpoint PATH "
        r"\(or --random-weights to test the pipeline\)\n",
        stderr,
    ), stderr
    assert "checkpoint=" not in stderr


def test_the_python_api_keeps_naming_its_arguments(offline):  # noqa: F811
    from masklet.checkpoints import CheckpointUnavailable

    with pytest.raises(CheckpointUnavailable) as err:
        build_model("sam2.1_hiera_tiny")
    assert str(err.value).endswith("(masklet looks there first), or pass the file's path as checkpoint=...")
    assert "--checkpoint" not in str(err.value)


@pytest.mark.parametrize(
    "options, message",
    [
        (
            ["--checkpoint", "{tmp}/nope.pt"],
            r"--checkpoint .*nope\.pt: no such file; expected a \.pt or \.safetensors file\. Check the path, "
            r"or leave --checkpoint out to use the official file \(downloaded once into the cache\)",
        ),
        (
            ["--model", "auto"],
            r"--model auto infers the preset from a checkpoint file: add --checkpoint PATH, or give a preset "
            r"name such as sam2\.1_hiera_tiny",
        ),
    ],
)
def test_checkpoint_options_are_named_in_errors(options, message, capsys, tmp_path, photo):
    options = [o.format(tmp=tmp_path) for o in options]
    argv = ["segment", photo, "--point", "10,10", "--out", tmp_path / "out", *options, *OFFLINE_FAST]
    rc, _, stderr = run(capsys, *argv)
    assert rc == 2 and re.fullmatch(rf"masklet segment: error: {message}\n", stderr), stderr


def test_train_names_the_config_key_for_missing_start_weights(capsys, tmp_path, monkeypatch):
    refuse_model_loading(monkeypatch)
    monkeypatch.setattr("masklet.train.Trainer", _no_trainer)
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"model": {"checkpoint": "missing.pt"}}))
    rc, _, stderr = run(capsys, "train", config, "--out", tmp_path / "run")
    assert (rc, stderr) == (
        2,
        f"masklet train: error: model.checkpoint {tmp_path / 'missing.pt'}: no such file; expected a .pt "
        f"or .safetensors file. Fix the path (in {config} or with --set model.checkpoint=PATH), or set it "
        "to null to start from random weights (model.init_seed)\n",
    )


def _no_trainer(*args, **kwargs):
    raise AssertionError("the trainer started before model.checkpoint was checked")


# ------------------------------------------------------------------ negative numbers are values
@pytest.mark.parametrize(
    "argv, option, expected",
    [
        (["segment", "p.png", "--point", "-5,10"], "point", [[-5.0, 10.0, 1.0]]),
        (["segment", "p.png", "--point", "-.5,-2,0"], "point", [[-0.5, -2.0, 0.0]]),
        (["segment", "p.png", "--box", "-5,-1,30,40"], "box", [[-5.0, -1.0, 30.0, 40.0]]),
        (["track", "v.mp4", "--point", "-1:5,5@1"], "point", ["-1:5,5@1"]),
        (["track", "v.mp4", "--box", "-1:5,5,9,9@1"], "box", ["-1:5,5,9,9@1"]),
        (["track", "v.mp4", "--point", "0:5,5@1", "--start", "-2"], "start", -2),
    ],
)
def test_negative_numbers_are_values_not_options(argv, option, expected):
    args = cli.build_parser().parse_args([*argv, "--out", "o"])
    assert getattr(args, option) == expected


def test_unknown_options_are_still_refused(capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["segment", "p.png", "--point", "-x", "--out", "o"])
    assert "argument --point: expected one argument" in capsys.readouterr().err


def _api_message(predictor: ImagePredictor, **prompt) -> str:
    with pytest.raises(PromptError) as err:
        predictor.predict(**prompt)
    return str(err.value)


# (segment option, the same prompt for the API); every one is refused by both, with the same words
SAME_RULES = {
    "negative point": (["--point", "-5,10"], dict(point_coords=[[-5, 10]], point_labels=[1])),
    "box past the left edge": (["--box", "-5,10,50,40"], dict(box=[-5, 10, 50, 40])),
    "box past the bottom edge": (["--box", "10,10,50,64.5"], dict(box=[10, 10, 50, 64.5])),
    "flipped box": (["--box", "50,40,10,10"], dict(box=[50, 40, 10, 10])),
}


@pytest.mark.parametrize("case", SAME_RULES)
def test_segment_refuses_what_the_api_refuses_with_its_words(
    case, capsys, monkeypatch, tmp_path, photo, image_predictor
):
    options, prompt = SAME_RULES[case]
    message = _api_message(image_predictor, **prompt)
    assert "outside the image (x in [0, 96], y in [0, 64])" in message or "x1 < x0 or y1 < y0" in message
    refuse_model_loading(monkeypatch, "the prompts")
    rc, stdout, stderr = run(capsys, "segment", photo, *options, "--out", tmp_path / "out", *FAST)
    assert (rc, stdout, stderr) == (2, "", f"masklet segment: error: {message}\n")


@pytest.mark.parametrize("case", SAME_RULES)
def test_track_refuses_what_the_api_refuses_with_its_words(
    case, capsys, monkeypatch, tmp_path, clip, image_predictor
):
    options, prompt = SAME_RULES[case]
    message = _api_message(image_predictor, **prompt)
    spec = f"0:{options[1]}@1"
    refuse_model_loading(monkeypatch, "the prompts")
    rc, _, stderr = run(capsys, "track", clip, options[0], spec, "--out", tmp_path / "out", *FAST)
    assert (rc, stderr) == (2, f"masklet track: error: {options[0]} '{spec}': {message}\n")


def test_a_box_on_the_image_edges_is_fine(capsys, tmp_path, photo):
    rc, _, stderr = run(capsys, "segment", photo, "--box", f"0,0,{CLIP_W},{CLIP_H}", "--out", tmp_path, *FAST)
    assert (rc, stderr) == (0, "")


# ------------------------------------------------------------------------------- one dtype spelling
def test_every_json_spells_dtypes_the_same(capsys, tmp_path, photo, clip):
    model = ["--image-size", "256", "--device", "cpu", "--random-weights"]
    mixed = [*model, "--dtype", "bf16", "--encoder-dtype", "fp32"]
    runs = {
        "segment": (["segment", photo, "--point", "10,10", *mixed], "photo.json"),
        "everything": (["everything", photo, "--points-per-side", "2", *mixed], "photo_everything.json"),
        "track": (["track", clip, "--point", "0:10,10@1", "--max-frames", "2", *mixed], "masks.json"),
    }
    for name, (argv, file_name) in runs.items():
        out = tmp_path / name
        rc, _, stderr = run(capsys, *argv, "--out", out)
        assert rc == 0, stderr
        doc = json.loads((out / file_name).read_text())
        doc = doc["info"] if name == "everything" else doc
        assert (doc["dtype"], doc["encoder_dtype"]) == ("bfloat16", "float32"), name
    out = tmp_path / "plain"
    assert run(capsys, "segment", photo, "--point", "10,10", *model, "--dtype", "fp32", "--out", out)[0] == 0
    doc = json.loads((out / "photo.json").read_text())
    assert doc["dtype"] == "float32" and "encoder_dtype" not in doc


def test_run_meta_spells_dtypes_like_the_dtype_option():
    model = build_model("sam2.1_hiera_tiny", device="cpu", dtype="bf16", image_size=256, random_seed=0)
    assert run_meta(model, "random") == {
        "model": "sam2.1_hiera_tiny",
        "weights": "random",
        "dtype": "bfloat16",
    }
    assert (dtype_name(torch.bfloat16), dtype_name(torch.float32)) == ("bfloat16", "float32")
