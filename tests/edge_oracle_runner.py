"""Runs the authors' EdgeTAM / EfficientTAM code as a test oracle, in its own virtualenv.

Both official packages install a module named ``sam2`` (as does Meta's sam2, the SAM 2 oracle), so
they cannot share an interpreter with masklet's tests: tests/edge_oracle.py starts this script with
the oracle venv's Python and one package directory on ``PYTHONPATH`` (see tests/setup_edge_oracles.sh).
It imports nothing from masklet. Usage::

    python edge_oracle_runner.py JOB.json

JOB: {"family": "edgetam" | "efficienttam" | "sam2" (Meta's, for speed only), "size": "ti" | "s"
(EfficientTAM), "attention": "" | "1" | "2" (EfficientTAM's cross-attention variant), "config" (sam2),
"image_size": int, "task": ..., "out": path.npz, ...}

- task "checkpoint": seeded random weights, perturbed, the object-score head scaled and shifted, saved
  in the official format to ``path`` (keys ``seed``, ``score_scale``, ``score_shift``);
- task "image": ``image`` (.npy, HxWx3 uint8) and ``cases`` (predict() keyword lists): every case's
  full-size logits, scores and low-res logits;
- task "video": ``frames`` (a JPEG folder) and ``script`` (a list of operations, see ``run_video``):
  every returned and yielded (frame, object ids, logits);
- task "speed" (benchmarks/bench_edge.py): ``frames`` (a JPEG folder), ``objects`` clicks on frame 0
  at ``points``, ``dtype`` "fp32" or "bf16" (CPU autocast): the seconds of every frame of one
  propagation (``track``) and of three set_image calls on the first frame (``set_image``).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

SCORE_HEAD = "sam_mask_decoder.pred_obj_score_head.layers.2"


def _patch_timm() -> None:
    """EdgeTAM's trunk asks timm for pretrained weights (a download): build it untrained instead."""
    import sam2.modeling.backbones.timm as timm_backbone

    create = timm_backbone.create_model

    def untrained(*args, **kwargs):
        return create(*args, **{**kwargs, "pretrained": False})

    timm_backbone.create_model = untrained


def _edgetam(job: dict, video: bool) -> torch.nn.Module:
    _patch_timm()
    from sam2.build_sam import build_sam2, build_sam2_video_predictor

    g = job["image_size"] // 16
    overrides = [
        f"++model.image_size={job['image_size']}",
        f"++model.memory_attention.layer.self_attention.feat_sizes=[{g},{g}]",
        f"++model.memory_attention.layer.cross_attention.q_sizes=[{g},{g}]",
    ]
    if video:
        return build_sam2_video_predictor("edgetam.yaml", None, device="cpu", hydra_overrides_extra=overrides)
    return build_sam2("edgetam.yaml", None, device="cpu", hydra_overrides_extra=overrides)


def _sine(feats: int) -> dict:
    return {
        "_target_": "sam2.modeling.position_encoding.PositionEmbeddingSine",
        "num_pos_feats": feats,
        "normalize": True,
        "scale": None,
        "temperature": 10000,
    }


