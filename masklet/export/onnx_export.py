"""Write a model as four ONNX files plus ``masklet.json`` (see :mod:`.graphs` for what each file computes).

The manifest holds everything a client needs besides the files: the preset, the input size and its
normalization, the mask threshold, the memory settings, the versions, and the few learned vectors the
runtime applies outside the graphs (the no-memory embedding, the no-object pointer, the 4x4 mask-prompt
downsampler). Every file also carries the preset, image size and an export id in its metadata, so files
mixed from two exports are told apart from the files the manifest describes.
"""

from __future__ import annotations

import copy
import json
import uuid
import warnings
from pathlib import Path

import torch

from ..io.preprocess import IMAGENET_MEAN, IMAGENET_STD
from ..modeling.sam2 import SAM2Model
from .graphs import GRAPHS, graph_module, memory_grid, sample_inputs

__all__ = ["MANIFEST", "MIN_OPSET", "ExportError", "export_onnx", "max_opset"]

MANIFEST = "masklet.json"
FORMAT = "masklet-onnx"
FORMAT_VERSION = 1
# torch's ONNX exporter writes opset-18 operators (reductions taking their axes as an input, e.g.
# ReduceMean, are opset 18; LayerNormalization is opset 17); earlier opsets cannot express them
MIN_OPSET = 18


class ExportError(ValueError):
    """An export that cannot be done as asked (the message says what to change)."""


def max_opset() -> int:
    """The newest opset both the installed ``onnx`` and ``onnxruntime`` know."""
    import onnx

    return onnx.defs.onnx_opset_version()


def check_opset(opset: int) -> None:
    """Raise :class:`ExportError` for an opset the graphs cannot be written in."""
    newest = max_opset()
    if opset < MIN_OPSET:
        raise ExportError(
            f"opset {opset} cannot express the exported graphs' operators (layer normalization needs "
            f"opset 17, reductions with their axes as an input opset 18); use --opset {MIN_OPSET} "
            f"or newer (up to {newest})"
        )
    if opset > newest:
        raise ExportError(
            f"opset {opset} is newer than the installed onnx package knows (up to {newest}); use "
            f"--opset {newest} or lower, or upgrade onnx"
        )


def export_onnx(
    model: SAM2Model,
    out_dir: str | Path,
    *,
    opset: int = MIN_OPSET,
    weights: str = "unknown",
    graphs: tuple[str, ...] | None = None,
) -> Path:
    """Export ``model`` (float32, its preset and image size) into ``out_dir``; returns the manifest path.

    weights: a label written into the manifest (``official``, ``checkpoint:<path>``, ``random``);
    graphs: a subset of :data:`.graphs.GRAPHS` to write (all by default).
    """
    check_opset(opset)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} is a file; expected a folder for the exported files (created if missing)")
    out.mkdir(parents=True, exist_ok=True)
    # a float32 copy on the CPU: tracing fills the model's caches with symbolic tensors, which must
    # never reach the model the caller keeps using
    work = copy.deepcopy(model).float().cpu().eval()
    export_id = uuid.uuid4().hex
    meta = {"masklet.preset": model.cfg.name, "masklet.image_size": str(model.image_size)}
    meta["masklet.export_id"] = export_id
    names = graphs or tuple(GRAPHS)
    for name in names:
        _export_graph(work, name, out / GRAPHS[name].file_name, opset, meta)
    path = out / MANIFEST
    path.write_text(json.dumps(manifest(model, opset, weights, export_id, names), indent=1) + "\n")
    return path


def _export_graph(model: SAM2Model, name: str, path: Path, opset: int, meta: dict[str, str]) -> None:
    spec = GRAPHS[name]
    args = sample_inputs(name, model)
    dims = {k: {axis: torch.export.Dim.DYNAMIC for axis in v} for k, v in spec.dynamic.items()}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on caches and deprecations
        program = torch.onnx.export(
            graph_module(name, model),
            args,
            input_names=list(spec.inputs),
            output_names=list(spec.outputs),
            dynamic_shapes={k: dims.get(k) for k in spec.inputs},
            opset_version=opset,
            dynamo=True,
            optimize=True,
            verbose=False,
        )
    program.model.metadata_props.update(meta)
    _name_dynamic_axes(program.model, spec.dynamic)
    program.save(str(path), external_data=False)


