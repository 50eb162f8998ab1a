"""The :class:`Generator` and :class:`TokenGenerator` protocols: what samplers may rely on.

Samplers check these capabilities (and order types: ``arforge.samplers.context.require_order``),
never class names, so a user's generator that provides them works with every sampler that needs
only them. ``isinstance(obj, TokenGenerator)`` checks that the attributes exist (not their types).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from arforge.generators.kv_cache import KVCache
from arforge.generators.orders import DecodeStep, Order


@runtime_checkable
class Generator(Protocol):
    """Any generator.

    Attributes / methods:
        order: its :class:`~arforge.generators.orders.Order` (what is generated when).
        num_tokens: tokens per image ``N`` (all scales for next-scale models).
        device: where its parameters live.

    Generators whose CFG mixes two condition rows (every family but MAR, which guides in embedding
    space) also provide ``null_condition(cond)``: the unconditional counterpart of a condition batch
    (:func:`arforge.samplers.context.start_decoding` lays out ``[cond; null]``).
    """

    order: Order

    @property
    def num_tokens(self) -> int: ...

    @property
    def device(self) -> torch.device: ...


@runtime_checkable
class TokenGenerator(Generator, Protocol):
    """A KV-cached next-token(s) generator over discrete codes (raster, next-block, neighbour, ZipAR, ...).

    Attributes / methods:
        vocab_size: codebook size ``V``.
        num_prefix: condition slots ``P`` before the image tokens in the cache.
        new_cache(batch_size): an empty :class:`KVCache` of ``P + N`` slots per row.
        prefill(cond, cache, cond_mask=None): encode the condition; logits of the first emitted tokens.
        decode(tokens_BT, idx_BT, cache, visible_BTS=None): feed tokens at grid indices ``idx_BT``
            (K/V written at slots ``P + idx``); float32 logits ``(B, T, V)`` of every fed slot.
        select_logits(out, step): the logits ``(B, E, V)`` of the tokens a
            :class:`~arforge.generators.orders.DecodeStep` emits, from that pass's outputs.
    """

    @property
    def vocab_size(self) -> int: ...

    def null_condition(self, cond: torch.Tensor) -> torch.Tensor: ...

    @property
    def num_prefix(self) -> int: ...

    def new_cache(self, batch_size: int) -> KVCache: ...

    def prefill(self, cond: torch.Tensor, cache: KVCache, cond_mask_BP: torch.Tensor | None = None) -> torch.Tensor: ...

    def decode(self, tokens_BT: torch.Tensor, idx_BT: torch.Tensor, cache: KVCache) -> torch.Tensor: ...

    def select_logits(self, out: torch.Tensor, step: DecodeStep) -> torch.Tensor: ...
