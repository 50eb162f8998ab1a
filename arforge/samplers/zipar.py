"""ZipAR (He et al. 2024): row-parallel decoding of a raster-trained model.

The schedule, the row-start proxy rule and the exact ZipAR-aware training layout are the
:class:`~arforge.generators.orders.ZipAR` order (:mod:`arforge.generators.orders.zipar`); this
sampler walks that order's schedule with the shared loop :func:`~arforge.samplers.ar.run_schedule`.
With ``s = W`` the schedule is exactly raster order and the samples equal :class:`ARSampler`'s bit
for bit under the same generator state. :class:`~arforge.samplers.zipar_sjd.ZipARSJDSampler` drafts
several tokens per row and verifies them SJD-style.
"""

from __future__ import annotations

import torch

from arforge.generators.orders import DecodeStep, Raster, ZipAR, check_proxy
from arforge.samplers.ar import run_schedule
from arforge.samplers.base import Sampler, SampleResult, register_sampler
from arforge.samplers.cfg import CFGSchedule, guided_window_logits
from arforge.samplers.context import require_order, start_decoding
from arforge.samplers.logits import LogitsPipeline


def zipar_order(sampler: str, model, window: int, proxy: str) -> ZipAR:
    """The :class:`ZipAR` order that decodes ``model``'s raster image grid with window
    ``min(window, W)`` (``ValueError`` naming ``sampler`` for a model of another order)."""
    require_order(sampler, model, Raster)
    if len(model.order.grid_shape) != 2:
        raise ValueError(f"{sampler} needs an image grid (h, w); this model's grid is {list(model.order.grid_shape)}")
    return ZipAR(model.order.grid_shape, min(window, model.order.grid_shape[1]), proxy)


@register_sampler("zipar")
class ZipARSampler(Sampler):
    """Args: ``window`` (``s``; default 8, clipped to the row width), ``cfg``, ``logits``, ``proxy``
    (row-start stand-in token, ``"above"`` or ``"newest"``: :func:`~arforge.generators.orders.zipar.proxy_source`)."""

    def __init__(self, window: int = 8, cfg: CFGSchedule | float = 1.0, logits: LogitsPipeline | None = None,
                 proxy: str = "above"):
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        check_proxy(proxy)
        self.window, self.proxy = window, proxy
        self.cfg = cfg if isinstance(cfg, CFGSchedule) else CFGSchedule(scale=float(cfg))
        self.logits = logits or LogitsPipeline()

    @torch.no_grad()
    def sample(self, generator, condition, *, generator_rng=None, tokenizer=None, cond_mask=None) -> SampleResult:
        order = zipar_order(self.name, generator, self.window, self.proxy)
        ctx = start_decoding(generator, condition, self.cfg, cond_mask)
        B, N = ctx.batch, generator.num_tokens

        def pick(logits: torch.Tensor, step: DecodeStep) -> torch.Tensor:
            emit_BE = step.emit_E.to(ctx.device)[None].expand(B, -1)
            return self.logits.sample(guided_window_logits(logits, B, self.cfg, emit_BE, N), generator_rng)

        tokens_BN = run_schedule(generator, order.cached_decode_schedule(), ctx, pick)
        return self.finish(tokens_BN, generator, ctx.finish_timing(), tokenizer)
