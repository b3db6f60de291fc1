"""Bad input to the export and to the ONNX backend: one clear error each."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
import pytest
from PIL import Image

from masklet.checkpoints import build_model
from masklet.cli import main
from masklet.export.backend import OnnxBackendError
from tests.conftest import synthetic_image
from tests.export.conftest import PRESET


def export_cli(capsys, *args: str) -> tuple[int, str]:
    rc = main(["export", "onnx", *args])
    return rc, capsys.readouterr().err


def test_unknown_preset(capsys, tmp_path):
    rc, err = export_cli(capsys, "--model", "sam2.1_hiera_huge", "--random-weights", "--out", str(tmp_path))
    assert rc == 2 and "unknown" in err and "sam2.1_hiera_tiny" in err, err
    assert len(err.strip().splitlines()) == 1


def test_checkpoint_of_another_preset(capsys, tmp_path, video_checkpoint):
    # a SAM 2.1 checkpoint named as SAM 2.0: 2.1's extra tensors do not fit
    rc, err = export_cli(
        capsys, "--model", "sam2_hiera_tiny", "--checkpoint", str(video_checkpoint), "--out", str(tmp_path)
    )
    assert rc == 2 and "holds sam2.1_hiera_tiny weights, but --model is sam2_hiera_tiny" in err, err
    assert not (tmp_path / "masklet.json").exists()


@pytest.mark.parametrize("opset", ["11", "17"])
def test_opset_too_old(capsys, tmp_path, opset):
    rc, err = export_cli(capsys, "--random-weights", "--opset", opset, "--out", str(tmp_path))
    assert rc == 2 and f"opset {opset} cannot express" in err and "--opset 18" in err, err


def test_opset_newer_than_onnx_knows(capsys, tmp_path):
    rc, err = export_cli(capsys, "--random-weights", "--opset", "99", "--out", str(tmp_path))
    assert rc == 2 and "opset 99 is newer than the installed onnx" in err, err


def linked_copy(src: Path, dst: Path) -> Path:
    """The export folder with its files linked (the big ones are never changed) and masklet.json copied."""
    dst.mkdir()
    for f in src.iterdir():
        if f.name == "masklet.json":
            shutil.copy(f, dst / f.name)
        else:
            (dst / f.name).symlink_to(f)
    return dst


def test_file_from_another_export(onnx_dir, tmp_path):
    folder = linked_copy(onnx_dir, tmp_path / "mixed")
    proto = onnx.load(str(onnx_dir / "memory_encoder.onnx"))
    meta = {"masklet.preset": "sam2.1_hiera_small", "masklet.export_id": "0" * 32}
    for p in proto.metadata_props:
        p.value = meta.get(p.key, p.value)
    (folder / "memory_encoder.onnx").unlink()
    onnx.save(proto, str(folder / "memory_encoder.onnx"))
    with pytest.raises(
        OnnxBackendError,
        match=r"memory_encoder.onnx comes from another export "
        r"\(sam2.1_hiera_small at 256 px\) than masklet.json describes \(sam2.1_hiera_tiny",
    ):
        build_model("auto", backend="onnx", onnx_dir=folder)


@pytest.mark.parametrize(
    "change,message",
    [
        (
            {"image_size": 512},
            r"image_encoder.onnx comes from another export \(sam2.1_hiera_tiny at 256 px\)",
        ),
        ({"preset": "sam2.1_hiera_small"}, r"comes from another export .* describes \(sam2.1_hiera_small"),
        ({"format_version": 7}, r"format version 7; this masklet reads version 1"),
        ({"constants": {}}, r"constants.no_mem_embed must hold 256 numbers"),
    ],
)
def test_mismatched_manifest(onnx_dir, tmp_path, change, message):
    folder = linked_copy(onnx_dir, tmp_path / "edited")
    data = json.loads((folder / "masklet.json").read_text())
    data.update(change)
    (folder / "masklet.json").write_text(json.dumps(data))
    with pytest.raises(OnnxBackendError, match=message):
        build_model("auto", backend="onnx", onnx_dir=folder)


def test_export_of_another_preset_or_size_than_asked(onnx_dir):
    with pytest.raises(
        OnnxBackendError, match="holds an export of sam2.1_hiera_tiny, not of sam2.1_hiera_small"
    ):
        build_model("sam2.1_hiera_small", backend="onnx", onnx_dir=onnx_dir)
    with pytest.raises(OnnxBackendError, match="exported at image size 256, not 512"):
        build_model("sam2.1_hiera_tiny", backend="onnx", onnx_dir=onnx_dir, image_size=512)


def test_folder_without_manifest(tmp_path):
    with pytest.raises(OnnxBackendError, match="has no masklet.json: it is not a masklet ONNX export"):
        build_model("auto", backend="onnx", onnx_dir=tmp_path)


def test_cli_backend_errors(capsys, tmp_path, onnx_dir):
    Image.fromarray(synthetic_image(64, 64)).save(tmp_path / "x.jpg")
    seg = f"segment {tmp_path / 'x.jpg'} --point 10,10 --out {tmp_path} --backend onnx".split()
    assert main(seg) == 2
    assert "--backend onnx needs --onnx-dir" in capsys.readouterr().err
    assert main([*seg, "--onnx-dir", str(onnx_dir), "--dtype", "bf16"]) == 2
    assert "--backend onnx computes in float32" in capsys.readouterr().err
    assert main([*seg, "--onnx-dir", str(onnx_dir), "--model", "sam2.1_hiera_small"]) == 2
    assert "holds an export of sam2.1_hiera_tiny, not of sam2.1_hiera_small" in capsys.readouterr().err


def test_cli_segment_on_the_onnx_backend(capsys, tmp_path, onnx_dir):
    seg = f"segment {tmp_path / 'x.jpg'} --point 10,10 --out {tmp_path / 'out'}".split()
    Image.fromarray(synthetic_image(64, 64)).save(tmp_path / "x.jpg")
    assert main([*seg, "--backend", "onnx", "--onnx-dir", str(onnx_dir)]) == 0, capsys.readouterr().err
    assert any((tmp_path / "out").iterdir())


def test_export_of_another_family_than_asked(exported):
    """A folder of EdgeTAM files asked for as EfficientTAM (and the other way round): the manifest's
    preset decides, with the same message as within a family."""
    edge, efficient = exported("edgetam").onnx_dir, exported("efficienttam_ti_1").onnx_dir
    with pytest.raises(OnnxBackendError, match="holds an export of edgetam, not of efficienttam_ti_1"):
        build_model("efficienttam_ti_1", backend="onnx", onnx_dir=edge)
    with pytest.raises(OnnxBackendError, match="holds an export of efficienttam_ti_1, not of edgetam"):
        build_model("edgetam", backend="onnx", onnx_dir=efficient)
    # a variant of the same size has the same weights' shapes but another memory attention
    with pytest.raises(
        OnnxBackendError, match="holds an export of efficienttam_ti_1, not of efficienttam_ti"
    ):
        build_model("efficienttam_ti", backend="onnx", onnx_dir=efficient)


def test_file_from_another_family(exported, tmp_path):
    folder = linked_copy(exported("edgetam").onnx_dir, tmp_path / "mixed")
    (folder / "memory_attention.onnx").unlink()
    (folder / "memory_attention.onnx").symlink_to(exported(PRESET).onnx_dir / "memory_attention.onnx")
    with pytest.raises(
        OnnxBackendError,
        match=r"memory_attention.onnx comes from another export \(sam2.1_hiera_tiny at 256 px\) than "
        r"masklet.json describes \(edgetam at 256 px\)",
    ):
        build_model("auto", backend="onnx", onnx_dir=folder)


def test_image_size_the_perceiver_cannot_take(capsys, tmp_path):
    rc, err = export_cli(
        capsys, "--model", "edgetam", "--random-weights", "--image-size", "320", "--out", str(tmp_path)
    )
    assert rc == 2 and "image_size must be a multiple of 256" in err and "got 320" in err, err
    assert len(err.strip().splitlines()) == 1
