"""Checkpoint registry, cache, download, reading, strict loading and model building.

Downloads run against a local HTTP server on 127.0.0.1 (never the network). Reference state dicts
come from the official implementation with random weights (tests/oracle.py).
"""

from __future__ import annotations

import pickle
import socket
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from masklet import download as dl
from masklet.checkpoints import (
    OFFICIAL_CHECKPOINTS,
    CheckpointError,
    build_model,
    cache_dir,
    cached_checkpoint_path,
    checkpoint_url,
    download_checkpoint,
    infer_preset,
    list_models,
    load_into,
    load_state_dict_file,
    save_checkpoint,
)
from masklet.presets import PRESETS
from tests.oracle import build_reference

SMALL_PRESETS = ["sam2_hiera_tiny", "sam2_hiera_small", "sam2.1_hiera_tiny", "sam2.1_hiera_small"]
BIG_PRESETS = ["sam2_hiera_base_plus", "sam2_hiera_large", "sam2.1_hiera_base_plus", "sam2.1_hiera_large"]


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    """Every test gets its own empty cache and the official download base."""
    monkeypatch.setenv("MASKLET_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MASKLET_DOWNLOAD_BASE", raising=False)


@pytest.fixture(scope="module")
def tiny21():
    """The reference sam2.1_hiera_tiny model (random weights)."""
    return build_reference("sam2.1_hiera_tiny")


