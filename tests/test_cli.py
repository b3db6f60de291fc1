"""The ``masklet`` command line, run in-process through ``masklet.cli.main`` (and twice as a real process).

Model runs use a seeded random sam2.1_hiera_tiny checkpoint at ``--image-size 256`` in float32. Every
test runs with an empty cache and a download base on a closed local port, so nothing reaches the
network; the download test serves its file from a local HTTP server.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import masklet.checkpoints
from masklet import cli
from masklet.checkpoints import save_checkpoint
from masklet.inference.image import ImagePredictor
from masklet.io.masks import decode_rle
from masklet.modeling.sam2 import SAM2Model
from masklet.presets import PRESETS, get_preset
from tests.cli_support import run
from tests.conftest import synthetic_image
from tests.test_checkpoints import closed_port
from tests.test_checkpoints import server as server  # the local HTTP server fixture

REPO = Path(__file__).resolve().parents[1]
H, W = 96, 128  # not square, so a swapped height and width shows
FAST = ["--image-size", "256", "--dtype", "fp32", "--device", "cpu"]


def fast(args: list) -> list:
    """``args`` plus the FAST options it does not set itself."""
    pairs = zip(FAST[::2], FAST[1::2])
    return list(args) + [x for flag, value in pairs if flag not in args for x in (flag, value)]


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path) -> str:
    """An empty cache and an unreachable download base for every test; returns that base."""
    base = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("MASKLET_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MASKLET_DOWNLOAD_BASE", base)
    monkeypatch.delenv("MASKLET_DEBUG", raising=False)
    return base


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A seeded random sam2.1_hiera_tiny checkpoint in the official format."""
    torch.manual_seed(0)
    return save_checkpoint(
        SAM2Model(get_preset("sam2.1_hiera_tiny")), tmp_path_factory.mktemp("cli") / "tiny21.pt"
    )


@pytest.fixture
def image_path(tmp_path) -> Path:
    path = tmp_path / "photo.png"
    Image.fromarray(synthetic_image(H, W)).save(path)
    return path


@pytest.fixture
def predict_calls(monkeypatch) -> list[dict]:
    """Records the keyword arguments of every ImagePredictor.predict call (the call still runs)."""
    calls = []
    original = ImagePredictor.predict

    def spy(self, *args, **kwargs):
        calls.append(kwargs)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ImagePredictor, "predict", spy)
    return calls


def check_outputs(out: Path, stem: str, hw: tuple[int, int], n_masks: int) -> dict:
    """Check the files segment/demo write for one image and return the parsed JSON."""
    result = json.loads((out / f"{stem}.json").read_text())
    assert result["image_size_hw"] == list(hw)
    assert result["overlay"] == f"{stem}_overlay.png"
    with Image.open(out / result["overlay"]) as overlay:
        assert overlay.size == (hw[1], hw[0]) and overlay.mode == "RGB"
    assert [m["index"] for m in result["masks"]] == list(range(n_masks))
    assert not (out / f"{stem}_mask{n_masks}.png").exists()
    for i, record in enumerate(result["masks"]):
        assert record["png"] == f"{stem}_mask{i}.png"
        with Image.open(out / record["png"]) as f:
            png = np.asarray(f)
        assert png.shape == hw and png.dtype == np.uint8
        assert set(np.unique(png).tolist()) <= {0, 255}
        mask = png == 255
        assert np.array_equal(decode_rle(record["segmentation"]), mask)
        assert record["segmentation"]["size"] == list(hw)
        assert record["area"] == int(mask.sum())
        assert record["bbox_xywh"] == _bbox_xywh(mask)
        assert isinstance(record["score"], float) and np.isfinite(record["score"])
    return result


