"""xAR sampling: cells one after another, each integrated from noise by the whole flow network.

Cell ``k`` starts from Gaussian noise (scaled by ``temperature``) and takes ``steps`` Euler steps
from ``t = 0`` (noise) to ``t = 1`` (data); every step is one trunk pass over the cell's tokens
against the KV cache. The first pass of cell ``k`` also feeds the finished cell ``k - 1`` at
``t = 1`` (clean), which overwrites its last noisy K/V in the cache, so later cells attend clean
context. With CFG the batch is ``[cond; null]`` and the velocity ``v_u + w (v_c - v_u)``, ``w`` from
the :class:`CFGSchedule` at progress ``k / (K - 1)`` (xAR ramps it linearly over cells). With
``head_steps_end`` the steps fall linearly from ``head_steps`` at the first cell to ``head_steps_end``
at the last (DiSA annealing). The flow network *is* the trunk: ``head_evaluations`` equals the
forward passes.
"""

from __future__ import annotations

import time

import torch

from arforge.generators.orders import Cells
from arforge.samplers.base import SampleResult, register_sampler
from arforge.samplers.context import require_capability, require_order, start_decoding
from arforge.samplers.flowar import FlowARSampler


@register_sampler("xar")
class XARSampler(FlowARSampler):
    """Options as :class:`~arforge.samplers.flowar.FlowARSampler` (``cfg``, ``head_steps``,
    ``head_steps_end``, ``temperature``); steps are per cell."""

    @torch.no_grad()
    def sample(self, generator, condition, *, generator_rng=None, tokenizer=None, cond_mask=None) -> SampleResult:
        model = generator
        require_order(self.name, model, Cells)
        require_capability(self.name, model, "velocity", "a flow network over noisy cells (an xar model)")
        ctx = start_decoding(model, condition, self.cfg)
        device, labels, copies, cache, stats = ctx.device, ctx.cond_all, ctx.copies, ctx.cache, ctx.stats
        B, N, c = ctx.batch, model.num_tokens, model.config.latent_channels
        tokens_BNc = torch.zeros(B, N, c, device=device)
        schedule = model.order.cached_decode_schedule()
        K = len(schedule)
        for k, step in enumerate(schedule):
            cell = step.emit_E.to(device)
            prev = step.feed_T[: len(step.feed_T) - len(cell)].to(device)
            steps = self.steps_at(k, K, model.config.sampling_steps)
            scale = self.cfg.scale_at(k / max(K - 1, 1))
            x = torch.randn(B, len(cell), c, device=device, generator=generator_rng) * self.temperature
            grid = torch.linspace(0.0, 1.0, steps + 1).tolist()
            t_pass = time.perf_counter()
            for i, (t0, t1) in enumerate(zip(grid[:-1], grid[1:])):
                x_in, t_in, idx = x.repeat(copies, 1, 1), torch.full((B * copies, len(cell)), t0, device=device), cell
                if i == 0 and len(prev):
                    clean = tokens_BNc[:, prev].repeat(copies, 1, 1)
                    x_in = torch.cat([clean, x_in], dim=1)
                    t_in = torch.cat([torch.ones(B * copies, len(prev), device=device), t_in], dim=1)
                    idx = torch.cat([prev, cell])
                v = model.velocity(x_in, t_in, labels, idx, cache)[:, -len(cell):]
                if copies == 2:
                    v_c, v_u = v.chunk(2)
                    v = v_u + scale * (v_c - v_u)
                x = x + (t1 - t0) * v
                stats.forward_passes += 1
                stats.head_evaluations += 1
            stats.head_time_s += time.perf_counter() - t_pass
            tokens_BNc[:, cell] = x
            stats.accepted_per_step.append(float(len(cell)) / steps)
        return self.finish_latent_tokens(tokens_BNc, model.config.grid_size, tokenizer, stats, ctx.start_time)
