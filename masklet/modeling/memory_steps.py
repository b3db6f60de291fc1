"""How SAM 2 writes and reads its memories: the memory steps :class:`~.sam2.SAM2Model` mixes in.

Writing: a frame's mask and features become a memory (memory encoder, plus EdgeTAM's spatial perceiver).
Reading: a frame's features attend to the memories and object pointers the memory bank selected
(memory attention, with the temporal position encodings of both). The learned tensors stay attributes
of the model under their official names; this class only holds the methods, so the state dict is the
model's own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from torch import nn

    from ..presets import ModelConfig
    from .memory_attention import MemoryAttention
    from .memory_encoder import MemoryEncoder
    from .perceiver import SpatialPerceiver

__all__ = ["MemorySteps"]


class MemorySteps:
    """Memory methods of :class:`~.sam2.SAM2Model` (a mixin: it reads the model's modules and tensors)."""

    # set by SAM2Model.__init__ (spatial_perceiver only when cfg.perceiver is set)
    cfg: ModelConfig
    memory_encoder: MemoryEncoder
    memory_attention: MemoryAttention
    spatial_perceiver: SpatialPerceiver
    maskmem_tpos_enc: nn.Parameter
    no_obj_embed_spatial: nn.Parameter | None
    obj_ptr_tpos_proj: nn.Module
    device: torch.device
    head_dtype: torch.dtype

    def encode_memory(
        self,
        image_embed: torch.Tensor,
        high_res_masks: torch.Tensor,
        object_score: torch.Tensor,
        binarize: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A frame's memory: raw stride-16 features (B, 256, h, w) + its mask logits (B, 1, S, S).

        ``binarize`` thresholds the mask at 0 (used for frames whose mask came from clicks).
        Returns (features (B, 64, h, w), position encoding (B, 64, h, w)); with a spatial perceiver
        (EdgeTAM) the memory is its L latent tokens laid out as a (B, 64, 1, L) row, so that every
        consumer of memories (``attend_to_memories``, the memory bank) treats both alike.
        """
        m = (high_res_masks > 0).to(high_res_masks.dtype) if binarize else torch.sigmoid(high_res_masks)
        return self.encode_mask_memory(image_embed, m, object_score)

    def encode_mask_memory(
        self, image_embed: torch.Tensor, mask: torch.Tensor, object_score: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`encode_memory` for a mask already in [0, 1] (B, 1, S, S): a binary mask, or the
        sigmoid of the logits. ``object_score`` (B, 1): frames with a score <= 0 get the absent-object
        embedding (SAM 2.1)."""
        m = mask * self.cfg.sigmoid_scale_for_mem_enc + self.cfg.sigmoid_bias_for_mem_enc
        # out_proj is an Identity when d_model == mem_dim: the mask projection always has a weight
        mem_dtype = self.memory_encoder.pix_feat_proj.weight.dtype
        feats, pos = self.memory_encoder(image_embed.to(mem_dtype), m.to(mem_dtype), skip_mask_sigmoid=True)
        feats, pos = feats.to(self.head_dtype), pos.to(self.head_dtype)
        if self.no_obj_embed_spatial is not None:
            absent = (object_score <= 0).to(feats.dtype).view(-1, 1, 1, 1)
            feats = feats + absent * self.no_obj_embed_spatial.view(1, -1, 1, 1)
        if self.cfg.perceiver is not None:
            tokens, _ = self.spatial_perceiver(feats.to(mem_dtype), pos.to(mem_dtype))
            feats = tokens.to(self.head_dtype).transpose(1, 2).unsqueeze(2)
            pos = self.memory_pos_enc(1, tokens.shape[1]).expand(feats.shape[0], -1, -1, -1)
        return feats, pos

    def memory_pos_enc(self, h: int, w: int) -> torch.Tensor:
        """(1, 64, h, w) spatial position encoding of memory features (the same for every frame); with
        a spatial perceiver that of its tokens, (1, 64, 1, L) (``h``, ``w``: the image grid, unused)."""
        if self.cfg.perceiver is not None:
            pe = self.spatial_perceiver.positions(self.device, self.head_dtype)  # (1, L, 64)
            return pe.transpose(1, 2).unsqueeze(2)
        pe = self.memory_encoder.position_encoding.encoding(h, w, self.device)
        return pe[None].to(self.head_dtype)

    def encode_pointer_positions(self, t: torch.Tensor) -> torch.Tensor:
        """(P,) float32 signed/absolute frame distances divided by (max_pointers - 1) -> (P, 64) temporal
        encodings of object pointers.

        SAM 2.0 uses none (zeros); 2.1 uses a sine encoding of ``t`` projected by ``obj_ptr_tpos_proj``.
        """
        mem = self.cfg.mem_dim
        if not self.cfg.traits.add_tpos_enc_to_obj_ptrs:
            return torch.zeros(t.shape[0], mem, device=t.device, dtype=self.head_dtype)
        dim = self.cfg.d_model if self.cfg.traits.proj_tpos_enc_in_obj_ptrs else mem
        half = dim // 2
        freq = 10000.0 ** (2 * (torch.arange(half, device=t.device) // 2) / half)
        angles = t[:, None] / freq
        return self.obj_ptr_tpos_proj(torch.cat([angles.sin(), angles.cos()], dim=-1))

    def attend_to_memories(
        self,
        image_embed: torch.Tensor,
        image_pos: torch.Tensor,
        memories: list[tuple[int, torch.Tensor]],
        pointers: list[tuple[int, torch.Tensor]],
        max_pointers: int,
    ) -> torch.Tensor:
        """Condition a frame on its memory bank (memory attention).

        image_embed / image_pos: (B, 256, h, w) raw stride-16 features and their position encoding;
        memories: (t_pos, features (B, 64, h, w)) with t_pos 0 for prompted frames and
        1..num_maskmem-1 for recent ones (num_maskmem-1 = the previous frame);
        pointers: (temporal position, object pointer (B, 256)). Returns (B, 256, h, w).
        """
        b = image_embed.shape[0]
        memory = torch.stack([m for _, m in memories], dim=1)
        t_pos = torch.tensor([t for t, _ in memories], dtype=torch.long, device=image_embed.device)
        if pointers:
            ptrs = torch.stack([p for _, p in pointers], dim=1)
        else:
            ptrs = image_embed.new_zeros(b, 0, self.cfg.d_model)
        ptr_t = torch.tensor([t for t, _ in pointers], dtype=torch.float32, device=image_embed.device)
        ptr_t = ptr_t / max(max_pointers - 1, 1)
        return self.attend_to_memory_tensors(image_embed, image_pos, memory, t_pos, ptrs, ptr_t)

    def attend_to_memory_tensors(
        self,
        image_embed: torch.Tensor,
        image_pos: torch.Tensor,
        memory: torch.Tensor,
        memory_tpos: torch.Tensor,
        pointers: torch.Tensor,
        pointer_tpos: torch.Tensor,
    ) -> torch.Tensor:
        """:meth:`attend_to_memories` on stacked tensors (any number F of memories and P of pointers).

        memory: (B, F, 64, h, w); memory_tpos: (F,) int64 t_pos of each; pointers: (B, P, 256);
        pointer_tpos: (P,) float32 their frame distances divided by (max_pointers - 1).
        Returns (B, 256, h, w).
        """
        pointer_pos = self.encode_pointer_positions(pointer_tpos)
        b, c, h, w = image_embed.shape
        mem = self.cfg.mem_dim
        dtype = self.memory_attention.norm.weight.dtype
        pos = self.memory_pos_enc(h, w).flatten(2).permute(2, 0, 1)  # (hw, 1, 64)
        tpos = self.maskmem_tpos_enc[self.cfg.num_maskmem - 1 - memory_tpos]  # (F, 1, 1, 64)
        # frame-major tokens, each frame's grid row-major: (F * hw, B, 64)
        feats = memory.permute(1, 3, 4, 0, 2).reshape(-1, b, mem).to(dtype)
        feat_pos = (pos[None] + tpos).expand(-1, -1, b, -1).reshape(-1, b, mem).to(dtype)
        # each 256-d pointer becomes ``split`` 64-d memory tokens sharing one position
        split = c // mem
        p = pointers.shape[1]
        ptrs = pointers.reshape(b, p, split, mem).permute(1, 2, 0, 3).reshape(p * split, b, mem)
        ptr_pos = pointer_pos.repeat_interleave(split, dim=0)[:, None].expand(-1, b, -1)
        curr = image_embed.flatten(2).permute(2, 0, 1).to(dtype)
        curr_pos = image_pos.flatten(2).permute(2, 0, 1).to(dtype)
        out = self.memory_attention(
            curr,
            torch.cat([feats, ptrs.to(dtype)]),
            curr_pos,
            torch.cat([feat_pos, ptr_pos.to(dtype)]),
            p * split,
            feat_size=(h, w),
        )
        return out.permute(1, 2, 0).reshape(b, c, h, w).to(self.head_dtype)
