"""Sampling a raster-order continuous-token model (``raster_flow``): one KV-cached trunk pass per
token, each followed by a flow-head integration conditioned on that pass's feature.

Options as :class:`~arforge.samplers.flowar.FlowARSampler`: ``cfg`` (progress = fraction of tokens
generated, as in :class:`~arforge.samplers.ar.ARSampler`), ``head_steps`` / ``head_steps_end`` (DiSA
annealing over the tokens), ``temperature``.
"""

from __future__ import annotations

import time

import torch

from arforge.samplers.ar import with_null_condition
from arforge.samplers.base import SamplerStats, SampleResult, register_sampler
from arforge.samplers.flowar import FlowARSampler


@register_sampler("raster_flow")
class RasterFlowSampler(FlowARSampler):
    """Token-by-token sampling with a flow head (see the module docstring)."""

    @torch.no_grad()
    def sample(self, generator, condition, *, generator_rng=None, tokenizer=None, cond_mask=None) -> SampleResult:
        start = time.perf_counter()
        model = generator
        if type(model).__name__ != "RasterFlowGenerator":
            raise ValueError(f"the raster_flow sampler runs raster_flow generators, not {type(model).__name__}")
        device = model.tok_embeddings.weight.device
        B, N, c = condition.shape[0], model.num_tokens, model.config.latent_channels
        cond_all, _ = with_null_condition(model, condition.to(device), self.cfg)
        cache = model.new_cache(cond_all.shape[0])
        feat = model.prefill(cond_all, cache)
        tokens_BNc = torch.zeros(B, N, c, device=device)
        stats = SamplerStats(tokens=N, forward_passes=1)
        for i in range(N):
            steps = self.steps_at(i, N, model.config.head.sampling_steps)
            tokens_BNc[:, i] = self.head_sample(model.head, feat, B, i / N, steps, generator_rng, stats)
            stats.accepted_per_step.append(1.0)
            if i < N - 1:
                fed = tokens_BNc[:, i:i + 1].repeat(cond_all.shape[0] // B, 1, 1)
                feat = model.decode(fed, torch.full((fed.shape[0], 1), i, device=device), cache)[:, 0]
                stats.forward_passes += 1
        return self.finish_latent_tokens(tokens_BNc, model.config.grid_size, tokenizer, stats, start)
