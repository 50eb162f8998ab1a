"""FlowHead: solvers against an ODE with a known solution, training on a toy conditional target,
CFG, the set network, DiSA annealing and evaluation counts."""

import math

import pytest
import torch

from arforge.config import ConfigError
from arforge.generators.heads import FlowHead, FlowHeadConfig
from arforge.samplers.annealing import annealed_steps


def test_heun_beats_euler_on_a_known_ode(monkeypatch):
    head = FlowHead(FlowHeadConfig(token_dim=3, cond_dim=2, width=8, depth=1))
    monkeypatch.setattr(head, "velocity", lambda x, t, c: -x)  # dx/dt = -x  ->  x(1) = x(0) / e
    x0 = torch.tensor([[1.0, -2.0, 0.5]])
    exact = x0 / math.e
    euler = head.sample(torch.zeros(1, 2), steps=4, noise=x0)
    head.config.solver = "heun"
    heun = head.sample(torch.zeros(1, 2), steps=4, noise=x0)
    assert torch.allclose(euler, x0 * 0.75**4)
    assert torch.allclose(heun, x0 * (1 - 0.25 + 0.25**2 / 2) ** 4)  # Heun's amplification per step
    assert (heun - exact).abs().max() < 0.1 * (euler - exact).abs().max()
    assert head.evaluations_per_sample(4) == 8


@pytest.mark.parametrize("network", ["mlp", "set"])
def test_learns_a_conditional_target_and_sampling_is_seeded(network):
    torch.manual_seed(0)
    head = FlowHead(FlowHeadConfig(token_dim=2, cond_dim=3, network=network, width=32, depth=2, set_layers=1,
                                   set_heads=2, sampling_steps=20))
    centers = torch.tensor([[1.0, 1.0], [-1.0, 0.5], [0.0, -1.0]])
    labels = torch.arange(96) % 3
    cond, x0 = torch.eye(3)[labels], centers[labels]
    if network == "set":
        cond, x0 = cond.view(24, 4, 3), x0.view(24, 4, 2)
    opt = torch.optim.AdamW(head.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        loss = head.loss(x0, cond, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = head.sample(cond, generator=torch.Generator().manual_seed(1))
    again = head.sample(cond, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out, again) and out.shape == x0.shape
    assert (out - x0).norm(dim=-1).mean() < 0.35  # samples land on their condition's target


def test_cfg_extrapolates_from_the_unconditional_velocity(monkeypatch):
    head = FlowHead(FlowHeadConfig(token_dim=1, cond_dim=1, width=8, depth=1))
    monkeypatch.setattr(head, "velocity", lambda x, t, c: c.expand_as(x).clone())  # v = cond
    noise = torch.zeros(2, 1)
    out = head.sample(torch.ones(2, 1), uncond=torch.zeros(2, 1), cfg=torch.tensor([1.0, 3.0]), steps=5, noise=noise)
    assert torch.allclose(out.squeeze(1), torch.tensor([1.0, 3.0]))


def test_disa_annealing_and_config_checks():
    assert annealed_steps(0.0, 50, 5) == 50 and annealed_steps(1.0, 50, 5) == 5 and annealed_steps(0.5, 50, 5) == 28
    assert annealed_steps(2.0, 50, 5) == 5
    with pytest.raises(ConfigError, match="solver"):
        FlowHeadConfig(solver="rk4")
    with pytest.raises(ConfigError, match="time_shift"):
        FlowHeadConfig(time_shift=0)
    head = FlowHead(FlowHeadConfig(token_dim=1, cond_dim=1, width=8, depth=1, time_shift=3.0))
    grid = head.time_grid(4)
    assert grid[0] == 0 and grid[-1] == 1 and grid[1] < 0.25  # more resolution near the noise end


def test_annealing_power_shapes_the_step_schedule():
    import pytest

    from arforge.samplers.annealing import annealed_steps

    assert [annealed_steps(p, 50, 5) for p in (0.0, 0.5, 1.0)] == [50, 28, 5]  # linear by default
    assert [annealed_steps(p, 50, 5, power=3) for p in (0.0, 0.5, 1.0)] == [50, 11, 5]
    with pytest.raises(ValueError, match="power"):
        annealed_steps(0.5, 50, 5, power=0)
