"""The categorical head: trunk features -> logits over a codebook (discrete tokens).

It is a linear map, kept as a :class:`torch.nn.Linear` subclass so that checkpoints keep their
parameter names (LlamaGen's ``output.weight``, VAR's ``head.weight`` / ``head.bias``).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from arforge.registry import Registry

#: heads over a codebook, chosen by ``model.head: {name: ..., options: {...}}`` in token-generator
#: configs; an entry is called as ``factory(dim, vocab_size, **options)`` and returns a module
#: mapping ``(..., dim)`` features to float32 logits ``(..., vocab_size)``
TOKEN_HEADS: Registry[Callable[..., nn.Module]] = Registry("head")


def register_token_head(name: str):
    """Decorator registering a token-head factory (or ``nn.Module`` class) under ``name``."""
    return TOKEN_HEADS.register(name)


class CategoricalHead(nn.Linear):
    """``(..., dim)`` features -> float32 logits ``(..., vocab_size)``."""

    def __init__(self, dim: int, vocab_size: int, bias: bool = False):
        super().__init__(dim, vocab_size, bias=bias)

    @property
    def vocab_size(self) -> int:
        return self.out_features

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return super().forward(h).float()


TOKEN_HEADS.register("categorical", CategoricalHead)
