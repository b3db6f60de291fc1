"""SAM 2 mask decoder: prompt tokens + image embedding -> mask logits, IoU estimates, object score.

Learned output tokens (object score, IoU, 4 mask tokens) are prepended to the prompt tokens and run
through the two-way transformer with the image embedding. The image side is then upsampled 4x (with
the stride-4 and stride-8 backbone features added on the way), and each mask token, through its own
hypernetwork MLP, becomes a 32-d filter applied per pixel: one mask per token.

Mask token 0 is trained for single-mask output; tokens 1..3 for three alternatives to disambiguate
ambiguous prompts (e.g. a single click).
"""

from __future__ import annotations

import torch
from torch import nn

from masklet.modeling.common import MLP, LayerNorm2d
from masklet.modeling.transformer import TwoWayTransformer


def stability_score(
    mask_logits: torch.Tensor, offset: float, threshold: float = 0.0, empty: float = 1.0
) -> torch.Tensor:
    """IoU of a mask binarised at ``threshold + offset`` and at ``threshold - offset``.

    The higher cut gives a subset of the lower one, so the IoU is area(> t + offset) / area(> t - offset):
    close to 1 when few logits lie near the threshold.

    Args:
        mask_logits: (..., H, W) float logits (any float dtype).
        offset: half-width of the band around the threshold (the decoder uses 0.05 on logits; the
            automatic mask generator 1.0).
        threshold: binarisation threshold on the logits.
        empty: score where even the lower cut is empty. The decoder's fallback uses 1.0 (an empty mask
            counts as stable); pass ``float("nan")`` for a plain 0 / 0, which fails every threshold.

    Returns:
        (...) float32 in [0, 1] (or ``empty``).
    """
    flat = mask_logits.flatten(-2)
    inter = (flat > threshold + offset).sum(-1, dtype=torch.int32)
    union = (flat > threshold - offset).sum(-1, dtype=torch.int32)
    return torch.where(union > 0, inter / union.clamp(min=1), empty)


