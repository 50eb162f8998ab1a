"""Exact autoregressive sampling with a KV cache, following the generator's order schedule.

One forward pass per :class:`~arforge.generators.orders.DecodeStep`: the prefill pass encodes the
condition, later passes feed the tokens sampled before. With CFG the batch is ``[cond; uncond]`` and
both halves receive the same sampled tokens (LlamaGen).
"""

from __future__ import annotations

import time

import torch

from arforge.samplers.base import Sampler, SamplerStats, SampleResult, register_sampler
from arforge.samplers.cfg import CFGSchedule
from arforge.samplers.logits import LogitsPipeline


def guided_logits(logits_2BEV: torch.Tensor, batch: int, cfg: CFGSchedule, progress: float) -> torch.Tensor:
    """Split a ``[cond; uncond]`` batch and apply CFG at ``progress``; pass-through without CFG."""
    if not cfg.enabled:
        return logits_2BEV.float()
    return cfg.combine(logits_2BEV[:batch], logits_2BEV[batch:], cfg.scale_at(progress))


def with_null_condition(generator, condition: torch.Tensor, cfg: CFGSchedule, cond_mask=None):
    """``[cond; null]`` (and the doubled mask) when CFG is on; the inputs unchanged otherwise."""
    if not cfg.enabled:
        return condition, cond_mask
    both = torch.cat([condition, generator.null_condition(condition)])
    return both, (None if cond_mask is None else torch.cat([cond_mask, cond_mask]))


@register_sampler("ar")
class ARSampler(Sampler):
    """Plain KV-cached sampling (the exactness oracle for every accelerated sampler).

    Args:
        cfg: guidance schedule (:class:`CFGSchedule`) or a float scale (constant schedule).
        logits: :class:`LogitsPipeline` (temperature / top-k / top-p / greedy).
    """

    def __init__(self, cfg: CFGSchedule | float = 1.0, logits: LogitsPipeline | None = None):
        self.cfg = cfg if isinstance(cfg, CFGSchedule) else CFGSchedule(scale=float(cfg))
        self.logits = logits or LogitsPipeline()

    @torch.no_grad()
    def sample(self, generator, condition, *, generator_rng=None, tokenizer=None, cond_mask=None,
               prompt_tokens: torch.Tensor | None = None) -> SampleResult:
        """``prompt_tokens`` (int64 ``(B, n)``): the first ``n`` tokens in raster order are given, not
        sampled (e.g. the first frames of a video for frame prediction: with a causal video tokenizer
        the first ``k`` latent frames encode exactly the first frames of the clip)."""
        start = time.perf_counter()
        B = condition.shape[0]
        N = generator.num_tokens
        device = generator.norm.weight.device
        if prompt_tokens is not None and (prompt_tokens.ndim != 2 or prompt_tokens.shape[0] != B or prompt_tokens.shape[1] > N):
            raise ValueError(f"prompt_tokens must be (B={B}, n <= {N}) raster-order tokens, got {tuple(prompt_tokens.shape)}")
        cond_all, mask_all = with_null_condition(generator, condition.to(device), self.cfg, cond_mask)
        cache = generator.new_cache(cond_all.shape[0])
        tokens_BN = torch.zeros(B, N, dtype=torch.long, device=device)
        stats = SamplerStats(tokens=N)
        done = 0
        for step in generator.order.cached_decode_schedule():
            if step.feed_T.numel() == 0:
                out = generator.prefill(cond_all, cache, mask_all)
            else:
                feed_T = step.feed_T.to(device)
                fed_BT = tokens_BN[:, feed_T]
                if self.cfg.enabled:
                    fed_BT = torch.cat([fed_BT, fed_BT])
                out = generator.decode(fed_BT, feed_T[None].expand(fed_BT.shape[0], -1), cache)
            guided = guided_logits(generator.select_logits(out, step), B, self.cfg, done / N)
            tokens_BN[:, step.emit_E.to(device)] = self.logits.sample(guided, generator_rng)
            if prompt_tokens is not None:
                tokens_BN[:, : prompt_tokens.shape[1]] = prompt_tokens.to(device)
            done += step.emit_E.numel()
            stats.forward_passes += 1
            stats.accepted_per_step.append(float(step.emit_E.numel()))
        stats.wall_time_s = time.perf_counter() - start
        return self.finish(tokens_BN, generator, stats, tokenizer)
