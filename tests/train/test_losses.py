"""Each training loss against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from masklet.train.config import LossConfig
from masklet.train.losses import dice_loss, focal_loss, iou_loss, mask_iou, object_score_loss, step_loss


def t4(values) -> torch.Tensor:
    """A flat list of pixel values as one object with one candidate: (1, 1, 1, K)."""
    return torch.tensor(values, dtype=torch.float32).view(1, 1, 1, -1)


def test_focal_loss_by_hand():
    # pixel 1: logit 0, object. p = 0.5, ce = ln 2, (1 - p_t)^2 = 0.25, alpha_t = 0.25
    # pixel 2: logit 2, background. p = 0.880797, ce = ln(1 + e^2) = 2.126928,
    #          (1 - p_t)^2 = 0.880797^2 = 0.775803, alpha_t = 0.75
    pixel1 = math.log(2) * 0.25 * 0.25  # 0.0433217
    pixel2 = 2.126928 * 0.775803 * 0.75  # 1.2375703
    got = focal_loss(t4([0.0, 2.0]), t4([1.0, 0.0]), alpha=0.25, gamma=2.0)
    assert got.shape == (1, 1)
    assert got.item() == pytest.approx((pixel1 + pixel2) / 2, rel=1e-5)  # 0.640446


def test_focal_loss_without_alpha_and_gamma_is_bce():
    # gamma 0 and alpha -1: plain binary cross-entropy, mean of ln 2 and ln(1 + e^-3)
    got = focal_loss(t4([0.0, 3.0]), t4([1.0, 1.0]), alpha=-1, gamma=0.0)
    assert got.item() == pytest.approx((math.log(2) + math.log(1 + math.exp(-3))) / 2, rel=1e-6)


def test_dice_loss_by_hand():
    # p = (0.5, 0.5), t = (1, 0): 1 - (2 * 0.5 + 1) / (1 + 1 + 1) = 1 / 3
    assert dice_loss(t4([0.0, 0.0]), t4([1.0, 0.0])).item() == pytest.approx(1 / 3, rel=1e-6)
    # a confident exact mask: p ~ (1, 0) -> 1 - 3 / 3 = 0
    assert dice_loss(t4([30.0, -30.0]), t4([1.0, 0.0])).item() == pytest.approx(0.0, abs=1e-6)


def test_iou_loss_by_hand():
    # predicted pixels {0, 2, 3}, object pixels {0, 1}: IoU = 1 / 4; predicted IoU 0.75 -> L1 0.5
    logits, target = t4([1.0, -1.0, 1.0, 1.0]), t4([1.0, 1.0, 0.0, 0.0])
    assert mask_iou(logits, target).item() == pytest.approx(0.25)
    assert iou_loss(torch.tensor([[0.75]]), logits, target).item() == pytest.approx(0.5)


def test_object_score_loss_by_hand():
    got = object_score_loss(torch.tensor([[0.0], [2.0]]), torch.tensor([True, False]))
    assert got.tolist() == pytest.approx([math.log(2), math.log(1 + math.exp(2))], rel=1e-6)


def test_step_loss_best_candidate_all_ious_and_weights():
    cfg = LossConfig(focal=20.0, dice=1.0, iou=1.0, object_score=1.0)
    target = t4([1.0, 0.0])  # (1, 1, 1, 2)
    # candidate 0 is wrong, candidate 1 right: mask terms use candidate 1 only
    masks = torch.tensor([[[[-5.0, 5.0]], [[5.0, -5.0]]]])  # (1, 2, 1, 2)
    pred_iou = torch.tensor([[0.5, 0.25]])  # actual IoUs: 0 and 1 -> L1 0.5 and 0.75
    score = torch.tensor([[1.0]])
    terms = step_loss(masks, pred_iou, score, target, cfg)
    best = masks[:, 1:2]
    assert terms.focal.item() == pytest.approx(20 * focal_loss(best, target).item(), rel=1e-6)
    assert terms.dice.item() == pytest.approx(dice_loss(best, target).item(), rel=1e-6)
    assert terms.iou.item() == pytest.approx((0.5 + 0.75) / 2, rel=1e-6)
    assert terms.object_score.item() == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-6)
    assert terms.total.item() == pytest.approx(sum(v.item() for v in terms.as_tuple()))


def test_step_loss_absent_object_supervises_only_the_object_score():
    cfg = LossConfig()
    masks = torch.randn(2, 3, 4, 4, requires_grad=True)
    targets = torch.zeros(2, 1, 4, 4)
    targets[0, 0, 1:3, 1:3] = 1  # object 0 present, object 1 absent
    score = torch.tensor([[0.5], [0.5]], requires_grad=True)
    terms = step_loss(masks, torch.rand(2, 3), score, targets, cfg)
    terms.total.backward()
    assert masks.grad[1].abs().sum() == 0 and masks.grad[0].abs().sum() > 0
    # the absent object's presence logit is pushed down, the present one's up
    assert score.grad[1, 0] > 0 > score.grad[0, 0]
    expected = (math.log(1 + math.exp(-0.5)) + math.log(1 + math.exp(0.5))) / 2
    assert terms.object_score.item() == pytest.approx(expected, rel=1e-6)
