"""A new sampler in one user file: plain KV-cached AR sampling whose temperature moves linearly from
``start`` (first token) to ``end`` (last token) along any order's decode schedule.

    arforge sample --import docs/examples/annealed_sampler.py --checkpoint runs/quickstart/generator \
        --sampler annealed_ar:start=1.2,end=0.7 --cfg 3 --num-per-class 8

It reuses the public pieces every built-in sampler is made of: :func:`start_decoding` (device,
``[cond; null]`` for CFG, the KV cache), :func:`run_schedule` (the decode loop over the order's
:class:`DecodeStep` list), the CFG schedule and the logits pipeline.
"""

from __future__ import annotations

import torch

from arforge.samplers import CFGSchedule, LogitsPipeline, Sampler, SampleResult, register_sampler
from arforge.samplers.ar import guided_logits, run_schedule
from arforge.samplers.context import require_capability, start_decoding


@register_sampler("annealed_ar")
class AnnealedARSampler(Sampler):
    """Args: ``start`` / ``end`` temperatures (> 0), ``cfg`` (scale or :class:`CFGSchedule`), ``top_k``."""

    def __init__(self, start: float = 1.0, end: float = 1.0, cfg: CFGSchedule | float = 1.0, top_k: int = 0):
        if start <= 0 or end <= 0:
            raise ValueError(f"temperatures must be > 0, got start={start}, end={end}")
        self.start, self.end = float(start), float(end)
        self.cfg = cfg if isinstance(cfg, CFGSchedule) else CFGSchedule(scale=float(cfg))
        self.logits = LogitsPipeline(top_k=int(top_k))

    @torch.no_grad()
    def sample(self, generator, condition, *, generator_rng=None, tokenizer=None) -> SampleResult:
        require_capability(self.name, generator, "prefill", "a KV-cached token generator")
        ctx = start_decoding(generator, condition, self.cfg)
        N, done = generator.num_tokens, 0

        def pick(logits, step):
            nonlocal done
            progress = done / max(N - 1, 1)
            temperature = self.start + (self.end - self.start) * progress
            guided = guided_logits(logits, ctx.batch, self.cfg, done / N)
            done += step.emit_E.numel()
            return self.logits.sample(guided if temperature == 1.0 else guided / temperature, generator_rng)

        tokens_BN = run_schedule(generator, generator.order.cached_decode_schedule(), ctx, pick)
        return self.finish(tokens_BN, generator, ctx.finish_timing(), tokenizer)
