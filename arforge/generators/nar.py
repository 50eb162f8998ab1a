"""The ``nar`` family: neighbour-order generation (NAR) on the raster generator's backbone.

The raster generator (:class:`~arforge.generators.raster.RasterGenerator`) driven by a
:class:`~arforge.generators.orders.Neighbor` order: tokens in waves of equal ``row + col``, each wave
in one forward pass (``h + w - 1`` passes), the proximity mask over raster-ordered inputs, and two
dimension-oriented heads: ``output`` predicts the right neighbour, ``output_below`` the neighbour
below and, on a ``(t, h, w)`` video grid, ``output_time`` the same cell in the next frame; a token's
logits average the heads that reach it. NAR puts one extra transformer block in front of its below
head; here every head reads the shared trunk output (a linear head each).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from arforge.generators.orders import Neighbor, Order
from arforge.generators.heads.categorical import CategoricalHead
from arforge.generators.raster import RasterConfig, RasterGenerator
from arforge.pretrained import register_model


@dataclass
class NARConfig(RasterConfig):
    """:class:`RasterConfig` (class conditioning)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.require_class_condition("nar")
        self.require_own_order("nar", head=True)


def average_heads(logits_BEHV: torch.Tensor, use_EH: torch.Tensor) -> torch.Tensor:
    """Mean over the direction heads marked in ``use_EH`` (bool ``(E, H)``, >= 1 per row): ``(B, E, V)``."""
    w_EH = use_EH.to(logits_BEHV.dtype)
    return (logits_BEHV * w_EH[None, :, :, None]).sum(2) / w_EH.sum(1)[None, :, None]


@register_model
class NARGenerator(RasterGenerator):
    """Class-conditional neighbour-order generator with one direction head per grid dimension."""

    config_class = NARConfig
    model_type = "nar"
    default_sampler = "ar"

    def __init__(self, config: NARConfig):
        super().__init__(config)
        self.output_below = CategoricalHead(config.backbone.dim, config.vocab_size)
        nn.init.zeros_(self.output_below.weight)
        if len(config.grid_size) == 3:
            self.output_time = CategoricalHead(config.backbone.dim, config.vocab_size)
            nn.init.zeros_(self.output_time.weight)

    def direction_heads(self) -> list[nn.Module]:
        """Head ``k`` predicts the neighbour along grid dimension ``-1 - k`` (right, below, next frame)."""
        heads = [self.output, self.output_below]
        return heads + [self.output_time] if hasattr(self, "output_time") else heads

    def build_order(self, config: NARConfig) -> Order:
        return Neighbor(config.grid_size)

    def head_logits(self, h_BTC: torch.Tensor) -> torch.Tensor:
        """Float32 ``(..., H, V)``: the logits of every direction head."""
        return torch.stack([head(h_BTC) for head in self.direction_heads()], dim=-2).float()

    def read_out(self, h_BLC: torch.Tensor, arr) -> torch.Tensor:
        slots_NH = arr.head_slots_NH.to(h_BLC.device)
        per_head = [head(h_BLC[:, slots_NH[:, k].clamp_min(0)]) for k, head in enumerate(self.direction_heads())]
        return average_heads(torch.stack(per_head, dim=2).float(), slots_NH >= 0)

    def select_logits(self, out: torch.Tensor, step) -> torch.Tensor:
        """Prefill ``(B, H, V)``: every head at the last prefix slot predicts the first token.
        Decode ``(B, T, H, V)``: each emitted token averages the heads whose source row is ``>= 0``."""
        if out.dim() == 3:
            return out.mean(1, keepdim=True)
        src_EH = step.source_E.to(out.device)
        use_EH = src_EH >= 0
        gathered = torch.stack([out[:, src_EH[:, h].clamp_min(0), h] for h in range(out.shape[2])], dim=2)
        return average_heads(gathered, use_EH)