def _efficienttam_config(job: dict, video: bool) -> dict:
    """The released EfficientTAM configuration (efficienttam_{ti,s}[_1,_2].yaml) as a dict."""
    width, heads = {"ti": (192, 3), "s": (384, 6)}[job["size"]]
    g = job["image_size"] // 16
    attn = {"": "RoPEAttention", "1": "EfficientRoPEAttention1", "2": "EfficientRoPEAttention2"}
    rope = {"rope_theta": 10000.0, "feat_sizes": [g, g], "embedding_dim": 256, "num_heads": 1}
    rope |= {"downsample_rate": 1, "dropout": 0.1}
    model = {
        "_target_": "sam2.sam2_video_predictor.SAM2VideoPredictor"
        if video
        else "sam2.modeling.sam2_base.SAM2Base",
        "image_encoder": {
            "_target_": "sam2.modeling.backbones.image_encoder.ImageEncoder",
            "scalp": 0,
            "trunk": {
                "_target_": "sam2.modeling.backbones.vitdet.ViT",
                "patch_size": 16,
                "embed_dim": width,
                "depth": 12,
                "num_heads": heads,
                "mlp_ratio": 4.0,
                "qkv_bias": True,
                "drop_path_rate": 0.0,
                "use_rel_pos": False,
                "window_size": 14,
                "window_block_indexes": [0, 1, 3, 4, 6, 7, 9, 10],
            },
            "neck": {
                "_target_": "sam2.modeling.backbones.image_encoder.ViTDetNeck",
                "position_encoding": _sine(256),
                "d_model": 256,
                "backbone_channel_list": [width],
                "neck_norm": "LN",
            },
        },
        "memory_attention": {
            "_target_": "sam2.modeling.memory_attention.MemoryAttention",
            "d_model": 256,
            "pos_enc_at_input": True,
            "num_layers": 4,
            "layer": {
                "_target_": "sam2.modeling.memory_attention.MemoryAttentionLayer",
                "activation": "relu",
                "dim_feedforward": 2048,
                "dropout": 0.1,
                "pos_enc_at_attn": False,
                "d_model": 256,
                "pos_enc_at_cross_attn_keys": True,
                "pos_enc_at_cross_attn_queries": False,
                "self_attention": {"_target_": "sam2.modeling.sam.transformer.RoPEAttention", **rope},
                "cross_attention": {
                    "_target_": f"sam2.modeling.sam.transformer.{attn[job['attention']]}",
                    **rope,
                    "rope_k_repeat": True,
                    "kv_in_dim": 64,
                },
            },
        },
        "memory_encoder": {
            "_target_": "sam2.modeling.memory_encoder.MemoryEncoder",
            "out_dim": 64,
            "position_encoding": _sine(64),
            "mask_downsampler": {
                "_target_": "sam2.modeling.memory_encoder.MaskDownSampler",
                "kernel_size": 3,
                "stride": 2,
                "padding": 1,
            },
            "fuser": {
                "_target_": "sam2.modeling.memory_encoder.Fuser",
                "num_layers": 2,
                "layer": {
                    "_target_": "sam2.modeling.memory_encoder.CXBlock",
                    "dim": 256,
                    "kernel_size": 7,
                    "padding": 3,
                    "layer_scale_init_value": 1e-6,
                    "use_dwconv": True,
                },
            },
        },
        "num_maskmem": 7,
        "image_size": job["image_size"],
        "sigmoid_scale_for_mem_enc": 20.0,
        "sigmoid_bias_for_mem_enc": -10.0,
        "use_mask_input_as_output_without_sam": True,
        "directly_add_no_mem_embed": True,
        "use_high_res_features_in_sam": False,
        "multimask_output_in_sam": True,
        "iou_prediction_use_sigmoid": True,
        "use_obj_ptrs_in_encoder": True,
        "add_tpos_enc_to_obj_ptrs": False,
        "only_obj_ptrs_in_the_past_for_eval": True,
        "pred_obj_scores": True,
        "pred_obj_scores_mlp": True,
        "fixed_no_obj_ptr": True,
        "multimask_output_for_tracking": True,
        "use_multimask_token_for_obj_ptr": True,
        "multimask_min_pt_num": 0,
        "multimask_max_pt_num": 1,
        "use_mlp_for_obj_ptr_proj": True,
        "compile_image_encoder": False,
        "sam_mask_decoder_extra_args": {
            "dynamic_multimask_via_stability": True,
            "dynamic_multimask_stability_delta": 0.05,
            "dynamic_multimask_stability_thresh": 0.98,
        },
    }
    if video:
        model["binarize_mask_from_pts_for_mem_enc"] = True
    return model


def _sam2(job: dict, video: bool) -> torch.nn.Module:
    """Meta's sam2 (family "sam2", ``config`` as its package names it), for benchmarks/bench_edge.py."""
    from sam2.build_sam import build_sam2, build_sam2_video_predictor

    make = build_sam2_video_predictor if video else build_sam2
    extra = [f"++model.image_size={job['image_size']}"]
    return make(job["config"], None, device="cpu", hydra_overrides_extra=extra)


def build(job: dict, video: bool = False) -> torch.nn.Module:
    if job["family"] == "edgetam":
        model = _edgetam(job, video)
    elif job["family"] == "sam2":
        model = _sam2(job, video)
    else:
        from hydra.utils import instantiate
        from omegaconf import OmegaConf

        model = instantiate(OmegaConf.create(_efficienttam_config(job, video)), _recursive_=True)
    if video:
        model.fill_hole_area = 0
        _cast_memory(model.memory_attention)
    if "checkpoint" in job:
        sd = torch.load(job["checkpoint"], map_location="cpu", weights_only=True)["model"]
        model.load_state_dict(sd, strict=True)
    return model.eval()


def _cast_memory(attn: torch.nn.Module) -> None:
    """Give the memory attention its memory in the compute dtype.

    The video predictors store memories in bfloat16 and count on concatenation with float32 object
    pointers to promote them; a frame with no pointer to attend to (reverse tracking from the last
    frame after a correction) then fails on CPU with "mat1 and mat2 must have the same dtype".
    """
    plain = attn.forward

    def forward(curr, memory, curr_pos=None, memory_pos=None, **kwargs):
        dtype = curr[0].dtype if isinstance(curr, list) else curr.dtype
        return plain(curr, memory.to(dtype), curr_pos, memory_pos.to(dtype), **kwargs)

    attn.forward = forward


