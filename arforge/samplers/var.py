"""Next-scale sampling (VAR): one forward pass per scale with a scale-wise KV cache.

Pass ``k`` feeds scale ``k``'s inputs (the start token for ``k = 0``, else the tokenizer's
reconstruction so far area-downsampled to ``p_k``), writes their K/V into the cache and samples all
``p_k^2`` tokens of the scale at once; the quantizer then adds the new code map to ``f_hat``
(:meth:`~arforge.tokenizers.MultiScaleQuantizer.next_input`). The image is the tokenizer's decode
of the final ``f_hat``. CFG progress at scale ``k`` is ``k / (K - 1)``: VAR's ramp ``cfg = c``
(guidance ``t = c k / (K - 1)``, logits ``(1 + t) cond - t uncond``) is
``CFGSchedule(scale=1 + c, kind="linear")`` in arforge's ``uncond + w (cond - uncond)`` convention.

:meth:`VARSampler.inpaint` is VAR's zero-shot editing: tokens of a reference image are imposed,
at every scale, wherever the keep-mask covers at least half of a token's cell; the rest is sampled.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from arforge.generators.heads import CategoricalHead
from arforge.generators.orders import NextScale
from arforge.samplers.base import Sampler, SampleResult, register_sampler
from arforge.samplers.cfg import CFGSchedule
from arforge.samplers.context import require_head, require_order, start_decoding
from arforge.samplers.logits import LogitsPipeline
from arforge.utils.device import module_device


@register_sampler("var")
class VARSampler(Sampler):
    """Args: ``cfg`` (:class:`CFGSchedule` or a constant float scale; VAR's ramp is ``kind="linear"``),
    ``logits`` (:class:`LogitsPipeline`: temperature / top-k / top-p / greedy)."""

    def __init__(self, cfg: CFGSchedule | float = 1.0, logits: LogitsPipeline | None = None):
        self.cfg = cfg if isinstance(cfg, CFGSchedule) else CFGSchedule(scale=float(cfg))
        self.logits = logits or LogitsPipeline()

    @staticmethod
    def _check(generator, tokenizer) -> None:
        require_order("var", generator, NextScale)
        require_head("var", generator, CategoricalHead)
        quantize = getattr(tokenizer, "quantize", None)
        if not hasattr(quantize, "next_input"):
            raise ValueError("VAR sampling needs the multi-scale tokenizer (MultiScaleVQTokenizer) the generator was "
                             "trained on: pass tokenizer=... (the CLI reads it from the generator's config)")
        if tuple(quantize.patch_nums) != tuple(generator.order.patch_nums) or quantize.codebook_size != generator.vocab_size:
            raise ValueError(f"tokenizer (patch_nums {list(quantize.patch_nums)}, {quantize.codebook_size} codes) does not "
                             f"match the generator (patch_nums {list(generator.order.patch_nums)}, {generator.vocab_size} codes)")

    @torch.no_grad()
    def sample(self, generator, condition, *, generator_rng=None, tokenizer=None, cond_mask=None) -> SampleResult:
        """Tokens ``(B, L)`` (scales concatenated) and images ``(B, C, H, W)`` in ``[-1, 1]``."""
        return self._run(generator, condition, tokenizer, generator_rng, known=None)

    @torch.no_grad()
    def inpaint(self, generator, condition, images_BCHW: torch.Tensor, keep_BHW: torch.Tensor, *, tokenizer,
                generator_rng=None) -> SampleResult:
        """Zero-shot in/out-painting: keep the parts of ``images`` where ``keep_BHW`` (bool, pixels)
        is True, generate the rest conditioned on ``condition``."""
        self._check(generator, tokenizer)
        if keep_BHW.shape != (images_BCHW.shape[0], *images_BCHW.shape[-2:]):
            raise ValueError(f"keep mask must be (B, H, W) = {(images_BCHW.shape[0], *images_BCHW.shape[-2:])}, got {tuple(keep_BHW.shape)}")
        q = tokenizer.quantize
        device = module_device(generator)
        known = q.split(tokenizer.encode(images_BCHW.to(device)))
        keep = keep_BHW.to(device).float()[:, None]
        keep_masks = [F.interpolate(keep, size=(pn, pn), mode="area").flatten(1) >= 0.5 for pn in q.patch_nums]
        return self._run(generator, condition, tokenizer, generator_rng, known=list(zip(known, keep_masks)))

    def _run(self, model, condition, tokenizer, rng, known) -> SampleResult:
        self._check(model, tokenizer)
        q = tokenizer.quantize
        ctx = start_decoding(model, condition, self.cfg)
        device, B, cache, stats = ctx.device, ctx.batch, ctx.cache, ctx.stats
        cond_BD = model.condition(ctx.cond_all)
        side, K = q.patch_nums[-1], q.num_scales
        f_hat = torch.zeros(B, q.dim, side, side, device=device)
        x_BlCv, tokens = None, []
        for si, pn in enumerate(q.patch_nums):
            logits = model.decode_scale(si, x_BlCv, cond_BD, cache)
            if self.cfg.enabled:
                logits = CFGSchedule.combine(logits[:B], logits[B:], self.cfg.scale_at(si / (K - 1)))
            idx_Bl = self.logits.sample(logits, rng)
            if known is not None:
                known_idx, keep = known[si]
                idx_Bl = torch.where(keep, known_idx, idx_Bl)
            tokens.append(idx_Bl)
            f_hat, next_BChw = q.next_input(si, f_hat, q.lookup(idx_Bl, pn))
            if si < K - 1:
                x_BlCv = next_BChw.flatten(2).transpose(1, 2)
                if self.cfg.enabled:
                    x_BlCv = torch.cat([x_BlCv, x_BlCv])
            stats.forward_passes += 1
            stats.accepted_per_step.append(float(pn * pn))
        t = time.perf_counter()
        images = tokenizer.decode_latent(f_hat).clamp(-1, 1)
        stats.decode_time_s = time.perf_counter() - t
        ctx.finish_timing()
        return SampleResult(tokens=torch.cat(tokens, dim=1), stats=stats, images=images)
