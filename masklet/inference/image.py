"""Promptable image segmentation: ``ImagePredictor``, a drop-in for the official SAM2ImagePredictor.

Usage::

    predictor = ImagePredictor(build_model("sam2.1_hiera_tiny"))
    predictor.set_image(image)                      # (H, W, 3) uint8 RGB array or PIL image
    masks, scores, logits = predictor.predict(point_coords=[[500, 375]], point_labels=[1])
    masks, scores, _ = predictor.predict(point_coords=[[500, 375]], point_labels=[1],
                                         mask_input=logits[scores.argmax()][None], multimask_output=False)

Coordinates are x, y in pixels of the original image (``normalize_coords=True``, the default) or
relative in [0, 1] (``normalize_coords=False``). Outputs are numpy arrays at the original resolution;
masks are float32 0/1 as the official predictor returns them (``masks.astype(bool)`` for booleans).

For code written against the official SAM2ImagePredictor, the private attributes it reads are there
too, read-only: ``_features`` (``{"image_embed": (B, 256, S/16, S/16), "high_res_feats": [(B, 32, S/4,
S/4), (B, 64, S/8, S/8)]}``, the embedding with the no-memory embedding added), ``_orig_hw`` ([(h, w)]
per image), ``_is_image_set``, ``_is_batch`` and ``_transforms`` (:class:`.transforms.ImageTransforms`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..io.images import to_rgb_uint8
from ..io.preprocess import preprocess_image
from ..modeling.sam2 import ImageFeatures, SAM2Model
from .prompts import PromptError, batch_size_of, check_boxes, check_mask_input, check_points
from .transforms import ImageTransforms, to_model_coords


class NoImageError(RuntimeError, ValueError):
    """predict() was called before set_image() (a RuntimeError as officially, and a ValueError)."""


@dataclass
class _ImageState:
    features: ImageFeatures  # image_embed already includes the no-memory embedding
    orig_hw: list[tuple[int, int]]
    is_batch: bool


class ImagePredictor:
    """Embeds an image once, then turns point / box / mask prompts into masks quickly.

    Args:
        model: a ``SAM2Model`` (``masklet.build_model``); it runs in the model's own dtype and device.
        mask_threshold: logit threshold for binary masks.
        max_hole_area: fill background holes up to this area (in 256x256 low-res mask pixels).
        max_sprinkle_area: remove foreground specks up to this area (same units).
    """

    def __init__(
        self,
        model: SAM2Model,
        mask_threshold: float = 0.0,
        max_hole_area: float = 0.0,
        max_sprinkle_area: float = 0.0,
    ) -> None:
        self.model = model
        self.mask_threshold = mask_threshold
        self.max_hole_area = max_hole_area
        self.max_sprinkle_area = max_sprinkle_area
        self._state: _ImageState | None = None

    @property
    def device(self) -> torch.device:
        return self.model.device

    # ------------------------------------------------------------------ official attributes (read-only)
    @property
    def _is_image_set(self) -> bool:
        return self._state is not None

    @property
    def _is_batch(self) -> bool:
        return self._state is not None and self._state.is_batch

    @property
    def _orig_hw(self) -> list[tuple[int, int]] | None:
        return None if self._state is None else self._state.orig_hw

    @property
    def _features(self) -> dict | None:
        """``{"image_embed": (B, 256, S/16, S/16), "high_res_feats": [(B, 32, S/4, S/4), (B, 64, S/8,
        S/8)]}`` of the images set (None before), as the official predictor keeps them."""
        if self._state is None:
            return None
        f = self._state.features
        return {"image_embed": f.image_embed, "high_res_feats": list(f.high_res)}

    @property
    def _transforms(self) -> ImageTransforms:
        return ImageTransforms(
            self.model.image_size, self.mask_threshold, self.max_hole_area, self.max_sprinkle_area
        )

    # ------------------------------------------------------------------ images
    @torch.inference_mode()
    def set_image(self, image) -> None:
        """Compute the embedding of one image: (H, W, 3) uint8 RGB array or PIL image.

        Grayscale, RGBA (alpha dropped), 16-bit and float [0, 1] images are converted
        (see ``masklet.io.images.to_rgb_uint8``); anything else raises ValueError and keeps the
        previous image.
        """
        rgb = to_rgb_uint8(image)
        feats = self._embed([rgb])
        self._state = _ImageState(feats, [rgb.shape[:2]], is_batch=False)

    @torch.inference_mode()
    def set_image_batch(self, image_list) -> None:
        """Embed several images for ``predict_batch`` (a list of (H, W, 3) arrays; sizes may differ)."""
        if not isinstance(image_list, (list, tuple)) or len(image_list) == 0:
            raise ValueError("set_image_batch expects a non-empty list of (H, W, 3) RGB images")
        rgbs = [to_rgb_uint8(im) for im in image_list]
        feats = self._embed(rgbs)
        self._state = _ImageState(feats, [im.shape[:2] for im in rgbs], is_batch=True)

    def _embed(self, rgbs: list[np.ndarray]) -> ImageFeatures:
        m = self.model
        # a read-only array (np.asarray of a PIL image) is copied: torch warns on wrapping one
        rgbs = [np.require(im, requirements="CW") for im in rgbs]
        batch = torch.cat([preprocess_image(im, m.image_size, m.device, m.dtype) for im in rgbs])
        feats = m.encode_image(batch)
        return ImageFeatures(m.embed_without_memory(feats.image_embed), feats.high_res, feats.pos)

    def get_image_embedding(self) -> torch.Tensor:
        """(B, 256, 64, 64) embedding of the current image(s) (at image_size 1024)."""
        return self._require_image().features.image_embed

    def reset_predictor(self) -> None:
        """Forget the current image."""
        self._state = None

    def _require_image(self) -> _ImageState:
        if self._state is None:
            raise NoImageError(
                "no image is set: call set_image(image) (or set_image_batch) before predicting"
            )
        return self._state

    # ------------------------------------------------------------------ prompts
    def predict(
        self,
        point_coords=None,
        point_labels=None,
        box=None,
        mask_input=None,
        multimask_output: bool = True,
        return_logits: bool = False,
        normalize_coords: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Masks for prompts on the current image.

        Args:
            point_coords: (N, 2) x, y or (B, N, 2) for B objects at once.
            point_labels: (N,) or (B, N): 1 object, 0 background.
            box: (4,) x0, y0, x1, y1 or (B, 4).
            mask_input: (1, 256, 256) low-res logits from a previous call (or (B, 1, 256, 256)).
            multimask_output: three candidate masks (for ambiguous single clicks) instead of one.
            return_logits: return float logits instead of 0/1 masks.
        Returns:
            masks (C, H, W) [or (B, C, H, W)] float32 0/1 (logits with ``return_logits``), scores (C,)
            [or (B, C)] predicted IoU, low-res logits (C, 256, 256) [or (B, C, 256, 256)] clamped to
            [-32, 32]. After ``set_image_batch`` the prompts apply to the last image of the batch, as
            officially (``predict_batch`` prompts each image).
        """
        last = len(self._require_image().orig_hw) - 1
        prompts = (point_coords, point_labels, box, mask_input)
        return self._predict_one(last, *prompts, multimask_output, return_logits, normalize_coords)

    def predict_batch(
        self,
        point_coords_batch=None,
        point_labels_batch=None,
        box_batch=None,
        mask_input_batch=None,
        multimask_output: bool = True,
        return_logits: bool = False,
        normalize_coords: bool = True,
    ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        """``predict`` for each image set by ``set_image_batch``; each argument is a list with one entry
        per image (or None). Returns lists of masks, scores and low-res logits."""
        state = self._require_image()
        if not state.is_batch:
            raise PromptError(
                "predict_batch needs images set with set_image_batch; use predict for one image"
            )
        n = len(state.orig_hw)
        for name, lst in (
            ("point_coords_batch", point_coords_batch),
            ("point_labels_batch", point_labels_batch),
            ("box_batch", box_batch),
            ("mask_input_batch", mask_input_batch),
        ):
            if lst is not None and len(lst) != n:
                raise PromptError(f"{name} has {len(lst)} entries but {n} images are set; give one per image")
        pick = lambda lst, i: None if lst is None else lst[i]  # noqa: E731
        outs = [
            self._predict_one(
                i,
                pick(point_coords_batch, i),
                pick(point_labels_batch, i),
                pick(box_batch, i),
                pick(mask_input_batch, i),
                multimask_output,
                return_logits,
                normalize_coords,
            )
            for i in range(n)
        ]
        return [o[0] for o in outs], [o[1] for o in outs], [o[2] for o in outs]

    @torch.inference_mode()
    def _predict_one(
        self,
        img_idx,
        point_coords,
        point_labels,
        box,
        mask_input,
        multimask_output,
        return_logits,
        normalize_coords,
    ):
        state = self._require_image()
        h, w = state.orig_hw[img_idx]
        frame = (float(w), float(h)) if normalize_coords else (1.0, 1.0)
        points = check_points(point_coords, point_labels, frame)
        boxes = check_boxes(box, frame)
        low = self.model.cfg.low_res_mask_size
        masks_in = check_mask_input(mask_input, low)
        b = batch_size_of(points[0] if points else None, boxes)
        if masks_in is not None and masks_in.shape[0] not in (1, b):
            raise PromptError(f"mask_input has batch {masks_in.shape[0]} but the prompts have {b}")
        if masks_in is not None and masks_in.shape[0] != b:
            masks_in = np.repeat(masks_in, b, axis=0)  # one mask prompt shared by all B prompts
        logits, iou = self._decode(img_idx, points, boxes, masks_in, multimask_output, normalize_coords)
        masks = self._postprocess(logits, (h, w))
        if not return_logits:
            masks = (masks > self.mask_threshold).float()
        return _to_numpy(masks), _to_numpy(iou), _to_numpy(logits.clamp(-32.0, 32.0))

    def _decode(self, img_idx, points, boxes, masks_in, multimask_output, normalize_coords):
        dev = self.model.device
        coords_l: list[torch.Tensor] = []
        labels_l: list[torch.Tensor] = []
        if boxes is not None:
            corners = torch.from_numpy(boxes).to(dev).view(-1, 2, 2)
            coords_l.append(corners)
            labels_l.append(torch.tensor([[2, 3]], dtype=torch.int32, device=dev).expand(boxes.shape[0], 2))
        if points is not None:
            coords_l.append(torch.from_numpy(points[0]).to(dev))
            labels_l.append(torch.from_numpy(points[1]).to(dev))
        coords = torch.cat(coords_l, dim=1) if coords_l else None
        labels = torch.cat(labels_l, dim=1) if labels_l else None
        mask_t = None if masks_in is None else torch.from_numpy(masks_in).to(dev)
        return self.decode_points(coords, labels, mask_t, multimask_output, normalize_coords, img_idx)

    @torch.inference_mode()
    def decode_points(
        self,
        coords: torch.Tensor | None,
        labels: torch.Tensor | None,
        mask_input: torch.Tensor | None = None,
        multimask_output: bool = True,
        normalize_coords: bool = True,
        img_idx: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode already-checked prompts as tensors (the fast path of ``predict`` and of the automatic
        mask generator).

        coords: (B, N, 2) float x, y in pixels of the image set (relative with ``normalize_coords=False``);
        labels: (B, N) int (1 object, 0 background, 2/3 box corners); mask_input: (B, 1, S/4, S/4)
        logits. Returns low-res logits (B, C, S/4, S/4) float32 (not clamped) and IoU estimates (B, C).
        """
        m, state = self.model, self._require_image()
        prompt = None
        if coords is not None:
            coords = coords.to(m.device, torch.float32)
            model_xy = to_model_coords(
                coords, state.orig_hw[img_idx], m.image_size, normalize=normalize_coords
            )
            prompt = (model_xy, labels.to(m.device, torch.int32))
        if mask_input is not None:
            mask_input = mask_input.to(m.device, m.head_dtype)
        feats = state.features.select(img_idx)
        out = m.decode(
            feats.image_embed,
            feats.high_res,
            prompt,
            mask_input,
            multimask_output,
            repeat_image=prompt is not None and prompt[0].shape[0] > 1,
        )
        return out.low_res_masks.float(), out.iou.float()

    def upscale_logits(self, low_res: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        """(B, C, S/4, S/4) logits -> (B, C, H, W) float32 logits at ``hw``, after the hole and speck
        removal this predictor was configured with."""
        return self._postprocess(low_res, hw)

    def _postprocess(self, low_res: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        """(B, C, 256, 256) logits -> (B, C, H, W) float logits at the original size."""
        return self._transforms.postprocess_masks(low_res, hw)


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    """(B, ...) tensor -> float32 numpy, dropping the batch axis for a single prompt (as the official
    API)."""
    t = t.squeeze(0) if t.shape[0] == 1 else t
    return t.float().cpu().numpy()