def make_checkpoint(job: dict) -> None:
    torch.manual_seed(job["seed"])
    model = build(job)
    gen = torch.Generator().manual_seed(job["seed"])
    sd = {}
    for name, t in model.state_dict().items():
        t = t.detach().clone()
        if t.is_floating_point():
            t += torch.randn(t.shape, generator=gen, dtype=t.dtype) * 0.02
        sd[name] = t
    scale, shift = job.get("score_scale", 1.0), job.get("score_shift", 0.0)
    sd[f"{SCORE_HEAD}.weight"] *= scale
    sd[f"{SCORE_HEAD}.bias"] = sd[f"{SCORE_HEAD}.bias"] * scale + shift
    torch.save({"model": sd}, job["path"])


def run_image(job: dict) -> dict[str, np.ndarray]:
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    pred = SAM2ImagePredictor(build(job))
    s = job["image_size"]  # the predictor assumes 1024 px inputs
    pred._bb_feat_sizes = [(s // 4, s // 4), (s // 8, s // 8), (s // 16, s // 16)]
    with torch.inference_mode():
        pred.set_image(np.load(job["image"]))
        out = {}
        for i, case in enumerate(job["cases"]):
            kw = {k: np.asarray(v) for k, v in case.items() if k != "multimask_output"}
            logits, scores, low = pred.predict(
                multimask_output=case["multimask_output"], return_logits=True, **kw
            )
            out |= {f"{i}_logits": logits, f"{i}_scores": scores, f"{i}_low": low}
    return out


def run_video(job: dict) -> dict[str, np.ndarray]:
    """Operations: ["points", frame, obj, [[x, y], ...], [labels], clear_old], ["box", frame, obj, box],
    ["mask", frame, obj, mask .npy path], ["propagate", start or None, reverse], ["clear", frame, obj],
    ["remove", obj]. Record r of operation i: ``{i}_{r}_frame``, ``{i}_{r}_ids``, ``{i}_{r}_logits``."""
    pred = build(job, video=True)
    out: dict[str, np.ndarray] = {}
    with torch.inference_mode():
        state = pred.init_state(job["frames"])
        for i, (op, *args) in enumerate(job["script"]):
            records = _video_op(pred, state, op, args)
            for r, (frame, ids, logits) in enumerate(records):
                out |= {f"{i}_{r}_frame": np.array(frame), f"{i}_{r}_ids": np.array(list(ids))}
                out[f"{i}_{r}_logits"] = logits.float().numpy()
    return out


def _video_op(pred, state, op: str, args: list) -> list:
    if op == "points":
        frame, obj, points, labels, clear = args
        add = getattr(pred, "add_new_points_or_box", None) or pred.add_new_points
        return [add(state, frame, obj, points=points, labels=labels, clear_old_points=clear)]
    if op == "box":
        frame, obj, box = args
        return [pred.add_new_points_or_box(state, frame, obj, box=box)]
    if op == "mask":
        frame, obj, path = args
        return [pred.add_new_mask(state, frame, obj, np.load(path))]
    if op == "propagate":
        start, reverse = args
        return list(pred.propagate_in_video(state, start_frame_idx=start, reverse=reverse))
    if op == "clear":
        frame, obj = args
        return [pred.clear_all_prompts_in_frame(state, frame, obj)]
    if op == "remove":
        ids, updates = pred.remove_object(state, args[0])
        return [(frame, ids, logits) for frame, logits in updates]
    raise ValueError(f"unknown operation {op!r}")


def run_speed(job: dict) -> dict[str, np.ndarray]:
    from PIL import Image
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    bf16 = job["dtype"] == "bf16"
    precision = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    pred = build(job, video=True)
    times = []
    with torch.inference_mode(), precision:
        state = pred.init_state(job["frames"])
        add = getattr(pred, "add_new_points_or_box", None) or pred.add_new_points
        for k, point in enumerate(job["points"][: job["objects"]]):
            add(state, 0, k + 1, points=[point], labels=[1])
        t = time.perf_counter()
        for _ in pred.propagate_in_video(state):
            now = time.perf_counter()
            times.append(now - t)
            t = now
    image_pred = SAM2ImagePredictor(build(job))
    s = job["image_size"]
    image_pred._bb_feat_sizes = [(s // 4, s // 4), (s // 8, s // 8), (s // 16, s // 16)]
    first = sorted(Path(job["frames"]).iterdir())[0]
    image = np.asarray(Image.open(first).convert("RGB"))
    set_times = []
    with torch.inference_mode(), precision:
        for _ in range(3):
            t = time.perf_counter()
            image_pred.set_image(image)
            set_times.append(time.perf_counter() - t)
    return {"track": np.array(times), "set_image": np.array(set_times)}


def main() -> None:
    job = json.loads(open(sys.argv[1]).read())
    torch.set_num_threads(job.get("threads", 2))
    if job["task"] == "checkpoint":
        make_checkpoint(job)
        return
    run = {"image": run_image, "video": run_video, "speed": run_speed}[job["task"]]
    out = run(job)
    np.savez(job["out"], **out)


if __name__ == "__main__":
    main()
