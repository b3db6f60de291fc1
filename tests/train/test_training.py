"""Training end to end on tiny data: learning, exact resume, DDP, checkpoints, logs, the CLI."""

from __future__ import annotations

import csv
import socket

import numpy as np
import pytest
import torch
import yaml

from masklet.checkpoints import CheckpointError, build_model
from masklet.cli import main
from masklet.train import ConfigError, DataError, Trainer, config_from_dict
from masklet.train.state import load_training_state
from tests.oracle import build_reference
from tests.train.helpers import build, tiny_config, tiny_vos, write_coco, write_sav


@pytest.fixture(scope="module")
def vos(tmp_path_factory):
    return tiny_vos(tmp_path_factory.mktemp("vos"))


@pytest.fixture(scope="module")
def uninterrupted(vos, tmp_path_factory):
    """Six steps in one go (the reference for resume and DDP)."""
    return Trainer(build(vos, train={"steps": 6}), tmp_path_factory.mktemp("run")).run()


def probe_loss(trainer: Trainer) -> float:
    """The loss of 6 fixed clips with fixed prompts, without dropout or gradients."""
    clips = [trainer.sampler.sample(np.random.default_rng([99, i]), with_images=False) for i in range(6)]
    trainer.model.eval()
    with torch.no_grad():
        loss = trainer.forward(clips, np.random.default_rng(5)).loss.item()
    trainer.model.train()
    return loss


def test_tiny_budget_training_lowers_the_loss(vos, tmp_path):
    cfg = build(vos, train={"steps": 40, "log_every": 10}, optim={"lr": 2e-3, "warmup_steps": 3})
    trainer = Trainer(cfg, tmp_path)
    before = probe_loss(trainer)
    result = trainer.run()
    after = probe_loss(trainer)
    assert after < 0.8 * before, (before, after)
    assert np.mean(result.losses[-10:]) < np.mean(result.losses[:10])
    rows = list(csv.DictReader((tmp_path / "train.csv").open()))
    assert [int(r["step"]) for r in rows] == [10, 20, 30, 40]
    assert {"loss", "focal", "dice", "iou", "object_score", "lr", "grad_norm", "clips_per_s"} <= set(rows[0])


