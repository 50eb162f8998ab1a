"""Learning-rate schedule values and their use through LambdaLR; AdamW parameter groups."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from arforge.train.optim import build_optimizer, param_groups
from arforge.train.schedule import LRSchedule, build_scheduler
from arforge.train.schema import OptimConfig


def test_warmup_then_cosine_values():
    s = LRSchedule(total_steps=14, warmup_steps=4, kind="cosine", min_lr_ratio=0.1)
    assert [s(i) for i in range(4)] == [0.25, 0.5, 0.75, 1.0]
    # after warm-up: 10 steps, progress = (step - 4) / 9
    assert s(4) == pytest.approx(1.0)
    assert s(13) == pytest.approx(0.1)
    mid = 4 + 4.5
    assert s(int(mid)) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 4 / 9)))
    values = [s(i) for i in range(4, 14)]
    assert all(a > b for a, b in zip(values, values[1:]))


def test_linear_and_constant_values():
    lin = LRSchedule(total_steps=11, warmup_steps=0, kind="linear", min_lr_ratio=0.0)
    assert [lin(i) for i in (0, 5, 10)] == pytest.approx([1.0, 0.5, 0.0])
    const = LRSchedule(total_steps=10, warmup_steps=2, kind="constant", min_lr_ratio=0.5)
    assert [const(i) for i in range(5)] == [0.5, 1.0, 1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="unknown schedule"):
        LRSchedule(10, 0, "step")


def test_scheduler_sets_optimizer_lr_per_step():
    p = nn.Parameter(torch.zeros(2, 2))
    opt = torch.optim.AdamW([p], lr=0.2)
    sched = build_scheduler(opt, LRSchedule(total_steps=6, warmup_steps=2, kind="linear"))
    seen = []
    for _ in range(6):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([0.1, 0.2, 0.2, 0.2 * 2 / 3, 0.2 / 3, 0.0])


def test_weight_decay_only_on_matrices():
    model = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3), nn.Conv2d(3, 2, 1), nn.Embedding(5, 2))
    model[1].weight.requires_grad_(False)
    groups = param_groups(model, 0.05)
    decayed = {id(p) for p in groups[0]["params"]}
    plain = {id(p) for p in groups[1]["params"]}
    assert groups[0]["weight_decay"] == 0.05 and groups[1]["weight_decay"] == 0.0
    assert decayed == {id(model[0].weight), id(model[2].weight), id(model[3].weight)}
    assert plain == {id(model[0].bias), id(model[1].bias), id(model[2].bias)}
    opt = build_optimizer(model, OptimConfig(lr=1e-3, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.05))
    assert opt.defaults["betas"] == (0.8, 0.9) and opt.defaults["eps"] == 1e-6
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer(nn.Sequential(), OptimConfig())
