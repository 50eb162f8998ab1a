"""Exact autoregressive sampling with a KV cache, following the generator's order schedule.

One forward pass per :class:`~arforge.generators.orders.DecodeStep`: the prefill pass encodes the
condition, later passes feed the tokens sampled before. With CFG the batch is ``[cond; uncond]`` and
both halves receive the same sampled tokens (LlamaGen). :func:`run_schedule` is the loop itself,
shared with every sampler that walks a schedule (ZipAR walks :class:`~arforge.generators.orders.ZipAR`'s).
"""

from __future__ import annotations

from typing import Callable

import torch

from arforge.generators.orders import DecodeStep
from arforge.samplers.base import Sampler, SampleResult, register_sampler
from arforge.samplers.cfg import CFGSchedule
from arforge.samplers.context import DecodeContext, require_capability, start_decoding, with_null_condition
from arforge.samplers.logits import LogitsPipeline

__all__ = ["ARSampler", "guided_logits", "run_schedule", "transient_visibility", "with_null_condition"]


def guided_logits(logits_2BEV: torch.Tensor, batch: int, cfg: CFGSchedule, progress: float) -> torch.Tensor:
    """Split a ``[cond; uncond]`` batch and apply CFG at ``progress``; pass-through without CFG."""
    if not cfg.enabled:
        return logits_2BEV.float()
    return cfg.combine(logits_2BEV[:batch], logits_2BEV[batch:], cfg.scale_at(progress))


def transient_visibility(step: DecodeStep, num_prefix: int, slots: int, rows: int, device) -> torch.Tensor:
    """Visibility ``(rows, T, slots)`` hiding the step's transient feeds (stand-in tokens) from every
    query of the pass but their own."""
    feed_T = step.feed_T.to(device)
    own_R = step.transient_T.to(device)
    slot_R = num_prefix + feed_T[own_R]
    visible = torch.ones(feed_T.numel(), slots, dtype=torch.bool, device=device)
    visible[:, slot_R] = False
    visible[own_R, slot_R] = True
    return visible[None].expand(rows, -1, -1)


def run_schedule(model, schedule: list[DecodeStep], ctx: DecodeContext,
                 pick: Callable[[torch.Tensor, DecodeStep], torch.Tensor]) -> torch.Tensor:
    """Walk ``schedule`` on a token ``model`` with ``ctx``'s cache; returns the tokens ``(B, N)``.

    Each pass feeds the step's tokens (``fed_from_T`` where a slot gets a stand-in) to every model
    row of ``ctx`` (both CFG halves get the same tokens), hides and then invalidates transient feeds,
    and stores ``pick(logits_RBEV, step)`` (``(B, E)`` token values) at the step's emitted indices;
    ``logits`` are the float32 outputs of the ``R * B`` model rows for the emitted tokens."""
    device, B, cache = ctx.device, ctx.batch, ctx.cache
    rows = ctx.cond_all.shape[0]
    tokens_BN = torch.zeros(B, model.num_tokens, dtype=torch.long, device=device)
    for step in schedule:
        if step.feed_T.numel() == 0:
            out = model.prefill(ctx.cond_all, cache, ctx.mask_all)
        else:
            feed_T = step.feed_T.to(device)
            fed_BT = tokens_BN[:, feed_T if step.fed_from_T is None else step.fed_from_T.to(device)]
            if rows != B:
                fed_BT = fed_BT.repeat(rows // B, 1)
            idx_RT = feed_T[None].expand(rows, -1)
            if step.transient_T.numel():
                visible = transient_visibility(step, model.num_prefix, cache.max_len, rows, device)
                out = model.decode(fed_BT, idx_RT, cache, visible_BTS=visible)
                cache.invalidate(idx_RT[:, step.transient_T.to(device)] + model.num_prefix)
            else:
                out = model.decode(fed_BT, idx_RT, cache)
        tokens_BN[:, step.emit_E.to(device)] = pick(model.select_logits(out, step), step)
        ctx.stats.forward_passes += 1
        ctx.stats.accepted_per_step.append(float(step.emit_E.numel()))
    return tokens_BN


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
        require_capability(self.name, generator, "prefill", "a token generator with KV-cached prefill and decode passes")
        B, N = condition.shape[0], generator.num_tokens
        if prompt_tokens is not None and (prompt_tokens.ndim != 2 or prompt_tokens.shape[0] != B or prompt_tokens.shape[1] > N):
            raise ValueError(f"prompt_tokens must be (B={B}, n <= {N}) raster-order tokens, got {tuple(prompt_tokens.shape)}")
        ctx = start_decoding(generator, condition, self.cfg, cond_mask)
        given_BN = given_N = None
        if prompt_tokens is not None:
            given_BN = torch.zeros(B, N, dtype=torch.long, device=ctx.device)
            given_BN[:, : prompt_tokens.shape[1]] = prompt_tokens.to(ctx.device)
            given_N = torch.arange(N, device=ctx.device) < prompt_tokens.shape[1]
        done = 0

        def pick(logits: torch.Tensor, step: DecodeStep) -> torch.Tensor:
            nonlocal done
            tokens_BE = self.logits.sample(guided_logits(logits, B, self.cfg, done / N), generator_rng)
            done += step.emit_E.numel()
            if given_BN is None:
                return tokens_BE
            emit = step.emit_E.to(ctx.device)
            return torch.where(given_N[emit], given_BN[:, emit], tokens_BE)

        tokens_BN = run_schedule(generator, generator.order.cached_decode_schedule(), ctx, pick)
        return self.finish(tokens_BN, generator, ctx.finish_timing(), tokenizer)