def leftovers(folder: Path) -> list[str]:
    """Names of temporary download/save files left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


# ------------------------------------------------------------------------------- registry and cache


def test_registry_covers_every_preset_with_official_urls():
    assert set(OFFICIAL_CHECKPOINTS) == set(PRESETS)
    assert checkpoint_url("sam2_hiera_base_plus") == (
        "https://dl.fbaipublicfiles.com/segment_anything_2/072824/sam2_hiera_base_plus.pt"
    )
    assert checkpoint_url("sam2.1_hiera_l") == (
        "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_large.pt"
    )


def test_download_base_override(monkeypatch):
    monkeypatch.setenv("MASKLET_DOWNLOAD_BASE", "http://mirror.example/sam2/")
    assert checkpoint_url("sam2.1_hiera_tiny") == "http://mirror.example/sam2/092824/sam2.1_hiera_tiny.pt"


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("MASKLET_CACHE", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "a"
    monkeypatch.setenv("MASKLET_CACHE", "")  # empty counts as unset
    assert cache_dir() == tmp_path / "xdg" / "masklet"
    monkeypatch.delenv("MASKLET_CACHE")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "masklet"
    assert (
        cached_checkpoint_path("sam2_hiera_s")
        == tmp_path / "home" / ".cache" / "masklet" / "sam2_hiera_small.pt"
    )


def test_unknown_preset_is_a_clear_error():
    with pytest.raises(
        ValueError, match=r"unknown model preset 'sam3_hiera_tiny'; known presets: .*sam2.1_hiera_tiny"
    ):
        cached_checkpoint_path("sam3_hiera_tiny")


def test_list_models_reports_cache_state():
    path = cached_checkpoint_path("sam2.1_hiera_tiny")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x" * 123)
    rows = {r["name"]: r for r in list_models()}
    assert set(rows) == set(PRESETS)
    row = rows["sam2.1_hiera_tiny"]
    assert row["cached"] is True and row["cached_size"] == 123 and row["cached_path"] == str(path)
    assert row["aliases"] == ["sam2.1_hiera_t"] and row["file_name"] == "sam2.1_hiera_tiny.pt"
    assert row["url"].endswith("/092824/sam2.1_hiera_tiny.pt") and row["version"] == "2.1"
    assert rows["sam2_hiera_large"]["cached"] is False and rows["sam2_hiera_large"]["cached_size"] is None
    assert rows["sam2_hiera_large"]["params"] == 224_430_130 and rows["sam2_hiera_large"]["approx_mb"] == 898


# --------------------------------------------------------------------------------------- infer_preset


def _check_inference(preset: str) -> None:
    model = build_reference(preset)
    sd = model.state_dict()
    assert infer_preset(sd) == preset
    assert infer_preset({f"module.{k}": v for k, v in sd.items()}) == preset
    # the registry's documentation figures are measurements of these very models
    entry = OFFICIAL_CHECKPOINTS[preset]
    assert sum(p.numel() for p in model.parameters()) == entry.params
    assert round(sum(t.numel() * t.element_size() for t in sd.values()) / 1e6) == entry.approx_mb


@pytest.mark.parametrize("preset", SMALL_PRESETS)
def test_infer_preset_small(preset):
    _check_inference(preset)


@pytest.mark.slow
@pytest.mark.parametrize("preset", BIG_PRESETS)
def test_infer_preset_big(preset):
    _check_inference(preset)


def test_infer_preset_errors(tiny21):
    sd = dict(tiny21.state_dict())
    sd["image_encoder.trunk.pos_embed"] = torch.zeros(1, 128, 7, 7)
    with pytest.raises(
        CheckpointError, match=r"SAM 2.1 checkpoint matches no official preset: trunk width 128 "
    ):
        infer_preset(sd)
    with pytest.raises(
        CheckpointError, match=r"no 4-d image_encoder.trunk.pos_embed tensor \(1 keys, e.g. foo\)"
    ):
        infer_preset({"foo": torch.zeros(1)})
    sam1 = {
        "image_encoder.patch_embed.proj.weight": torch.zeros(1),
        "image_encoder.pos_embed": torch.zeros(1),
    }
    with pytest.raises(CheckpointError, match="looks like a SAM 1"):
        infer_preset(sam1)


# ------------------------------------------------------------------------------------ reading files


def test_load_official_and_bare_and_safetensors(tmp_path):
    sd = {"a.weight": torch.randn(3, 4), "b": torch.arange(5)}
    torch.save({"model": sd, "epoch": 3}, tmp_path / "official.pt")
    torch.save(sd, tmp_path / "bare.pt")
    save_checkpoint(sd, tmp_path / "w.safetensors")
    (tmp_path / "w.bin").write_bytes((tmp_path / "w.safetensors").read_bytes())  # recognised by header
    for name in ("official.pt", "bare.pt", "w.safetensors", "w.bin"):
        got = load_state_dict_file(tmp_path / name)
        assert got.keys() == sd.keys(), name
        assert all(torch.equal(got[k], sd[k]) and got[k].device.type == "cpu" for k in sd), name


def test_load_missing_and_directory(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope.pt does not exist; expected a .pt or .safetensors file"):
        load_state_dict_file(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match=r"is a directory; expected a .pt or .safetensors file"):
        load_state_dict_file(tmp_path)


def test_load_truncated_or_corrupt(tmp_path):
    torch.save({"model": {"a": torch.randn(100, 100)}}, tmp_path / "x.pt")
    data = (tmp_path / "x.pt").read_bytes()
    (tmp_path / "half.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.pt").write_bytes(b"")
    zbuf = tmp_path / "other.zip"
    with zipfile.ZipFile(zbuf, "w") as z:
        z.writestr("readme.txt", "not a checkpoint")
    save_checkpoint({"a": torch.randn(100, 100)}, tmp_path / "x.safetensors")
    sdata = (tmp_path / "x.safetensors").read_bytes()
    (tmp_path / "half.safetensors").write_bytes(sdata[: len(sdata) // 2])
    expected = r"is not a valid {} \(truncated or corrupt\?\): .*re-download it: delete it and run again"
    for name in ("half.pt", "empty.pt", "other.zip"):
        with pytest.raises(CheckpointError, match=expected.format("PyTorch checkpoint")):
            load_state_dict_file(tmp_path / name)
    with pytest.raises(CheckpointError, match=expected.format("safetensors file")):
        load_state_dict_file(tmp_path / "half.safetensors")


def test_load_non_torch_file(tmp_path):
    (tmp_path / "page.pt").write_text("<html><body>Access denied</body></html>")
    with pytest.raises(
        CheckpointError, match=r"is not a PyTorch checkpoint or a safetensors file \(it starts with"
    ):
        load_state_dict_file(tmp_path / "page.pt")


class _Opaque:
    """A class the weights-only unpickler must refuse."""


def test_load_refuses_arbitrary_objects(tmp_path):
    with open(tmp_path / "train.pt", "wb") as f:
        pickle.dump({"model": {"a": torch.zeros(1)}, "extra": _Opaque()}, f, protocol=2)
    with pytest.raises(CheckpointError, match=r"holds Python objects besides tensors .*weights_only=False"):
        load_state_dict_file(tmp_path / "train.pt")


def test_load_dict_that_is_not_a_state_dict(tmp_path):
    torch.save({"weights": {"a": torch.zeros(1)}, "step": 4}, tmp_path / "odd.pt")
    with pytest.raises(
        CheckpointError,
        match=r"has no 'model' entry and does not look like a state dict \(found "
        r"top-level keys weights, step\)",
    ):
        load_state_dict_file(tmp_path / "odd.pt")
    torch.save({"model": [1, 2]}, tmp_path / "odd2.pt")
    with pytest.raises(CheckpointError, match=r"its 'model' entry is a list, not a dict of tensors"):
        load_state_dict_file(tmp_path / "odd2.pt")


# ------------------------------------------------------------------------------- save and round trip


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_save_round_trip(tiny21, tmp_path, suffix):
    path = save_checkpoint(tiny21, tmp_path / f"ft{suffix}")
    assert leftovers(tmp_path) == []
    if suffix == ".pt":  # official layout, readable by plain torch.load
        assert torch.load(path, weights_only=True).keys() == {"model"}
    sd, got = tiny21.state_dict(), load_state_dict_file(path)
    assert got.keys() == sd.keys() and all(torch.equal(got[k], sd[k]) for k in sd)
    assert infer_preset(got) == "sam2.1_hiera_tiny"


def test_save_keeps_tensors_that_share_memory(tmp_path):
    w = torch.randn(4, 4)
    path = save_checkpoint({"a": w, "b": w}, tmp_path / "tied.safetensors")
    got = load_state_dict_file(path)
    assert torch.equal(got["a"], w) and torch.equal(got["b"], w)


# ------------------------------------------------------------------------------------------- load_into


def test_load_into_strict_and_prefixed(tiny21):
    sd = {k: v + 1 if v.is_floating_point() else v for k, v in tiny21.state_dict().items()}
    model = build_reference("sam2.1_hiera_tiny")
    load_into(model, {f"module.{k}": v for k, v in sd.items()}, "sam2.1_hiera_t")
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in sd.items())


def test_load_into_wrong_preset(tiny21):
    sd = build_reference("sam2_hiera_tiny").state_dict()
    with pytest.raises(CheckpointError) as err:
        load_into(tiny21, sd, "sam2.1_hiera_tiny")
    assert str(err.value) == (
        "this checkpoint looks like sam2_hiera_tiny, but the model is sam2.1_hiera_tiny: "
        "pass name='sam2_hiera_tiny' or name='auto'"
    )


def test_load_into_reports_missing_unexpected_and_shapes(tiny21):
    sd = dict(tiny21.state_dict())
    dropped = [k for k in sd if k.startswith("sam_mask_decoder.")][:7]
    for k in dropped:
        del sd[k]
    sd["extra.head.weight"] = torch.zeros(2)
    sd["sam_mask_decoder.iou_token.weight"] = torch.zeros(2, 256)
    with pytest.raises(CheckpointError) as err:
        load_into(tiny21, sd, "sam2.1_hiera_tiny")
    msg = str(err.value)
    assert msg.startswith("the checkpoint does not fit the sam2.1_hiera_tiny model:")
    assert f"7 missing key(s) (in the model, not in the file): {', '.join(dropped[:5])}, ... (2 more)" in msg
    assert "1 unexpected key(s) (in the file, not in the model): extra.head.weight" in msg
    assert "1 shape mismatch(es): sam_mask_decoder.iou_token.weight: expected (1, 256), got (2, 256)" in msg


# -------------------------------------------------------------------------------------------- download


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.routes``: path -> (body, announced Content-Length)."""

    def do_GET(self):  # noqa: N802 - the name http.server dispatches to
        if self.path not in self.server.routes:
            self.send_error(404, "Not Found")
            return
        body, announced = self.server.routes[self.path]
        self.send_response(200)
        self.send_header("Content-Length", str(announced))
        self.end_headers()
        self.wfile.write(body)  # HTTP/1.0: the connection closes after this, short or not

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """A local HTTP server in a background thread, stopped at the end of the test."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.routes = {}
    httpd.base = f"http://127.0.0.1:{httpd.server_port}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("progress", [False, True])
def test_download_preset_into_cache(server, monkeypatch, progress):
    body = bytes(range(256)) * 5000
    server.routes["/092824/sam2.1_hiera_tiny.pt"] = (body, len(body))
    monkeypatch.setenv("MASKLET_DOWNLOAD_BASE", server.base)
    path = download_checkpoint("sam2.1_hiera_t", progress=progress)
    assert path == cached_checkpoint_path("sam2.1_hiera_tiny") and path.read_bytes() == body
    assert leftovers(path.parent) == []


def test_download_url_to_directory_and_file(server, tmp_path):
    server.routes["/files/ft.pt"] = (b"abc", 3)
    assert download_checkpoint(f"{server.base}/files/ft.pt", progress=False) == cache_dir() / "ft.pt"
    assert (
        download_checkpoint(f"{server.base}/files/ft.pt", dest=tmp_path, progress=False) == tmp_path / "ft.pt"
    )
    assert download_checkpoint(f"{server.base}/files/ft.pt", tmp_path / "o.pt", False).read_bytes() == b"abc"


def test_download_404(server, monkeypatch):
    monkeypatch.setenv("MASKLET_DOWNLOAD_BASE", server.base)
    target = cached_checkpoint_path("sam2_hiera_tiny")
    with pytest.raises(CheckpointError) as err:
        download_checkpoint("sam2_hiera_tiny", progress=False)
    msg = str(err.value)
    assert f"could not download {server.base}/072824/sam2_hiera_tiny.pt: the server answered HTTP 404" in msg
    assert f"save it as {target}" in msg
    assert not target.exists() and leftovers(target.parent) == []


def test_download_cut_off_leaves_nothing_and_keeps_old_file(server, tmp_path):
    server.routes["/big.pt"] = (b"x" * 1000, 5000)
    old = tmp_path / "big.pt"
    old.write_bytes(b"previous")
    with pytest.raises(CheckpointError, match=r"was cut off after 1000 of 5000 bytes; nothing was saved"):
        download_checkpoint(f"{server.base}/big.pt", dest=old, progress=False)
    assert old.read_bytes() == b"previous" and leftovers(tmp_path) == []
    with pytest.raises(CheckpointError, match="cut off"):
        download_checkpoint(f"{server.base}/big.pt", dest=tmp_path / "new.pt", progress=False)
    assert not (tmp_path / "new.pt").exists() and leftovers(tmp_path) == []


def test_download_unreachable_host(monkeypatch):
    base = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("MASKLET_DOWNLOAD_BASE", base)
    target = cached_checkpoint_path("sam2.1_hiera_small")
    with pytest.raises(CheckpointError) as err:
        download_checkpoint("sam2.1_hiera_small", progress=False)
    msg = str(err.value)
    assert msg.startswith(f"could not download {base}/092824/sam2.1_hiera_small.pt (")
    assert (
        f"If you are offline or the host is blocked, download {base}/092824/sam2.1_hiera_small.pt another "
        f"way and save it as {target}" in msg
    )
    assert not target.exists() and leftovers(target.parent) == []


def test_download_interrupted_removes_temp_file(server, monkeypatch, tmp_path):
    server.routes["/f.pt"] = (b"y" * 10, 10)

    class InterruptingBar(dl.tqdm):
        def update(self, n=1):
            raise KeyboardInterrupt

    monkeypatch.setattr(dl, "tqdm", InterruptingBar)
    with pytest.raises(KeyboardInterrupt):
        download_checkpoint(f"{server.base}/f.pt", dest=tmp_path / "f.pt", progress=False)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------- build_model


def test_build_model_argument_errors():
    with pytest.raises(
        ValueError, match=r"name='auto' infers the preset from a checkpoint file, but no checkpoint"
    ):
        build_model("auto")
    with pytest.raises(ValueError, match="unknown dtype 'half'"):
        build_model("sam2.1_hiera_tiny", dtype="half")
    with pytest.raises(ValueError, match="dtype must be float32 or bfloat16, got torch.float16"):
        build_model("sam2.1_hiera_tiny", dtype=torch.float16)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available; pass device='cpu' or None"):
            build_model("sam2.1_hiera_tiny", device="cuda")


def test_build_model_backend_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown backend 'tensorrt': use 'torch' or 'onnx'"):
        build_model("sam2.1_hiera_tiny", backend="tensorrt")
    # the arguments are refused before the export folder is read (tmp_path holds no export)
    for torch_only in ({"checkpoint": tmp_path / "x.pt"}, {"random_seed": 0}, {"compile": True}):
        with pytest.raises(
            ValueError, match="ONNX backend runs the weights of its exported files: leave out checkpoint"
        ):
            build_model("sam2.1_hiera_tiny", backend="onnx", onnx_dir=tmp_path, **torch_only)


def test_build_model_with_random_weights_is_seeded_and_cast_like_loaded_ones():
    from masklet.modeling.sam2 import SAM2Model
    from masklet.presets import get_preset

    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    model = build_model("sam2.1_hiera_t", device="cpu", dtype="bf16", image_size=128, random_seed=7)
    assert torch.equal(torch.random.get_rng_state(), before)  # the global generator is left alone
    torch.manual_seed(7)
    plain = SAM2Model(get_preset("sam2.1_hiera_tiny", 128)).state_dict()
    assert model.cfg.name == "sam2.1_hiera_tiny" and model.cfg.image_size == 128 and not model.training
    assert model.dtype == torch.bfloat16 and model.head_dtype == torch.float32
    for key, value in model.state_dict().items():
        assert torch.equal(value.float(), plain[key].to(value.dtype).float()), key
    other = build_model("sam2.1_hiera_tiny", device="cpu", image_size=128, random_seed=8)
    assert not torch.equal(other.no_mem_embed, model.no_mem_embed.float())
    with pytest.raises(ValueError, match="random_seed draws random weights instead of loading a checkpoint"):
        build_model("sam2.1_hiera_tiny", "some.pt", random_seed=0)
    with pytest.raises(ValueError, match="unknown model preset 'auto'"):
        build_model("auto", random_seed=0)


def test_build_model_from_checkpoint_is_exact(reference_checkpoint):
    path = reference_checkpoint("sam2.1_hiera_tiny")
    model = build_model("sam2.1_hiera_tiny", checkpoint=path, device="cpu")
    assert not model.training
    expected = torch.load(path, map_location="cpu", weights_only=True)["model"]
    got = model.state_dict()
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k], expected[k]) for k in expected)


def test_build_model_auto_and_bf16(reference_checkpoint):
    model = build_model(
        "auto", checkpoint=str(reference_checkpoint("sam2_hiera_tiny")), device="cpu", dtype="bf16"
    )
    assert model.cfg.name == "sam2_hiera_tiny" and model.cfg.image_size == 1024
    assert infer_preset(model.state_dict()) == "sam2_hiera_tiny"
    heavy = {p.dtype for m in model.heavy_modules() for p in m.parameters()}
    heads = {p.dtype for n, p in model.named_parameters() if n.startswith(("sam_", "obj_ptr", "no_"))}
    assert heavy == {torch.bfloat16} and heads == {torch.float32}
    assert model.dtype == torch.bfloat16 and model.head_dtype == torch.float32


def test_build_model_bf16_memory_with_float32_encoder(reference_checkpoint):
    path = reference_checkpoint("sam2.1_hiera_tiny")
    kw = dict(checkpoint=path, device="cpu", image_size=256)
    mixed = build_model("sam2.1_hiera_tiny", dtype="bf16", encoder_dtype="fp32", **kw)
    full = build_model("sam2.1_hiera_tiny", **kw)
    enc = {p.dtype for p in mixed.image_encoder.parameters()}
    mem = {p.dtype for m in (mixed.memory_attention, mixed.memory_encoder) for p in m.parameters()}
    assert enc == {torch.float32} and mem == {torch.bfloat16} and mixed.dtype == torch.float32
    # the encoder holds the checkpoint's float32 values, not bf16-rounded ones
    expected = torch.load(path, map_location="cpu", weights_only=True)["model"]
    got = mixed.state_dict()
    assert all(torch.equal(got[k], expected[k]) for k in expected if k.startswith("image_encoder."))
    with torch.inference_mode():
        image = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
        a, b = mixed.encode_image(image), full.encode_image(image)
        assert torch.equal(a.image_embed, b.image_embed)
        assert all(torch.equal(x, y) for x, y in zip(a.high_res, b.high_res, strict=True))
        mem_a, _ = mixed.encode_memory(a.image_embed, torch.randn(1, 1, 256, 256), torch.ones(1, 1))
        assert mem_a.dtype == torch.float32 and torch.isfinite(mem_a).all()
        pix = mixed.attend_to_memories(a.image_embed, a.pos[-1], [(1, mem_a)], [], 16)
        assert pix.shape == a.image_embed.shape and torch.isfinite(pix).all()
    with pytest.raises(ValueError, match="unknown dtype"):
        build_model("sam2.1_hiera_tiny", encoder_dtype="fp16", **kw)


def test_build_model_wrong_preset(reference_checkpoint):
    with pytest.raises(
        CheckpointError,
        match=r"^this checkpoint looks like sam2_hiera_tiny, but the model is "
        r"sam2.1_hiera_tiny: pass name='sam2_hiera_tiny' or name='auto'$",
    ):
        build_model("sam2.1_hiera_tiny", checkpoint=reference_checkpoint("sam2_hiera_tiny"), device="cpu")


def test_build_model_uses_cache_then_downloads(reference_checkpoint, server, monkeypatch):
    src = reference_checkpoint("sam2.1_hiera_tiny")
    monkeypatch.setenv("MASKLET_DOWNLOAD_BASE", f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(CheckpointError, match=f"save it as {cached_checkpoint_path('sam2.1_hiera_tiny')}"):
        build_model("sam2.1_hiera_tiny", device="cpu")
    body = src.read_bytes()
    server.routes["/092824/sam2.1_hiera_tiny.pt"] = (body, len(body))
    monkeypatch.setenv("MASKLET_DOWNLOAD_BASE", server.base)
    first = build_model("sam2.1_hiera_t", device="cpu")
    assert cached_checkpoint_path("sam2.1_hiera_tiny").read_bytes() == body
    server.routes.clear()  # the second build must come from the cache alone
    second = build_model("sam2.1_hiera_tiny", device="cpu")
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))


def test_build_model_from_url_at_other_image_size(reference_checkpoint, server):
    body = reference_checkpoint("sam2.1_hiera_tiny").read_bytes()
    server.routes["/ft/tuned.pt"] = (body, len(body))
    model = build_model("auto", checkpoint=f"{server.base}/ft/tuned.pt", device="cpu", image_size=512)
    assert (cache_dir() / "tuned.pt").read_bytes() == body
    assert model.cfg.name == "sam2.1_hiera_tiny" and model.cfg.image_size == 512