def test_resume_reproduces_the_uninterrupted_losses(vos, tmp_path, uninterrupted):
    cfg = build(vos, train={"steps": 6})
    first = Trainer(cfg, tmp_path).run(max_steps=3)
    assert first.losses == uninterrupted.losses[:3] and first.checkpoint.name == "step_0000003.pt"
    second = Trainer(cfg, tmp_path, resume=first.checkpoint).run()
    assert second.losses == uninterrupted.losses[3:]
    rows = list(csv.DictReader((tmp_path / "train.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    again = Trainer(cfg, tmp_path / "other", resume=first.checkpoint)
    assert again.step == 3
    with pytest.raises(ValueError, match="at step 6, the end of its run"):
        Trainer(cfg, tmp_path, resume="last")


def test_checkpoints_load_strictly_in_masklet_and_the_reference(uninterrupted):
    state = load_training_state(uninterrupted.checkpoint)
    assert state["step"] == 6 and "optimizer" in state and state["config"]["train"]["steps"] == 6
    for path in (uninterrupted.checkpoint, uninterrupted.weights):
        model = build_model("sam2.1_hiera_tiny", path, device="cpu", image_size=128)
        assert torch.equal(model.no_obj_ptr, state["model"]["no_obj_ptr"])
        ref = build_reference("sam2.1_hiera_tiny", checkpoint=path)  # load_state_dict(strict=True)
        assert torch.equal(ref.no_obj_ptr, state["model"]["no_obj_ptr"])
    with pytest.raises(ValueError, match="not a masklet training checkpoint"):
        load_training_state(uninterrupted.weights)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.filterwarnings("ignore:Grad strides do not match bucket view strides")  # a depthwise conv
def test_ddp_with_one_process_matches_single_process(vos, tmp_path, monkeypatch, uninterrupted):
    import torch.distributed as dist

    for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    try:
        trainer = Trainer(build(vos, train={"steps": 6}), tmp_path)
        assert trainer.dist.enabled and dist.get_backend() == "gloo"
        assert isinstance(trainer.module, torch.nn.parallel.DistributedDataParallel)
        result = trainer.run()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    np.testing.assert_allclose(result.losses, uninterrupted.losses, rtol=1e-5)


def test_images_and_videos_in_one_loop_with_validation(vos, tmp_path):
    coco = write_coco(tmp_path / "coco")
    write_sav(tmp_path / "sav", "vid_a", frames=4, stride=1)
    sources = [
        {"kind": "davis", "root": str(vos)},
        {"kind": "coco", "root": str(tmp_path / "coco"), "annotations": str(coco), "weight": 2.0},
        {"kind": "sav", "root": str(tmp_path / "sav"), "frame_stride": 1},
    ]
    cfg = build(
        vos, data={"sources": sources, "val_fraction": 0.34}, train={"steps": 6, "cache_features": False}
    )
    trainer = Trainer(cfg, tmp_path / "run")
    assert trainer.val_set is not None and len(trainer.val_set.videos) == 1
    assert trainer.val_set.videos[0] not in [it.name for it in trainer.sources[0].items]
    seen = set()
    for _ in range(6):
        rng = np.random.default_rng([0, 0, trainer.step])
        seen.add(trainer.sampler.draw(rng).source)
        trainer.train_step()
    assert 1 in seen and seen - {1}  # image clips and video clips in the same loop
    assert {trainer.sampler.draw(np.random.default_rng(i)).source for i in range(60)} == {0, 1, 2}
    figures = trainer.validate()
    assert set(figures) == {"J&F", "J", "F"} and 0 <= figures["J&F"] <= 1
    assert (tmp_path / "run" / "val.csv").read_text().startswith("step,J&F,J,F\n6,")


def test_bad_input_stops_before_training(vos, tmp_path, monkeypatch):
    import masklet.train.trainer as trainer_module

    def no_model(*args, **kwargs):
        raise AssertionError("the model was built before the data was checked")

    missing = tmp_path / "missing"
    with monkeypatch.context() as m:
        m.setattr(trainer_module, "build_training_model", no_model)
        with pytest.raises(DataError, match="not a DAVIS-layout dataset"):
            Trainer(build(vos, data={"sources": [{"kind": "davis", "root": str(missing)}]}), tmp_path)
    with pytest.raises(ConfigError, match="train.freeze entry 'decoder'"):
        Trainer(build(vos, train={"freeze": ["image_encoder", "decoder"]}), tmp_path)
    with pytest.raises(CheckpointError, match="does not exist"):
        Trainer(build(vos, model={"checkpoint": str(missing / "x.pt")}), tmp_path)


def test_cli_train(vos, tmp_path, capsys):
    cfg = tiny_config(vos)
    cfg["data"]["val"] = {"kind": "davis", "root": str(vos), "split": "val"}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out"
    code = main(["train", str(path), "--out", str(out), "--set", "train.steps=2", "--no-progress"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "trained to step 2" in text and "held-out at step 2: J&F" in text and "model.pt" in text
    assert config_from_dict(yaml.safe_load((out / "config.yaml").read_text())).train.steps == 2
    assert (out / "checkpoints" / "step_0000002.pt").is_file() and (out / "model.pt").is_file()
    code = main(["train", str(path), "--out", str(out), "--resume", "last", "--set", "train.steps=3"])
    assert code == 0 and "trained to step 3" in capsys.readouterr().out

    path.write_text(yaml.safe_dump({**cfg, "train": {"stepz": 2}}))
    assert main(["train", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'train.stepz' (did you mean 'steps'?)" in err and "Traceback" not in err
    assert main(["train", str(path), "--set", "oops"]) == 2
    assert "--set expects KEY=VALUE" in capsys.readouterr().err
