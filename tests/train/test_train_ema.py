"""EMA update math, buffer copying, export copy and state round trip."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from arforge.pretrained import CheckpointError
from arforge.train.ema import EMA


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2)
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))


def test_ema_follows_the_formula():
    torch.manual_seed(0)
    net = _Net()
    w0 = net.lin.weight.detach().clone()
    ema = EMA(net, decay=0.9)
    expected = w0.clone()
    for step in range(3):
        with torch.no_grad():
            net.lin.weight.add_(torch.full_like(w0, float(step + 1)))
        net.count.fill_(step + 1)
        ema.update()
        expected = 0.9 * expected + 0.1 * net.lin.weight.detach()
    torch.testing.assert_close(ema.shadow["lin.weight"], expected, rtol=0, atol=1e-6)
    assert int(ema.shadow["count"]) == 3  # buffers are copied, not averaged
    assert not torch.equal(ema.shadow["lin.weight"], net.lin.weight)


def test_decay_zero_tracks_weights_and_copy_to():
    net = _Net()
    ema = EMA(net, decay=0.0)
    with torch.no_grad():
        net.lin.bias.fill_(2.5)
    ema.update()
    other = _Net()
    ema.copy_to(other)
    assert torch.equal(other.lin.bias, torch.full((2,), 2.5))
    with pytest.raises(ValueError, match="decay"):
        EMA(net, decay=1.0)


def test_state_round_trip_and_strictness():
    net = _Net()
    ema = EMA(net, decay=0.5)
    with torch.no_grad():
        net.lin.weight.mul_(3)
    ema.update()
    restored = EMA(_Net(), decay=0.5)
    restored.load_state_dict({k: v.clone() for k, v in ema.state_dict().items()})
    for k in ema.shadow:
        assert torch.equal(restored.shadow[k], ema.shadow[k])
    with pytest.raises(CheckpointError, match="missing"):
        restored.load_state_dict({"lin.weight": ema.shadow["lin.weight"]})