def _bbox_xywh(mask: np.ndarray) -> list[int]:
    """COCO [x, y, width, height] of the foreground, inclusive of its last row and column."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return [0, 0, 0, 0]
    x, y = int(cols.min()), int(rows.min())
    return [x, y, int(cols.max()) - x + 1, int(rows.max()) - y + 1]


def _as_list(x):
    return None if x is None else np.asarray(x).tolist()


# ------------------------------------------------------------------------------------------- segment

SEGMENT_CASES = {
    # name: (prompt arguments, masks written, what predict() must receive)
    "one point": (["--point", "64,40"], 1, ([[64, 40]], [1], None, True)),
    "object and background points": (
        ["--point", "64,40", "--point", "10,12,0"],
        1,
        ([[64, 40], [10, 12]], [1, 0], None, False),
    ),
    "box": (["--box", "20,10,100,80"], 1, (None, None, [20, 10, 100, 80], False)),
    "two boxes": (
        ["--box", "20,10,60,50", "--box", "70,30,120,90"],
        2,
        (None, None, [[20, 10, 60, 50], [70, 30, 120, 90]], False),
    ),
    "multimask": (["--point", "64,40", "--multimask"], 3, ([[64, 40]], [1], None, True)),
}


@pytest.mark.parametrize("case", SEGMENT_CASES)
def test_segment_writes_masks_overlay_and_json(case, capsys, tmp_path, image_path, checkpoint, predict_calls):
    prompts, n_masks, (coords, labels, box, multimask_output) = SEGMENT_CASES[case]
    out = tmp_path / "out"
    rc, stdout, stderr = run(
        capsys, "segment", image_path, *prompts, "--out", out, "--checkpoint", checkpoint, *FAST
    )
    assert (rc, stderr) == (0, "")
    call = predict_calls[0]
    assert len(predict_calls) == 1
    assert _as_list(call["point_coords"]) == coords and _as_list(call["point_labels"]) == labels
    assert _as_list(call["box"]) == box and call["multimask_output"] is multimask_output

    result = check_outputs(out, "photo", (H, W), n_masks)
    assert result["weights"] == f"checkpoint:{checkpoint}"
    assert result["model"] == "sam2.1_hiera_tiny" and result["dtype"] == "float32"
    assert result["image"] == str(image_path)
    scores = ", ".join(f"{m['score']:.3f}" for m in result["masks"])
    assert re.fullmatch(
        rf"photo\.png: {n_masks} mask\(s\), scores {scores}, \d+\.\d\d s -> {re.escape(str(out))}\n", stdout
    )


def test_segment_random_weights_are_labelled(capsys, tmp_path, image_path):
    out = tmp_path / "out"
    rc, stdout, stderr = run(
        capsys, "segment", image_path, "--box", "20,10,100,80", "--out", out, "--random-weights", *FAST
    )
    assert (rc, stderr) == (0, "")
    assert "[RANDOM WEIGHTS]" in stdout
    assert check_outputs(out, "photo", (H, W), 1)["weights"] == "random"


def test_segment_infers_the_preset_from_the_checkpoint(capsys, tmp_path, image_path):
    torch.manual_seed(1)
    ckpt = save_checkpoint(SAM2Model(get_preset("sam2_hiera_tiny")), tmp_path / "sam2-tiny.pt")
    out = tmp_path / "out"
    args = ["segment", image_path, "--point", "64,40", "--out", out, "--checkpoint", ckpt, *FAST]
    rc, stdout, stderr = run(capsys, *args)
    assert (rc, stderr) == (0, "") and "[RANDOM WEIGHTS]" not in stdout
    assert check_outputs(out, "photo", (H, W), 1)["model"] == "sam2_hiera_tiny"

    rc, stdout, stderr = run(capsys, *args, "--model", "sam2.1_hiera_t")
    assert (rc, stdout, stderr) == (
        2,
        "",
        f"masklet segment: error: --checkpoint {ckpt} holds sam2_hiera_tiny weights, but --model is "
        "sam2.1_hiera_t: pass --model sam2_hiera_tiny, or leave --model out to infer it from the file\n",
    )


def test_encoder_dtype_reaches_the_model(checkpoint):
    from types import SimpleNamespace

    from masklet.cli.common import load_model

    args = SimpleNamespace(
        device="cpu", dtype="bf16", encoder_dtype="fp32", model=None, checkpoint=checkpoint,
        random_weights=False, image_size=256, threads=None, compile=False,
    )  # fmt: skip
    model, label = load_model(args)
    assert label == f"checkpoint:{checkpoint}"
    assert {p.dtype for p in model.image_encoder.parameters()} == {torch.float32}
    assert {p.dtype for p in model.memory_attention.parameters()} == {torch.bfloat16}
    args.random_weights, args.checkpoint = True, None
    model, label = load_model(args)
    assert label == "random" and model.dtype == torch.float32
    assert {p.dtype for p in model.memory_encoder.parameters()} == {torch.bfloat16}


def test_write_outputs_encodes_known_masks(tmp_path):
    image = synthetic_image(H, W)
    yy, xx = np.mgrid[:H, :W]
    disc = (yy - 40) ** 2 + (xx - 50) ** 2 < 20**2
    rect = np.zeros((H, W), bool)
    rect[5:9, 100:127] = True
    masks = np.stack([disc, rect])
    result = cli.write_outputs(tmp_path, "x", image, masks, np.array([0.5, 0.25]), {"weights": "random"})
    assert result == json.loads((tmp_path / "x.json").read_text())
    check_outputs(tmp_path, "x", (H, W), 2)
    disc_rec, rect_rec = result["masks"]
    assert (disc_rec["area"], disc_rec["bbox_xywh"], disc_rec["score"]) == (
        int(disc.sum()),
        [31, 21, 39, 39],
        0.5,
    )
    assert (rect_rec["area"], rect_rec["bbox_xywh"], rect_rec["score"]) == (4 * 27, [100, 5, 27, 4], 0.25)
    assert np.array_equal(decode_rle(rect_rec["segmentation"]), rect)
    assert result["weights"] == "random"


# -------------------------------------------------------------------------------------------- errors


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _bad_inputs(tmp: Path) -> None:
    """Files the error cases name: a text file called .png, junk and unfit checkpoints."""
    _write(tmp / "notes.png", b"just text")
    _write(tmp / "bad.pt", b"<html>denied</html>")
    # A 2.1-style file with only a trunk position embedding: every other key is missing.
    sd = {
        "image_encoder.trunk.pos_embed": torch.zeros(1, 96, 7, 7),
        "no_obj_embed_spatial": torch.zeros(1, 64),
    }
    save_checkpoint(sd, tmp / "unfit.pt")


# (arguments, with {tmp}, {img} and {ck} for the temporary folder, image and checkpoint; message regex)
SEGMENT_ERRORS = {
    "missing image": (
        "{tmp}/missing.png --point 1,1 --checkpoint {ck}",
        r"no such image file: .*missing\.png",
    ),
    "not an image": (
        "{tmp}/notes.png --point 1,1 --checkpoint {ck}",
        r"could not read .*notes\.png as an image",
    ),
    "no prompt": ("{img} --checkpoint {ck}", r"give at least one prompt: --point"),
    "point outside": (
        "{img} --point 500,10 --checkpoint {ck}",
        r"point \[500\.0, 10\.0\] lies outside the image \(x in \[0, 128\], y in \[0, 96\]\)",
    ),
    "negative point": (
        "{img} --point -5,10 --checkpoint {ck}",
        r"point \[-5\.0, 10\.0\] lies outside the image \(x in \[0, 128\], y in \[0, 96\]\)",
    ),
    "box partly outside": (
        "{img} --box -5,10,50,40 --checkpoint {ck}",
        r"box \[-5\.0, 10\.0, 50\.0, 40\.0\] reaches outside the image \(x in \[0, 128\], y in \[0, 96\]\); "
        r"coordinates are x, y in pixels of the original image; clip a box that crosses an edge to the image",
    ),
    "flipped box": (
        "{img} --box 50,50,10,10 --checkpoint {ck}",
        r"box \[50\.0, 50\.0, 10\.0, 10\.0\] has x1 < x0 or y1 < y0",
    ),
    "unknown model": (
        "{img} --point 1,1 --model sam3_hiera_tiny",
        r"unknown model preset 'sam3_hiera_tiny'; known presets: .*sam2\.1_hiera_tiny",
    ),
    "corrupt checkpoint": (
        "{img} --point 1,1 --checkpoint {tmp}/bad.pt",
        r"bad\.pt is not a PyTorch checkpoint or a safetensors file",
    ),
    "checkpoint that does not fit": (
        "{img} --point 1,1 --checkpoint {tmp}/unfit.pt --model sam2.1_hiera_tiny",
        r"does not fit the sam2\.1_hiera_tiny model: - \d+ missing key\(s\) .* Was it saved from a different",
    ),
    "nonsense dtype": ("{img} --point 1,1 --checkpoint {ck} --dtype nonsense", r"unknown dtype 'nonsense'"),
    "nonsense encoder dtype": (
        "{img} --point 1,1 --checkpoint {ck} --encoder-dtype fp16",
        r"unknown dtype 'fp16'",
    ),
    "several boxes with points": (
        "{img} --box 1,1,9,9 --box 20,20,40,40 --point 5,5 --checkpoint {ck}",
        r"several --box values segment several objects; points can only go with a single box",
    ),
    "unknown device": (
        "{img} --point 1,1 --checkpoint {ck} --device toaster",
        r"unknown --device 'toaster': use cpu, cuda, cuda:N or mps",
    ),
    "random weights and a checkpoint": (
        "{img} --point 1,1 --checkpoint {ck} --random-weights",
        r"--random-weights and --checkpoint exclude each other",
    ),
    "bad image size": (
        "{img} --point 1,1 --checkpoint {ck} --image-size 100",
        r"image_size must be a multiple of 32",
    ),
    "out is a file": (
        "{img} --point 1,1 --checkpoint {ck} --out {img}",
        r"--out .*photo\.png is a file; expected a folder",
    ),
}


@pytest.mark.parametrize("case", SEGMENT_ERRORS)
def test_segment_errors_are_one_line(case, capsys, tmp_path, image_path, checkpoint):
    _bad_inputs(tmp_path)
    template, message = SEGMENT_ERRORS[case]
    args = fast(["segment", *template.format(tmp=tmp_path, img=image_path, ck=checkpoint).split()])
    if "--out" not in args:
        args += ["--out", tmp_path / "out"]
    rc, stdout, stderr = run(capsys, *args)
    assert (rc, stdout) == (2, "")
    assert stderr.endswith("\n") and stderr.count("\n") == 1, stderr
    assert re.match(rf"masklet segment: error: .*{message}", stderr), stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a machine without CUDA")
def test_segment_on_missing_cuda_is_one_line(capsys, tmp_path, image_path, checkpoint):
    args = ["segment", image_path, "--point", "1,1", "--out", tmp_path / "out", "--device", "cuda"]
    assert run(capsys, *args, "--checkpoint", checkpoint) == (
        2,
        "",
        "masklet segment: error: --device cuda: cuda is not available on this machine; use --device cpu, "
        "or leave --device out to use the best device there is\n",
    )


@pytest.mark.parametrize(
    "point, message",
    [
        ("1;2", r"--point X,Y\[,LABEL\] must be comma-separated numbers, got '1;2'"),
        ("1,2,5", r"--point label must be 1 \(object\) or 0 \(background\), got '1,2,5'"),
        ("1", r"--point X,Y\[,LABEL\] needs 2 or 3 numbers, got '1'"),
    ],
)
def test_segment_bad_point_format_is_a_usage_error(point, message, capsys, tmp_path, image_path):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["segment", str(image_path), "--point", point, "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert exit_info.value.code == 2 and captured.out == ""
    assert captured.err.startswith("usage: masklet segment")
    assert re.fullmatch(
        rf"masklet segment: error: argument --point: {message}", captured.err.splitlines()[-1]
    )


def test_unexpected_errors_are_one_line_with_exit_1(capsys, monkeypatch):
    def broken():
        raise RuntimeError("boom\n  at the second line")

    monkeypatch.setattr(masklet.checkpoints, "list_models", broken)
    assert run(capsys, "models") == (
        1,
        "",
        "masklet models: unexpected error: RuntimeError: boom at the second line "
        "(set MASKLET_DEBUG=1 for the traceback)\n",
    )
    monkeypatch.setenv("MASKLET_DEBUG", "1")
    with pytest.raises(RuntimeError, match="boom"):
        cli.main(["models"])


def test_debug_shows_user_errors_too(capsys, monkeypatch, image_path, tmp_path):
    args = ["segment", image_path, "--out", tmp_path / "out"]
    assert run(capsys, *args)[0] == 2
    monkeypatch.setenv("MASKLET_DEBUG", "1")
    with pytest.raises(cli.CLIError, match="give at least one prompt"):
        cli.main([str(a) for a in args])


# ------------------------------------------------------------------------------- models and download


def test_models_lists_every_preset_with_url_and_cache_state(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("MASKLET_DOWNLOAD_BASE", "http://mirror.test/sam2/")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "sam2_hiera_small.pt").write_bytes(b"\0" * (3 * 2**20))
    rc, stdout, stderr = run(capsys, "models")
    assert (rc, stderr) == (0, "")
    header, *rows = stdout.splitlines()
    assert header.split() == ["name", "alias", "params", "file", "cached", "url"]
    assert len(rows) == 8
    parsed = {}
    for row in rows:
        m = re.fullmatch(r"(\S+) +(\S+) +([\d.]+)M +~(\d+) MB +(no|\d+ MiB)  (\S+)", row)
        assert m, row
        parsed[m[1]] = m.groups()[1:]
    assert set(parsed) == set(PRESETS)
    assert parsed["sam2.1_hiera_large"][2] == "898" and parsed["sam2_hiera_tiny"][2] == "156"
    for name, (alias, _params, _size, cached, url) in parsed.items():
        release = "092824" if name.startswith("sam2.1") else "072824"
        assert url == f"http://mirror.test/sam2/{release}/{name}.pt"
        assert cached == ("3 MiB" if name == "sam2_hiera_small" else "no")
        assert alias in PRESETS[name].aliases
    assert parsed["sam2.1_hiera_large"][1] == "224.4" and parsed["sam2_hiera_tiny"][1] == "38.9"


def test_download_puts_the_file_in_the_cache(capsys, monkeypatch, tmp_path, server):
    body = bytes(range(256)) * 300
    server.routes["/092824/sam2.1_hiera_tiny.pt"] = (body, len(body))
    monkeypatch.setenv("MASKLET_DOWNLOAD_BASE", server.base)
    rc, stdout, _ = run(capsys, "download", "sam2.1_hiera_t")
    target = tmp_path / "cache" / "sam2.1_hiera_tiny.pt"
    assert (rc, stdout) == (0, f"sam2.1_hiera_t: {target}\n")
    assert target.read_bytes() == body

    rc, stdout, stderr = run(capsys, "download", "sam2_hiera_small")
    assert (rc, stdout) == (2, "")
    assert stderr.count("\n") == 1 and stderr.startswith(
        f"masklet download: error: could not download {server.base}/072824/sam2_hiera_small.pt: "
        "the server answered HTTP 404"
    )
    assert stderr.endswith(
        f"save it as {target.parent / 'sam2_hiera_small.pt'} (masklet looks there first), or give a file "
        "kept elsewhere to a command as --checkpoint PATH\n"
    )
    assert sorted(p.name for p in target.parent.iterdir()) == ["sam2.1_hiera_tiny.pt"]


# ------------------------------------------------------------------------------------- a real process


def test_real_process_help_and_error(tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    env.pop("MASKLET_DEBUG", None)
    helped = subprocess.run(
        [sys.executable, "-m", "masklet.cli", "--help"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    commands = set(helped.stdout.split("{", 1)[1].split("}", 1)[0].split(","))
    assert helped.returncode == 0
    assert {"segment", "track", "everything", "models", "download", "demo", "studio"} <= commands
    failed = subprocess.run(
        [sys.executable, "-m", "masklet.cli", "segment", "missing.png", "--point", "1,1", "--out", "o"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert (failed.returncode, failed.stdout) == (2, "")
    assert failed.stderr == "masklet segment: error: no such image file: missing.png\n"
