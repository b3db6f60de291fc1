"""Each exported file against the PyTorch graph it was traced from, on random inputs of other sizes
than the export's (objects, points, memories and pointers vary), for a preset of each family."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from masklet.export.graphs import GRAPHS, graph_module, high_res_shapes, memory_grid, sample_inputs


def run_both(onnx_dir, model, name: str, inputs: tuple[torch.Tensor, ...]) -> None:
    spec = GRAPHS[name]
    sess = ort.InferenceSession(str(onnx_dir / spec.file_name), providers=["CPUExecutionProvider"])
    got = sess.run(None, {k: v.numpy() for k, v in zip(spec.inputs, inputs)})
    with torch.no_grad():
        want = graph_module(name, model)(*inputs)
    want = want if isinstance(want, tuple) else (want,)
    assert len(got) == len(want) == len(spec.outputs)
    for out_name, a, b in zip(spec.outputs, got, want):
        assert a.shape == tuple(b.shape), f"{name}.{out_name}: {a.shape} vs {tuple(b.shape)}"
        if not b.numel():  # the empty high-resolution placeholders of a preset without them
            continue
        scale = b.float().std().item() or 1.0
        rel = np.abs(a - b.numpy()).max() / scale
        assert rel <= 1e-4, f"{name}.{out_name}: max|diff|/std = {rel:.2e}"


def test_image_encoder(family):
    (image,) = sample_inputs("image_encoder", family.torch_model, seed=1)
    run_both(family.onnx_dir, family.torch_model, "image_encoder", (image[:1],))


@pytest.mark.parametrize(
    "embed_batch,high_res_batch,num_labels,num_points", [(1, 1, 3, 1), (2, 1, 2, 4), (2, 2, 2, 5)]
)
def test_image_decoder(family, embed_batch, high_res_batch, num_labels, num_points):
    """One image for every prompt set, conditioned features per object with the image's high-resolution
    features shared (tracking), and features per prompt set."""
    model = family.torch_model
    s, e = model.image_size, model.cfg.feature_size
    g = torch.Generator().manual_seed(embed_batch + num_points)
    hr0, hr1 = high_res_shapes(model.cfg)
    inputs = (
        torch.randn(embed_batch, 256, e, e, generator=g),
        torch.randn(high_res_batch, *hr0, generator=g),
        torch.randn(high_res_batch, *hr1, generator=g),
        torch.rand(num_labels, num_points, 2, generator=g) * s,
        torch.randint(-1, 4, (num_labels, num_points), generator=g).float(),
        torch.randn(num_labels, 1, 4 * e, 4 * e, generator=g),
        (torch.arange(num_labels) % 2).float(),
    )
    run_both(family.onnx_dir, model, "image_decoder", inputs)


@pytest.mark.parametrize("batch,frames,pointers", [(1, 1, 1), (3, 5, 7), (2, 2, 0)])
def test_memory_attention(family, batch, frames, pointers):
    """One remembered frame (EfficientTAM's unpooled case), several, and none but memories."""
    model = family.torch_model
    e, n = model.cfg.feature_size, model.cfg.num_maskmem
    g = torch.Generator().manual_seed(frames)
    inputs = (
        torch.randn(batch, 256, e, e, generator=g),
        torch.randn(batch, 256, e, e, generator=g),
        torch.randn(batch, frames, 64, *memory_grid(model.cfg), generator=g),
        torch.arange(frames) % n,
        torch.randn(batch, pointers, 256, generator=g),
        torch.linspace(-1, 1, pointers),
    )
    run_both(family.onnx_dir, model, "memory_attention", inputs)


def test_memory_encoder(family):
    model = family.torch_model
    vision, mask, score = sample_inputs("memory_encoder", model, seed=2)
    run_both(family.onnx_dir, model, "memory_encoder", (vision[:1], mask[:1], score[:1]))
    inputs = (
        vision.repeat(2, 1, 1, 1),
        mask.repeat(2, 1, 1, 1),
        torch.tensor([[2.0], [-1.0], [0.5], [-3.0]]),
    )
    run_both(family.onnx_dir, model, "memory_encoder", inputs)


def test_manifest_and_file_metadata(family):
    onnx_dir, torch_model = family.onnx_dir, family.torch_model
    cfg = torch_model.cfg
    m = json.loads((onnx_dir / "masklet.json").read_text())
    assert (m["preset"], m["family"], m["image_size"], m["opset"]) == (family.preset, cfg.family, 256, 18)
    assert m["mean"] == [0.485, 0.456, 0.406] and m["std"] == [0.229, 0.224, 0.225]
    assert m["memory"]["num_maskmem"] == 7 and m["mask_threshold"] == 0.0
    assert m["high_res_features"] == cfg.use_high_res_features
    assert m["memory"]["memory_grid"] == ([1, 512] if cfg.perceiver else [16, 16])
    assert m["memory"]["cross_attention"] == cfg.cross_attention
    assert set(m["versions"]) == {"masklet", "torch", "onnx"}
    assert m["constants"]["no_obj_ptr"] == torch_model.no_obj_ptr.flatten().tolist()
    for name, spec in GRAPHS.items():
        proto = onnx.load(str(onnx_dir / spec.file_name), load_external_data=False)
        meta = {p.key: p.value for p in proto.metadata_props}
        assert meta["masklet.export_id"] == m["export_id"], name
        assert meta["masklet.preset"] == family.preset, name
        assert proto.opset_import[0].version == 18 or any(o.version == 18 for o in proto.opset_import)
        dims = {
            i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
            for i in proto.graph.input
        }
        for inp, axes in spec.dynamic.items():
            for axis in axes:
                assert isinstance(dims[inp][axis], str), f"{name}.{inp} axis {axis} is fixed: {dims[inp]}"
        if name == "image_encoder":  # samexporter reads the input size from these two
            assert dims["image"][1:] == [3, 256, 256]
        if name == "image_decoder":  # the varying axes carry their names
            assert dims["point_coords"] == ["num_labels", "num_points", 2]
