"""Sampling a raster-order continuous-token model (``raster_flow``): one KV-cached trunk pass per
token, each followed by a flow-head integration conditioned on that pass's feature.

Options as :class:`~arforge.samplers.flowar.FlowARSampler`: ``cfg`` (progress = fraction of tokens
generated, as in :class:`~arforge.samplers.ar.ARSampler`), ``head_steps`` / ``head_steps_end`` (DiSA
annealing over the tokens), ``temperature``.
"""

from __future__ import annotations


import torch

from arforge.generators.heads import FlowHead
from arforge.generators.orders import Raster
from arforge.samplers.base import SampleResult, register_sampler
from arforge.samplers.context import require_head, require_order, start_decoding
from arforge.samplers.flowar import FlowARSampler


@register_sampler("raster_flow")
class RasterFlowSampler(FlowARSampler):
    """Token-by-token sampling with a flow head (see the module docstring)."""

    @torch.no_grad()
    def sample(self, generator, condition, *, generator_rng=None, tokenizer=None, cond_mask=None) -> SampleResult:
        model = generator
        require_order(self.name, model, Raster)
        require_head(self.name, model, FlowHead)
        ctx = start_decoding(model, condition, self.cfg)
        device, cond_all, cache, stats = ctx.device, ctx.cond_all, ctx.cache, ctx.stats
        B, N, c = ctx.batch, model.num_tokens, model.config.latent_channels
        feat = model.prefill(cond_all, cache)
        stats.forward_passes = 1
        tokens_BNc = torch.zeros(B, N, c, device=device)
        for i in range(N):
            steps = self.steps_at(i, N, model.config.head.sampling_steps)
            tokens_BNc[:, i] = self.head_sample(model.head, feat, B, i / N, steps, generator_rng, stats)
            stats.accepted_per_step.append(1.0)
            if i < N - 1:
                fed = tokens_BNc[:, i:i + 1].repeat(cond_all.shape[0] // B, 1, 1)
                feat = model.decode(fed, torch.full((fed.shape[0], 1), i, device=device), cache)[:, 0]
                stats.forward_passes += 1
        return self.finish_latent_tokens(tokens_BNc, model.config.grid_size, tokenizer, stats, ctx.start_time)
