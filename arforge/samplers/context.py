"""What every sampler does before its first forward pass, in one place: check that the model has
what the sampler relies on (an order type or a method, never a class name), find its device, lay out
``[cond; null]`` for classifier-free guidance, and open a KV cache.

A sampler that lacks a capability says which one and what the model has instead::

    sjd needs a raster order; this model uses neighbor
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from arforge.generators.kv_cache import KVCache
from arforge.samplers.base import SamplerStats
from arforge.samplers.cfg import CFGSchedule
from arforge.utils.device import module_device


def describe_model(model: Any) -> str:
    """Short name of a model for error messages: its registered family, else its class."""
    return getattr(model, "model_type", None) or type(model).__name__


def require_order(sampler: str, model: Any, *orders: type) -> None:
    """Raise ``ValueError`` unless ``model.order`` is an instance of one of ``orders``."""
    order = getattr(model, "order", None)
    if not isinstance(order, orders):
        want = " or ".join(getattr(o, "name", o.__name__) for o in orders)
        have = getattr(order, "name", "no generation order") if order is not None else "no generation order"
        raise ValueError(f"{sampler} needs a {want} order; this model ({describe_model(model)}) uses {have}")


def require_capability(sampler: str, model: Any, method: str, what: str) -> None:
    """Raise ``ValueError`` unless ``model`` has a callable ``method`` (``what`` says what it is for)."""
    if not callable(getattr(model, method, None)):
        raise ValueError(f"{sampler} needs {what}; this model ({describe_model(model)}) has no {method}()")


def require_head(sampler: str, model: Any, *heads: type) -> None:
    """Raise ``ValueError`` unless the model's output head (``head``, else ``output``) is one of ``heads``."""
    head = getattr(model, "head", None)
    if head is None:
        head = getattr(model, "output", None)
    if not isinstance(head, heads):
        want = " or ".join(h.__name__ for h in heads)
        raise ValueError(f"{sampler} needs a {want}; this model ({describe_model(model)}) has "
                         f"{type(head).__name__ if head is not None else 'no output head'}")


def with_null_condition(generator, condition: torch.Tensor, cfg: CFGSchedule, cond_mask=None):
    """``[cond; null]`` (and the doubled mask) when CFG is on; the inputs unchanged otherwise."""
    if not cfg.enabled:
        return condition, cond_mask
    both = torch.cat([condition, generator.null_condition(condition)])
    return both, (None if cond_mask is None else torch.cat([cond_mask, cond_mask]))


@dataclass
class DecodeContext:
    """The state a sampler starts from.

    Attributes:
        device: the model's device.
        batch: images ``B`` in the call.
        cond_all: the condition rows fed to the model: ``B`` rows, or ``2B`` (``[cond; null]``) with CFG.
        mask_all: the caption padding mask of those rows, or ``None``.
        cache: an empty KV cache of ``cond_all.shape[0]`` rows (``None`` if not asked for).
        stats: the call's :class:`SamplerStats` (``tokens`` set to the model's token count).
        start_time: ``time.perf_counter()`` at the start, for ``stats.wall_time_s``.
    """

    device: torch.device
    batch: int
    cond_all: torch.Tensor
    mask_all: torch.Tensor | None
    cache: KVCache | None
    stats: SamplerStats
    start_time: float = field(default_factory=time.perf_counter)

    @property
    def copies(self) -> int:
        """Model rows per image: 2 with CFG, else 1."""
        return self.cond_all.shape[0] // self.batch

    def finish_timing(self) -> SamplerStats:
        self.stats.wall_time_s = time.perf_counter() - self.start_time
        return self.stats


def start_decoding(model: Any, condition: torch.Tensor, cfg: CFGSchedule, cond_mask: torch.Tensor | None = None,
                   *, open_cache: bool = True) -> DecodeContext:
    """Move ``condition`` to the model's device, add the null condition for CFG, open a KV cache
    (``open_cache``; the model must then have ``new_cache``)."""
    start = time.perf_counter()
    device = module_device(model)
    cond_all, mask_all = with_null_condition(model, condition.to(device), cfg,
                                             None if cond_mask is None else cond_mask.to(device))
    cache = model.new_cache(cond_all.shape[0]) if open_cache else None
    return DecodeContext(device=device, batch=condition.shape[0], cond_all=cond_all, mask_all=mask_all, cache=cache,
                         stats=SamplerStats(tokens=model.num_tokens), start_time=start)
