"""``FlowHead``: flow matching for continuous tokens (FlowAR, xAR, NextStep-style heads).

Linear interpolant ``x_t = (1 - t) * noise + t * x0`` with ``t`` in ``[0, 1]`` (``t = 1`` is data);
the network predicts the velocity ``v = x0 - noise`` and is trained with MSE. Sampling integrates
``dx/dt = v(x, t, cond)`` from noise at ``t = 0`` to ``t = 1`` with Euler or Heun steps on a
uniform or shifted time grid. Two networks: ``mlp`` (per token, :class:`AdaLNMLP`, the MAR/FlowAR
choice) and ``set`` (a small bidirectional transformer over the tokens emitted together, so they are
denoised jointly). DiSA-style annealing (:func:`arforge.samplers.annealing.annealed_steps`) uses fewer steps for later tokens,
whose conditions already pin them down. Same interface as :class:`DiffusionHead`:
``loss(x0, cond)`` and ``sample(cond, ...)``; sampling is batched over all tokens of a step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from arforge.config import ConfigError
from arforge.generators.backbone import Backbone, BackboneConfig
from arforge.generators.heads.diffusion import AdaLNMLP
from arforge.generators.timestep import TimestepEmbedder


@dataclass
class FlowHeadConfig:
    """``token_dim`` / ``cond_dim``: token and trunk-vector widths. ``network``: ``mlp`` (per token) or
    ``set`` (transformer over the tokens of one call; ``set_layers``, ``set_heads``). ``width`` /
    ``depth``: MLP size. ``sampling_steps``: default integration steps; ``solver``: ``euler`` or
    ``heun``; ``time_shift``: > 1 spends more steps near the noise end (``t' = t / (t + s (1 - t))``).
    ``batch_mul``: (t, noise) draws per token in training."""

    token_dim: int = 16
    cond_dim: int = 768
    network: Literal["mlp", "set"] = "mlp"
    width: int = 512
    depth: int = 4
    set_layers: int = 2
    set_heads: int = 4
    sampling_steps: int = 50
    solver: Literal["euler", "heun"] = "euler"
    time_shift: float = 1.0
    batch_mul: int = 1

    def __post_init__(self) -> None:
        for name in ("token_dim", "cond_dim", "width", "depth", "sampling_steps", "batch_mul", "set_layers", "set_heads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"FlowHeadConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.network not in ("mlp", "set"):
            raise ConfigError(f"FlowHeadConfig.network must be 'mlp' or 'set', got {self.network!r}")
        if self.solver not in ("euler", "heun"):
            raise ConfigError(f"FlowHeadConfig.solver must be 'euler' or 'heun', got {self.solver!r}")
        if self.time_shift <= 0:
            raise ConfigError(f"FlowHeadConfig.time_shift must be > 0, got {self.time_shift}")


class SetVelocityNet(nn.Module):
    """Velocity for a set of tokens ``(B, S, D)`` that attend to each other (bidirectional), each
    conditioned on its own trunk vector and the shared time through an additive embedding."""

    def __init__(self, cfg: FlowHeadConfig):
        super().__init__()
        self.input_proj = nn.Linear(cfg.token_dim, cfg.width)
        self.cond_embed = nn.Linear(cfg.cond_dim, cfg.width)
        self.time_embed = TimestepEmbedder(cfg.width)
        self.blocks = Backbone(BackboneConfig(dim=cfg.width, n_layer=cfg.set_layers, n_head=cfg.set_heads,
                                              multiple_of=32))
        self.output = nn.Linear(cfg.width, cfg.token_dim)
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def forward(self, x_BSD: torch.Tensor, t_B: torch.Tensor, cond_BSC: torch.Tensor) -> torch.Tensor:
        h = self.input_proj(x_BSD) + self.cond_embed(cond_BSC) + self.time_embed(t_B * 1000)[:, None]
        S = x_BSD.shape[1]
        full = torch.ones(1, 1, S, S, dtype=torch.bool, device=x_BSD.device)
        return self.output(self.blocks.run_layers(h, None, full))


class FlowHead(nn.Module):
    """Flow-matching head. Tokens are ``(N, D)`` (``mlp``) or sets ``(B, S, D)`` (``set``)."""

    def __init__(self, config: FlowHeadConfig):
        super().__init__()
        self.config = config
        if config.network == "mlp":
            self.net = AdaLNMLP(config.token_dim, config.cond_dim, config.width, config.depth, learn_sigma=False)
            self.net.init_weights()
        else:
            self.net = SetVelocityNet(config)

    def velocity(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """``v(x, t, cond)``; ``t`` in ``[0, 1]`` per token ``(N,)`` (mlp) or per set ``(B,)`` (set)."""
        if self.config.network == "mlp":
            return self.net(x, t * 1000, cond)
        return self.net(x, t, cond)

    def loss(self, x0: torch.Tensor, cond: torch.Tensor, weight: torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean squared velocity error; ``weight`` (0/1 per token) selects tokens."""
        m = self.config.batch_mul
        x0 = x0.repeat(m, *([1] * (x0.ndim - 1)))
        cond = cond.repeat(m, *([1] * (cond.ndim - 1)))
        t = torch.rand(x0.shape[0], device=x0.device, generator=generator)
        noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
        tt = t.view(-1, *([1] * (x0.ndim - 1)))
        xt = (1 - tt) * noise + tt * x0
        err = (self.velocity(xt, t, cond) - (x0 - noise)).pow(2).mean(-1)
        if weight is None:
            return err.mean()
        w = weight.float().repeat(m, *([1] * (weight.ndim - 1))).reshape(err.shape)
        return (err * w).sum() / w.sum().clamp_min(1.0)

    def time_grid(self, steps: int, device=None) -> torch.Tensor:
        """``steps + 1`` times from 0 (noise) to 1 (data), shifted by ``time_shift``."""
        t = torch.linspace(0.0, 1.0, steps + 1, device=device)
        s = self.config.time_shift
        return t / (t + s * (1 - t)) if s != 1.0 else t

    @torch.no_grad()
    def sample(self, cond: torch.Tensor, *, uncond: torch.Tensor | None = None, cfg: float | torch.Tensor = 1.0,
               steps: int | None = None, temperature: float = 1.0, generator: torch.Generator | None = None,
               noise: torch.Tensor | None = None) -> torch.Tensor:
        """Integrate from noise (scaled by ``temperature``) to tokens with ``steps`` solver steps.

        With ``uncond`` and ``cfg != 1`` the velocity is guided: ``v_u + cfg * (v_c - v_u)`` (``cfg``
        scalar or per row). Returns tokens shaped like ``cond`` with the last dim ``token_dim``.
        """
        steps = steps or self.config.sampling_steps
        shape = (*cond.shape[:-1], self.config.token_dim)
        x = noise if noise is not None else torch.randn(shape, device=cond.device, generator=generator) * temperature
        guided = uncond is not None and not (isinstance(cfg, (int, float)) and cfg == 1.0)
        scale = torch.as_tensor(cfg, dtype=x.dtype, device=x.device).reshape(-1, *([1] * (x.ndim - 1))) if guided else None
        rows = x.shape[0]

        def v(x_, t_):
            t_rows = torch.full((rows,), float(t_), device=x.device)
            if not guided:
                return self.velocity(x_, t_rows, cond)
            both = self.velocity(torch.cat([x_, x_]), torch.cat([t_rows, t_rows]), torch.cat([cond, uncond]))
            v_c, v_u = both.chunk(2)
            return v_u + scale * (v_c - v_u)

        grid = self.time_grid(steps, x.device).tolist()
        for t0, t1 in zip(grid[:-1], grid[1:]):
            d0 = v(x, t0)
            if self.config.solver == "heun":
                x_pred = x + (t1 - t0) * d0
                x = x + (t1 - t0) * 0.5 * (d0 + v(x_pred, t1))
            else:
                x = x + (t1 - t0) * d0
        return x

    def evaluations_per_sample(self, steps: int | None = None) -> int:
        """Network evaluations one :meth:`sample` call makes (Heun: 2 per step)."""
        steps = steps or self.config.sampling_steps
        return steps if self.config.solver == "euler" else 2 * steps
