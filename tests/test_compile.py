"""Opt-in torch.compile: same outputs as eager (traced through the plain ops), and a graceful fallback."""

from __future__ import annotations

import pytest
import torch

from masklet.checkpoints import build_model
from masklet.compile import compile_model, compile_status, warm_up


def _tiny():
    return build_model("sam2.1_hiera_tiny", device="cpu", dtype=torch.float32, image_size=128, random_seed=0)


def test_compiled_modules_match_eager():
    torch._dynamo.reset()
    model = _tiny()
    x = torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        want = model.encode_image(x)
    compile_model(model, backend="eager")  # dynamo's tracing without code generation: fast to test
    assert compile_status(model) == {"image_encoder": "compiled", "memory_attention": "compiled"}
    assert warm_up(model) > 0
    with torch.inference_mode():
        got = model.encode_image(x)
    assert compile_status(model)["image_encoder"] == "compiled", "it must not have fallen back"
    for a, b in zip([want.image_embed, *want.high_res], [got.image_embed, *got.high_res]):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4), (a - b).abs().max()
    compile_model(model, backend="eager")  # idempotent
    assert compile_status(model)["image_encoder"] == "compiled"


def test_failure_falls_back_to_eager_with_one_warning(monkeypatch):
    model = _tiny()
    x = torch.zeros(1, 3, 128, 128)
    with torch.inference_mode():
        want = model.encode_image(x).image_embed

    def broken(fn, **kwargs):
        def run(*args, **kw):
            raise RuntimeError("no C++ compiler found\nmore detail")

        return run

    monkeypatch.setattr(torch, "compile", broken)
    compile_model(model)
    with pytest.warns(
        RuntimeWarning, match="torch.compile of image_encoder failed .*no C\\+\\+ compiler found"
    ):
        with torch.inference_mode():
            got = model.encode_image(x).image_embed
    assert torch.equal(got, want)
    assert compile_status(model)["image_encoder"] == "eager (RuntimeError: no C++ compiler found)"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning
        with torch.inference_mode():
            model.encode_image(x)
    assert compile_status(_tiny()) == {"image_encoder": "not compiled", "memory_attention": "not compiled"}
