"""The SAM 2 model: the paper figure's boxes wired together, without any session bookkeeping.

``SAM2Model`` owns every learned tensor of an official checkpoint under its official name and offers
small composable steps: encode an image, decode prompts into masks, turn a mask into a memory, and
derive the object pointer. Predictors in ``masklet.inference`` hold state and call these steps. The
memory steps (writing a frame's memory, attending to a memory bank) are the methods of
:class:`~.memory_steps.MemorySteps`, which the model mixes in.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..presets import ModelConfig
from .common import MLP
from .families import build_perceiver, cross_attention
from .mask_decoder import MaskDecoder
from .memory_attention import MemoryAttention
from .memory_encoder import MemoryEncoder
from .memory_steps import MemorySteps
from .neck import ImageEncoder
from .outputs import NO_OBJECT_SCORE, DecoderOutput, FrameResult, ImageFeatures, points_or_padding
from .prompt_encoder import PromptEncoder


class SAM2Model(MemorySteps, nn.Module):
    """SAM 2 / 2.1 with the official parameter names (see ``masklet.checkpoints`` for loading); the
    memory methods come from :class:`~.memory_steps.MemorySteps`."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, mem = cfg.d_model, cfg.mem_dim
        emb = cfg.feature_size
        self.image_encoder = ImageEncoder(cfg)
        self.sam_prompt_encoder = PromptEncoder(
            embed_dim=d,
            image_embedding_size=(emb, emb),
            input_image_size=(cfg.image_size, cfg.image_size),
            mask_in_chans=16,
        )
        self.sam_mask_decoder = MaskDecoder(
            transformer_dim=d,
            num_multimask_outputs=3,
            dynamic_multimask_via_stability=cfg.dynamic_multimask_via_stability,
            dynamic_multimask_stability_delta=cfg.dynamic_multimask_stability_delta,
            dynamic_multimask_stability_thresh=cfg.dynamic_multimask_stability_thresh,
            use_high_res_features=cfg.use_high_res_features,
        )
        self.memory_attention = MemoryAttention(
            d_model=d, num_layers=cfg.memory_attention_layers, cross_attention=cross_attention(cfg)
        )
        self.memory_encoder = MemoryEncoder(out_dim=mem, in_dim=d)
        perceiver = build_perceiver(cfg)
        if perceiver is not None:  # EdgeTAM: memories compressed to a few latent tokens per frame
            self.spatial_perceiver = perceiver
        # turns a full-resolution mask prompt into the decoder's 4x smaller dense-prompt size
        self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)
        self.maskmem_tpos_enc = nn.Parameter(torch.zeros(cfg.num_maskmem, 1, 1, mem))
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, d))
        self.no_mem_pos_enc = nn.Parameter(torch.zeros(1, 1, d))
        self.no_obj_ptr = nn.Parameter(torch.zeros(1, d))
        self.obj_ptr_proj = MLP(d, d, d, 3)
        traits = cfg.traits
        if traits.no_obj_embed_spatial:
            self.no_obj_embed_spatial = nn.Parameter(torch.zeros(1, mem))
        else:
            self.register_parameter("no_obj_embed_spatial", None)
        self.obj_ptr_tpos_proj = nn.Linear(d, mem) if traits.proj_tpos_enc_in_obj_ptrs else nn.Identity()
        self._head_pos_cache: tuple | None = None  # see _head_pos
        for p in (self.maskmem_tpos_enc, self.no_mem_embed, self.no_mem_pos_enc, self.no_obj_ptr):
            nn.init.trunc_normal_(p, std=0.02)

    @property
    def image_size(self) -> int:
        return self.cfg.image_size

    def configure(self, **changes) -> SAM2Model:
        """Change behaviour settings of this model in place (``ModelConfig.with_behaviour``: the
        dynamic multimask fallback, click-mask binarisation for memories, the multimask rule, the
        memory encoder's mask scaling); returns the model. The weights are untouched.

        ``model.configure(dynamic_multimask_via_stability=False, binarize_mask_from_pts_for_mem_enc=False)``
        is what the official builders do without ``apply_postprocessing``.
        """
        self.cfg = self.cfg.with_behaviour(**changes)
        dec = self.sam_mask_decoder
        dec.dynamic_multimask_via_stability = self.cfg.dynamic_multimask_via_stability
        dec.dynamic_multimask_stability_delta = self.cfg.dynamic_multimask_stability_delta
        dec.dynamic_multimask_stability_thresh = self.cfg.dynamic_multimask_stability_thresh
        return self

    @property
    def device(self) -> torch.device:
        return self.no_mem_embed.device

    @property
    def dtype(self) -> torch.dtype:
        """The compute dtype of the image encoder (with memory attention and the memory encoder, unless
        :meth:`set_compute_dtype` was given a separate ``encoder_dtype``): its input's dtype."""
        return next(self.image_encoder.trunk.parameters()).dtype

    @property
    def head_dtype(self) -> torch.dtype:
        """The dtype of the prompt encoder, mask decoder and small heads (always float32 unless the
        whole model was cast with ``.to(dtype)``)."""
        return self.no_mem_embed.dtype

    def set_compute_dtype(self, dtype: torch.dtype, encoder_dtype: torch.dtype | None = None) -> SAM2Model:
        """Run the heavy modules (image encoder, memory attention, memory encoder: ~99% of the FLOPs)
        in ``dtype`` and keep the prompt encoder, mask decoder and heads in float32.

        With bfloat16 this keeps the speed of bf16 matmuls while the decoder, whose outputs are
        thresholded into masks, stays exact: masks agree with float32 far better than with the
        whole model in bf16 (measured in tests/inference/test_image_parity.py).

        encoder_dtype: the image encoder's own dtype when it differs (``None``: ``dtype``). bfloat16
        memory with a float32 encoder keeps video masks closest to float32 ones: in tracking, the
        encoder's rounding is what compounds from frame to frame (benchmarks/RESULTS.md).
        """
        self.float()
        for module in self.heavy_modules():
            # each module converted once, from float32: no value is rounded through another dtype
            module.to(encoder_dtype if module is self.image_encoder and encoder_dtype else dtype)
        return self

    def heavy_modules(self) -> tuple[nn.Module, ...]:
        perceiver = (self.spatial_perceiver,) if self.cfg.perceiver is not None else ()
        return (self.image_encoder, self.memory_attention, self.memory_encoder, *perceiver)

    # ---------------------------------------------------------------- image
    def encode_image(self, images: torch.Tensor) -> ImageFeatures:
        """images: (B, 3, S, S) normalized with the ImageNet mean/std -> features in ``head_dtype``.

        ``pos`` holds the position encodings of the three levels; the stride-16 one (used by memory
        attention) is in ``head_dtype``, the two higher-resolution ones stay in the encoder's dtype
        (nothing in inference reads them; converting them would cost two large copies per image).
        """
        feats, pos = self.image_encoder(images.to(self.dtype))
        high_res = []
        if self.cfg.use_high_res_features:
            # the decoder's high-resolution projections depend only on the image: run them once here
            # (they convert the two large maps to the decoder's dtype band by band)
            high_res = list(self.sam_mask_decoder.project_high_res_features(feats[0], feats[1]))
        pos = [*pos[:-1], self._head_pos(pos[-1])]
        return ImageFeatures(image_embed=feats[-1].to(self.head_dtype), high_res=high_res, pos=pos)

    def _head_pos(self, pos: torch.Tensor) -> torch.Tensor:
        """The stride-16 position encoding (B, C, h, w) in ``head_dtype``. It is a constant of the
        resolution (a sine encoding), so the converted copy is kept while gradients are off."""
        if pos.dtype == self.head_dtype:
            return pos
        if torch.is_grad_enabled():
            return pos.to(self.head_dtype)
        key = (tuple(pos.shape[1:]), pos.dtype, pos.device, self.head_dtype)
        if self._head_pos_cache is None or self._head_pos_cache[0] != key:
            self._head_pos_cache = (key, pos[:1].to(self.head_dtype))
        return self._head_pos_cache[1].expand(pos.shape[0], -1, -1, -1)

    def embed_without_memory(self, image_embed: torch.Tensor) -> torch.Tensor:
        """The stride-16 features of a frame with no memory to attend to (single images, first frames)."""
        return image_embed + self.no_mem_embed.view(1, -1, 1, 1)

    # ---------------------------------------------------------------- prompts
    def decode(
        self,
        image_embed: torch.Tensor,
        high_res: list[torch.Tensor],
        points: tuple[torch.Tensor, torch.Tensor] | None = None,
        mask_input: torch.Tensor | None = None,
        multimask_output: bool = True,
        repeat_image: bool = False,
    ) -> DecoderOutput:
        """Prompt encoder + mask decoder.

        points: (coords (B, N, 2) float in model-input pixels (0..S, x then y), labels (B, N) int32 with
        1 positive, 0 negative, 2/3 box corners, -1 padding); mask_input: (B, 1, S/4, S/4) logits.
        With ``repeat_image`` one image's features serve B prompts.
        """
        sparse, dense = self.sam_prompt_encoder(points=points, boxes=None, masks=mask_input)
        masks, iou, tokens, obj = self.sam_mask_decoder(
            image_embeddings=image_embed,
            image_pe=self.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask_output,
            repeat_image=repeat_image,
            high_res_features=high_res,
        )
        return DecoderOutput(masks, iou, tokens, obj)

    # ---------------------------------------------------------------- pointer and mask prompt
    def object_pointer(self, token: torch.Tensor, object_score: torch.Tensor) -> torch.Tensor:
        """(B, 256) decoder token + (B, 1) object-score logit -> (B, 256) pointer; absent objects get
        the learned ``no_obj_ptr`` instead."""
        present = (object_score > 0).to(token.dtype)
        return present * self.obj_ptr_proj(token) + (1 - present) * self.no_obj_ptr

    def mask_prompt_to_low_res(self, mask: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) float mask -> (B, 1, S/4, S/4) dense prompt through the learned downsampler."""
        return self.mask_downsample(mask)

    # ---------------------------------------------------------------- video
    def segment_frame(
        self,
        pix_feat: torch.Tensor,
        high_res: list[torch.Tensor],
        points: tuple[torch.Tensor, torch.Tensor] | None,
        mask_input: torch.Tensor | None,
        multimask_output: bool,
    ) -> FrameResult:
        """Decode a video frame: ``pix_feat`` (B, 256, h, w) is the memory-conditioned embedding.

        points: as in :meth:`decode` or None (a padding point is used, as in training);
        mask_input: (B, 1, S/4, S/4) logits (the previous prediction during refinement) or None.
        The output is chosen by :meth:`select_output`.
        """
        out = self.decode(
            pix_feat, high_res, points_or_padding(points, pix_feat), mask_input, multimask_output
        )
        return self.select_output(out, multimask_output)

    def select_output(self, out: DecoderOutput, multimask_output: bool) -> FrameResult:
        """A video frame's result from its decoder output: with multimask output the candidate with the
        highest predicted IoU (and its token for the pointer); masks of absent objects (object score
        <= 0) become ``NO_OBJECT_SCORE``; the chosen logits upscaled to S x S."""
        b = out.low_res_masks.shape[0]
        present = out.object_score > 0
        low = torch.where(present[:, :, None, None], out.low_res_masks, NO_OBJECT_SCORE).float()
        token = out.tokens[:, 0]
        if multimask_output:
            best = out.iou.argmax(dim=-1)
            rows = torch.arange(b, device=low.device)
            low = low[rows, best][:, None]
            if out.tokens.shape[1] > 1:
                token = out.tokens[rows, best]
        high = self.upscale_masks(low, self.image_size)
        ptr = self.object_pointer(token, out.object_score)
        return FrameResult(low, high, ptr, out.object_score)

    def mask_as_output(
        self, image_embed: torch.Tensor, high_res: list[torch.Tensor], mask: torch.Tensor
    ) -> FrameResult:
        """A mask prompt taken as the frame's output: (B, 1, S, S) binary mask -> logits of +-10.

        The object pointer still comes from the decoder, prompted with the downsampled mask on the
        raw (unconditioned) ``image_embed``; presence is decided by the mask being non-empty.
        """
        m = mask.float()
        high = m * 20.0 - 10.0
        side = self.cfg.low_res_mask_size
        low = F.interpolate(high, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
        decoded = self.segment_frame(image_embed, high_res, None, self.mask_prompt_to_low_res(m), False)
        present = (m.flatten(1) > 0).any(dim=1, keepdim=True).float()
        ptr = present * decoded.obj_ptr + (1 - present) * self.no_obj_ptr
        return FrameResult(low, high, ptr, present * 20.0 - 10.0)

    @staticmethod
    def upscale_masks(low_res: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
        """Bilinear upsampling of mask logits to ``size`` in float32."""
        size = (size, size) if isinstance(size, int) else size
        return F.interpolate(low_res.float(), size=size, mode="bilinear", align_corners=False)
