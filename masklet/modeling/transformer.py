"""Two-way transformer of the mask decoder: prompt tokens and image tokens update each other.

Each block runs, on the (few) tokens: self-attention, cross-attention to the image, an MLP; then the image
attends back to the tokens. Position encodings are re-added to queries and keys before every attention
(never to values). A last token-to-image attention finishes the token update.

Token axis conventions: tokens (B, N, C); image tokens (B, h*w, C) in row-major (y, x) order.
"""

from __future__ import annotations

import torch
from torch import nn

from masklet.modeling.common import MLP, Attention


class TwoWayAttentionBlock(nn.Module):
    """One two-way block. Attribute names follow the official checkpoints.

    ``skip_first_layer_pe``: the first block's self-attention sees the raw tokens (which at that point
    already are prompt embeddings plus their position encodings) and replaces them rather than adding a
    residual -- the decoder was trained that way.
    """

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int = 2048,
        activation: type[nn.Module] = nn.ReLU,
        attention_downsample_rate: int = 2,
        skip_first_layer_pe: bool = False,
    ) -> None:
        super().__init__()
        self.self_attn = Attention(embedding_dim, num_heads)
        self.norm1 = nn.LayerNorm(embedding_dim)
        self.cross_attn_token_to_image = Attention(
            embedding_dim, num_heads, downsample_rate=attention_downsample_rate
        )
        self.norm2 = nn.LayerNorm(embedding_dim)
        self.mlp = MLP(embedding_dim, mlp_dim, embedding_dim, num_layers=2, activation=activation)
        self.norm3 = nn.LayerNorm(embedding_dim)
        self.norm4 = nn.LayerNorm(embedding_dim)
        self.cross_attn_image_to_token = Attention(
            embedding_dim, num_heads, downsample_rate=attention_downsample_rate
        )
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(
        self, queries: torch.Tensor, keys: torch.Tensor, query_pe: torch.Tensor, key_pe: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """queries (B, N, C), keys (B or 1, HW, C), query_pe (B, N, C), key_pe (1 or B, HW, C) ->
        queries (B, N, C), keys (B, HW, C). Keys of batch 1 are one image shared by all B prompt sets."""
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)

        to_image, to_tokens = self.cross_attn_token_to_image, self.cross_attn_image_to_token
        folded = to_image.folds(queries.shape[1]) and to_tokens.folds(queries.shape[1])
        if not folded and keys.shape[0] != queries.shape[0]:
            keys = keys.expand(queries.shape[0], -1, -1)
        # keys do not change until the last step, so their position-encoded form serves both attentions
        k = keys + key_pe
        q = queries + query_pe
        attend = to_image.attend_to_many if folded else to_image
        queries = self.norm2(queries + attend(q, k, keys))
        queries = self.norm3(queries + self.mlp(queries))

        q = queries + query_pe
        if folded:
            keys = self.norm4(to_tokens.attend_from_many(k, q, queries, residual=keys))
        else:
            keys = self.norm4(keys + to_tokens(k, q, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """``depth`` two-way blocks and a final token-to-image attention.

    Defaults are SAM 2's: depth 2, width 256, 8 heads, MLP 2048, cross attention at half width.
    """

    def __init__(
        self,
        depth: int = 2,
        embedding_dim: int = 256,
        num_heads: int = 8,
        mlp_dim: int = 2048,
        activation: type[nn.Module] = nn.ReLU,
        attention_downsample_rate: int = 2,
    ) -> None:
        super().__init__()
        self.depth = depth
        self.embedding_dim = embedding_dim
        self.num_heads = num_heads
        self.mlp_dim = mlp_dim
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(
                embedding_dim,
                num_heads,
                mlp_dim=mlp_dim,
                activation=activation,
                attention_downsample_rate=attention_downsample_rate,
                skip_first_layer_pe=i == 0,
            )
            for i in range(depth)
        )
        self.final_attn_token_to_image = Attention(
            embedding_dim, num_heads, downsample_rate=attention_downsample_rate
        )
        self.norm_final_attn = nn.LayerNorm(embedding_dim)

    def forward(
        self, image_embedding: torch.Tensor, image_pe: torch.Tensor, point_embedding: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the transformer.

        Args:
            image_embedding: (B, C, h, w) image features (prompt mask embedding already added), or
                (1, C, h, w): one image shared by the B prompt sets.
            image_pe: (1 or B, C, h, w) position encoding of the image grid; batch 1 is broadcast, which
                saves a copy per prompt.
            point_embedding: (B, N, C) output tokens followed by prompt tokens; also serves as their
                position encoding.

        Returns:
            queries: (B, N, C) updated tokens.
            keys: (B, h*w, C) updated image tokens, row-major over (h, w).
        """
        keys = image_embedding.flatten(2).transpose(1, 2)
        key_pe = image_pe.flatten(2).transpose(1, 2)
        queries = point_embedding
        for layer in self.layers:
            queries, keys = layer(queries, keys, point_embedding, key_pe)
        if keys.shape[0] != queries.shape[0]:  # no layers: the shared image is still batch 1
            keys = keys.expand(queries.shape[0], -1, -1)
        q = queries + point_embedding
        k = keys + key_pe
        final = self.final_attn_token_to_image
        attend = final.attend_to_many if final.folds(queries.shape[1]) else final
        queries = self.norm_final_attn(queries + attend(q, k, keys))
        return queries, keys
