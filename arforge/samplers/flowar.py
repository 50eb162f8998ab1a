"""FlowAR sampling: one trunk pass per scale, then the flow head integrates every token of the scale
at once (batched over all ``p_k^2`` tokens and the CFG pair).

CFG progress at scale ``k`` is ``k / (K - 1)`` (a ``linear`` :class:`CFGSchedule` ramps the
guidance over scales, FlowAR's choice); the guided velocity is ``v_u + w (v_c - v_u)``. ``head_steps``
overrides the head's default number of solver steps; with ``head_steps_end`` the steps fall
linearly from ``head_steps`` at the first scale to ``head_steps_end`` at the last (DiSA-style
annealing: later scales are pinned down by the earlier ones). The image is the tokenizer's decode
of the last scale.
"""

from __future__ import annotations

import time

import torch

from arforge.samplers.annealing import annealed_steps, check_step_annealing
from arforge.generators.heads import FlowHead
from arforge.generators.orders import NextScale
from arforge.samplers.base import Sampler, SamplerStats, SampleResult, register_sampler
from arforge.samplers.cfg import CFGSchedule
from arforge.samplers.context import require_head, require_order, start_decoding


@register_sampler("flowar")
class FlowARSampler(Sampler):
    """Args: ``cfg`` (:class:`CFGSchedule` or float), ``head_steps`` / ``head_steps_end`` (see the
    module docstring; ``None`` = the head's configured steps), ``head_steps_power`` (shape of the
    annealing, :func:`annealed_steps`; 1 = linear), ``temperature`` (noise scale)."""

    def __init__(self, cfg: CFGSchedule | float = 1.0, head_steps: int | None = None, head_steps_end: int | None = None,
                 temperature: float = 1.0, head_steps_power: float = 1.0):
        self.cfg = cfg if isinstance(cfg, CFGSchedule) else CFGSchedule(scale=float(cfg))
        check_step_annealing(head_steps, head_steps_end, head_steps_power)
        self.head_steps, self.head_steps_end, self.temperature = head_steps, head_steps_end, temperature
        self.head_steps_power = head_steps_power

    def steps_at(self, si: int, num_scales: int, default: int) -> int:
        start = self.head_steps or default
        if self.head_steps_end is None:
            return start
        return annealed_steps(si / max(num_scales - 1, 1), start, self.head_steps_end, self.head_steps_power)

    def head_sample(self, head, feat_2BC: torch.Tensor, batch: int, progress: float, steps: int, rng,
                    stats: SamplerStats) -> torch.Tensor:
        """Integrate the flow head for rows ``feat[:batch]`` (with ``feat[batch:]`` as the
        unconditional branch when CFG is on) at guidance ``cfg.scale_at(progress)``; counts the head
        evaluations and time in ``stats``. Returns tokens ``(batch, *, token_dim)``."""
        t = time.perf_counter()
        tokens = head.sample(feat_2BC[:batch], uncond=feat_2BC[batch:] if self.cfg.enabled else None,
                             cfg=self.cfg.scale_at(progress), steps=steps, temperature=self.temperature, generator=rng)
        stats.head_time_s += time.perf_counter() - t
        stats.head_evaluations += head.evaluations_per_sample(steps)
        return tokens

    @staticmethod
    def finish_latent_tokens(tokens_BNc: torch.Tensor, grid_hw, tokenizer, stats: SamplerStats, start: float) -> SampleResult:
        """Result of a raster-indexed continuous-token sampler: tokens ``(B, N, c)``, and images decoded
        (timed) from the latents ``(B, c, h, w)`` when ``tokenizer`` is given; stamps the wall time."""
        images = None
        if tokenizer is not None:
            t = time.perf_counter()
            B, _, c = tokens_BNc.shape
            images = tokenizer.decode(tokens_BNc.transpose(1, 2).reshape(B, c, *grid_hw)).clamp(-1, 1)
            stats.decode_time_s = time.perf_counter() - t
        stats.wall_time_s = time.perf_counter() - start
        return SampleResult(tokens=tokens_BNc, stats=stats, images=images)

    @torch.no_grad()
    def sample(self, generator, condition, *, generator_rng=None, tokenizer=None, cond_mask=None) -> SampleResult:
        model = generator
        require_order(self.name, model, NextScale)
        require_head(self.name, model, FlowHead)
        ctx = start_decoding(model, condition, self.cfg)
        B, K, cache, stats = ctx.batch, model.order.num_scales, ctx.cache, ctx.stats
        cond_BD = model.condition(ctx.cond_all)
        x_BlCv, tokens = None, []
        for si, p in enumerate(model.order.patch_nums):
            h = model.decode_scale_hidden(si, x_BlCv, cond_BD, cache)
            stats.forward_passes += 1
            steps = self.steps_at(si, K, model.config.head.sampling_steps)
            z = self.head_sample(model.head, h.reshape(-1, h.shape[-1]), B * p * p, si / max(K - 1, 1), steps,
                                 generator_rng, stats)
            z_Bcpp = z.view(B, p, p, -1).permute(0, 3, 1, 2)
            tokens.append(z.view(B, p * p, -1))
            if si < K - 1:
                x_BlCv = model.next_input(si, z_Bcpp)
                if self.cfg.enabled:
                    x_BlCv = torch.cat([x_BlCv, x_BlCv])
            stats.accepted_per_step.append(float(p * p))
        images = None
        if tokenizer is not None:
            t = time.perf_counter()
            images = tokenizer.decode(z_Bcpp).clamp(-1, 1)
            stats.decode_time_s = time.perf_counter() - t
        return SampleResult(tokens=torch.cat(tokens, dim=1), stats=ctx.finish_timing(), images=images)
