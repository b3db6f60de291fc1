"""What the SAM 2 model's steps produce: image features, decoder outputs and video frame results.

Plain containers shared by the model (:mod:`.sam2`), the predictors and training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["NO_OBJECT_SCORE", "DecoderOutput", "FrameResult", "ImageFeatures", "points_or_padding"]

# Logit written into masks of frames where the object is judged absent (as the official model).
NO_OBJECT_SCORE = -1024.0


def points_or_padding(
    points: tuple[torch.Tensor, torch.Tensor] | None, like: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``points`` as given, or for none one padding point per batch row (label -1, ignored by the
    prompt encoder except for its padding embedding), as the official model decodes tracked frames."""
    if points is not None:
        return points
    b = like.shape[0]
    return (
        torch.zeros(b, 1, 2, device=like.device),
        -torch.ones(b, 1, dtype=torch.int32, device=like.device),
    )


@dataclass
class ImageFeatures:
    """Backbone output for a batch of B images at model resolution S.

    - ``image_embed``: (B, 256, S/16, S/16) stride-16 features (raw, without the no-memory embedding)
    - ``high_res``: [(B, 32, S/4, S/4), (B, 64, S/8, S/8)] already projected for the mask decoder
    - ``pos``: position encodings of the three levels, highest resolution first (B, 256, h, w) each
    """

    image_embed: torch.Tensor
    high_res: list[torch.Tensor]
    pos: list[torch.Tensor]

    def select(self, idx: int | slice) -> ImageFeatures:
        """The features of one image (kept 4-D) or a slice of the batch."""
        s = slice(idx, idx + 1) if isinstance(idx, int) else idx
        return ImageFeatures(self.image_embed[s], [h[s] for h in self.high_res], [p[s] for p in self.pos])

    @property
    def batch_size(self) -> int:
        return self.image_embed.shape[0]

    def expand(self, b: int) -> ImageFeatures:
        """The features of one image seen as a batch of ``b`` (views, no copy); unchanged if already b."""
        if self.batch_size == b:
            return self
        return ImageFeatures(
            self.image_embed.expand(b, -1, -1, -1),
            [h.expand(b, -1, -1, -1) for h in self.high_res],
            [p.expand(b, -1, -1, -1) for p in self.pos],
        )

    def nbytes(self) -> int:
        """Bytes of the tensors (numel x element size; what a cache of features accounts for)."""
        return sum(t.numel() * t.element_size() for t in (self.image_embed, *self.high_res, *self.pos))


@dataclass
class FrameResult:
    """What tracking produces for B objects on one frame (the official ``track_step`` outputs).

    - ``low_res_masks``: (B, 1, S/4, S/4) float32 logits of the chosen mask (``NO_OBJECT_SCORE`` where
      the object is judged absent)
    - ``high_res_masks``: (B, 1, S, S) float32, the same upsampled (input of the memory encoder)
    - ``obj_ptr``: (B, 256) object pointer; ``object_score``: (B, 1) occlusion logit (> 0: present)
    """

    low_res_masks: torch.Tensor
    high_res_masks: torch.Tensor
    obj_ptr: torch.Tensor
    object_score: torch.Tensor


@dataclass
class DecoderOutput:
    """Mask decoder output for B prompts (C = 3 with multimask output, else 1).

    - ``low_res_masks``: (B, C, S/4, S/4) logits in model-input coordinates
    - ``iou``: (B, C) predicted IoU in [0, 1]
    - ``tokens``: (B, C, 256) output tokens of the returned masks (object-pointer source)
    - ``object_score``: (B, 1) occlusion logit: > 0 means the object is present
    """

    low_res_masks: torch.Tensor
    iou: torch.Tensor
    tokens: torch.Tensor
    object_score: torch.Tensor