class MaskDecoder(nn.Module):
    """Predicts masks from an image embedding and prompt embeddings.

    Args:
        transformer_dim: token / embedding width (256).
        transformer: the two-way transformer; None builds SAM 2's (depth 2, 8 heads, MLP 2048).
        num_multimask_outputs: alternatives for ambiguous prompts (3); one more token is the single mask.
        iou_head_depth, iou_head_hidden_dim: the IoU-prediction MLP.
        use_high_res_features: add stride-4 / stride-8 backbone features during upsampling; the decoder
            then owns ``conv_s0`` / ``conv_s1``, which project those FPN levels (256 ch) to 32 / 64 ch.
            The model applies them once per image (see :meth:`project_high_res_features`).
        iou_prediction_use_sigmoid: IoU estimates in [0, 1] rather than raw.
        pred_obj_scores, pred_obj_scores_mlp: an object-presence token with a 3-layer MLP head (else a
            linear head; without the token the score is a constant 10, i.e. present).
        use_multimask_token_for_obj_ptr: with multimask output, return tokens 1..3 (else always token 0)
            as the object-pointer tokens.
        dynamic_multimask_via_stability, dynamic_multimask_stability_delta,
        dynamic_multimask_stability_thresh: in eval mode with single-mask output, when mask 0's
            :func:`stability_score` (offset ``delta``) is below ``thresh``, return the multimask output
            with the highest predicted IoU instead.
    """

    def __init__(
        self,
        transformer_dim: int = 256,
        transformer: nn.Module | None = None,
        num_multimask_outputs: int = 3,
        activation: type[nn.Module] = nn.GELU,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
        use_high_res_features: bool = True,
        iou_prediction_use_sigmoid: bool = True,
        pred_obj_scores: bool = True,
        pred_obj_scores_mlp: bool = True,
        use_multimask_token_for_obj_ptr: bool = True,
        dynamic_multimask_via_stability: bool = True,
        dynamic_multimask_stability_delta: float = 0.05,
        dynamic_multimask_stability_thresh: float = 0.98,
    ) -> None:
        super().__init__()
        c = transformer_dim
        self.transformer_dim = c
        self.transformer = transformer if transformer is not None else TwoWayTransformer(2, c, 8, 2048)
        self.num_multimask_outputs = num_multimask_outputs
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, c)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, c)
        self.pred_obj_scores = pred_obj_scores
        if pred_obj_scores:
            self.obj_score_token = nn.Embedding(1, c)
        self.use_multimask_token_for_obj_ptr = use_multimask_token_for_obj_ptr

        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(c, c // 4, kernel_size=2, stride=2),
            LayerNorm2d(c // 4),
            activation(),
            nn.ConvTranspose2d(c // 4, c // 8, kernel_size=2, stride=2),
            activation(),
        )
        self.use_high_res_features = use_high_res_features
        if use_high_res_features:
            self.conv_s0 = nn.Conv2d(c, c // 8, kernel_size=1)
            self.conv_s1 = nn.Conv2d(c, c // 4, kernel_size=1)

        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(c, c, c // 8, 3) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(
            c,
            iou_head_hidden_dim,
            self.num_mask_tokens,
            iou_head_depth,
            sigmoid_output=iou_prediction_use_sigmoid,
        )
        if pred_obj_scores:
            self.pred_obj_score_head = MLP(c, c, 1, 3) if pred_obj_scores_mlp else nn.Linear(c, 1)

        self.dynamic_multimask_via_stability = dynamic_multimask_via_stability
        self.dynamic_multimask_stability_delta = dynamic_multimask_stability_delta
        self.dynamic_multimask_stability_thresh = dynamic_multimask_stability_thresh

    def project_high_res_features(
        self, feat_s0: torch.Tensor, feat_s1: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """FPN levels (B, C, 4h, 4w) and (B, C/8, 2h, 2w) -> (B, C/8, 4h, 4w), (B, C/4, 2h, 2w).

        The inputs may be in another dtype than the decoder (bf16 from a bf16 encoder): they are
        converted to the decoder's dtype, a band of rows at a time without autograd (these are 1x1
        convolutions, so bands are independent), instead of materialising the full-size converted map.
        """
        if not self.use_high_res_features:
            raise RuntimeError("this decoder was built with use_high_res_features=False")
        return _project(self.conv_s0, feat_s0), _project(self.conv_s1, feat_s1)

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: bool,
        repeat_image: bool,
        high_res_features: list[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Predict masks for a batch of prompt sets.

        Args:
            image_embeddings: (B, C, h, w), or (1, C, h, w) with ``repeat_image`` (one image, B prompt
                sets; it is broadcast, not copied).
            image_pe: (1, C, h, w) from ``PromptEncoder.get_dense_pe()``.
            sparse_prompt_embeddings: (B, N, C) prompt tokens.
            dense_prompt_embeddings: (B, C, h, w) mask-prompt embedding.
            multimask_output: return the 3 alternatives (tokens 1..3) instead of the single mask.
            repeat_image: the image batch is 1 and shared by all B prompt sets.
            high_res_features: [(B or 1, C/8, 4h, 4w), (B or 1, C/4, 2h, 2w)] already projected by
                ``conv_s0`` / ``conv_s1``; required when ``use_high_res_features``.

        Returns:
            masks: (B, M, 4h, 4w) logits, M = 3 with multimask output else 1 (threshold at 0).
            iou_pred: (B, M) predicted IoU of each mask (in [0, 1] with the sigmoid head).
            sam_tokens_out: (B, M', C) mask tokens for the object pointer; M' = 3 with multimask output
                and ``use_multimask_token_for_obj_ptr``, else 1 (the single-mask token).
            object_score_logits: (B, 1) logit that the object is present.
        """
        masks, iou_pred, mask_tokens_out, object_score_logits = self.predict_masks(
            image_embeddings,
            image_pe,
            sparse_prompt_embeddings,
            dense_prompt_embeddings,
            repeat_image,
            high_res_features,
        )
        masks, iou_pred, sam_tokens_out = self.select_masks(
            masks, iou_pred, mask_tokens_out, multimask_output
        )
        return masks, iou_pred, sam_tokens_out, object_score_logits

    def select_masks(
        self, masks: torch.Tensor, iou_pred: torch.Tensor, mask_tokens: torch.Tensor, multimask_output: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The returned candidates from all of :meth:`predict_masks`' outputs: masks (B, 4, H, W),
        iou (B, 4), mask tokens (B, 4, C) -> (masks, iou_pred, sam_tokens_out) as :meth:`forward`
        returns them."""
        if multimask_output:
            sel_masks, sel_iou = masks[:, 1:], iou_pred[:, 1:]
        elif self.dynamic_multimask_via_stability and not self.training:
            sel_masks, sel_iou = self._select_stable(masks, iou_pred)
        else:
            sel_masks, sel_iou = masks[:, :1], iou_pred[:, :1]
        if multimask_output and self.use_multimask_token_for_obj_ptr:
            tokens = mask_tokens[:, 1:]
        else:
            # the pointer token is the single-mask one even when multimask masks are returned: during
            # training tracking always followed multi-click prompts, which use that token
            tokens = mask_tokens[:, :1]
        return sel_masks, sel_iou, tokens

    def _check_inputs(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse: torch.Tensor,
        dense: torch.Tensor,
        repeat_image: bool,
        high_res_features: list[torch.Tensor] | None,
    ) -> None:
        c = self.transformer_dim
        if image_embeddings.dim() != 4 or image_embeddings.shape[1] != c:
            raise ValueError(f"image_embeddings must be (B, {c}, h, w); got {tuple(image_embeddings.shape)}")
        grid = tuple(image_embeddings.shape[-2:])
        if tuple(image_pe.shape) != (1, c, *grid):
            raise ValueError(
                f"image_pe must be (1, {c}, {grid[0]}, {grid[1]}) as from PromptEncoder.get_dense_pe(); "
                f"got {tuple(image_pe.shape)}"
            )
        if sparse.dim() != 3 or sparse.shape[-1] != c:
            raise ValueError(f"sparse_prompt_embeddings must be (B, N, {c}); got {tuple(sparse.shape)}")
        b = sparse.shape[0]
        if tuple(dense.shape) != (b, c, *grid):
            raise ValueError(
                f"dense_prompt_embeddings must be ({b}, {c}, {grid[0]}, {grid[1]}) to match the sparse "
                f"prompts and the image grid; got {tuple(dense.shape)}"
            )
        if repeat_image and image_embeddings.shape[0] != 1:
            raise ValueError(
                f"repeat_image=True shares one image among the prompt sets, so image_embeddings must have "
                f"batch 1; got {image_embeddings.shape[0]}"
            )
        if not repeat_image and image_embeddings.shape[0] != b:
            raise ValueError(
                f"image_embeddings batch ({image_embeddings.shape[0]}) must equal the prompt batch ({b}); "
                "pass repeat_image=True to share one image among several prompt sets"
            )
        if self.use_high_res_features and (high_res_features is None or len(high_res_features) != 2):
            raise ValueError(
                "this decoder needs high_res_features: [stride-4 (B, 32, 4h, 4w), stride-8 (B, 64, 2h, 2w)] "
                "backbone features projected by conv_s0 / conv_s1"
            )

    def predict_masks(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        repeat_image: bool,
        high_res_features: list[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """All outputs before selection: masks (B, 4, 4h, 4w), iou (B, 4), mask tokens (B, 4, C),
        object score logits (B, 1). Arguments as in :meth:`forward`."""
        self._check_inputs(
            image_embeddings,
            image_pe,
            sparse_prompt_embeddings,
            dense_prompt_embeddings,
            repeat_image,
            high_res_features,
        )
        sparse = sparse_prompt_embeddings
        b = sparse.shape[0]
        learned = [self.iou_token.weight, self.mask_tokens.weight]
        if self.pred_obj_scores:
            learned.insert(0, self.obj_score_token.weight)
        first = 1 if self.pred_obj_scores else 0  # index of the IoU token
        output_tokens = torch.cat(learned, dim=0).unsqueeze(0).expand(b, -1, -1)
        tokens = torch.cat([output_tokens, sparse.to(output_tokens.dtype)], dim=1)

        # with repeat_image the (1, C, h, w) image broadcasts against the (B, C, h, w) mask embedding;
        # without a mask prompt that embedding is one vector broadcast over the batch (stride 0), and
        # the image side stays batch 1 until the prompts first change it
        shared = repeat_image and dense_prompt_embeddings.stride(0) == 0
        dense = dense_prompt_embeddings[:1] if shared else dense_prompt_embeddings
        src = image_embeddings + dense
        hs, keys = self.transformer(src, image_pe, tokens)
        iou_token_out = hs[:, first]
        mask_tokens_out = hs[:, first + 1 : first + 1 + self.num_mask_tokens]

        _, c, h, w = src.shape
        upscaled = self._upscale(keys.transpose(1, 2).reshape(b, c, h, w), high_res_features)
        hyper_in = torch.stack(
            [mlp(mask_tokens_out[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )
        _, c_up, h_up, w_up = upscaled.shape
        masks = (hyper_in @ upscaled.flatten(2)).view(b, -1, h_up, w_up)

        iou_pred = self.iou_prediction_head(iou_token_out)
        if self.pred_obj_scores:
            object_score_logits = self.pred_obj_score_head(hs[:, 0])
        else:
            object_score_logits = iou_pred.new_full((b, 1), 10.0)  # sigmoid(10) ~ 1: always present
        return masks, iou_pred, mask_tokens_out, object_score_logits

    def _upscale(self, src: torch.Tensor, high_res_features: list[torch.Tensor] | None) -> torch.Tensor:
        """(B, C, h, w) -> (B, C/8, 4h, 4w); the high-res features join before each activation."""
        if not self.use_high_res_features:
            return self.output_upscaling(src)
        up1, norm1, act1, up2, act2 = self.output_upscaling
        feat_s0, feat_s1 = high_res_features
        x = act1(norm1(up1(src) + feat_s1))
        return act2(up2(x) + feat_s0)

    def _select_stable(
        self, masks: torch.Tensor, iou_pred: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """masks (B, 4, H, W), iou (B, 4) -> (B, 1, H, W), (B, 1): mask 0 where it is stable, otherwise
        the multimask output (1..3) with the highest predicted IoU."""
        score = stability_score(masks[:, 0], self.dynamic_multimask_stability_delta)
        best_multi = 1 + iou_pred[:, 1:].argmax(dim=-1)
        pick = torch.where(score >= self.dynamic_multimask_stability_thresh, 0, best_multi)
        rows = torch.arange(masks.shape[0], device=masks.device)
        return masks[rows, pick].unsqueeze(1), iou_pred[rows, pick].unsqueeze(1)


_BAND_ELEMS = 1 << 20  # input elements converted per band (4 MiB in float32: stays in cache)


def _project(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x.to(conv.weight.dtype))`` for a 1x1 convolution, converting a band of rows at a time."""
    dtype = conv.weight.dtype
    if x.dtype == dtype:
        return conv(x)
    b, c, h, w = x.shape
    rows = max(1, _BAND_ELEMS // (b * c * w))
    if torch.is_grad_enabled() or rows >= h:
        return conv(x.to(dtype))
    out = torch.empty((b, conv.out_channels, h, w), dtype=dtype, device=x.device)
    for r in range(0, h, rows):
        out[:, :, r : r + rows] = conv(x[:, :, r : r + rows].to(dtype))
    return out
