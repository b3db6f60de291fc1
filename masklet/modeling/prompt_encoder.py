"""Prompt encoder: points, boxes and a low-resolution mask turned into decoder inputs.

Sparse prompts (points, box corners) become one 256-d token each: a random-Fourier encoding of the
position plus a learned embedding of the label. A dense prompt (mask logits at 4x the embedding
resolution) is downscaled by a small conv stack to the image-embedding grid; without one, a learned
"no mask" vector is broadcast over the grid.

Coordinates are pixels of the model input (the resized square image, ``input_image_size``), x then y.
Point labels: 1 foreground, 0 background, 2 box top-left, 3 box bottom-right, -1 padding ("not a
point": its position is ignored).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from masklet.modeling.common import LayerNorm2d

NUM_POINT_LABELS = 4  # 0 background, 1 foreground, 2 / 3 box corners


class RandomFourierEncoding(nn.Module):
    """Position encoding with random spatial frequencies (Tancik et al., "Fourier features").

    A (2, num_pos_feats) Gaussian matrix ``G`` maps a position p in [0, 1]^2 (x, y) to
    ``[sin(2*pi*(2p - 1) @ G), cos(2*pi*(2p - 1) @ G)]``, i.e. 2 * num_pos_feats channels. The matrix is
    a buffer (it is part of the checkpoint but never trained).

    Encodings are computed in float32 whatever the module dtype: sin/cos of arguments of size ~50 lose
    all precision in bfloat16. Callers cast the result.
    """

    def __init__(self, num_pos_feats: int = 128, scale: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", scale * torch.randn(2, num_pos_feats))

    def encode_unit(self, coords: torch.Tensor) -> torch.Tensor:
        """coords (..., 2) float32 in [0, 1], x then y -> (..., 2 * num_pos_feats) float32."""
        gauss = self.positional_encoding_gaussian_matrix.float()
        angles = 2 * math.pi * ((2 * coords - 1) @ gauss)
        return torch.cat([angles.sin(), angles.cos()], dim=-1)

    def encode_pixels(self, coords: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """coords (B, N, 2) in pixels (x, y) of an image of ``image_size`` (H, W) -> (B, N, C) float32."""
        h, w = image_size
        # divide rather than multiply by the reciprocal: keeps the result bit-equal to x / W
        unit = torch.stack([coords[..., 0] / w, coords[..., 1] / h], dim=-1)
        return self.encode_unit(unit.float())

    def grid(self, size: tuple[int, int]) -> torch.Tensor:
        """Encoding of the centres of an (H, W) grid of cells -> (C, H, W) float32."""
        h, w = size
        device = self.positional_encoding_gaussian_matrix.device
        ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
        xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
        unit = torch.stack([xs[None, :].expand(h, w), ys[:, None].expand(h, w)], dim=-1)
        return self.encode_unit(unit).permute(2, 0, 1)


class PromptEncoder(nn.Module):
    """Encodes point / box / mask prompts for the mask decoder.

    Args:
        embed_dim: token width (256).
        image_embedding_size: (h, w) of the image embedding, input size / 16 (64, 64 at 1024).
        input_image_size: (H, W) in pixels of the model input the coordinates refer to (1024, 1024).
        mask_in_chans: hidden channels of the mask downscaling stack (16).
    """

    def __init__(
        self,
        embed_dim: int = 256,
        image_embedding_size: tuple[int, int] = (64, 64),
        input_image_size: tuple[int, int] = (1024, 1024),
        mask_in_chans: int = 16,
        activation: type[nn.Module] = nn.GELU,
    ) -> None:
        super().__init__()
        if embed_dim % 2:
            raise ValueError(f"embed_dim must be even (sin and cos halves), got {embed_dim}")
        self.embed_dim = embed_dim
        self.image_embedding_size = tuple(image_embedding_size)
        self.input_image_size = tuple(input_image_size)
        self.mask_input_size = (4 * self.image_embedding_size[0], 4 * self.image_embedding_size[1])
        self.pe_layer = RandomFourierEncoding(embed_dim // 2)
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(NUM_POINT_LABELS))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        # two stride-2 convs take the mask from 4x the embedding grid to the grid itself
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans // 4),
            activation(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            activation(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    @property
    def _dtype(self) -> torch.dtype:
        return self.no_mask_embed.weight.dtype

    def get_dense_pe(self) -> torch.Tensor:
        """Position encoding of every image-embedding cell centre: (1, embed_dim, h, w), module dtype.

        This is the ``image_pe`` the mask decoder expects; recomputed on each call (it is cheap and the
        module keeps no state between calls).
        """
        return self.pe_layer.grid(self.image_embedding_size).unsqueeze(0).to(self._dtype)

    def _label_table(self) -> torch.Tensor:
        """(NUM_POINT_LABELS + 2, C): row 0 padding, rows 1..4 labels 0..3, last row zeros (other labels)."""
        rows = [self.not_a_point_embed.weight, *(e.weight for e in self.point_embeddings)]
        rows.append(torch.zeros_like(rows[0]))
        return torch.cat(rows, dim=0)

    def _embed_points(self, coords: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        """coords (B, N, 2) pixels, labels (B, N) -> (B, N + pad, C).

        Padding points (label -1) get ``not_a_point_embed`` alone; labels 0..3 add their learned
        embedding to the position encoding; any other label keeps the bare position encoding (as the
        official model does; no data-dependent check, so this never synchronises with the device).
        """
        # +0.5: a click on pixel (i, j) means the centre of that pixel
        coords = coords.to(torch.promote_types(coords.dtype, torch.float32)) + 0.5
        pe = self.pe_layer.encode_pixels(coords, self.input_image_size).to(self._dtype)
        labels = labels.to(device=pe.device, dtype=torch.long)
        index = labels + 1
        index = torch.where((index < 0) | (index > NUM_POINT_LABELS), NUM_POINT_LABELS + 1, index)
        table = self._label_table()
        out = torch.where((labels == -1).unsqueeze(-1), 0.0, pe) + table[index]
        if pad:
            # a trailing "not a point" token: the decoder was trained with one whenever no box is given
            padding = self.not_a_point_embed.weight.expand(out.shape[0], 1, -1)
            out = torch.cat([out, padding], dim=1)
        return out

    def _embed_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        """boxes (B, 4) pixels (x0, y0, x1, y1) -> (B, 2, C): the two corners as labels 2 and 3."""
        corners = boxes.to(torch.promote_types(boxes.dtype, torch.float32)).reshape(-1, 2, 2) + 0.5
        pe = self.pe_layer.encode_pixels(corners, self.input_image_size).to(self._dtype)
        corner_embed = torch.cat([self.point_embeddings[2].weight, self.point_embeddings[3].weight], dim=0)
        return pe + corner_embed

    def _batch_size(
        self,
        points: tuple[torch.Tensor, torch.Tensor] | None,
        boxes: torch.Tensor | None,
        masks: torch.Tensor | None,
    ) -> int:
        """Checks prompt shapes and returns their common batch size (1 when there is no prompt)."""
        sizes: dict[str, int] = {}
        if points is not None:
            if not (isinstance(points, (tuple, list)) and len(points) == 2):
                raise ValueError("points must be a pair (coords (B, N, 2), labels (B, N))")
            coords, labels = points
            if coords.dim() != 3 or coords.shape[-1] != 2:
                raise ValueError(f"point coords must have shape (B, N, 2) (x, y); got {tuple(coords.shape)}")
            if tuple(labels.shape) != tuple(coords.shape[:2]):
                raise ValueError(
                    f"point labels must have shape (B, N) = {tuple(coords.shape[:2])} to match the coords; "
                    f"got {tuple(labels.shape)}"
                )
            sizes["points"] = coords.shape[0]
        if boxes is not None:
            if boxes.shape[-1] != 4 or boxes.dim() not in (2, 3) or boxes.numel() != 4 * boxes.shape[0]:
                raise ValueError(f"boxes must have shape (B, 4) (x0, y0, x1, y1); got {tuple(boxes.shape)}")
            sizes["boxes"] = boxes.shape[0]
        if masks is not None:
            expected = self.mask_input_size
            if masks.dim() != 4 or masks.shape[1] != 1 or tuple(masks.shape[-2:]) != expected:
                raise ValueError(
                    f"mask prompt must have shape (B, 1, {expected[0]}, {expected[1]}) (logits at 4x the "
                    f"image-embedding size); got {tuple(masks.shape)}. Resize it first."
                )
            sizes["masks"] = masks.shape[0]
        values = list(sizes.values())
        # compared pairwise, not through a set: an export traces these sizes as unhashable symbols
        if any(v != values[0] for v in values[1:]):
            detail = ", ".join(f"{k}: {v}" for k, v in sizes.items())
            raise ValueError(f"prompts disagree on the batch size ({detail}); give one prompt set per item")
        return next(iter(sizes.values()), 1)

    def forward(
        self,
        points: tuple[torch.Tensor, torch.Tensor] | None,
        boxes: torch.Tensor | None,
        masks: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Embed the prompts of a batch.

        Args:
            points: (coords (B, N, 2) float, pixels of the model input, x then y; labels (B, N) int in
                {-1, 0, 1, 2, 3}) or None. Without boxes a padding token is appended.
            boxes: (B, 4) float, pixels (x0, y0, x1, y1), or None.
            masks: (B, 1, 4h, 4w) float mask logits, or None.

        Returns:
            sparse: (B, N', embed_dim), N' = N + 1 (points only), N + 2 (points and box), 2 (box only).
            dense: (B, embed_dim, h, w); without a mask an expanded (non-contiguous) view.
        """
        bs = self._batch_size(points, boxes, masks)
        tokens = []
        if points is not None:
            tokens.append(self._embed_points(points[0], points[1], pad=boxes is None))
        if boxes is not None:
            tokens.append(self._embed_boxes(boxes))
        if not tokens:
            sparse = self.no_mask_embed.weight.new_empty(bs, 0, self.embed_dim)
        else:
            sparse = tokens[0] if len(tokens) == 1 else torch.cat(tokens, dim=1)
        if masks is not None:
            dense = self.mask_downscaling(masks.to(self._dtype))
        else:
            h, w = self.image_embedding_size
            dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(bs, -1, h, w)
        return sparse, dense
