"""The onnxruntime backend: a :class:`SAM2Model` whose heavy steps run the exported files.

:class:`OnnxSAM2Model` overrides only the model steps that an exported graph computes (encode an image,
decode prompts, attend to memories, encode a memory); everything else - choosing a frame's output,
taking a mask prompt as the output, the upscaling, the no-memory embedding - is the PyTorch model's own
code running on the few learned vectors kept in ``masklet.json``. So the predictors, the tracking core,
the stream tracker and the studio run on it unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..modeling.outputs import DecoderOutput, ImageFeatures
from ..modeling.sam2 import SAM2Model
from ..presets import get_preset
from .graphs import GRAPHS, high_res_shapes
from .onnx_export import FORMAT, FORMAT_VERSION, MANIFEST

__all__ = ["OnnxBackendError", "OnnxSAM2Model", "load_onnx_model", "read_manifest"]


class OnnxBackendError(ValueError):
    """A folder of exported files that cannot serve as the model asked for (the message says why)."""


def read_manifest(onnx_dir: str | Path) -> dict:
    """The checked content of ``onnx_dir/masklet.json``."""
    folder = Path(onnx_dir)
    path = folder / MANIFEST
    if not path.is_file():
        raise OnnxBackendError(
            f"{folder} has no {MANIFEST}: it is not a masklet ONNX export; write one with "
            f"`masklet export onnx --model NAME --out {folder}`"
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OnnxBackendError(f"{path} is not readable JSON ({exc}); re-export the folder") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise OnnxBackendError(f'{path} is not a masklet ONNX manifest (no "format": "{FORMAT}")')
    if data.get("format_version") != FORMAT_VERSION:
        raise OnnxBackendError(
            f"{path} has format version {data.get('format_version')}; this masklet reads version "
            f"{FORMAT_VERSION}: re-export the folder with this masklet"
        )
    missing = [k for k in ("preset", "image_size", "export_id", "constants") if k not in data]
    if missing:
        raise OnnxBackendError(f"{path} lacks {', '.join(missing)}; re-export the folder")
    return data


class OnnxSAM2Model(SAM2Model):
    """SAM 2 with the image encoder, prompt encoder + mask decoder, memory attention and memory encoder
    in onnxruntime sessions over the files of one export (float32, on the CPU unless ``providers``
    name another execution provider).

    The decoder graph returns object pointers where the PyTorch decoder returns mask tokens, so
    :meth:`object_pointer` passes them through; the rest of :class:`SAM2Model` applies as it is.
    Any preset's export serves: the family's own boxes are inside the files (EdgeTAM's memories come
    out of the memory encoder already compressed to latent tokens), and the manifest's preset gives
    the config the tracking core reads (EfficientTAM's decoder takes no high-resolution features).
    """

    def __init__(self, onnx_dir: str | Path, providers: list[str] | None = None) -> None:
        # SAM2Model.__init__ would build (and draw weights for) the very modules the sessions replace
        nn.Module.__init__(self)
        folder = Path(onnx_dir)
        self.manifest = read_manifest(folder)
        self.onnx_dir = folder
        self.cfg = get_preset(self.manifest["preset"], self.manifest["image_size"])
        d = self.cfg.d_model
        consts = self.manifest["constants"]
        self.no_mem_embed = nn.Parameter(_vector(consts, "no_mem_embed", (1, 1, d)), requires_grad=False)
        self.no_obj_ptr = nn.Parameter(_vector(consts, "no_obj_ptr", (1, d)), requires_grad=False)
        self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)
        self.mask_downsample.weight.data = _vector(consts, "mask_downsample.weight", (1, 1, 4, 4))
        self.mask_downsample.bias.data = _vector(consts, "mask_downsample.bias", (1,))
        self.mask_downsample.requires_grad_(False)
        self.no_obj_embed_spatial = None
        self._head_pos_cache = None
        self.sessions = {name: self._session(name, providers) for name in GRAPHS}
        self.eval()

    def _session(self, name: str, providers: list[str] | None):
        import onnxruntime as ort

        spec = GRAPHS[name]
        path = self.onnx_dir / spec.file_name
        if not path.is_file():
            raise OnnxBackendError(f"{self.onnx_dir} lacks {spec.file_name}; re-export the folder")
        sess = ort.InferenceSession(str(path), providers=providers or ["CPUExecutionProvider"])
        meta = sess.get_modelmeta().custom_metadata_map
        m = self.manifest
        made_by = (meta.get("masklet.export_id"), meta.get("masklet.preset"), meta.get("masklet.image_size"))
        if made_by != (m["export_id"], m["preset"], str(m["image_size"])):
            made = f"{meta.get('masklet.preset', 'another model')} at {meta.get('masklet.image_size', '?')}"
            raise OnnxBackendError(
                f"{path} comes from another export ({made} px) than {MANIFEST} describes ({m['preset']} at "
                f"{m['image_size']} px): a folder must hold the files of one export; re-export it"
            )
        names = ([i.name for i in sess.get_inputs()], [o.name for o in sess.get_outputs()])
        if names != (list(spec.inputs), list(spec.outputs)):
            raise OnnxBackendError(f"{path} does not have the inputs and outputs of masklet's {name} graph")
        return sess

    # ---------------------------------------------------------------- what SAM2Model's modules gave
    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    def heavy_modules(self) -> tuple[nn.Module, ...]:
        return ()

    def set_compute_dtype(self, dtype: torch.dtype, encoder_dtype: torch.dtype | None = None) -> SAM2Model:
        if dtype != torch.float32 or encoder_dtype not in (None, torch.float32):
            raise OnnxBackendError("the ONNX backend computes in float32; use dtype fp32 (or auto) with it")
        return self

    def _run(self, name: str, *inputs: torch.Tensor) -> list[torch.Tensor]:
        spec = GRAPHS[name]
        feed = {k: _array(t) for k, t in zip(spec.inputs, inputs)}
        return [torch.from_numpy(o) for o in self.sessions[name].run(None, feed)]

    # ---------------------------------------------------------------- the exported steps
    def encode_image(self, images: torch.Tensor) -> ImageFeatures:
        """images: (B, 3, S, S) normalized -> features; ``pos`` holds only the stride-16 encoding (the
        one inference reads)."""
        hr0, hr1, _, embed, pos = self._run("image_encoder", images.float())
        # presets without high-resolution features get none, as from the PyTorch model
        high_res = [hr0, hr1] if self.cfg.use_high_res_features else []
        return ImageFeatures(image_embed=embed, high_res=high_res, pos=[pos])

    def decode(
        self,
        image_embed: torch.Tensor,
        high_res: list[torch.Tensor],
        points: tuple[torch.Tensor, torch.Tensor] | None = None,
        mask_input: torch.Tensor | None = None,
        multimask_output: bool = True,
        repeat_image: bool = False,
    ) -> DecoderOutput:
        """:meth:`SAM2Model.decode` through ``image_decoder.onnx``; ``tokens`` holds object pointers.

        Without points the graph reads a lone padding point (its inputs always hold points), where the
        PyTorch decoder reads none: a mask-only prompt on a still image decodes slightly differently.
        """
        if points is not None:
            n = points[0].shape[0]
            coords, labels = points[0].float(), points[1].float()
        else:
            n = mask_input.shape[0] if mask_input is not None else image_embed.shape[0]
            coords, labels = torch.zeros(n, 0, 2), torch.zeros(n, 0)
        side = self.cfg.low_res_mask_size
        has_mask = torch.full((n,), float(mask_input is not None))
        mask = mask_input.float() if mask_input is not None else torch.zeros(n, 1, side, side)
        if not high_res:  # the graph's inputs for them are empty placeholders (see high_res_shapes)
            high_res = [torch.zeros(1, *shape) for shape in high_res_shapes(self.cfg)]
        out = self._run(
            "image_decoder", *map(_shared, (image_embed, *high_res)), coords, labels, mask, has_mask
        )
        _, _, multi, multi_ptr, score, single, single_iou, single_ptr = out
        if multimask_output:
            return DecoderOutput(multi, out[1], multi_ptr, score)
        return DecoderOutput(single, single_iou, single_ptr, score)

    def object_pointer(self, token: torch.Tensor, object_score: torch.Tensor) -> torch.Tensor:
        """The decoder graph's pointers already are pointers (no-object pointer included)."""
        return token

    def attend_to_memory_tensors(
        self,
        image_embed: torch.Tensor,
        image_pos: torch.Tensor,
        memory: torch.Tensor,
        memory_tpos: torch.Tensor,
        pointers: torch.Tensor,
        pointer_tpos: torch.Tensor,
    ) -> torch.Tensor:
        """:meth:`SAM2Model.attend_to_memory_tensors` through ``memory_attention.onnx``."""
        b = image_embed.shape[0]
        (out,) = self._run(
            "memory_attention",
            image_embed,
            image_pos.expand(b, -1, -1, -1),
            memory,
            memory_tpos.long(),
            pointers,
            pointer_tpos.float(),
        )
        return out

    def encode_mask_memory(
        self, image_embed: torch.Tensor, mask: torch.Tensor, object_score: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`SAM2Model.encode_mask_memory` through ``memory_encoder.onnx``."""
        b = mask.shape[0]
        feats, pos = self._run(
            "memory_encoder", image_embed.expand(b, -1, -1, -1), mask.float(), object_score.float()
        )
        return feats, pos


def _vector(consts: dict, key: str, shape: tuple[int, ...]) -> torch.Tensor:
    values = consts.get(key)
    size = int(np.prod(shape))
    if not isinstance(values, list) or len(values) != size:
        raise OnnxBackendError(f"{MANIFEST}: constants.{key} must hold {size} numbers; re-export the folder")
    return torch.tensor(values, dtype=torch.float32).reshape(shape)


def _array(t: torch.Tensor) -> np.ndarray:
    """A contiguous numpy view (or copy) of ``t``, float32 if it is floating point (the session may keep
    memories in a narrower storage dtype, which the PyTorch model also widens before use)."""
    t = t.detach().cpu()
    return np.ascontiguousarray((t.float() if t.is_floating_point() else t).numpy())


def _shared(t: torch.Tensor) -> torch.Tensor:
    """A batch of views of one image (``ImageFeatures.expand``) as that image alone: the decoder graph
    reads batch 1 for every prompt set, which saves copying the features per object."""
    return t[:1] if t.shape[0] > 1 and t.stride(0) == 0 else t


def load_onnx_model(
    onnx_dir: str | Path | None,
    name: str = "auto",
    *,
    image_size: int | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> OnnxSAM2Model:
    """The model of an export folder, checked against what the caller asked for: preset ``name``
    (``"auto"``: the export's), ``image_size`` (None: the export's), a CPU device, float32."""
    if onnx_dir is None:
        raise OnnxBackendError("the ONNX backend needs the folder of an export (onnx_dir / --onnx-dir)")
    manifest = read_manifest(onnx_dir)
    if name != "auto" and get_preset(name).name != manifest["preset"]:
        raise OnnxBackendError(
            f"{onnx_dir} holds an export of {manifest['preset']}, not of {get_preset(name).name}: "
            f"export that preset there, or ask for {manifest['preset']}"
        )
    if image_size is not None and image_size != manifest["image_size"]:
        raise OnnxBackendError(
            f"{onnx_dir} was exported at image size {manifest['image_size']}, not {image_size}: re-export "
            "at that size, or leave the image size out"
        )
    if device is not None and torch.device(device).type != "cpu":
        raise OnnxBackendError("the ONNX backend runs on the CPU; leave out the device or pass cpu")
    if dtype not in (None, "auto", "fp32", "float32", torch.float32):
        raise OnnxBackendError(f"the ONNX backend computes in float32, not {dtype}; use fp32 or auto")
    return OnnxSAM2Model(onnx_dir)
