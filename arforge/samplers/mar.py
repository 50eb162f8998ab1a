"""MAR sampling: masked random-order generation of continuous tokens with a diffusion head.

Each of ``num_iter`` steps runs the bidirectional trunk once (over ``[cond; uncond]`` with CFG),
then denoises *all* tokens unmasked in that step in one batched head call. The cosine schedule
(:meth:`MaskedRandomOrder.unmask_schedule`) fixes how many tokens each step emits; the order is a
random permutation per image drawn from ``generator_rng``. With a ``linear`` CFG schedule the scale
ramps with the fraction of tokens known after the step, as MAR's ``cfg_schedule="linear"``.
With ``head_steps_end`` the head's diffusion steps fall linearly from ``head_steps`` (first step) to
``head_steps_end`` as the image fills in (DiSA annealing: later tokens are pinned down by the known
ones, so they need fewer denoising steps); ``head_steps_power`` > 1 makes them fall faster
(:func:`~arforge.samplers.annealing.annealed_steps`, shared with the flow samplers).
"""

from __future__ import annotations

import time

import torch

from arforge.generators.heads import DiffusionHead
from arforge.generators.orders import MaskedRandomOrder
from arforge.samplers.annealing import annealed_steps, check_step_annealing
from arforge.samplers.context import require_head, require_order
from arforge.utils.device import module_device
from arforge.samplers.base import Sampler, SamplerStats, SampleResult, register_sampler
from arforge.samplers.cfg import CFGSchedule


@register_sampler("mar")
class MARSampler(Sampler):
    """Args: ``num_iter`` trunk passes (MAR: 64 demo / 256 paper), ``cfg`` (schedule or scale),
    ``temperature`` of the head's injected noise, ``head_steps`` (respaced diffusion steps; ``None``
    keeps the head's configured count), ``head_steps_end`` (DiSA: anneal to this many steps),
    ``head_steps_power`` (shape of that annealing; 1 = linear), ``x0_clip`` (clamp of the head's predicted clean token; ``None`` = the model's setting)."""

    def __init__(self, num_iter: int = 64, cfg: CFGSchedule | float = 1.0, temperature: float = 1.0,
                 head_steps: int | None = None, head_steps_end: int | None = None, x0_clip: float | None = None,
                 head_steps_power: float = 1.0):
        if num_iter < 1:
            raise ValueError(f"num_iter must be >= 1, got {num_iter}")
        check_step_annealing(head_steps, head_steps_end, head_steps_power)
        self.head_steps_power = head_steps_power
        self.num_iter, self.temperature, self.head_steps, self.head_steps_end = num_iter, temperature, head_steps, head_steps_end
        self.x0_clip = x0_clip
        self.cfg = cfg if isinstance(cfg, CFGSchedule) else CFGSchedule(scale=float(cfg))

    @torch.no_grad()
    def sample(self, generator, condition, *, generator_rng=None, tokenizer=None) -> SampleResult:
        start = time.perf_counter()
        model = generator
        require_order(self.name, model, MaskedRandomOrder)
        require_head(self.name, model, DiffusionHead)
        device = module_device(model)
        labels = condition.to(device)
        configured_steps = model.diffloss.sample_diffusion.num_steps
        first_steps = self.head_steps or configured_steps
        try:
            return self._sample(model, labels, device, start, generator_rng, tokenizer, first_steps)
        finally:
            model.diffloss.set_sampling_steps(configured_steps)

    def _sample(self, model, labels, device, start, generator_rng, tokenizer, first_steps: int) -> SampleResult:
        B, N, d = labels.shape[0], model.num_tokens, model.config.token_dim
        order = model.order
        orders_BN = order.sample_orders(B, generator_rng, device)
        tokens_BNd = torch.zeros(B, N, d, device=device)
        mask_BN = torch.ones(B, N, device=device)
        emb_BD = model.class_embedding(labels)
        stats = SamplerStats(tokens=N)
        for mask_len in order.unmask_schedule(self.num_iter):
            if self.cfg.enabled:
                z = model.conditions(torch.cat([tokens_BNd, tokens_BNd]), torch.cat([mask_BN, mask_BN]),
                                     torch.cat([emb_BD, model.null_embedding(B)]))
                z_cond, z_uncond = z[:B], z[B:]
            else:
                z_cond, z_uncond = model.conditions(tokens_BNd, mask_BN, emb_BD), None
            stats.forward_passes += 1
            mask_next = order.mask_first(orders_BN, mask_len)
            emit = mask_BN.bool() & ~mask_next.bool()
            idx = emit.nonzero(as_tuple=True)
            if idx[0].numel():
                known = N - int(mask_BN[0].sum())
                steps = first_steps if self.head_steps_end is None else annealed_steps(known / N, first_steps, self.head_steps_end,
                                                                                         self.head_steps_power)
                if steps != model.diffloss.sample_diffusion.num_steps:
                    model.diffloss.set_sampling_steps(steps)
                t = time.perf_counter()
                scale = self.cfg.scale_at((N - mask_len) / N)
                tokens_BNd[idx] = model.diffloss.sample(
                    z_cond[idx], uncond_NC=None if z_uncond is None else z_uncond[idx], cfg=scale,
                    temperature=self.temperature, generator=generator_rng, x0_clip=self.x0_clip)
                stats.head_evaluations += model.diffloss.sample_diffusion.num_steps
                stats.head_time_s += time.perf_counter() - t
            stats.accepted_per_step.append(float(idx[0].numel()) / B)
            mask_BN = mask_next
        latents = model.unpatchify(tokens_BNd)
        stats.wall_time_s = time.perf_counter() - start
        images = None
        if tokenizer is not None:
            t = time.perf_counter()
            images = tokenizer.decode(latents).clamp(-1, 1)
            stats.decode_time_s = time.perf_counter() - t
        return SampleResult(tokens=latents, stats=stats, images=images)