def _name_dynamic_axes(model, dynamic: dict[str, dict[int, str]]) -> None:
    """Rename the tracer's symbolic sizes (``s20``) after the axes they stand for (``num_labels``), in
    every value of the graph, so that the files document which sizes vary and which are shared."""
    import onnx_ir as ir

    names: dict[str, str] = {}
    for value in model.graph.inputs:
        for axis, label in dynamic.get(value.name, {}).items():
            dim = value.shape[axis]
            if isinstance(dim, ir.SymbolicDim) and dim.value:
                names.setdefault(dim.value, label)
    values = [*model.graph.inputs, *model.graph.outputs]
    values += [v for node in model.graph.all_nodes() for v in node.outputs]
    for value in values:
        if value.shape is None:
            continue
        dims = [ir.SymbolicDim(names[d.value]) if _renamed(d, names) else d for d in value.shape]
        value.shape = ir.Shape(dims)


def _renamed(dim, names: dict[str, str]) -> bool:
    return not isinstance(dim, int) and getattr(dim, "value", None) in names


def manifest(model: SAM2Model, opset: int, weights: str, export_id: str, names: tuple[str, ...]) -> dict:
    """The content of ``masklet.json``."""
    import onnx

    from .. import __version__ as masklet_version

    cfg = model.cfg
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "export_id": export_id,
        "preset": cfg.name,
        "family": cfg.family,
        "sam_version": cfg.traits.version,
        "weights": weights,
        "image_size": cfg.image_size,
        "input": "RGB scaled to [0, 1], resized to image_size x image_size (aspect ratio not kept), "
        "then (x - mean) / std per channel; NCHW float32",
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "mask_threshold": 0.0,
        "low_res_mask_size": cfg.low_res_mask_size,
        "feature_size": cfg.feature_size,
        "high_res_features": cfg.use_high_res_features,
        "memory": {
            "memory_grid": list(memory_grid(cfg)),
            "cross_attention": cfg.cross_attention,
            "num_maskmem": cfg.num_maskmem,
            "max_obj_ptrs_in_encoder": cfg.max_obj_ptrs_in_encoder,
            "mem_dim": cfg.mem_dim,
            "d_model": cfg.d_model,
            "sigmoid_scale_for_mem_enc": cfg.sigmoid_scale_for_mem_enc,
            "sigmoid_bias_for_mem_enc": cfg.sigmoid_bias_for_mem_enc,
            "use_signed_tpos_enc_to_obj_ptrs": cfg.traits.use_signed_tpos_enc_to_obj_ptrs,
            "only_obj_ptrs_in_the_past_for_eval": cfg.only_obj_ptrs_in_the_past_for_eval,
            "multimask_output_for_tracking": cfg.multimask_output_for_tracking,
            "multimask_min_pt_num": cfg.multimask_min_pt_num,
            "multimask_max_pt_num": cfg.multimask_max_pt_num,
        },
        "opset": opset,
        "versions": {"masklet": masklet_version, "torch": torch.__version__, "onnx": onnx.__version__},
        "files": {
            name: {"file": s.file_name, "inputs": list(s.inputs), "outputs": list(s.outputs)}
            for name, s in GRAPHS.items()
            if name in names
        },
        "constants": constants(model),
    }


def constants(model: SAM2Model) -> dict[str, list[float]]:
    """The learned vectors the runtime applies outside the graphs, flattened (float32 values)."""
    tensors = {
        "no_mem_embed": model.no_mem_embed,
        "no_obj_ptr": model.no_obj_ptr,
        "mask_downsample.weight": model.mask_downsample.weight,
        "mask_downsample.bias": model.mask_downsample.bias,
    }
    return {k: v.detach().float().cpu().flatten().tolist() for k, v in tensors.items()}
