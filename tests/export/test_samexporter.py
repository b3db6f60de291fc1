"""samexporter 0.5.0's own runtime (``SegmentAnything2ONNX``) loads masklet's image encoder and decoder
unchanged and gives masklet's masks for the same photo and prompts."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from masklet.inference.image import ImagePredictor
from tests.conftest import load_photo

sam2_onnx = pytest.importorskip(
    "samexporter.sam2_onnx", reason="samexporter is not installed (tests/setup_oracle.sh installs it)"
)

PROMPTS = [
    [{"type": "point", "data": [120, 90], "label": 1}],
    [{"type": "point", "data": [60, 200], "label": 1}, {"type": "point", "data": [150, 120], "label": 0}],
    [{"type": "rectangle", "data": [40, 60, 200, 180]}],
]


def masklet_mask(predictor: ImagePredictor, prompt: list[dict]) -> np.ndarray:
    points = [m["data"] for m in prompt if m["type"] == "point"]
    labels = [m["label"] for m in prompt if m["type"] == "point"]
    boxes = [m["data"] for m in prompt if m["type"] == "rectangle"]
    masks, iou, _ = predictor.predict(
        point_coords=np.array(points, dtype=np.float32) if points else None,
        point_labels=np.array(labels) if points else None,
        box=np.array(boxes[0], dtype=np.float32) if boxes else None,
    )
    return masks[int(np.argmax(iou))].astype(bool)


@pytest.mark.parametrize("prompt", PROMPTS, ids=["click", "two-clicks", "box"])
def test_samexporter_gives_masklets_masks(family, prompt, capsys):
    """Every family's files: EfficientTAM's encoder gives empty high-resolution features, which
    samexporter passes on to the decoder like any others."""
    onnx_dir, torch_model = family.onnx_dir, family.torch_model
    # the photo at the model's input size: samexporter resizes with OpenCV's plain bilinear filter,
    # masklet with an antialiased one; at the input size both are the identity, so the comparison is
    # of the files' contract (channel order, normalization, prompt coordinates, outputs), not filters
    photo = np.asarray(Image.fromarray(load_photo("truck.jpg")).resize((256, 256), Image.BILINEAR))
    sam = sam2_onnx.SegmentAnything2ONNX(
        str(onnx_dir / "image_encoder.onnx"), str(onnx_dir / "image_decoder.onnx")
    )
    embedding = sam.encode(np.ascontiguousarray(photo[..., ::-1]))  # samexporter takes OpenCV's BGR
    theirs = sam.predict_masks(embedding, prompt)[0, 0] > 0
    predictor = ImagePredictor(torch_model)
    predictor.set_image(photo)
    ours = masklet_mask(predictor, prompt)
    assert theirs.shape == ours.shape == (256, 256)
    assert 0.02 < ours.mean() < 0.98, "a near-empty or near-full mask would make the comparison trivial"
    iou = (theirs & ours).sum() / (theirs | ours).sum()
    assert iou >= 0.999, f"samexporter vs masklet mask IoU {iou:.5f}"
