"""The categorical head: trunk features -> logits over a codebook (discrete tokens).

It is a linear map, kept as a :class:`torch.nn.Linear` subclass so that checkpoints keep their
parameter names (LlamaGen's ``output.weight``, VAR's ``head.weight`` / ``head.bias``).
"""

from __future__ import annotations

import torch
from torch import nn


class CategoricalHead(nn.Linear):
    """``(..., dim)`` features -> float32 logits ``(..., vocab_size)``."""

    def __init__(self, dim: int, vocab_size: int, bias: bool = False):
        super().__init__(dim, vocab_size, bias=bias)

    @property
    def vocab_size(self) -> int:
        return self.out_features

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return super().forward(h).float()
