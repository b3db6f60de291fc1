"""The four exported graphs: SAM2Model's steps behind tensor-only signatures.

Each graph is a thin ``nn.Module`` over the model's public methods, so an export follows whatever the
model computes (another trunk, another memory module) without a second copy of that code: the files
of EdgeTAM and EfficientTAM presets hold their own trunk, memory compressor and cross-attention behind
the same inputs and outputs, whose sizes differ only where the family does (:func:`high_res_shapes`,
:func:`memory_grid`). Their inputs and outputs (names, shapes, which axes vary) are declared once
here, in :data:`GRAPHS`; the exporter, the runtime backend and the manifest (``masklet.json``) all
read them from there.

``image_encoder.onnx`` and ``image_decoder.onnx`` use the names, order and meaning of the SAM 2
files that samexporter writes and X-AnyLabeling reads (image normalized with the ImageNet mean/std,
three outputs in that order, the decoder's seven inputs in that order, multimask masks and IoU first);
the outputs that tracking needs come after those.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..modeling.sam2 import SAM2Model
from ..presets import ModelConfig

__all__ = [
    "GRAPHS",
    "GraphSpec",
    "ImageDecoderGraph",
    "ImageEncoderGraph",
    "MemoryAttentionGraph",
    "MemoryEncoderGraph",
    "graph_module",
    "high_res_shapes",
    "memory_grid",
    "sample_inputs",
]


@dataclass(frozen=True)
class GraphSpec:
    """One exported file: its input and output names, and the axes of each input that vary.

    ``dynamic``: input name -> {axis: axis name}; axes not listed are fixed by the preset and image size.
    """

    name: str
    file_name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    dynamic: dict[str, dict[int, str]]


_BATCH = {0: "batch"}
_LABELS = {0: "num_labels"}

GRAPHS: dict[str, GraphSpec] = {
    spec.name: spec
    for spec in (
        GraphSpec(
            "image_encoder",
            "image_encoder.onnx",
            ("image",),
            ("high_res_feats_0", "high_res_feats_1", "image_embed", "vision_features", "vision_pos_enc"),
            {"image": _BATCH},
        ),
        GraphSpec(
            "image_decoder",
            "image_decoder.onnx",
            (
                "image_embed",
                "high_res_feats_0",
                "high_res_feats_1",
                "point_coords",
                "point_labels",
                "mask_input",
                "has_mask_input",
            ),
            (
                "masks",
                "iou_predictions",
                "low_res_masks",
                "obj_ptr",
                "object_score_logits",
                "single_mask",
                "single_iou",
                "single_obj_ptr",
            ),
            {
                "image_embed": {0: "image_batch"},
                "high_res_feats_0": {0: "image_batch"},
                "high_res_feats_1": {0: "image_batch"},
                "point_coords": {0: "num_labels", 1: "num_points"},
                "point_labels": {0: "num_labels", 1: "num_points"},
                "mask_input": _LABELS,
                "has_mask_input": _LABELS,
            },
        ),
        GraphSpec(
            "memory_attention",
            "memory_attention.onnx",
            ("vision_features", "vision_pos_enc", "memory", "memory_tpos", "obj_ptr", "obj_ptr_tpos"),
            ("conditioned_features",),
            {
                "vision_features": _BATCH,
                "vision_pos_enc": _BATCH,
                "memory": {0: "batch", 1: "num_memories"},
                "memory_tpos": {0: "num_memories"},
                "obj_ptr": {0: "batch", 1: "num_pointers"},
                "obj_ptr_tpos": {0: "num_pointers"},
            },
        ),
        GraphSpec(
            "memory_encoder",
            "memory_encoder.onnx",
            ("vision_features", "mask", "object_score_logits"),
            ("maskmem_features", "maskmem_pos_enc"),
            {"vision_features": _BATCH, "mask": _BATCH, "object_score_logits": _BATCH},
        ),
    )
}


class ImageEncoderGraph(nn.Module):
    """image (B, 3, S, S) float32, RGB in [0, 1] normalized with the ImageNet mean/std ->

    - ``high_res_feats_0`` (B, 32, S/4, S/4), ``high_res_feats_1`` (B, 64, S/8, S/8): the decoder's
      projected high-resolution features; empty, (B, 32, 0, 0) and (B, 64, 0, 0), for presets whose
      decoder reads none (EfficientTAM), so that every preset's files have the same inputs and outputs;
    - ``image_embed`` (B, 256, S/16, S/16): the stride-16 embedding with the no-memory embedding added
      (what the decoder reads for a still image or a frame without memory);
    - ``vision_features`` (B, 256, S/16, S/16): the same without it (memory attention and the memory
      encoder read these), and ``vision_pos_enc`` (B, 256, S/16, S/16), their position encoding.
    """

    def __init__(self, model: SAM2Model) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        f = self.model.encode_image(image)
        no_mem = self.model.embed_without_memory(f.image_embed)
        b = image.shape[0]
        hr0, hr1 = f.high_res or (image.new_zeros(b, *shape) for shape in high_res_shapes(self.model.cfg))
        return hr0, hr1, no_mem, f.image_embed, f.pos[-1]


class ImageDecoderGraph(nn.Module):
    """Prompt encoder + mask decoder for N prompt sets.

    Inputs: ``image_embed`` / ``high_res_feats_0`` / ``high_res_feats_1`` as the encoder gives them,
    batch 1 (shared by every prompt set) or N; ``point_coords`` (N, P, 2) float32 in model-input
    pixels (0..S, x then y); ``point_labels`` (N, P) float32: 1 object, 0 background, 2 / 3 box
    corners, -1 padding; ``mask_input`` (N, 1, S/4, S/4) logits; ``has_mask_input`` (N,) float32 1 where
    ``mask_input`` is a prompt.

    Outputs: ``masks`` (N, 3, S/4, S/4) logits clamped to [-32, 32] (as samexporter's files give them)
    and ``iou_predictions`` (N, 3) of the three candidates; ``low_res_masks``: the same logits unclamped
    (what tracking carries over as a mask input and into memory); ``obj_ptr`` (N, 3, 256) their object
    pointers (the no-object pointer where the object is judged absent; (N, 1, 256) for presets whose
    pointer comes from the single-mask token), ``object_score_logits`` (N, 1) (> 0: present);
    ``single_mask`` (N, 1, S/4, S/4),
    ``single_iou`` (N, 1), ``single_obj_ptr`` (N, 1, 256): the single-mask output (with the model's
    fallback to the best candidate when it is unstable).
    """

    def __init__(self, model: SAM2Model) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        image_embed: torch.Tensor,
        high_res_feats_0: torch.Tensor,
        high_res_feats_1: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        mask_input: torch.Tensor,
        has_mask_input: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        m = self.model
        n = point_coords.shape[0]
        embed = _per_prompt(image_embed, n)
        # presets without high-resolution features take the two empty placeholders and read neither
        high_res = [_per_prompt(t, n) for t in (high_res_feats_0, high_res_feats_1)]
        high_res = high_res if m.cfg.use_high_res_features else []
        points = (point_coords, point_labels.to(torch.int32))
        sparse, dense_none = m.sam_prompt_encoder(points, None, None)
        _, dense_mask = m.sam_prompt_encoder(points, None, mask_input)
        has = has_mask_input.view(-1, 1, 1, 1)
        dense = has * dense_mask + (1 - has) * dense_none
        decoder = m.sam_mask_decoder
        masks, iou, tokens, score = decoder.predict_masks(
            embed, m.sam_prompt_encoder.get_dense_pe(), sparse, dense, False, high_res
        )
        multi = decoder.select_masks(masks, iou, tokens, True)
        single = decoder.select_masks(masks, iou, tokens, False)
        return (
            multi[0].clamp(-32.0, 32.0),
            multi[1],
            multi[0],
            self._pointers(multi[2], score),
            score,
            single[0],
            single[1],
            self._pointers(single[2], score),
        )

    def _pointers(self, tokens: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        """(N, K, 256) mask tokens -> (N, K, 256) object pointers."""
        n, k, c = tokens.shape
        ptr = self.model.object_pointer(tokens.reshape(n * k, c), score.repeat_interleave(k, dim=0))
        return ptr.reshape(n, k, c)


def _per_prompt(t: torch.Tensor, n: int) -> torch.Tensor:
    """(1 or n, ...) -> (n, ...): a batch of 1 serves every prompt set. Row i reads row min(i, batch - 1),
    in tensor ops only, so that one graph takes both batch sizes (each input its own)."""
    last = torch.arange(t.shape[0], device=t.device)[-1:]
    return t[torch.minimum(torch.arange(n, device=t.device), last)]


class MemoryAttentionGraph(nn.Module):
    """Condition a frame on F memories and P object pointers (F, P >= 0 vary per call).

    Inputs: ``vision_features`` / ``vision_pos_enc`` (B, 256, S/16, S/16) from the encoder;
    ``memory`` (B, F, 64, h, w) memory features as ``memory_encoder.onnx`` gives them ((h, w):
    :func:`memory_grid`, the stride-16 grid, or (1, 512) latent tokens for EdgeTAM);
    ``memory_tpos`` (F,) int64 their temporal slot (0 prompted frame, 1..num_maskmem-1 recent frames,
    num_maskmem-1 the previous one); ``obj_ptr`` (B, P, 256) object pointers; ``obj_ptr_tpos`` (P,)
    float32 their frame distance divided by (max_pointers - 1). Output: ``conditioned_features``
    (B, 256, S/16, S/16), the decoder's ``image_embed`` for a tracked frame.

    The preset's own memory cross-attention is in the graph: EdgeTAM's keys rotated on the latent grid,
    EfficientTAM's 2x2-pooled memories (with the unpooled attention chosen inside the graph when F is 1).
    """

    def __init__(self, model: SAM2Model) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        vision_features: torch.Tensor,
        vision_pos_enc: torch.Tensor,
        memory: torch.Tensor,
        memory_tpos: torch.Tensor,
        obj_ptr: torch.Tensor,
        obj_ptr_tpos: torch.Tensor,
    ) -> torch.Tensor:
        return self.model.attend_to_memory_tensors(
            vision_features, vision_pos_enc, memory, memory_tpos, obj_ptr, obj_ptr_tpos
        )


class MemoryEncoderGraph(nn.Module):
    """A frame's memory.

    Inputs: ``vision_features`` (B, 256, S/16, S/16) from the encoder; ``mask`` (B, 1, S, S) float32 in
    [0, 1]: the sigmoid of the frame's upscaled mask logits, or the mask binarised at logit 0 for
    frames whose mask came from clicks; ``object_score_logits`` (B, 1). Outputs: ``maskmem_features``
    (B, 64, h, w) and ``maskmem_pos_enc`` (B, 64, h, w), (h, w) = :func:`memory_grid`: EdgeTAM's
    spatial perceiver (in the graph) compresses the memory to its latent tokens, a (1, 512) row.
    """

    def __init__(self, model: SAM2Model) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, vision_features: torch.Tensor, mask: torch.Tensor, object_score_logits: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.encode_mask_memory(vision_features, mask, object_score_logits)


_MODULES = {
    "image_encoder": ImageEncoderGraph,
    "image_decoder": ImageDecoderGraph,
    "memory_attention": MemoryAttentionGraph,
    "memory_encoder": MemoryEncoderGraph,
}


def high_res_shapes(cfg: ModelConfig) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(C, H, W) of ``high_res_feats_0`` and ``high_res_feats_1``: (32, S/4, S/4) and (64, S/8, S/8), or
    (32, 0, 0) and (64, 0, 0) for presets whose decoder reads no high-resolution features."""
    d, e = cfg.d_model, cfg.feature_size
    s0, s1 = (4 * e, 2 * e) if cfg.use_high_res_features else (0, 0)
    return (d // 8, s0, s0), (d // 4, s1, s1)


def memory_grid(cfg: ModelConfig) -> tuple[int, int]:
    """The (h, w) layout of one frame's memory: the stride-16 grid, or for a preset with a spatial
    perceiver (EdgeTAM) its latent tokens as one row (1, L), as :meth:`SAM2Model.encode_memory` gives
    them."""
    if cfg.perceiver is not None:
        return 1, cfg.perceiver.num_tokens
    return cfg.feature_size, cfg.feature_size


def graph_module(name: str, model: SAM2Model) -> nn.Module:
    """The wrapper module of graph ``name`` around ``model``."""
    return _MODULES[name](model)


def sample_inputs(name: str, model: SAM2Model, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random inputs of graph ``name`` for ``model``'s preset and image size, in the order of
    ``GRAPHS[name].inputs``; every varying axis has size 2 or 3 (so none is mistaken for a constant)."""
    g = torch.Generator().manual_seed(seed)
    cfg = model.cfg
    s, e, d, mem = cfg.image_size, cfg.feature_size, cfg.d_model, cfg.mem_dim

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g)

    if name == "image_encoder":
        return (randn(2, 3, s, s),)
    if name == "image_decoder":
        coords = torch.rand(2, 3, 2, generator=g) * s
        labels = torch.tensor([[1.0, 0.0, -1.0], [2.0, 3.0, 1.0]])
        hr0, hr1 = high_res_shapes(cfg)
        return (
            randn(2, d, e, e),
            randn(2, *hr0),
            randn(2, *hr1),
            coords,
            labels,
            randn(2, 1, 4 * e, 4 * e),
            torch.tensor([1.0, 0.0]),
        )
    if name == "memory_attention":
        tpos = torch.tensor([0, cfg.num_maskmem - 1])
        return (
            randn(2, d, e, e),
            randn(2, d, e, e),
            randn(2, 2, mem, *memory_grid(cfg)),
            tpos,
            randn(2, 3, d),
            torch.tensor([0.0, 0.25, -0.5]),
        )
    if name == "memory_encoder":
        return (randn(2, d, e, e), torch.rand(2, 1, s, s, generator=g), torch.tensor([[1.0], [-1.0]]))
    raise KeyError(f"unknown graph {name!r}; known: {', '.join(GRAPHS)}")
